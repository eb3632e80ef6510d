// Package livecell is the root of the livecell module: an edge-first regional
// cell backend for live-service multiplayer games.
//
// The root package only carries what must sit next to the repository's
// top-level files, the embedded default cells.yaml. Everything else lives in
// component folders (cell/, gateway/, router/, edge/, global/, …) and is
// wired together by cmd/livecell.
package livecell

import _ "embed"

//go:embed cells.yaml
var defaultCells []byte

// DefaultCells returns the cells.yaml shipped with the repository, so that
// `livecell dev` runs from a fresh clone with no files on disk.
func DefaultCells() []byte {
	out := make([]byte, len(defaultCells))
	copy(out, defaultCells)
	return out
}
