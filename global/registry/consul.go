package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/internal/config"
)

// ConsulConfig says how to reach a Consul agent. The zero value (no
// Address) means no Consul: the registry then serves cells.yaml alone.
// Zero durations and thresholds take the defaults noted.
type ConsulConfig struct {
	// Address of the agent's HTTP API, as in CONSUL_HTTP_ADDR:
	// "127.0.0.1:8500" or "https://consul.internal:8501".
	Address    string
	Token      string // ACL token (CONSUL_HTTP_TOKEN); empty for none
	Datacenter string // empty: the agent's own

	// ServicePrefix starts every Consul service name: livecell-gateway,
	// livecell-api, livecell-accounts… Default "livecell-".
	ServicePrefix string

	// Health checks registered with each service.
	CheckInterval   time.Duration // default 5s
	CheckTimeout    time.Duration // default 2s
	DeregisterAfter time.Duration // a check critical this long removes the service; default 1m
	// Consul's own hysteresis on those checks, matching the router's probe:
	// consecutive failures before critical (default 3) and successes
	// before passing again (default 2).
	FailuresBeforeCritical int
	SuccessBeforePassing   int

	// WaitTime bounds one blocking query; Consul caps it at 10m. Default 1m.
	WaitTime time.Duration
	// RetryMin and RetryMax bound the backoff after a failed query;
	// defaults 500ms and 30s.
	RetryMin, RetryMax time.Duration

	// HTTPClient overrides the client used to talk to the agent (tests).
	HTTPClient *http.Client
}

// Enabled reports whether a Consul agent is configured.
func (c ConsulConfig) Enabled() bool { return c.Address != "" }

func (c *ConsulConfig) setDefaults() {
	if c.ServicePrefix == "" {
		c.ServicePrefix = "livecell-"
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 5 * time.Second
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
	if c.DeregisterAfter <= 0 {
		c.DeregisterAfter = time.Minute
	}
	if c.FailuresBeforeCritical <= 0 {
		c.FailuresBeforeCritical = 3
	}
	if c.SuccessBeforePassing <= 0 {
		c.SuccessBeforePassing = 2
	}
	if c.WaitTime <= 0 {
		c.WaitTime = time.Minute
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
}

// Consul is a client of one Consul agent, for registering a cell's
// endpoints and reading the healthy ones. It is safe for concurrent use.
type Consul struct {
	cfg    ConsulConfig
	client *api.Client
}

// NewConsul returns a client for cfg. It does not contact the agent.
func NewConsul(cfg ConsulConfig) (*Consul, error) {
	if !cfg.Enabled() {
		return nil, errors.New("registry: ConsulConfig.Address is empty")
	}
	cfg.setDefaults()
	// Address, token and datacenter come from the caller, which decided
	// where to read them; api.NewClient still fills TLS settings
	// (CONSUL_CACERT, …) and a pooled transport without a client timeout,
	// which blocking queries need: each call carries a context instead.
	ac := &api.Config{
		Address:    cfg.Address,
		Token:      cfg.Token,
		Datacenter: cfg.Datacenter,
		HttpClient: cfg.HTTPClient,
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("registry: consul client for %s: %w", cfg.Address, err)
	}
	return &Consul{cfg: cfg, client: client}, nil
}

// ServiceName is the Consul service name of role (gateway, api or a
// service name): "livecell-gateway".
func (c *Consul) ServiceName(role string) string { return c.cfg.ServicePrefix + role }

// Addrs are the addresses a cell process actually listens on. Empty fields
// take the cell's cells.yaml values; a process bound to port 0 passes what
// it got.
type Addrs struct {
	Gateway  string
	API      string
	Services map[string]string // service name → host:port, for services with their own listener
	// Roles, when not empty, are the only roles registered: the ones this
	// process serves. A gateway-only process must not register the cell's
	// API, which another process serves.
	Roles []string
}

// Registration is a set of services registered for one cell. Deregister
// removes them.
type Registration struct {
	consul *Consul
	ids    []string
}

// IDs returns the Consul service ids registered, in registration order.
func (r *Registration) IDs() []string { return append([]string(nil), r.ids...) }

// Register registers the cell's gateway (role "gateway"), API (role "api")
// and each of its own-listener services with the agent, each with a health
// check: TCP for the gateway, GET /v1/status for the HTTP ones. Roles whose
// address is empty both in addrs and in cells.yaml are skipped, and so are
// roles not in addrs.Roles when it is set. On error,
// the services registered so far are deregistered.
func (c *Consul) Register(ctx context.Context, cell config.Cell, addrs Addrs) (*Registration, error) {
	type role struct{ name, addr string }
	roles := []role{
		{RoleGateway, first(addrs.Gateway, cell.Gateway)},
		{RoleAPI, first(addrs.API, cell.API)},
	}
	names := map[string]bool{}
	for n := range cell.Services {
		names[n] = true
	}
	for n := range addrs.Services {
		names[n] = true
	}
	for _, n := range sortedKeys(names) {
		roles = append(roles, role{n, first(addrs.Services[n], cell.Services[n])})
	}
	reg := &Registration{consul: c}
	for _, r := range roles {
		if r.addr == "" || len(addrs.Roles) > 0 && !slices.Contains(addrs.Roles, r.name) {
			continue
		}
		sr, err := c.registration(cell, r.name, r.addr)
		if err != nil {
			return nil, errors.Join(err, reg.Deregister(context.WithoutCancel(ctx)))
		}
		opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
		if err := c.client.Agent().ServiceRegisterOpts(sr, opts); err != nil {
			err = fmt.Errorf("registry: consul register %s: %w", sr.ID, err)
			// Without an answer (a cancelled context, a broken
			// connection) the agent may have applied it: take this one
			// back too. An agent that answered with an error did not.
			if !errors.As(err, new(api.StatusError)) {
				reg.ids = append(reg.ids, sr.ID)
			}
			return nil, errors.Join(err, reg.Deregister(context.WithoutCancel(ctx)))
		}
		reg.ids = append(reg.ids, sr.ID)
	}
	return reg, nil
}

// registration builds the agent registration of one role of a cell.
func (c *Consul) registration(cell config.Cell, role, addr string) (*api.AgentServiceRegistration, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("registry: %s %s address %q: %w", cell.ID, role, addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("registry: %s %s address %q: port: %w", cell.ID, role, addr, err)
	}
	name := c.ServiceName(role)
	check := &api.AgentServiceCheck{
		Name:                           fmt.Sprintf("%s %s", cell.ID, role),
		Interval:                       c.cfg.CheckInterval.String(),
		Timeout:                        c.cfg.CheckTimeout.String(),
		DeregisterCriticalServiceAfter: c.cfg.DeregisterAfter.String(),
		FailuresBeforeCritical:         c.cfg.FailuresBeforeCritical,
		SuccessBeforePassing:           c.cfg.SuccessBeforePassing,
	}
	if role == RoleGateway {
		// The gateway speaks the game protocol, not HTTP: an accepted TCP
		// connection is what liveness can check without logging in.
		check.TCP = addr
	} else {
		// 200 means the process is up; whether the cell can take players
		// (Healthy, load) is the router's probe's business, not Consul's.
		check.HTTP = "http://" + addr + cellapi.StatusPath
		check.Method = http.MethodGet
	}
	return &api.AgentServiceRegistration{
		// Stable across restarts, so that a restarted process replaces its
		// registration instead of leaving a twin behind.
		ID:      serviceID(name, cell.ID, host, port),
		Name:    name,
		Tags:    []string{cell.ID}, // DNS: eu-west.livecell-gateway.service.consul
		Address: host,
		Port:    port,
		Meta: map[string]string{
			"cell":      cell.ID,
			"role":      role,
			"region":    cell.Region,
			"db_region": cell.DBRegion,
		},
		Check: check,
	}, nil
}

func serviceID(name, cell, host string, port int) string {
	h := strings.NewReplacer(":", "-", "[", "", "]", "", "%", "-").Replace(host)
	return fmt.Sprintf("%s-%s-%s-%d", name, cell, h, port)
}

// Deregister removes every service of r from the agent, reporting every
// failure. It is safe to call more than once.
func (r *Registration) Deregister(ctx context.Context) error {
	var errs []error
	for _, id := range r.ids {
		q := (&api.QueryOptions{}).WithContext(ctx)
		if err := r.consul.client.Agent().ServiceDeregisterOpts(id, q); err != nil {
			errs = append(errs, fmt.Errorf("registry: consul deregister %s: %w", id, err))
		}
	}
	r.ids = nil
	return errors.Join(errs...)
}

// Healthy returns the passing instances of role across all cells, as one
// Consul query. With waitIndex > 0 it is a blocking query: the agent holds
// it until the result changes past waitIndex or WaitTime passes. It returns
// the index to wait on next.
func (c *Consul) Healthy(ctx context.Context, role string, waitIndex uint64) ([]Instance, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: waitIndex, WaitTime: c.cfg.WaitTime}).WithContext(ctx)
	entries, meta, err := c.client.Health().Service(c.ServiceName(role), "", true, q)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: consul health of %s: %w", c.ServiceName(role), err)
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		cell := e.Service.Meta["cell"]
		if cell == "" {
			continue // not registered by livecell
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			// Consul's convention: no service address means the node's.
			host = e.Node.Address
		}
		out = append(out, Instance{
			ID:      e.Service.ID,
			Cell:    cell,
			Service: role,
			Addr:    net.JoinHostPort(host, strconv.Itoa(e.Service.Port)),
			Source:  SourceConsul,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, meta.LastIndex, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
