package config

import (
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatalf("Default() error: %v", err)
	}
	if got := len(c.Cells); got < 2 {
		t.Fatalf("default cells = %d, want at least 2", got)
	}
	for _, cl := range c.Cells {
		if cl.State != StateActive {
			t.Errorf("cell %s state = %q, want active", cl.ID, cl.State)
		}
	}
}

func TestParseRejects(t *testing.T) {
	const good = `version: 1
cells:
  - id: a
    region: r1
    gateway: 127.0.0.1:1
    api: 127.0.0.1:2
    capacity: 10
`
	tests := []struct {
		name, doc, want string
	}{
		{"empty", ``, "empty"},
		{"unknown key", good + "    colour: red\n", "line 8: field colour not found"},
		{"bad version", strings.Replace(good, "version: 1", "version: 2", 1), "version: got 2"},
		{"duplicate id", good + `  - id: a
    region: r2
    gateway: 127.0.0.1:3
    api: 127.0.0.1:4
    capacity: 10
`, `line 8: cell "a": duplicate id (first at line 3)`},
		{"failover unknown", strings.Replace(good, "capacity: 10", "capacity: 10\n    failover: [zz]", 1), `cell "a": failover to unknown cell "zz"`},
		{"failover self", strings.Replace(good, "capacity: 10", "capacity: 10\n    failover: [a]", 1), "fails over to itself"},
		{"no active", strings.Replace(good, "capacity: 10", "capacity: 10\n    state: disabled", 1), "no active cell"},
		{"bad state", strings.Replace(good, "capacity: 10", "capacity: 10\n    state: sleepy", 1), `state "sleepy"`},
		{"bad gateway", strings.Replace(good, "127.0.0.1:1", "nowhere", 1), `gateway "nowhere"`},
		{"zero capacity", strings.Replace(good, "capacity: 10", "capacity: 0", 1), "capacity must be > 0"},
		{"bad id", strings.Replace(good, "id: a", "id: A_1", 1), "id must be lower-case"},
		{"not yaml", "cells: [\n", "config:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDBRegionDefaultsToRegion(t *testing.T) {
	c, err := Parse([]byte("version: 1\ncells:\n  - {id: a, region: r1, gateway: 'h:1', api: 'h:2', capacity: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cells[0].DBRegion; got != "r1" {
		t.Fatalf("DBRegion = %q, want r1", got)
	}
}
