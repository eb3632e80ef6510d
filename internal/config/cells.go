// Package config loads cells.yaml, livecell's single source of truth for
// cells, into typed structs: strict (unknown keys are errors), validated,
// with every problem reported at its line, and with the repository's file
// embedded as the default so `livecell dev` needs no files.
//
// The schema, every rule and how to add a cell are documented in
// docs/cells.md; keep the two in step.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/livecell/livecell"
)

// CellState is a cell's administrative state.
type CellState string

const (
	StateActive   CellState = "active"   // takes new players and sessions
	StateDraining CellState = "draining" // takes no new players; its own move to its failover cells
	StateDisabled CellState = "disabled" // takes nothing; its players fail over
)

// Cells is the parsed cells.yaml.
type Cells struct {
	Version int        `yaml:"version"`
	Router  RouterConf `yaml:"router"`
	Cells   []Cell     `yaml:"cells"`

	// lines maps a field path ("cells[1].gateway") to its line in the file,
	// so that validation can point at the exact key. Empty for a Cells
	// built in code, whose problems then carry no line.
	lines map[string]int
	// bad holds the paths whose values were dropped while decoding (wrong
	// type, misspelt key): validation does not report them a second time.
	bad      map[string]bool
	warnings []Problem
}

// RouterConf configures the global router.
type RouterConf struct {
	Listen string `yaml:"listen"`
}

// Cell is one regional cell.
type Cell struct {
	ID       string `yaml:"id"`
	Region   string `yaml:"region"`
	DBRegion string `yaml:"db_region"`
	Gateway  string `yaml:"gateway"`
	API      string `yaml:"api"`
	// Backbone is where edge relays link to the cell's gateway, one
	// connection carrying many player sessions. Optional: without it no
	// edge can reach the cell.
	Backbone string `yaml:"backbone,omitempty"`
	// Services maps a service name (accounts, store, …) to the host:port of
	// its HTTP API when it does not run behind API. Optional.
	Services map[string]string `yaml:"services,omitempty"`
	// Edges are the edge relays near this cell. Optional.
	Edges    []Edge    `yaml:"edges,omitempty"`
	Capacity int       `yaml:"capacity"`
	Failover []string  `yaml:"failover"`
	State    CellState `yaml:"state"`
}

// Edge is one edge relay (PoP) near a cell. Each endpoint is optional, but an
// edge has at least one.
type Edge struct {
	ID   string `yaml:"id"`
	TCP  string `yaml:"tcp,omitempty"`  // framed protocol over TCP
	QUIC string `yaml:"quic,omitempty"` // framed protocol over QUIC (UDP)
	WS   string `yaml:"ws,omitempty"`   // framed protocol over WebSocket (TCP)
}

// ServiceAddr returns the host:port of the named service's HTTP API: its
// entry in Services, else API, which serves every service by default.
func (c Cell) ServiceAddr(name string) string {
	if a, ok := c.Services[name]; ok && a != "" {
		return a
	}
	return c.API
}

// Cell returns the cell with the given id.
func (c *Cells) Cell(id string) (Cell, bool) {
	for _, cl := range c.Cells {
		if cl.ID == id {
			return cl, true
		}
	}
	return Cell{}, false
}

// IDs returns the cell ids in file order.
func (c *Cells) IDs() []string {
	ids := make([]string, len(c.Cells))
	for i, cl := range c.Cells {
		ids[i] = cl.ID
	}
	return ids
}

// Warnings returns what Validate found questionable but not wrong, such as
// a failover list that names no active cell.
func (c *Cells) Warnings() []Problem { return c.warnings }

// Default returns the cells.yaml embedded in the binary.
func Default() (*Cells, error) {
	return Parse(livecell.DefaultCells())
}

// Load reads path, or the embedded default when path is empty. A
// *ValidationError it returns names path in its File.
func Load(path string) (*Cells, error) {
	if path == "" {
		return Default()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		if ve, ok := errors.AsType[*ValidationError](err); ok {
			ve.File = path
			return nil, ve
		}
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a cells.yaml document. Every problem, from
// YAML syntax to failover cycles, comes back in one *ValidationError with
// its line.
func Parse(data []byte) (*Cells, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []Problem{{Msg: "cells.yaml is empty"}}}
		}
		return nil, &ValidationError{Problems: []Problem{yamlProblem(err)}}
	}
	var probs []Problem
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		// A second document would be silently ignored: say so instead.
		probs = append(probs, Problem{Line: extra.Line, Msg: "a second YAML document (---): cells.yaml holds one document"})
	} else if !errors.Is(err, io.EOF) {
		probs = append(probs, yamlProblem(err))
	}

	c := Cells{lines: map[string]int{}, bad: map[string]bool{}}
	w := walker{lines: c.lines, bad: c.bad}
	w.walk(&root, &c)
	probs = append(probs, w.probs...)
	// The walker pruned every node that could make yaml's decoding fail, so
	// an error here is unexpected; report it rather than lose it.
	if err := root.Decode(&c); err != nil {
		if te, ok := errors.AsType[*yaml.TypeError](err); ok {
			for _, e := range te.Errors {
				probs = append(probs, lineProblem(e))
			}
		} else {
			probs = append(probs, yamlProblem(err))
		}
	}
	if err := c.Validate(); err != nil {
		ve, ok := errors.AsType[*ValidationError](err)
		if !ok {
			return nil, err
		}
		probs = append(probs, ve.Problems...)
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: sortProblems(probs), Warnings: c.warnings}
	}
	return &c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblem turns a yaml.v3 error ("yaml: line 3: did not find expected
// key") into a Problem with its line.
func yamlProblem(err error) Problem { return lineProblem(err.Error()) }

func lineProblem(s string) Problem {
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Line: n, Msg: "YAML: " + m[2]}
	}
	return Problem{Msg: s}
}
