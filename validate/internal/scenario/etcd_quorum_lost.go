package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/validate/internal/fault"
	"github.com/pgha/pgha/validate/internal/history"
)

// 7. etcd loses quorum: two of three members stop. Patroni cannot renew
// the leader key; with failsafe_mode the primary keeps its role as long as
// it can reach every other member over the REST API, so the cluster keeps
// serving. The scenario holds the outage well past the leader key's ttl
// and records exactly what clients saw.
var etcdQuorumLost = Scenario{
	Name:   "etcd-quorum-lost",
	Title:  "etcd loses quorum (2 of 3 members stopped)",
	Proves: "with failsafe_mode the primary keeps serving writes and reads while etcd has no quorum",
	Story:  etcdQuorumLostStory,
}

func etcdQuorumLostStory(ctx context.Context, r *Run) {
	nodes := r.Env.Stack().ByRole(topology.RoleEtcd)
	if len(nodes) < 3 {
		r.Failf("need 3 etcd members, the stack has %d", len(nodes))
		return
	}
	// The raft leader and one more: no member that led keeps a quorum.
	lead := r.etcdLeader(ctx)
	victims := []string{lead}
	for _, n := range nodes {
		if n.Name != lead && len(victims) < 2 {
			victims = append(victims, n.Name)
		}
	}
	var undos []func() error
	for _, v := range victims {
		u, err := r.Inject(ctx, fault.Stop, v)
		if err != nil {
			r.Failf("%v", err)
			return
		}
		undos = append(undos, u)
	}
	lost := time.Now()
	hold := 2*r.ttl() + 2*time.Second
	_ = r.Hold(ctx, hold)
	if ctx.Err() != nil {
		return
	}
	end := time.Now()
	r.Seconds("quorum_lost_s", "time without etcd quorum", end.Sub(lost))
	r.expectSameLeader(ctx, r.Before.Leader, r.FaultAt)
	// What clients saw during the outage, and in its second half (past the
	// leader key's ttl: only failsafe mode keeps the primary then).
	for _, w := range []struct {
		key, label string
		from       time.Time
	}{{"outage", "whole outage", lost}, {"past_ttl", "past the leader key's ttl", lost.Add(r.ttl())}} {
		wr := history.Reads(r.Writes(), w.from, end)
		rd := history.Reads(r.traffic.Reader.Ops(), w.from, end)
		r.Text("clients_"+w.key, "clients, "+w.label, fmt.Sprintf("writes %d ok / %d failed, reads %d ok / %d failed",
			wr.Total-wr.Failed, wr.Failed, rd.Total-rd.Failed, rd.Failed))
		if w.key == "past_ttl" {
			if wr.Total-wr.Failed == 0 {
				r.Failf("no write was acknowledged past the leader key's ttl without etcd quorum: failsafe mode did not keep the primary")
			}
			if rd.Total-rd.Failed == 0 {
				r.Failf("no read was served past the leader key's ttl without etcd quorum")
			}
		}
	}
	primaryPolls, total := 0, 0
	for _, rd := range r.poller.Rounds() {
		if rd.At.After(lost) && rd.At.Before(end) {
			total++
			if len(rd.Primaries) == 1 && rd.Primaries[0] == r.Before.Leader.Name {
				primaryPolls++
			}
		}
	}
	r.Text("primary_during_outage", "/primary said 200 on the leader alone", fmt.Sprintf("%d of %d polls", primaryPolls, total))
	for i := len(undos) - 1; i >= 0; i-- {
		r.undoNow(undos[i])
	}
	r.Outcome = fmt.Sprintf("%s and %s stopped for %.0fs → %s kept serving (failsafe)", victims[0], victims[1], end.Sub(lost).Seconds(), r.Before.Leader.Name)
}
