package deprules

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/livecell/livecell"

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

// serviceOf returns the service name when path is inside cell/<svc>, and
// whether that package is a wire-only api package.
func serviceOf(path string) (svc string, isAPI, ok bool) {
	rest, found := strings.CutPrefix(path, module+"/cell/")
	if !found {
		return "", false, false
	}
	svc, _, _ = strings.Cut(rest, "/")
	return svc, strings.HasSuffix(svc, "api"), true
}

func violation(from, to string) string {
	if !strings.HasPrefix(to, module+"/") {
		return ""
	}
	if strings.HasPrefix(from, module+"/cmd/") || from == module+"/cell" {
		return "" // composition roots
	}
	toSvc, toAPI, toCell := serviceOf(to)
	fromSvc, _, fromCell := serviceOf(from)
	switch {
	case strings.HasPrefix(from, module+"/internal/"):
		rest := strings.TrimPrefix(to, module+"/")
		if !strings.HasPrefix(rest, "internal/") && rest != "" && to != module {
			if !toCell || !toAPI {
				return "internal/ must not import component " + rest
			}
		}
	case to == module+"/cell":
		return "only composition roots may import the cell wiring package"
	case toCell && !toAPI && (!fromCell || fromSvc != toSvc):
		return "imports the implementation of service " + toSvc + "; import " + toSvc + "api instead"
	}
	return ""
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			if v := violation(p.ImportPath, imp); v != "" {
				t.Errorf("%s imports %s: %s", p.ImportPath, imp, v)
			}
		}
	}
}

func TestRulesCatchViolations(t *testing.T) {
	m := module + "/"
	tests := []struct {
		from, to string
		bad      bool
	}{
		{m + "cell/store", m + "cell/inventory", true},
		{m + "cell/store", m + "cell/inventory/pgstore", true},
		{m + "cell/store", m + "cell/inventoryapi", false},
		{m + "cell/accounts/pgstore", m + "cell/accounts", false},
		{m + "gateway", m + "cell/accounts", true},
		{m + "router", m + "cell/cellapi", false},
		{m + "internal/probe", m + "cell/accountsapi", false},
		{m + "internal/probe", m + "gateway", true},
		{m + "gateway", m + "cell", true},
		{m + "cell", m + "cell/accounts", false},
		{m + "cmd/livecell/cli", m + "cell/accounts/memstore", false},
		{m + "gateway", "github.com/prometheus/client_golang/prometheus", false},
	}
	for _, tt := range tests {
		if got := violation(tt.from, tt.to) != ""; got != tt.bad {
			t.Errorf("violation(%s -> %s) = %v, want %v", tt.from, tt.to, got, tt.bad)
		}
	}
}
