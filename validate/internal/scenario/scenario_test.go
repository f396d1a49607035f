package scenario

import (
	"context"
	"net"
	"testing"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegistryHasTheTenScenariosInOrder(t *testing.T) {
	require.Equal(t, []string{"leader-kill", "leader-stop", "leader-partition", "postgres-crash", "replica-lost",
		"etcd-member-lost", "etcd-quorum-lost", "haproxy-lost", "double-failover", "switchover-load"}, Names())
	for _, n := range Names() {
		s, ok := Get(n)
		require.True(t, ok)
		require.NotEmpty(t, s.Title, n)
		require.NotEmpty(t, s.Proves, n)
		require.NotNil(t, s.Story, n)
	}
}

// failoverDial moves to the next HAProxy node when the first refuses, and
// leaves other addresses alone.
func TestFailoverDial(t *testing.T) {
	var tried []string
	base := func(_ context.Context, _, addr string) (net.Conn, error) {
		tried = append(tried, addr)
		if addr == "10.0.0.2:5000" {
			c, _ := net.Pipe()
			return c, nil
		}
		return nil, &net.OpError{Op: "dial", Err: net.UnknownNetworkError("refused")}
	}
	d := failoverDial(base, []string{"10.0.0.1", "10.0.0.2"})
	c, err := d(context.Background(), "tcp", "10.0.0.1:5000")
	require.NoError(t, err)
	c.Close()
	require.Equal(t, []string{"10.0.0.1:5000", "10.0.0.2:5000"}, tried)

	tried = nil
	_, err = d(context.Background(), "tcp", "10.0.9.9:5432")
	require.Error(t, err)
	require.Equal(t, []string{"10.0.9.9:5432"}, tried, "a non-HAProxy address is dialled as is")
}

func TestPgbenchFailures(t *testing.T) {
	clean := "transaction type: insert.sql\nnumber of clients: 8\nnumber of transactions actually processed: 4210\nnumber of failed transactions: 0 (0.000%)\n"
	assert.Zero(t, pgbenchFailures(clean))
	aborted := "pgbench: error: client 3 aborted in command 0 (SQL) of script 0; perhaps the backend died while processing\n" +
		"pgbench: error: client 5 aborted in command 0 (SQL) of script 0; perhaps the backend died while processing\n" +
		"number of transactions actually processed: 1200\nnumber of failed transactions: 0 (0.000%)\n" +
		"pgbench: error: Run was aborted; the above results are incomplete.\n"
	assert.Equal(t, int64(2), pgbenchFailures(aborted))
	assert.Equal(t, int64(1), pgbenchFailures("pgbench: error: connection to server at \"10.0.0.1\", port 6432 failed: Connection refused\n"),
		"a run that never connected is one failure")
	assert.Equal(t, int64(3), pgbenchFailures("number of transactions actually processed: 10\nnumber of failed transactions: 3 (23.077%)\n"))
}

// A named candidate is checked before anything is paused: a member, not
// the leader, and in synchronous mode the synchronous standby, which is
// the only one Patroni hands over to.
func TestChooseCandidate(t *testing.T) {
	leader := patroni.Member{Name: "pg-1", Role: patroni.RoleLeader}
	sync := patroni.Member{Name: "pg-2", Role: patroni.RoleSyncStandby}
	other := patroni.Member{Name: "pg-3", Role: "replica"}
	f := probe.Formation{Cluster: patroni.Cluster{Members: []patroni.Member{leader, sync, other}},
		Leader: leader, Replicas: []patroni.Member{sync, other}, Sync: "pg-2"}

	m, err := ChooseCandidate(f, "")
	require.NoError(t, err)
	assert.Equal(t, "pg-2", m.Name, "the sync standby by default")
	m, err = ChooseCandidate(f, "pg-2")
	require.NoError(t, err)
	assert.Equal(t, "pg-2", m.Name)
	for asked, want := range map[string]string{
		"pg-3": "not the synchronous standby: in synchronous mode Patroni hands over only to pg-2",
		"pg-1": "already the leader",
		"pg-9": "not a member",
	} {
		_, err = ChooseCandidate(f, asked)
		var ce ErrCandidate
		require.ErrorAs(t, err, &ce, asked)
		assert.ErrorContains(t, err, want)
	}

	// Without synchronous mode any replica will do.
	other.Role, sync.Role = "replica", "replica"
	f.Cluster.Members, f.Sync = []patroni.Member{leader, sync, other}, ""
	m, err = ChooseCandidate(f, "pg-3")
	require.NoError(t, err)
	assert.Equal(t, "pg-3", m.Name)
}
