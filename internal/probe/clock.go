package probe

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pgha/pgha/internal/topology"
)

// ClockReading is one PostgreSQL node's clock as seen from here: its
// offset from this machine's clock, within ± Uncertainty (half the round
// trip of the query that read it).
type ClockReading struct {
	Node        string
	Offset      time.Duration
	Uncertainty time.Duration
}

// Clocks reads every reachable PostgreSQL node's clock (clock_timestamp(),
// as the monitor role) and returns the readings in plan order, with the
// nodes it could not read. What matters is the spread between nodes
// (Skew), which this machine's own clock does not change.
func (p *Probe) Clocks(ctx context.Context) (readings []ClockReading, unreadable []string) {
	for _, n := range p.Nodes(topology.RolePatroni) {
		r, err := p.clock(ctx, n.PrivateIP)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("%s (%v)", n.Name, err))
			continue
		}
		r.Node = n.Name
		readings = append(readings, r)
	}
	return readings, unreadable
}

func (p *Probe) clock(ctx context.Context, host string) (ClockReading, error) {
	c, err := p.Monitor(host).Connect(ctx)
	if err != nil {
		return ClockReading{}, err
	}
	defer c.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// The best of a few reads: the shortest round trip bounds the error.
	var best ClockReading
	for i := range 3 {
		var server time.Time
		t0 := time.Now()
		if err := c.QueryRow(qctx, "SELECT clock_timestamp()").Scan(&server); err != nil {
			return ClockReading{}, err
		}
		rtt := time.Since(t0)
		r := ClockReading{Offset: server.Sub(t0.Add(rtt / 2)), Uncertainty: rtt / 2}
		if i == 0 || r.Uncertainty < best.Uncertainty {
			best = r
		}
	}
	return best, nil
}

// Skew is the spread of the readings' offsets (largest minus smallest),
// and the uncertainty of that figure.
func Skew(rs []ClockReading) (skew, uncertainty time.Duration) {
	if len(rs) < 2 {
		return 0, 0
	}
	s := append([]ClockReading(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
	lo, hi := s[0], s[len(s)-1]
	return hi.Offset - lo.Offset, hi.Uncertainty + lo.Uncertainty
}
