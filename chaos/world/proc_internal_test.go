//go:build unix

package world

import "testing"

func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		in        string
		state     byte
		ticks     uint64
		wantParse bool
	}{
		{"42 (livecell) S 1 42 42 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 9 0 123456 1000 100", 'S', 123456, true},
		// A command name may hold spaces and parentheses.
		{"42 (a) b (c) Z 1 42 42 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 9 0 99 0 0", 'Z', 99, true},
		{"42 (short) S 1 2", 0, 0, false},
		{"no parenthesis at all", 0, 0, false},
		{"42 (x) S 1 42 42 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 9 0 notanumber 0", 0, 0, false},
	} {
		state, ticks, ok := parseStat([]byte(tt.in))
		if ok != tt.wantParse || (ok && (state != tt.state || ticks != tt.ticks)) {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v", tt.in, state, ticks, ok, tt.state, tt.ticks, tt.wantParse)
		}
	}
}
