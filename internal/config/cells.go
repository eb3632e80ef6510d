// Package config loads cells.yaml, livecell's single source of truth for
// cells, into typed structs: strict (unknown keys are errors), validated,
// with line-numbered messages, and with the repository's file embedded as the
// default so `livecell dev` needs no files.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/livecell/livecell"
)

// CellState is a cell's administrative state.
type CellState string

const (
	StateActive   CellState = "active"   // takes new players and sessions
	StateDraining CellState = "draining" // keeps its players, takes no new ones
	StateDisabled CellState = "disabled" // takes nothing; its players fail over
)

// Cells is the parsed cells.yaml.
type Cells struct {
	Version int        `yaml:"version"`
	Router  RouterConf `yaml:"router"`
	Cells   []Cell     `yaml:"cells"`
}

// RouterConf configures the global router.
type RouterConf struct {
	Listen string `yaml:"listen"`
}

// Cell is one regional cell.
type Cell struct {
	ID       string    `yaml:"id"`
	Region   string    `yaml:"region"`
	DBRegion string    `yaml:"db_region"`
	Gateway  string    `yaml:"gateway"`
	API      string    `yaml:"api"`
	Capacity int       `yaml:"capacity"`
	Failover []string  `yaml:"failover"`
	State    CellState `yaml:"state"`

	line int // line of the cell's entry, for error messages
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

// Default returns the cells.yaml embedded in the binary.
func Default() (*Cells, error) {
	return Parse(livecell.DefaultCells())
}

// Load reads path, or the embedded default when path is empty.
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
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a cells.yaml document.
func Parse(data []byte) (*Cells, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Cells
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: cells.yaml is empty")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		recordLines(&root, &c)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// recordLines notes the line of each cell entry so validation errors point
// into the file.
func recordLines(root *yaml.Node, c *Cells) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "cells" {
			continue
		}
		seq := m.Content[i+1]
		for j, n := range seq.Content {
			if j < len(c.Cells) {
				c.Cells[j].line = n.Line
			}
		}
	}
}

// ValidationError lists every problem found in a cells.yaml.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return "config: invalid cells.yaml:\n  " + strings.Join(e.Problems, "\n  ")
}

// Validate checks the semantic rules of cells.yaml and reports all problems.
func (c *Cells) Validate() error {
	var probs []string
	add := func(line int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if line > 0 {
			msg = fmt.Sprintf("line %d: %s", line, msg)
		}
		probs = append(probs, msg)
	}
	if c.Version != 1 {
		add(0, "version: got %d, want 1", c.Version)
	}
	if c.Router.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Router.Listen); err != nil {
			add(0, "router.listen %q: want host:port", c.Router.Listen)
		}
	}
	if len(c.Cells) == 0 {
		add(0, "cells: at least one cell is required")
	}
	seen := map[string]int{}
	active := 0
	for i := range c.Cells {
		cl := &c.Cells[i]
		switch {
		case cl.ID == "":
			add(cl.line, "cells[%d].id is required", i)
		case !validID(cl.ID):
			add(cl.line, "cell %q: id must be lower-case letters, digits and '-' (max 32)", cl.ID)
		}
		if prev, dup := seen[cl.ID]; dup && cl.ID != "" {
			add(cl.line, "cell %q: duplicate id (first at line %d)", cl.ID, prev)
		}
		seen[cl.ID] = cl.line
		if cl.Region == "" {
			add(cl.line, "cell %q: region is required", cl.ID)
		}
		if cl.DBRegion == "" {
			cl.DBRegion = cl.Region
		}
		for _, ep := range []struct{ name, v string }{{"gateway", cl.Gateway}, {"api", cl.API}} {
			if _, _, err := net.SplitHostPort(ep.v); err != nil {
				add(cl.line, "cell %q: %s %q: want host:port", cl.ID, ep.name, ep.v)
			}
		}
		if cl.Capacity <= 0 {
			add(cl.line, "cell %q: capacity must be > 0", cl.ID)
		}
		switch cl.State {
		case "":
			cl.State = StateActive
			active++
		case StateActive:
			active++
		case StateDraining, StateDisabled:
		default:
			add(cl.line, "cell %q: state %q: want active, draining or disabled", cl.ID, cl.State)
		}
	}
	for _, cl := range c.Cells {
		for _, f := range cl.Failover {
			if f == cl.ID {
				add(cl.line, "cell %q: fails over to itself", cl.ID)
			} else if _, ok := seen[f]; !ok {
				add(cl.line, "cell %q: failover to unknown cell %q", cl.ID, f)
			}
		}
	}
	if len(c.Cells) > 0 && active == 0 {
		add(0, "no active cell: at least one cell must have state active")
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

func validID(id string) bool {
	if len(id) > 32 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
