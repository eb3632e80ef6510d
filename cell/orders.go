package cell

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/global/agent"
	"github.com/livecell/livecell/global/control"
)

// controlOrders is how a cell process reads the control plane's orders for
// it (drains, redirect markers) and its override table; control.Client.
type controlOrders interface {
	Orders(ctx context.Context, cell string, after int64) (control.Orders, error)
	RoutingTable(ctx context.Context) (control.RoutingResponse, error)
}

// sessionPolicy is the control plane's say, through the agent, over which
// players this cell serves.
type sessionPolicy interface {
	// Refuse returns why player may not hold a session here (moved away,
	// quarantined), or nil.
	Refuse(player string) error
	// Admits reports whether an override sends player here although
	// their credentials name another home.
	Admits(player string) bool
}

var (
	_ controlOrders = (*control.Client)(nil)
	_ sessionPolicy = (*agent.Agent)(nil)
)

// newAgent starts following the control plane's orders when this process
// holds sessions and a control plane is configured; the authenticator
// consults it from then on.
func (c *Cell) newAgent(ctl controlOrders, auth *authenticator, metrics prometheus.Registerer) error {
	if ctl == nil || c.gw == nil {
		return nil
	}
	a, err := agent.New(agent.Config{Cell: c.cfg.Cell.ID}, agent.Deps{
		Logger: c.log, Metrics: metrics, Control: ctl, Sessions: c.gw,
	})
	if err != nil {
		return fmt.Errorf("cell: %w", err)
	}
	c.agent, auth.policy = a, a
	return nil
}

// reportedState is the state /v1/status reports: cells.yaml's, or draining
// while the control plane drains the cell.
func (c *Cell) reportedState() string {
	if c.agent != nil && c.agent.Draining() {
		return "draining"
	}
	return string(c.cfg.Cell.State)
}

func (c *Cell) startAgent(ctx context.Context) error {
	if c.agent == nil {
		return nil
	}
	return c.agent.Start(ctx)
}

func (c *Cell) stopAgent(ctx context.Context) error {
	if c.agent == nil {
		return nil
	}
	return c.agent.Stop(ctx)
}
