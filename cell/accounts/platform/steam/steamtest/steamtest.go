// Package steamtest is a local stand-in for Steam's
// ISteamUserAuth/AuthenticateUserTicket Web API, answering in the documented
// JSON format (see package steam) for tickets registered with it. Tests and
// benchmarks of the steam verifier and of the accounts service use it,
// because the real API cannot be reached from CI.
//
// Like Steam, it answers 403 to a wrong publisher key, 400 to a request
// without a ticket and {"error":{"errorcode":101,"errordesc":"Invalid
// ticket"}} to a ticket it does not know or that was made for another app or
// identity. Unlike Steam, tickets stay valid until removed, so benchmarks can
// reuse them.
package steamtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Path is the endpoint the server answers on.
const Path = "/ISteamUserAuth/AuthenticateUserTicket/v1/"

// Ticket is what the server says about one ticket.
type Ticket struct {
	SteamID         string // decimal SteamID64 of the player
	OwnerSteamID    string // owner of the game copy; empty means SteamID
	VACBanned       bool
	PublisherBanned bool
	// Result overrides "OK" in the answer, to test unexpected results.
	Result string
	// Raw, when set, is sent as the whole answer body with status 200
	// instead of the documented JSON, to test malformed answers.
	Raw string
}

// Server is a running fake of the Steam Web API. It is safe for concurrent
// use.
type Server struct {
	srv      *httptest.Server
	appID    string
	key      string
	requests atomic.Int64

	mu       sync.RWMutex
	tickets  map[string]Ticket
	identity string
	status   int // non-zero: answer every request with this status
}

// NewServer starts a server that accepts publisher key key for app appID.
// Close it when done.
func NewServer(appID uint32, key string) *Server {
	s := &Server{
		appID:   strconv.FormatUint(uint64(appID), 10),
		key:     key,
		tickets: make(map[string]Ticket),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's base URL, for steam.Config.BaseURL.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down, waiting for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// Requests is how many requests the server has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// AddTicket makes ticket (hex, as the client sends it) authenticate as
// steamID, with no bans and no Family Sharing.
func (s *Server) AddTicket(ticket, steamID string) {
	s.SetTicket(ticket, Ticket{SteamID: steamID})
}

// SetTicket sets the full answer for ticket.
func (s *Server) SetTicket(ticket string, t Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickets[strings.ToLower(ticket)] = t
}

// RemoveTicket makes ticket unknown again (as a cancelled ticket is).
func (s *Server) RemoveTicket(ticket string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tickets, strings.ToLower(ticket))
}

// RequireIdentity makes the server accept only requests that pass identity,
// as Steam does for tickets made with GetAuthTicketForWebApi(identity).
// Empty accepts any.
func (s *Server) RequireIdentity(identity string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identity = identity
}

// FailWith makes every request answer HTTP status (for example 503);
// 0 restores normal answers.
func (s *Server) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// SteamID returns the SteamID64 of the individual public-universe account
// with the given account number, for making test players.
func SteamID(account uint32) string {
	const base = 76561197960265728 // universe 1, type 1 (individual), instance 1
	return strconv.FormatUint(base+uint64(account), 10)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.RLock()
	status, identity := s.status, s.identity
	s.mu.RUnlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if r.URL.Path != Path && r.URL.Path != strings.TrimSuffix(Path, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if q.Get("key") != s.key {
		// Steam answers a bad key with an HTML 403.
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "<html><head><title>Forbidden</title></head><body><h1>Forbidden</h1>Access is denied. Retrying will not help. Please verify your <pre>key=</pre> parameter.</body></html>")
		return
	}
	for _, p := range []string{"appid", "ticket"} {
		if q.Get(p) == "" {
			w.Header().Set("Content-Type", "text/html; charset=UTF-8")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<html><head><title>Bad Request</title></head><body><h1>Bad Request</h1>Required parameter '%s' is missing</body></html>", p)
			return
		}
	}
	s.mu.RLock()
	t, ok := s.tickets[strings.ToLower(q.Get("ticket"))]
	s.mu.RUnlock()
	if !ok || q.Get("appid") != s.appID || (identity != "" && q.Get("identity") != identity) {
		writeJSON(w, map[string]any{"response": map[string]any{
			"error": map[string]any{"errorcode": 101, "errordesc": "Invalid ticket"},
		}})
		return
	}
	if t.Raw != "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		fmt.Fprint(w, t.Raw)
		return
	}
	result, owner := t.Result, t.OwnerSteamID
	if result == "" {
		result = "OK"
	}
	if owner == "" {
		owner = t.SteamID
	}
	writeJSON(w, map[string]any{"response": map[string]any{"params": map[string]any{
		"result":          result,
		"steamid":         t.SteamID,
		"ownersteamid":    owner,
		"vacbanned":       t.VACBanned,
		"publisherbanned": t.PublisherBanned,
	}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}
