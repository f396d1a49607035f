package scenario

import (
	"context"
	"net"
	"testing"

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
