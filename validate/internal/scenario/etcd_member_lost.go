package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/validate/internal/fault"
)

// 6. One etcd member is lost: the raft leader, the member whose loss
// matters most (an election follows). Two of three keep quorum, so nothing
// may change for clients: no failed write, no failed read, same leader.
var etcdMemberLost = Scenario{
	Name:   "etcd-member-lost",
	Title:  "one etcd member (the raft leader) is killed",
	Proves: "etcd keeps quorum with 2 of 3 and clients notice nothing",
	Story:  etcdMemberLostStory,
}

func etcdMemberLostStory(ctx context.Context, r *Run) {
	victim := r.etcdLeader(ctx)
	undo, err := r.Inject(ctx, fault.Kill, victim)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	// Longer than the leader key's ttl: Patroni had to renew it through the
	// two remaining members.
	_ = r.Hold(ctx, r.ttl()+2*time.Second)
	if ctx.Err() != nil {
		return
	}
	r.expectSameLeader(ctx, r.Before.Leader, r.FaultAt)
	r.undoNow(undo)
	r.noClientErrors()
	r.Outcome = fmt.Sprintf("%s (etcd leader) lost for %s → nothing changed, %s leads", victim, r.ttl()+2*time.Second, r.Before.Leader.Name)
}

// noClientErrors fails the scenario for any failed write or read since the
// fault: the promise of scenarios that must not disturb clients.
func (r *Run) noClientErrors() {
	var wf, rf int
	for _, o := range r.Writes() {
		if !o.OK && o.Start.After(r.FaultAt) {
			wf++
		}
	}
	for _, o := range r.traffic.Reader.Ops() {
		if !o.OK && o.Start.After(r.FaultAt) {
			rf++
		}
	}
	if wf > 0 || rf > 0 {
		r.Failf("clients noticed: %d writes and %d reads failed after the fault (last write error: %s)", wf, rf, r.LastErr())
	}
}

// etcdLeader names the etcd node that is the raft leader (etcd-1 if it
// cannot tell).
func (r *Run) etcdLeader(ctx context.Context) string {
	if l := r.Env.Probe().Etcd(ctx).Leader; l != "" {
		return l
	}
	if nodes := r.Env.Stack().ByRole(topology.RoleEtcd); len(nodes) > 0 {
		return nodes[0].Name
	}
	return ""
}
