package placement

import (
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/apierr"
)

// world: two European cells, one American, one Asian; capacity 100 each.
func world(sessions map[string]int, notAccepting ...string) []Candidate {
	cands := []Candidate{
		{ID: "eu-west", Region: "europe-west1", Capacity: 100},
		{ID: "eu-north", Region: "europe-north1", Capacity: 100},
		{ID: "us-east", Region: "us-east1", Capacity: 100},
		{ID: "ap-south", Region: "asia-southeast1", Capacity: 100},
	}
	for i := range cands {
		cands[i].Accepts = true
		cands[i].Sessions = sessions[cands[i].ID]
		for _, id := range notAccepting {
			if cands[i].ID == id {
				cands[i].Accepts = false
			}
		}
	}
	return cands
}

func TestChoose(t *testing.T) {
	europe := []RTT{{"eu-west", 20}, {"eu-north", 35}, {"us-east", 90}, {"ap-south", 200}}
	tests := []struct {
		name         string
		sessions     map[string]int
		notAccepting []string
		rtts         []RTT
		hint         string
		policy       Policy
		want         string
		wantBasis    Basis
	}{
		{name: "nearest cell wins", rtts: europe, want: "eu-west", wantBasis: BasisLatency},
		{name: "RTT by region name", rtts: []RTT{{"us-east1", 10}, {"europe-west1", 30}}, want: "us-east", wantBasis: BasisLatency},
		{name: "RTT keys ignore case", rtts: []RTT{{"US-EAST", 10}, {"EU-WEST", 30}}, want: "us-east", wantBasis: BasisLatency},
		{name: "id beats region of the same cell", rtts: []RTT{{"eu-west", 80}, {"europe-west1", 5}, {"us-east", 40}}, want: "us-east", wantBasis: BasisLatency},
		{name: "below target, load does not matter", sessions: map[string]int{"eu-west": 80, "eu-north": 0}, rtts: europe, want: "eu-west", wantBasis: BasisLatency},
		{
			// eu-west at 95%: 20 + 100*(0.15/0.2) = 95 ms; eu-north 35.
			name: "headroom penalty spills to the next-nearest", sessions: map[string]int{"eu-west": 95}, rtts: europe,
			want: "eu-north", wantBasis: BasisLatency,
		},
		{
			// eu-west at 85%: 20 + 25 = 45 ms > eu-north 35.
			name: "penalty grows from the target", sessions: map[string]int{"eu-west": 85}, rtts: europe,
			want: "eu-north", wantBasis: BasisLatency,
		},
		{
			// eu-west at 82%: 20 + 10 = 30 ms < eu-north 35.
			name: "small penalty keeps the nearest", sessions: map[string]int{"eu-west": 82}, rtts: europe,
			want: "eu-west", wantBasis: BasisLatency,
		},
		{
			name: "policy knobs change the trade", sessions: map[string]int{"eu-west": 85}, rtts: europe,
			policy: Policy{Target: 0.9}, want: "eu-west", wantBasis: BasisLatency,
		},
		{name: "full cell is skipped", sessions: map[string]int{"eu-west": 100}, rtts: europe, want: "eu-north", wantBasis: BasisLatency},
		{name: "not-accepting cell is skipped", notAccepting: []string{"eu-west"}, rtts: europe, want: "eu-north", wantBasis: BasisLatency},
		{
			name: "equal cost: less loaded wins", sessions: map[string]int{"eu-west": 50, "eu-north": 10},
			rtts: []RTT{{"eu-west", 30}, {"eu-north", 30}}, want: "eu-north", wantBasis: BasisLatency,
		},
		{name: "equal cost and load: file order", rtts: []RTT{{"eu-north", 30}, {"eu-west", 30}}, want: "eu-west", wantBasis: BasisLatency},
		{name: "zero RTT is a measurement", rtts: []RTT{{"ap-south", 0}, {"eu-west", 0.5}}, want: "ap-south", wantBasis: BasisLatency},
		{name: "cells without an RTT are not candidates", rtts: []RTT{{"ap-south", 300}}, want: "ap-south", wantBasis: BasisLatency},
		{name: "RTTs naming no eligible cell fall back to the hint", rtts: []RTT{{"mars-1", 1}}, hint: "us-east", want: "us-east", wantBasis: BasisHint},
		{name: "RTTs only for full cells fall back", sessions: map[string]int{"eu-west": 100, "us-east": 40}, rtts: []RTT{{"eu-west", 1}}, want: "eu-north", wantBasis: BasisLeastLoaded},
		{name: "RTTs win over the hint", rtts: europe, hint: "ap-south", want: "eu-west", wantBasis: BasisLatency},
		{name: "hint by id", hint: "ap-south", want: "ap-south", wantBasis: BasisHint},
		{name: "hint by region, any case", hint: "EUROPE-NORTH1", want: "eu-north", wantBasis: BasisHint},
		{name: "full hinted cell falls back", sessions: map[string]int{"ap-south": 100, "eu-west": 5}, hint: "ap-south", want: "eu-north", wantBasis: BasisLeastLoaded},
		{name: "no input: least loaded", sessions: map[string]int{"eu-west": 5, "eu-north": 5, "us-east": 1, "ap-south": 3}, want: "us-east", wantBasis: BasisLeastLoaded},
		{name: "no input, all empty: first", want: "eu-west", wantBasis: BasisLeastLoaded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := world(tt.sessions, tt.notAccepting...)
			i, basis := tt.policy.Choose(cands, tt.rtts, tt.hint)
			if i < 0 {
				t.Fatalf("Choose = -1, want %s", tt.want)
			}
			if got := cands[i].ID; got != tt.want || basis != tt.wantBasis {
				t.Errorf("Choose = %s (%s), want %s (%s)", got, basis, tt.want, tt.wantBasis)
			}
		})
	}
}

func TestChooseNone(t *testing.T) {
	tests := []struct {
		name  string
		cands []Candidate
	}{
		{"no cells", nil},
		{"none accepts", world(nil, "eu-west", "eu-north", "us-east", "ap-south")},
		{"all full", world(map[string]int{"eu-west": 100, "eu-north": 100, "us-east": 120, "ap-south": 100})},
		{"zero capacity", []Candidate{{ID: "a", Accepts: true}}},
	}
	for _, tt := range tests {
		for _, rtts := range [][]RTT{nil, {{"eu-west", 1}}} {
			if i, basis := (Policy{}).Choose(tt.cands, rtts, "eu-west"); i != -1 || basis != "" {
				t.Errorf("%s (rtts %v): Choose = %d, %q; want -1", tt.name, rtts, i, basis)
			}
		}
	}
}

func TestParseRTTs(t *testing.T) {
	tests := []struct {
		in   string
		want []RTT
	}{
		{"", nil},
		{"eu-west:23", []RTT{{"eu-west", 23}}},
		{"eu-west:23.5,us-east1:87,ap_south.x:0", []RTT{{"eu-west", 23.5}, {"us-east1", 87}, {"ap_south.x", 0}}},
		{"a:0.125", []RTT{{"a", 0.125}}},
		{"a:10000", []RTT{{"a", 10000}}},
		{"a:10000.000", []RTT{{"a", 10000}}},
		{"a:007", []RTT{{"a", 7}}},
	}
	for _, tt := range tests {
		got, err := ParseRTTs(tt.in)
		if err != nil {
			t.Errorf("ParseRTTs(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("ParseRTTs(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseRTTs(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestParseRTTsRefuses(t *testing.T) {
	many := make([]string, MaxRTTs+1)
	for i := range many {
		many[i] = "c" + strings.Repeat("x", i) + ":1"
	}
	tests := []struct{ name, in, msg string }{
		{"negative", "eu-west:-5", "negative"},
		{"negative zero", "eu-west:-0", "negative"},
		{"absurd", "eu-west:10000.5", "above 10000"},
		{"absurd integer", "eu-west:99999", "above 10000"},
		{"too long a number", "eu-west:0000000001", "from 0 to 10000"},
		{"exponent", "eu-west:1e3", "decimal number"},
		{"hex float", "eu-west:0x1p3", "decimal number"},
		{"NaN", "eu-west:NaN", "decimal number"},
		{"infinity", "eu-west:Inf", "decimal number"},
		{"plus sign", "eu-west:+5", "decimal number"},
		{"leading dot", "eu-west:.5", "decimal number"},
		{"trailing dot", "eu-west:5.", "decimal number"},
		{"two dots", "eu-west:1.2.3", "decimal number"},
		{"four decimals", "eu-west:1.2345", "three decimals"},
		{"empty value", "eu-west:", "from 0 to 10000"},
		{"no colon", "eu-west", "want key:milliseconds"},
		{"empty key", ":5", "empty cell id"},
		{"bad key", "eu west:5", "not a cell id"},
		{"key with colon", "a:b:5", "decimal number"},
		{"unicode key", "éu:5", "not a cell id"},
		{"key too long", strings.Repeat("k", MaxKeyLen+1) + ":5", "longer than 64"},
		{"duplicate", "eu-west:5,us-east:9,eu-west:7", "given twice"},
		{"duplicate in another case", "eu-west:5,EU-WEST:7", "given twice"},
		{"empty entry", "eu-west:5,,us-east:9", "want key:milliseconds"},
		{"trailing comma", "eu-west:5,", "want key:milliseconds"},
		{"too many", strings.Join(many, ","), "at most 32"},
	}
	for _, tt := range tests {
		got, err := ParseRTTs(tt.in)
		if apierr.CodeOf(err) != apierr.BadRequest {
			t.Errorf("%s: ParseRTTs(%q) = %v, %v; want code %s", tt.name, tt.in, got, err, apierr.BadRequest)
			continue
		}
		if msg := apierr.MessageOf(err); !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: message %q, want it to contain %q", tt.name, msg, tt.msg)
		}
	}
}

// FuzzParseRTTs: whatever the input, ParseRTTs either refuses it with
// bad_request or returns at most MaxRTTs distinct, well-formed entries with
// RTTs in [0, MaxRTTMS].
func FuzzParseRTTs(f *testing.F) {
	for _, s := range []string{"", "eu-west:23", "a:1,b:2.5,C:0.125", "a:-1", "a:1e3", "a:1,a:2", "x", ":", ",", "a:10000.000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRTTs(s)
		if err != nil {
			if apierr.CodeOf(err) != apierr.BadRequest {
				t.Fatalf("ParseRTTs(%q): error %v without code bad_request", s, err)
			}
			if got != nil {
				t.Fatalf("ParseRTTs(%q): entries %v alongside error", s, got)
			}
			return
		}
		if len(got) > MaxRTTs {
			t.Fatalf("ParseRTTs(%q): %d entries", s, len(got))
		}
		for i, r := range got {
			if CheckKey(r.Key) != nil || r.MS < 0 || r.MS > MaxRTTMS || r.MS != r.MS {
				t.Fatalf("ParseRTTs(%q)[%d] = %+v: not well-formed", s, i, r)
			}
			for _, o := range got[:i] {
				if strings.EqualFold(o.Key, r.Key) {
					t.Fatalf("ParseRTTs(%q): duplicate key %q", s, r.Key)
				}
			}
		}
	})
}
