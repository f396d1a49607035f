package fault

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

// recorder is a LabControl that records calls, to test the wiring of the
// fault kinds to the lab's controls. The controls themselves are exercised
// against a real lab by validate's integration test.
type recorder struct{ calls []string }

func (r *recorder) Kill(_ context.Context, n string) error {
	r.calls = append(r.calls, "kill "+n)
	return nil
}
func (r *recorder) Stop(_ context.Context, n string) error {
	r.calls = append(r.calls, "stop "+n)
	return nil
}
func (r *recorder) Start(_ context.Context, n string) error {
	r.calls = append(r.calls, "start "+n)
	return nil
}
func (r *recorder) Partition(_ context.Context, n string) error {
	r.calls = append(r.calls, "cut "+n)
	return nil
}
func (r *recorder) Heal(_ context.Context, n string) error {
	r.calls = append(r.calls, "heal "+n)
	return nil
}

func TestLabSetWiring(t *testing.T) {
	r := &recorder{}
	set := LabSet(r, outputs.AccessNetns)
	require.Equal(t, []string{"kill", "partition", "stop"}, set.Names())
	n := outputs.Node{Name: "pg-1"}
	for _, name := range set.Names() {
		f, err := set.Get(name)
		require.NoError(t, err)
		require.Equal(t, name, f.Name())
		require.NoError(t, f.Inject(context.Background(), n))
		require.NoError(t, f.Restore(context.Background(), n))
	}
	require.Equal(t, []string{"kill pg-1", "start pg-1", "cut pg-1", "heal pg-1", "stop pg-1", "start pg-1"}, r.calls)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, set[Kill].Inject(ctx, n), "an interrupted run must not start a fault")
}

func TestLoopbackLabCannotPartition(t *testing.T) {
	set := LabSet(&recorder{}, outputs.AccessDirect)
	_, err := set.Get(Partition)
	require.ErrorContains(t, err, "choose one of: kill, stop")
	require.ErrorContains(t, err, "share the host's network stack", "the refusal says why")
	require.Equal(t, []string{"kill", "stop"}, set.Names())

	// The lab itself decides, whatever the access path: a namespace lab
	// reached over SSH partitions, a loopback one never does.
	require.Contains(t, LabSet(&partitionRecorder{}, outputs.AccessSSH).Names(), Partition)
	_, err = LabSet(&partitionRecorder{no: errors.New("no link to cut")}, outputs.AccessSSH).Get(Partition)
	require.ErrorContains(t, err, "no link to cut")
}

type partitionRecorder struct {
	recorder
	no error
}

func (r *partitionRecorder) PartitionUnavailable() error { return r.no }

func TestForTargetUnknown(t *testing.T) {
	_, err := ForTarget(outputs.Stack{Target: "mars", Access: outputs.Access{Kind: "ssh"}})
	require.ErrorContains(t, err, `no fault provider serves target "mars"`)
}
