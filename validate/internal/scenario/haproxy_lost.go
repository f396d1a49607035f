package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/validate/internal/fault"
)

// 8. One HAProxy node is lost: the one clients reach first. Clients use
// the outputs' connection URIs, which list both HAProxy nodes (libpq's
// multi-host form; the traffic here connects with them), so new
// connections go to the other node; the sessions that were on the lost
// one fail once and reconnect.
var haproxyLost = Scenario{
	Name:   "haproxy-lost",
	Title:  "the HAProxy node clients use first is stopped",
	Proves: "the other HAProxy node keeps serving 5000 and 5001",
	Story:  haproxyLostStory,
}

func haproxyLostStory(ctx context.Context, r *Run) {
	s := r.Env.Stack()
	first := AppTarget(s, nil, true, time.Second).Host
	victim := ""
	for _, n := range s.ByRole(topology.RoleHAProxy) {
		if n.PrivateIP == first || n.PublicIP == first {
			victim = n.Name
		}
	}
	if victim == "" {
		// Behind a load balancer: lose the first node.
		if hs := s.ByRole(topology.RoleHAProxy); len(hs) > 0 {
			victim = hs[0].Name
		}
	}
	undo, err := r.Inject(ctx, fault.Stop, victim)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	_ = r.Hold(ctx, 5*time.Second)
	if ctx.Err() != nil {
		return
	}
	r.expectSameLeader(ctx, r.Before.Leader, r.FaultAt)
	tail := time.Now().Add(-3 * time.Second)
	var rok, wok int
	for _, o := range r.traffic.Reader.Ops() {
		if o.OK && o.Start.After(tail) {
			rok++
		}
	}
	for _, o := range r.Writes() {
		if o.OK && o.Start.After(tail) {
			wok++
		}
	}
	if rok == 0 || wok == 0 {
		r.Failf("with %s down, the last 3 s saw %d writes and %d reads succeed through the other HAProxy node", victim, wok, rok)
	}
	r.undoNow(undo)
	r.Outcome = fmt.Sprintf("%s stopped → clients moved to the other HAProxy node", victim)
}
