// Package buildinfo reports which build of livecell is running: the release
// version stamped at link time, the VCS commit the Go toolchain embeds, and
// the Go version. Every process exposes it (/buildinfo, the
// livecell_build_info metric, `livecell version`) so a dashboard or an
// operator can tell which build each cell runs during a wave deployment.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release version. It is a variable, not a constant, so that
// release builds can stamp it:
//
//	go build -ldflags "-X github.com/livecell/livecell/internal/buildinfo.version=v1.2.3"
var version = "dev"

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"` // VCS revision, "unknown" when not embedded
	GoVersion string `json:"go_version"`
	Modified  bool   `json:"modified"` // built from a working tree with uncommitted changes
}

// Get returns the build information of the running binary.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(version, bi)
}

// fromBuildInfo is Get without the process-wide inputs, so it can be tested
// with any build metadata.
func fromBuildInfo(ver string, bi *debug.BuildInfo) Info {
	info := Info{Version: ver, Commit: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	// `go install github.com/livecell/livecell/cmd/livecell@v1.2.3` records
	// the module version; use it when no release version was linked in.
	if info.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				info.Commit = s.Value
			}
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String formats the information for humans, e.g.
// "livecell v1.2.3 (commit 0123456789ab, go1.26.8)".
func (i Info) String() string {
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if i.Modified {
		commit += "+modified"
	}
	return fmt.Sprintf("livecell %s (commit %s, %s)", i.Version, commit, i.GoVersion)
}
