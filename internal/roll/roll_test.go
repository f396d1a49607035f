package roll

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
