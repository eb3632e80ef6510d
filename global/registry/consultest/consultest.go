// Package consultest is a local HTTP server that speaks the part of
// Consul's HTTP API livecell uses, as Consul documents it. No Consul server
// can be installed on the machines livecell is built on, so every test of
// the Consul code path (registration, deregistration, discovery by blocking
// queries) runs the real hashicorp/consul/api client against this fake.
package consultest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server serves the part of Consul's HTTP API the registry uses, as
// Consul documents it (no Consul server can be installed here):
//
//	PUT /v1/agent/service/register           body: the service definition
//	PUT /v1/agent/service/deregister/:id     404 for an unknown id
//	GET /v1/health/service/:service?passing=1&index=N&wait=Ds
//	    a JSON list of {Node, Service, Checks}, with X-Consul-Index; with
//	    index at or past the current one, the request blocks until the
//	    result changes or wait passes (a blocking query).
//
// A registered service's checks start critical, as in Consul; the test
// marks them passing with SetStatus.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed on every change
	services map[string]*Service
	order    []string // ids in registration order
	requests []Request
	failures map[string]*failRule // path prefix → how to fail
}

// failRule fails one request with code after skip matching ones succeed.
type failRule struct{ skip, code int }

// Service is one registered service as the fake holds it.
type Service struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	Status            string `json:"-"` // of its checks: passing, warning, critical
}

// Request is one request the fake received.
type Request struct {
	Method, Path string
	Query        map[string]string
	Token        string
	Body         string
}

// New starts a fake Consul agent for the test's lifetime.
func New(t testing.TB) *Server {
	t.Helper()
	f := &Server{t: t, index: 10, changed: make(chan struct{}), services: map[string]*Service{}, failures: map[string]*failRule{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.mu.Lock()
		close(f.changed) // release blocked queries
		f.changed = make(chan struct{})
		f.mu.Unlock()
		f.srv.Close()
	})
	return f
}

// Addr is the fake's host:port, for CONSUL_HTTP_ADDR.
func (f *Server) Addr() string { return f.srv.Listener.Addr().String() }

// bumpLocked records a change: a new index, and blocked queries return.
func (f *Server) bumpLocked() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = v[0]
	}
	f.mu.Lock()
	f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, Query: q, Token: r.Header.Get("X-Consul-Token"), Body: string(body)})
	for prefix, rule := range f.failures {
		if !strings.HasPrefix(r.URL.Path, prefix) {
			continue
		}
		if rule.skip > 0 {
			rule.skip--
			continue
		}
		delete(f.failures, prefix)
		f.mu.Unlock()
		http.Error(w, "fake failure", rule.code)
		return
	}
	f.mu.Unlock()

	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v1/agent/service/register":
		var s Service
		if err := json.Unmarshal(body, &s); err != nil || s.Name == "" {
			http.Error(w, "Request decode failed", http.StatusBadRequest)
			return
		}
		if s.ID == "" {
			s.ID = s.Name
		}
		s.Status = "critical"
		f.mu.Lock()
		if _, ok := f.services[s.ID]; !ok {
			f.order = append(f.order, s.ID)
		}
		f.services[s.ID] = &s
		f.bumpLocked()
		f.mu.Unlock()
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/agent/service/deregister/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/agent/service/deregister/")
		f.mu.Lock()
		_, ok := f.services[id]
		delete(f.services, id)
		if ok {
			f.bumpLocked()
		}
		f.mu.Unlock()
		if !ok {
			http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id), http.StatusNotFound)
		}
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
		f.health(w, r, strings.TrimPrefix(r.URL.Path, "/v1/health/service/"))
	default:
		http.NotFound(w, r)
	}
}

func (f *Server) health(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	wait := 5 * time.Minute
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return
		}
		wait = d
	}
	if s := q.Get("index"); s != "" {
		want, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			http.Error(w, "Invalid index", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		idx, ch := f.index, f.changed
		f.mu.Unlock()
		if want >= idx {
			select {
			case <-ch:
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
		}
	}
	f.mu.Lock()
	var out []map[string]any
	for _, id := range f.order {
		s, ok := f.services[id]
		if !ok || s.Name != name || (q.Get("passing") != "" && s.Status != "passing") {
			continue
		}
		out = append(out, map[string]any{
			"Node": map[string]any{"ID": "node-1", "Node": "node-1", "Address": "10.9.9.9", "Datacenter": "dc1"},
			"Service": map[string]any{
				"ID": s.ID, "Service": s.Name, "Tags": s.Tags, "Meta": s.Meta, "Address": s.Address, "Port": s.Port,
				"Weights": map[string]int{"Passing": 1, "Warning": 1},
			},
			"Checks": []map[string]any{
				{"Node": "node-1", "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"},
				{"Node": "node-1", "CheckID": "service:" + s.ID, "Name": "service check", "Status": s.Status, "ServiceID": s.ID, "ServiceName": s.Name},
			},
		})
	}
	if out == nil {
		out = []map[string]any{}
	}
	idx := f.index
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	_ = json.NewEncoder(w).Encode(out)
}

// SetStatus sets the check status of service id and bumps the index.
func (f *Server) SetStatus(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[id]
	if !ok {
		f.t.Fatalf("fake consul: no service %q", id)
	}
	s.Status = status
	f.bumpLocked()
}

// Add registers a service directly, as another agent of the cluster would.
func (f *Server) Add(s Service) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.services[s.ID]; !ok {
		f.order = append(f.order, s.ID)
	}
	f.services[s.ID] = &s
	f.bumpLocked()
}

// SetIndex forces the index, as a Consul restart or snapshot restore can.
func (f *Server) SetIndex(i uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = i
	close(f.changed)
	f.changed = make(chan struct{})
}

// Fail makes the next request under pathPrefix fail with code.
func (f *Server) Fail(pathPrefix string, code int) { f.FailAfter(pathPrefix, 0, code) }

// FailAfter lets skip requests under pathPrefix through, then fails one.
func (f *Server) FailAfter(pathPrefix string, skip, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[pathPrefix] = &failRule{skip: skip, code: code}
}

// PendingFailures counts failures set up and not yet served.
func (f *Server) PendingFailures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.failures)
}

// Requests returns the requests received with method under pathPrefix, in order.
func (f *Server) Requests(method, pathPrefix string) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Request
	for _, r := range f.requests {
		if r.Method == method && strings.HasPrefix(r.Path, pathPrefix) {
			out = append(out, r)
		}
	}
	return out
}

// IDs returns the ids of the services registered now, sorted.
func (f *Server) IDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.services {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
