package roll

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
)

func plan(t *testing.T) topology.Plan {
	p, err := topology.New("10.42.0.0/16")
	require.NoError(t, err)
	return p
}

func names(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

func TestOrder(t *testing.T) {
	steps, err := Order(plan(t), "pg-2", "pg-3")
	require.NoError(t, err)
	assert.Equal(t, []string{
		"replace haproxy-1", "replace haproxy-2",
		"replace etcd-1", "replace etcd-2", "replace etcd-3",
		"replace pg-1", // asynchronous first
		"replace pg-3", // then the sync standby
		"switch over from pg-2", "replace pg-2",
	}, names(steps))

	steps, err = Order(plan(t), "pg-1", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"replace pg-2", "replace pg-3", "switch over from pg-1", "replace pg-1"}, names(steps)[5:])

	_, err = Order(plan(t), "etcd-1", "")
	require.ErrorContains(t, err, "not a PostgreSQL node")
}

// fake records what a roll asks of the cluster; whole says whether the
// gate passes after each call.
type fake struct {
	calls      []string
	failOn     string
	neverWhole string // after this call the gate never passes
	broken     bool
}

func (f *fake) Replace(_ context.Context, n string) error {
	f.calls = append(f.calls, "replace "+n)
	if f.failOn == n {
		return errors.New("boom")
	}
	if f.neverWhole == n {
		f.broken = true
	}
	return nil
}

func (f *fake) Switchover(_ context.Context, leader string) (string, error) {
	f.calls = append(f.calls, "switch over from "+leader)
	return "pg-3", nil
}

func (f *fake) Whole(context.Context) error {
	if f.broken {
		return errors.New("1 leader, 1 streaming")
	}
	return nil
}

func TestRunGoesInOrderAndStopsAtTheFirstFailure(t *testing.T) {
	steps, err := Order(plan(t), "pg-2", "pg-3")
	require.NoError(t, err)

	f := &fake{}
	done, err := Run(context.Background(), f, steps, time.Second, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, names(steps), f.calls)
	require.Len(t, done, len(steps))
	assert.Equal(t, "pg-3", done[7].To)

	f = &fake{failOn: "etcd-2"}
	done, err = Run(context.Background(), f, steps, time.Second, io.Discard)
	require.ErrorContains(t, err, "step 4/9, replace etcd-2: boom")
	assert.Len(t, done, 3)
	assert.Equal(t, "replace etcd-2", f.calls[len(f.calls)-1], "nothing after the failed step")

	f = &fake{neverWhole: "pg-1"}
	_, err = Run(context.Background(), f, steps, 1500*time.Millisecond, io.Discard)
	require.ErrorContains(t, err, "step 6/9, replace pg-1: the cluster is not whole")
	assert.Equal(t, "replace pg-1", f.calls[len(f.calls)-1])

	f = &fake{broken: true}
	_, err = Run(context.Background(), f, steps, time.Second, io.Discard)
	require.ErrorContains(t, err, "before the roll")
	assert.Empty(t, f.calls)
}

func TestRollGateErrorSaysWhichStepWasMade(t *testing.T) {
	steps, err := Order(plan(t), "pg-2", "pg-3")
	require.NoError(t, err)
	_, err = Run(context.Background(), &fake{neverWhole: "etcd-1"}, steps, 1500*time.Millisecond, io.Discard)
	var g *GateError
	require.ErrorAs(t, err, &g)
	assert.Equal(t, 3, g.After, "the gate after step 3, whose change was made")
	assert.EqualError(t, g.Err, "1 leader, 1 streaming")

	_, err = Run(context.Background(), &fake{broken: true}, steps, time.Second, io.Discard)
	require.ErrorAs(t, err, &g)
	assert.Equal(t, 0, g.After)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, &fake{broken: true}, steps, time.Minute, io.Discard)
	require.ErrorContains(t, err, "before the roll: interrupted while waiting for the cluster to be whole")
}

// switcher is a Patroni cluster as a switchover sees it.
type switcher struct {
	leader, sync string
	replicas     []string
	broken       string // a problem of the formation
	stuck        bool   // the candidate never takes over
	fail         error
	asked        []string
}

func (s *switcher) Formation(context.Context, ...string) probe.Formation {
	f := probe.Formation{Leader: patroni.Member{Name: s.leader, Host: "host-of-" + s.leader}, Sync: s.sync, Repl: map[string]probe.Repl{}}
	for _, r := range s.replicas {
		if r != s.leader {
			f.Replicas = append(f.Replicas, patroni.Member{Name: r})
			f.Repl[r] = probe.Repl{State: "streaming"}
		}
	}
	if s.broken != "" {
		f.Problems = []string{s.broken}
	}
	return f
}

func (s *switcher) Switchover(_ context.Context, host, leader, candidate string) error {
	s.asked = append(s.asked, host+" "+leader+"->"+candidate)
	if s.fail != nil {
		return s.fail
	}
	if !s.stuck {
		s.leader = candidate
	}
	return nil
}

func TestSwitchoverGoesToTheSyncStandbyElseAReplica(t *testing.T) {
	s := &switcher{leader: "pg-2", sync: "pg-3", replicas: []string{"pg-1", "pg-2", "pg-3"}}
	to, err := HandOver(context.Background(), s, "pg-2", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "pg-3", to)
	assert.Equal(t, []string{"host-of-pg-2 pg-2->pg-3"}, s.asked, "asked of the leader, to the synchronous standby")

	s = &switcher{leader: "pg-1", replicas: []string{"pg-1", "pg-2", "pg-3"}}
	to, err = HandOver(context.Background(), s, "pg-1", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "pg-2", to, "without synchronous mode, the first streaming replica")
}

func TestSwitchoverRefusesOrStops(t *testing.T) {
	s := &switcher{leader: "pg-2", sync: "pg-3", replicas: []string{"pg-1", "pg-2", "pg-3"}, broken: "replica pg-1 is not streaming"}
	_, err := HandOver(context.Background(), s, "pg-2", time.Second)
	require.ErrorContains(t, err, "not switching over from pg-2: replica pg-1 is not streaming")
	assert.Empty(t, s.asked)

	// Leadership already moved: nothing to hand over.
	s = &switcher{leader: "pg-3", replicas: []string{"pg-1", "pg-2", "pg-3"}}
	to, err := HandOver(context.Background(), s, "pg-2", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "pg-3", to)
	assert.Empty(t, s.asked)

	s = &switcher{leader: "pg-2", replicas: []string{"pg-2"}}
	_, err = HandOver(context.Background(), s, "pg-2", time.Second)
	require.ErrorContains(t, err, "no replica to switch over to")

	s = &switcher{leader: "pg-2", sync: "pg-3", replicas: []string{"pg-1", "pg-2", "pg-3"}, fail: errors.New("HTTP 412: candidate not healthy")}
	_, err = HandOver(context.Background(), s, "pg-2", time.Second)
	require.ErrorContains(t, err, "HTTP 412")

	s = &switcher{leader: "pg-2", sync: "pg-3", replicas: []string{"pg-1", "pg-2", "pg-3"}, stuck: true}
	_, err = HandOver(context.Background(), s, "pg-2", time.Second)
	require.ErrorContains(t, err, `pg-3 does not lead a whole cluster 1s after the switchover: the leader is "pg-2"`)
}
