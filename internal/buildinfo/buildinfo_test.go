package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		ver  string
		bi   *debug.BuildInfo
		want Info
	}{
		{
			name: "no build info",
			ver:  "dev",
			want: Info{Version: "dev", Commit: "unknown", GoVersion: runtime.Version()},
		},
		{
			name: "vcs stamped, clean",
			ver:  "v1.2.3",
			bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"},
			}},
			want: Info{Version: "v1.2.3", Commit: rev, GoVersion: "go1.26.0"},
		},
		{
			name: "vcs stamped, modified",
			ver:  "dev",
			bi: &debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"},
			}},
			want: Info{Version: "dev", Commit: rev, GoVersion: "go1.26.0", Modified: true},
		},
		{
			name: "go install module@version",
			ver:  "dev",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.4.0"}},
			want: Info{Version: "v0.4.0", Commit: "unknown", GoVersion: "go1.26.0"},
		},
		{
			name: "ldflags version wins over module version",
			ver:  "v9.9.9",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.4.0"}},
			want: Info{Version: "v9.9.9", Commit: "unknown", GoVersion: "go1.26.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromBuildInfo(tt.ver, tt.bi); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	got := Get()
	// Tests are not linked with -X, and `go test` binaries carry no module
	// version, so the default shows through.
	if got.Version != "dev" {
		t.Errorf("Version: got %q, want %q", got.Version, "dev")
	}
	if got.GoVersion != runtime.Version() {
		t.Errorf("GoVersion: got %q, want %q", got.GoVersion, runtime.Version())
	}
	if got.Commit == "" {
		t.Error("Commit: got empty, want a revision or \"unknown\"")
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in   Info
		want string
	}{
		{Info{Version: "dev", Commit: "unknown", GoVersion: "go1.26.8"}, "livecell dev (commit unknown, go1.26.8)"},
		{Info{Version: "v1.0.0", Commit: "0123456789abcdef", GoVersion: "go1.26.8"}, "livecell v1.0.0 (commit 0123456789ab, go1.26.8)"},
		{Info{Version: "v1.0.0", Commit: "abc", GoVersion: "go1.26.8", Modified: true}, "livecell v1.0.0 (commit abc+modified, go1.26.8)"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String(): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
