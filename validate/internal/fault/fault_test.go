package fault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

// recorder is a LabControl that records calls, to test the wiring of the
// fault kinds to the lab's operations. The operations themselves run
// against a real lab in validate's integration tests.
type recorder struct{ calls []string }

func (r *recorder) rec(op, n string) error {
	r.calls = append(r.calls, op+" "+n)
	return nil
}
func (r *recorder) Kill(_ context.Context, n string) error { return r.rec("kill", n) }
func (r *recorder) KillPostgres(_ context.Context, n string) error {
	return r.rec("kill-postgres", n)
}
func (r *recorder) Stop(_ context.Context, n string) error      { return r.rec("stop", n) }
func (r *recorder) Start(_ context.Context, n string) error     { return r.rec("start", n) }
func (r *recorder) Partition(_ context.Context, n string) error { return r.rec("cut", n) }
func (r *recorder) Heal(_ context.Context, n string) error      { return r.rec("heal", n) }

// labStack is a lab's outputs; namespaced says whether its nodes have
// network namespaces of their own.
func labStack(namespaced bool) outputs.Stack {
	s := outputs.Stack{Target: outputs.TargetLab}
	for _, n := range []string{"etcd-1", "pg-1", "haproxy-1"} {
		node := outputs.Node{Name: n}
		if namespaced {
			node.Namespace = "lab-" + n
		}
		s.Nodes = append(s.Nodes, node)
	}
	return s
}

func TestLabFaultsWiring(t *testing.T) {
	r := &recorder{}
	set := LabFaults(r, labStack(true))
	require.Equal(t, []string{"kill", "kill-postgres", "partition", "stop"}, set.Names())
	n := outputs.Node{Name: "pg-1"}
	for _, name := range set.Names() {
		f, err := set.Get(name)
		require.NoError(t, err)
		require.Equal(t, name, f.Name())
		require.NoError(t, f.Inject(context.Background(), n))
		require.NoError(t, f.Restore(context.Background(), n))
	}
	require.Equal(t, []string{"kill pg-1", "start pg-1", "kill-postgres pg-1", "start pg-1",
		"cut pg-1", "heal pg-1", "stop pg-1", "start pg-1"}, r.calls)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _ := set.Get(Kill)
	require.Error(t, f.Inject(ctx, n), "an interrupted run must not start a fault")
}

// The lab itself decides, whatever the access path: a lab whose nodes
// have namespaces partitions, a loopback one never does, and says why.
func TestLoopbackLabCannotPartition(t *testing.T) {
	set := LabFaults(&recorder{}, labStack(false))
	_, err := set.Get(Partition)
	require.ErrorContains(t, err, "choose one of: kill, kill-postgres, stop")
	require.ErrorIs(t, Unavailable{Partition, ErrNoPartition}.Inject(context.Background(), outputs.Node{}), ErrNoPartition)
	require.ErrorContains(t, err, "share the host's network stack", "the refusal says why")
	require.Equal(t, []string{"kill", "kill-postgres", "stop"}, set.Names())
}

func TestForTargetUnknown(t *testing.T) {
	_, err := ForTarget(outputs.Stack{Target: "mars", Access: outputs.Access{Kind: "ssh"}})
	require.ErrorContains(t, err, `no faults for target "mars"`)
}

// TestLabCommand runs a stand-in lab command, as `lab up` leaves it in the
// lab's directory, and checks the command lines and the refusals.
func TestLabCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mylab")
	bin := filepath.Join(dir, "bin", "lab")
	require.NoError(t, os.MkdirAll(filepath.Dir(bin), 0o755))
	log := filepath.Join(t.TempDir(), "calls")
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\n[ \"$1\" = kill ] && [ \"$2\" = etcd-9 ] && { echo 'no node \"etcd-9\"' >&2; exit 1; }\nexit 0\n"
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	s := labStack(true)
	s.Access.LabDir = dir

	c, err := LabCommand(s)
	require.NoError(t, err)
	ctx := context.Background()
	set := LabFaults(c, s)
	for _, kind := range []string{Kill, Partition} {
		f, err := set.Get(kind)
		require.NoError(t, err)
		require.NoError(t, f.Inject(ctx, outputs.Node{Name: "pg-1"}))
		require.NoError(t, f.Restore(ctx, outputs.Node{Name: "pg-1"}))
	}
	err = c.Kill(ctx, "etcd-9")
	require.ErrorContains(t, err, `lab kill etcd-9: no node "etcd-9"`, "the lab's own words come back")
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	require.Equal(t, []string{"kill pg-1 --name mylab", "start pg-1 --name mylab", "partition pg-1 --name mylab",
		"heal pg-1 --name mylab", "kill etcd-9 --name mylab"}, strings.Split(strings.TrimSpace(string(b)), "\n"))

	// A control anybody could have replaced is refused.
	require.NoError(t, os.Chmod(bin, 0o777))
	_, err = LabCommand(s)
	require.ErrorContains(t, err, "writable by others")
	require.NoError(t, os.Chmod(bin, 0o755))
	s.Access.LabDir = "relative/lab"
	_, err = LabCommand(s)
	require.ErrorContains(t, err, "absolute path")
	s.Access.LabDir = filepath.Join(t.TempDir(), "gone")
	_, err = LabCommand(s)
	require.ErrorContains(t, err, "lab up")
}
