package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mpworld "github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/global/registry/consultest"
)

// TestCellRegistersInConsul runs `livecell cell` against a fake Consul
// agent (no Consul server can be installed here): at start it registers
// the gateway and API it bound, with health checks, and on shutdown it
// deregisters them. A gateway-only process registers its gateway alone.
func TestCellRegistersInConsul(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cell")
	}
	for _, tt := range []struct {
		name     string
		services string
		roles    []string
	}{
		{"accounts and gateway", "accounts,gateway", []string{"livecell-api", "livecell-gateway"}},
		{"gateway alone", "gateway", []string{"livecell-gateway"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			consul := consultest.New(t)
			t.Setenv("CONSUL_HTTP_ADDR", consul.Addr())
			api, err := mpworld.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			gw, err := mpworld.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- Main(ctx, []string{"cell", "--cell", "eu-west", "--services", tt.services, "--api-listen", api, "--gateway-listen", gw,
					"--drain-grace", "100ms", "--log-level", "warn"}, &stdout, &stderr)
			}()
			eventually(t, "the cell to register", func() bool { return len(consul.IDs()) == len(tt.roles) })

			var names []string
			for _, r := range consul.Requests("PUT", "/v1/agent/service/register") {
				var body struct {
					Name, Address string
					Port          int
					Meta          map[string]string
					Check         struct{ TCP, HTTP string }
				}
				if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
					t.Fatal(err)
				}
				names = append(names, body.Name)
				if body.Meta["cell"] != "eu-west" {
					t.Errorf("%s: meta %v, want cell eu-west", body.Name, body.Meta)
				}
				switch body.Name {
				case "livecell-gateway":
					if want := gw; body.Check.TCP != want || !strings.HasSuffix(want, ":"+strconv.Itoa(body.Port)) {
						t.Errorf("gateway registered at port %d with TCP check %q, want the bound %s", body.Port, body.Check.TCP, want)
					}
				case "livecell-api":
					if want := "http://" + api + "/v1/status"; body.Check.HTTP != want {
						t.Errorf("api check %q, want %q", body.Check.HTTP, want)
					}
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.roles) {
				t.Errorf("registered %v, want %v", names, tt.roles)
			}

			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("cell exited %d: %s", code, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("cell did not stop")
			}
			if left := consul.IDs(); len(left) != 0 {
				t.Errorf("services left in Consul after shutdown: %v", left)
			}
			if n := len(consul.Requests("PUT", "/v1/agent/service/deregister/")); n != len(tt.roles) {
				t.Errorf("%d deregistrations, want %d", n, len(tt.roles))
			}
		})
	}
}

// TestCellRefusesWithoutConsul: a Consul agent that is configured but
// refuses makes the cell fail at start, loudly, instead of running
// invisible to discovery.
func TestCellRefusesWithoutConsul(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cell")
	}
	consul := consultest.New(t)
	consul.Fail("/v1/agent/service/register", 500)
	t.Setenv("CONSUL_HTTP_ADDR", consul.Addr())
	api, _ := mpworld.FreePort()
	gw, _ := mpworld.FreePort()
	_, stderr, code := runCLI(t, "cell", "--cell", "eu-west", "--services", "accounts,gateway", "--api-listen", api, "--gateway-listen", gw, "--log-level", "error")
	if code == 0 || !strings.Contains(stderr, "consul register") {
		t.Errorf("exit %d, stderr %q; want a failure naming the consul registration", code, stderr)
	}
	if left := consul.IDs(); len(left) != 0 {
		t.Errorf("services left after a failed start: %v", left)
	}
}
