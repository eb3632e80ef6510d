package db

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadMigrations(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name        string
		files       fstest.MapFS
		wantVersion []int
		wantErr     string
	}{
		{"empty", fstest.MapFS{}, nil, ""},
		{"sorted numerically", fstest.MapFS{"0100_c.sql": sql, "0002_b.sql": sql, "0001_a.sql": sql}, []int{1, 2, 100}, ""},
		{"others ignored", fstest.MapFS{"0001_a.sql": sql, "README.md": sql, "sub/0002_b.sql": sql}, []int{1}, ""},
		{"malformed", fstest.MapFS{"001_a.sql": sql}, nil, "malformed"},
		{"duplicate", fstest.MapFS{"0001_a.sql": sql, "0001_b.sql": sql}, nil, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := readMigrations(tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readMigrations: %v", err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.version)
			}
			if len(got) != len(tt.wantVersion) {
				t.Fatalf("got versions %v, want %v", got, tt.wantVersion)
			}
			for i := range got {
				if got[i] != tt.wantVersion[i] {
					t.Fatalf("got versions %v, want %v", got, tt.wantVersion)
				}
			}
		})
	}
}

func TestChecksumIsSHA256OfFile(t *testing.T) {
	ms, err := readMigrations(fstest.MapFS{"0001_a.sql": {Data: []byte("abc")}})
	if err != nil {
		t.Fatalf("readMigrations: %v", err)
	}
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // sha256("abc")
	if got := ms[0].checksum; got != want {
		t.Errorf("got checksum %s, want %s", got, want)
	}
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	for attempt := 1; attempt <= 40; attempt++ {
		d := backoff(attempt)
		ceiling := min(backoffBase<<min(attempt-1, 20), backoffCap)
		if d < ceiling/2 || d > ceiling {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", attempt, d, ceiling/2, ceiling)
		}
	}
}
