package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
)

// TestWorldDrainCell drains a cell of the multi-process world with the
// operator commands, as the README shows: every player connected to it is
// told, in batches, to reconnect to its failover cell, resumes there, and
// the cell reports draining until it is undrained.
func TestWorldDrainCell(t *testing.T) {
	st := startMultiWorld(t)
	dir := filepath.Dir(st.Config)
	cells, err := config.Load(st.Config)
	if err != nil {
		t.Fatal(err)
	}
	eu, _ := cells.Cell("eu-west")
	us, _ := cells.Cell("us-east")
	ctx := t.Context()

	var conns []*gameclient.Conn
	for i := range 3 {
		auth, err := (&accountsapi.Client{BaseURL: "http://" + eu.API}).Register(ctx, accountsapi.RegisterRequest{Username: fmt.Sprintf("drainee-%d", i), Password: "correct horse battery"})
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		c, err := gameclient.Dial(ctx, eu.Gateway, gameclient.Options{Token: auth.AccessToken})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer c.Close()
		conns = append(conns, c)
	}

	// The control plane probes on its own schedule: world up waits for the
	// routers only.
	eventually(t, "the control plane to see every cell up", func() bool {
		out, _, code := runCLI(t, "control", "cells", "--world", dir, "--json")
		var cs control.CellsResponse
		if code != 0 || json.Unmarshal([]byte(out), &cs) != nil {
			return false
		}
		for _, c := range cs.Cells {
			if !c.Up {
				return false
			}
		}
		return true
	})
	out, errOut, code := runCLI(t, "control", "drain", "eu-west", "--world", dir, "--batch", "1", "--interval", "200ms", "--reason", "world test")
	if code != 0 || !strings.Contains(out, "eu-west draining") || !strings.Contains(out, "to us-east") {
		t.Fatalf("control drain: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	got := make([]protocol.Reconnect, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			select {
			case got[i] = <-c.Reconnects():
			case <-time.After(20 * time.Second):
			}
		})
	}
	wg.Wait()
	for i, r := range got {
		if r.Cell != "us-east" || r.Gateway != us.Gateway || r.ResumeToken == "" {
			t.Fatalf("player %d: reconnect %+v, want us-east at %s with a resume token", i, r, us.Gateway)
		}
		moved, err := gameclient.Dial(ctx, r.Gateway, gameclient.Options{ResumeToken: r.ResumeToken})
		if err != nil {
			t.Fatalf("player %d: resume at us-east: %v", i, err)
		}
		if moved.Welcome().Cell != "us-east" {
			t.Errorf("player %d: welcome %+v", i, moved.Welcome())
		}
		moved.Close()
		conns[i].Close()
	}

	eventually(t, "eu-west to report draining with no session left", func() bool {
		out, _, code := runCLI(t, "control", "cells", "--world", dir, "--json")
		var cs control.CellsResponse
		if code != 0 || json.Unmarshal([]byte(out), &cs) != nil {
			return false
		}
		c := cs.Cells[0]
		return c.ID == "eu-west" && c.State == "draining" && c.ReportedState == "draining" && c.Sessions == 0
	})
	out, _, _ = runCLI(t, "control", "cells", "--world", dir)
	if !strings.Contains(out, "eu-west") || !strings.Contains(out, "operator") {
		t.Errorf("control cells table:\n%s\nwant eu-west drained by an operator", out)
	}

	if out, errOut, code := runCLI(t, "control", "undrain", "eu-west", "--world", dir); code != 0 {
		t.Fatalf("control undrain: exit %d\n%s%s", code, out, errOut)
	}
	eventually(t, "eu-west to report active again", func() bool {
		out, _, code := runCLI(t, "control", "cells", "--world", dir, "--json")
		var cs control.CellsResponse
		return code == 0 && json.Unmarshal([]byte(out), &cs) == nil && cs.Cells[0].ReportedState == "active"
	})
	// Operator errors are clear and change nothing.
	if _, errOut, code := runCLI(t, "control", "drain", "mars", "--world", dir); code == 0 || !strings.Contains(errOut, "not_found") {
		t.Errorf("drain of an unknown cell: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "control", "drain", "eu-west", "--world", dir, "--interval", "1ms"); code == 0 || !strings.Contains(errOut, "bad_request") {
		t.Errorf("drain with a 1ms interval: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "control", "drain", "eu-west", "--world", dir, "--batch", "0"); code == 0 || !strings.Contains(errOut, "--batch") {
		t.Errorf("drain with batch 0: exit %d, stderr %q", code, errOut)
	}
}

// TestWorldRehomePlayer moves a connected player between the cell
// processes of a world sharing PostgreSQL, with `livecell control rehome`:
// the rows move, the open session is sent to the new cell and resumes
// there, and the old cell answers the stale credentials with player_moved.
func TestWorldRehomePlayer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the multi-process world")
	}
	pool := dbtest.Pool(t)
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", pool.Config().ConnConfig.RuntimeParams["search_path"])
	u.RawQuery = q.Encode()
	st := startMultiWorld(t, "--players-db", u.String())
	dir := filepath.Dir(st.Config)
	cells, err := config.Load(st.Config)
	if err != nil {
		t.Fatal(err)
	}
	eu, _ := cells.Cell("eu-west")
	us, _ := cells.Cell("us-east")
	ctx := t.Context()
	auth, err := (&accountsapi.Client{BaseURL: "http://" + eu.API}).Register(ctx, accountsapi.RegisterRequest{Username: "traveller", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gameclient.Dial(ctx, eu.Gateway, gameclient.Options{Token: auth.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	out, errOut, code := runCLI(t, "control", "rehome", auth.PlayerID, "us-east", "--world", dir)
	if code != 0 || !strings.Contains(out, "moved from eu-west to us-east") {
		t.Fatalf("control rehome: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var home string
	if err := pool.QueryRow(ctx, "SELECT home_cell FROM players WHERE id = $1", auth.PlayerID).Scan(&home); err != nil || home != "us-east" {
		t.Errorf("players.home_cell = %q, %v; want us-east", home, err)
	}
	var r protocol.Reconnect
	select {
	case r = <-conn.Reconnects():
	case <-time.After(20 * time.Second):
		t.Fatal("the open session was not moved")
	}
	if r.Reason != "rehome" || r.Gateway != us.Gateway {
		t.Fatalf("reconnect %+v, want rehome to %s", r, us.Gateway)
	}
	moved, err := gameclient.Dial(ctx, r.Gateway, gameclient.Options{ResumeToken: r.ResumeToken})
	if err != nil {
		t.Fatalf("resume at us-east: %v", err)
	}
	moved.Close()
	_, err = gameclient.Dial(ctx, eu.Gateway, gameclient.Options{Token: auth.AccessToken})
	if apierr.CodeOf(err) != apierr.PlayerMoved {
		t.Errorf("stale credentials at eu-west: %v, want player_moved", err)
	}
	// Rehoming needs the database: a world without one refuses, clearly.
	if out, errOut, code := runCLI(t, "control", "rehome", auth.PlayerID, "mars", "--world", dir); code == 0 || !strings.Contains(errOut, "bad_request") {
		t.Errorf("rehome to an unknown cell: exit %d\n%s%s", code, out, errOut)
	}
}
