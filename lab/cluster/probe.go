package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
)

// Dialer reaches the lab's addresses from its client namespace, or, in a
// loopback lab, directly from this host, as validate does (access "direct").
// A booted lab's nodes run the cloud's pg_hba, which admits pgha's monitor
// only from the HAProxy nodes (validate comes through the jump host on
// AWS): there the lab looks from the first HAProxy node's namespace, where
// the jump host sits, and its probe's queries come from that address.
func (l *Lab) Dialer() (access.DialFunc, error) {
	if l.Loopback() {
		return access.Direct(), nil
	}
	if l.Boot() {
		if ha := l.Plan.ByRole(topology.RoleHAProxy); len(ha) > 0 {
			return access.Netns(l.Namespace(ha[0].Name))
		}
	}
	return access.Netns(l.ClientNamespace())
}

// Probe looks at the lab's cluster the way validate does.
func (l *Lab) Probe() (*probe.Probe, error) {
	dial, err := l.Dialer()
	if err != nil {
		return nil, err
	}
	s, err := l.stack()
	if err != nil {
		return nil, err
	}
	return probe.New(s, dial), nil
}

// waitFor polls f until it returns nil or the timeout passes; the error
// then is f's last.
func waitFor(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = f(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
