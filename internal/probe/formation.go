package probe

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
)

// Repl is one row of pg_stat_replication on the leader.
type Repl struct {
	State, SyncState, ClientAddr string
	LagBytes                     int64 // replay lag; -1 unknown
}

// Formation is Patroni's cluster judged as a whole.
type Formation struct {
	At       time.Time
	Cluster  patroni.Cluster
	Leader   patroni.Member
	Replicas []patroni.Member
	// Repl is pg_stat_replication on the leader, by application_name
	// (Patroni names it after the member).
	Repl map[string]Repl
	// Timelines are each member's own (/patroni); Timeline is the leader's.
	Timelines map[string]int
	Timeline  int
	Sync      string // the synchronous standby, if any
	Problems  []string
}

// OK is one leader, every other member a replica streaming from it, one
// timeline, and in synchronous mode a synchronous standby.
func (f Formation) OK() bool { return len(f.Problems) == 0 }

// Problem is the problems in one line.
func (f Formation) Problem() string { return strings.Join(f.Problems, "; ") }

// Err is the problems as one error, nil when OK.
func (f Formation) Err() error {
	if f.OK() {
		return nil
	}
	return fmt.Errorf("%s", f.Problem())
}

// Streaming reports whether the leader sees member streaming.
func (f Formation) Streaming(member string) bool { return f.Repl[member].State == "streaming" }

// Replica returns the first replica that is (or is not) the sync standby.
func (f Formation) Replica(sync bool) (patroni.Member, bool) {
	for _, r := range f.Replicas {
		if (r.Name == f.Sync) == sync {
			return r, true
		}
	}
	return patroni.Member{}, false
}

// HostsExcept lists the hosts of the members other than name.
func (f Formation) HostsExcept(name string) []string {
	var out []string
	for _, m := range f.Cluster.Members {
		if m.Name != name {
			out = append(out, m.Host)
		}
	}
	return out
}

// Cluster reads /cluster from the first Patroni node that answers, skipping
// the named ones (a node under a fault may answer with a stale view).
func (p *Probe) Cluster(ctx context.Context, skip ...string) (patroni.Cluster, error) {
	var errs []string
	for _, n := range p.Nodes(topology.RolePatroni) {
		if slices.Contains(skip, n.Name) {
			continue
		}
		cl, err := p.Patroni.Cluster(ctx, n.PrivateIP)
		if err == nil && len(cl.Members) > 0 {
			return cl, nil
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	return patroni.Cluster{}, fmt.Errorf("no Patroni node answered /cluster: %s", strings.Join(errs, "; "))
}

// WaitLeader polls /cluster (skipping the named nodes) until there is one
// leader and pred holds for it.
func (p *Probe) WaitLeader(ctx context.Context, bound time.Duration, pred func(patroni.Member) bool, skip ...string) (patroni.Member, bool) {
	var leader patroni.Member
	ok := wait.Poll(ctx, bound, 100*time.Millisecond, func() bool {
		cl, err := p.Cluster(ctx, skip...)
		if err != nil {
			return false
		}
		l, one := cl.Leader()
		if one && pred(l) {
			leader = l
			return true
		}
		return false
	})
	return leader, ok
}

// Replication reads pg_stat_replication on one node.
func (p *Probe) Replication(ctx context.Context, host string) (map[string]Repl, error) {
	type row struct {
		name string
		r    Repl
	}
	rows, err := query(ctx, p, host, `SELECT application_name, coalesce(state, ''), coalesce(sync_state, ''),
		coalesce(host(client_addr), ''), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), -1)::bigint
		FROM pg_stat_replication`, func(rs pgx.CollectableRow) (row, error) {
		var x row
		err := rs.Scan(&x.name, &x.r.State, &x.r.SyncState, &x.r.ClientAddr, &x.r.LagBytes)
		return x, err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]Repl{}
	for _, x := range rows {
		out[x.name] = x.r
	}
	return out, nil
}

// Formation judges the cluster now: exactly one leader; every Patroni node
// a member; the others replicas that stream from the leader by its own
// pg_stat_replication (Patroni 3.0.2's /cluster says "running" either way)
// and that Patroni reports as running; all on the leader's timeline; and,
// in synchronous mode, a synchronous standby.
func (p *Probe) Formation(ctx context.Context, skip ...string) Formation {
	f := Formation{At: time.Now(), Repl: map[string]Repl{}, Timelines: map[string]int{}}
	cl, err := p.Cluster(ctx, skip...)
	if err != nil {
		f.Problems = append(f.Problems, err.Error())
		return f
	}
	f.Cluster = cl
	nodes := p.Nodes(topology.RolePatroni)
	leaders := cl.Leaders()
	switch len(leaders) {
	case 1:
		f.Leader = leaders[0]
	case 0:
		f.Problems = append(f.Problems, "Patroni reports no leader")
	default:
		var names []string
		for _, l := range leaders {
			names = append(names, l.Name)
		}
		f.Problems = append(f.Problems, fmt.Sprintf("Patroni reports %d leaders: %s", len(leaders), strings.Join(names, ", ")))
	}
	f.Replicas = cl.Replicas()
	var want []string
	for _, n := range nodes {
		want = append(want, n.Name)
		if _, ok := cl.Member(n.Name); !ok {
			f.Problems = append(f.Problems, fmt.Sprintf("member %s is missing from Patroni's /cluster", n.Name))
		}
	}
	if len(f.Replicas) != len(nodes)-1 {
		f.Problems = append(f.Problems, fmt.Sprintf("Patroni reports %d replicas; want %d", len(f.Replicas), len(nodes)-1))
	}
	for _, m := range cl.Members {
		if !slices.Contains(want, m.Name) {
			f.Problems = append(f.Problems, fmt.Sprintf("unexpected member %s in /cluster", m.Name))
		}
		if m.IsSyncStandby() {
			f.Sync = m.Name
		}
	}
	if f.Leader.Name == "" {
		return f
	}
	rows, err := p.Replication(ctx, f.Leader.Host)
	if err != nil {
		f.Problems = append(f.Problems, fmt.Sprintf("reading pg_stat_replication on leader %s: %v", f.Leader.Name, err))
	} else {
		f.Repl = rows
	}
	for _, r := range f.Replicas {
		row, ok := f.Repl[r.Name]
		switch {
		case err != nil:
		case !ok:
			f.Problems = append(f.Problems, fmt.Sprintf("replica %s is not streaming from leader %s (no pg_stat_replication entry)", r.Name, f.Leader.Name))
		case row.State != "streaming":
			f.Problems = append(f.Problems, fmt.Sprintf("replica %s is in state %q on leader %s, not streaming", r.Name, row.State, f.Leader.Name))
		}
		// PostgreSQL may stream before Patroni has noticed; until then
		// /cluster says "starting", which is not formed yet.
		if r.State != "running" && r.State != "streaming" {
			f.Problems = append(f.Problems, fmt.Sprintf("Patroni reports replica %s as %q", r.Name, r.State))
		}
	}
	for _, m := range cl.Members {
		n, ok := p.Stack.NodeByName(m.Name)
		if !ok {
			continue
		}
		s, err := p.Patroni.Status(ctx, n.PrivateIP)
		if err != nil {
			f.Problems = append(f.Problems, fmt.Sprintf("member %s: %v", m.Name, err))
			continue
		}
		f.Timelines[m.Name] = s.Timeline
	}
	f.Timeline = f.Timelines[f.Leader.Name]
	if f.Timeline == 0 {
		f.Timeline = f.Leader.Timeline
	}
	for name, tl := range f.Timelines {
		if tl != f.Timeline {
			f.Problems = append(f.Problems, fmt.Sprintf("member %s is on timeline %d, the leader %s on %d", name, tl, f.Leader.Name, f.Timeline))
		}
	}
	if p.Stack.SynchronousMode {
		syncs := 0
		for name, r := range f.Repl {
			if r.SyncState == "sync" {
				syncs++
				if f.Sync == "" {
					f.Sync = name
				}
			}
		}
		if syncs == 0 {
			f.Problems = append(f.Problems, "synchronous mode is on but the leader has no synchronous standby (no sync_state = 'sync' in pg_stat_replication)")
		}
	}
	sort.Strings(f.Problems)
	return f
}

// WaitFormation polls until the formation is OK and pred (when given)
// returns "". While it waits, logf (when given) hears each new problem, so
// a slow rejoin is visible while it happens.
func (p *Probe) WaitFormation(ctx context.Context, bound time.Duration, pred func(Formation) string, logf func(format string, a ...any), skip ...string) (Formation, bool) {
	var last Formation
	shown, start := "", time.Now()
	ok := wait.Poll(ctx, bound, 500*time.Millisecond, func() bool {
		last = p.Formation(ctx, skip...)
		if pred != nil && last.Leader.Name != "" {
			if pr := pred(last); pr != "" {
				last.Problems = append(last.Problems, pr)
			}
		}
		if pr := last.Problem(); logf != nil && pr != "" && pr != shown && time.Since(start) > 2*time.Second && ctx.Err() == nil {
			logf("  waiting: %s", pr)
			shown = pr
		}
		return last.OK()
	})
	return last, ok
}
