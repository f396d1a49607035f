package pgbench

import (
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTPS(t *testing.T) {
	out := `pgbench (15.8 (Debian 15.8-0+deb12u1))
transaction type: <builtin: select only>
number of clients: 4
number of transactions actually processed: 1200
latency average = 1.234 ms
initial connection time = 40.1 ms
tps = 3241.527702 (without initial connection time)
`
	v, err := ParseTPS(out)
	require.NoError(t, err)
	assert.InDelta(t, 3241.527702, v, 1e-9)

	_, err = ParseTPS("pgbench: error: connection to server failed\n")
	assert.ErrorContains(t, err, "connection to server failed")
	_, err = ParseTPS("  \n")
	assert.EqualError(t, err, `pgbench printed no "tps = … (without initial connection time)" line: no output`)
}

func TestCommand(t *testing.T) {
	env := make([]string, 1, 4) // spare room an append could write into
	env[0] = "PGSSLMODE=require"
	c := Client{Namespace: "pgha-client", User: "app", Password: "s3cret", Database: "appdb", Env: env}
	cmd := c.command(context.Background(), "10.0.0.5", 5000, []string{"-n", "-T", "5"})
	assert.Equal(t, []string{"ip", "netns", "exec", "pgha-client", Path,
		"-h", "10.0.0.5", "-p", "5000", "-U", "app", "-n", "-T", "5", "appdb"}, cmd.Args)
	assert.Equal(t, []string{"PGSSLMODE=require", "PGPASSWORD=s3cret", "PGAPPNAME=pgha-bench"}, cmd.Env)
	assert.Empty(t, env[:2][1], "the caller's Env is not written to")
}

func TestRunError(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip is not installed")
	}
	c := Client{Namespace: "pgha-no-such-namespace", User: "app", Database: "appdb"}
	_, err := c.Run(context.Background(), "127.0.0.1", 5432, "-n", "-T", "1")
	require.Error(t, err)
	var exit *exec.ExitError
	assert.True(t, errors.As(err, &exit), "the exit stays inspectable: %v", err)
	assert.Regexp(t, `^pgbench -n -T 1 against 127\.0\.0\.1:5432: exit status \d+: .*pgha-no-such-namespace`, err.Error())
}
