package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

func TestSelectChecks(t *testing.T) {
	all, err := selectChecks("", "")
	require.NoError(t, err)
	require.Equal(t, []string{"etcd", "formation", "routing", "replication", "backup", "switchover", "failover"}, all)

	got, err := selectChecks("failover, etcd", "")
	require.NoError(t, err)
	require.Equal(t, []string{"etcd", "failover"}, got, "runbook order, whatever the flag order")

	got, err = selectChecks("", "switchover,failover")
	require.NoError(t, err)
	require.Equal(t, []string{"etcd", "formation", "routing", "replication", "backup"}, got)

	_, err = selectChecks("etcd,bogus", "")
	require.ErrorContains(t, err, `--only: unknown check "bogus"; the checks are etcd, formation`)
	require.True(t, isUserError(err))

	_, err = selectChecks("etcd", "etcd")
	require.ErrorContains(t, err, "leave no check to run")
}

func TestParseOptionsRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--outputs", "a", "--stack", "b"}, "either --outputs or --stack"},
		{[]string{"--write-interval", "0s"}, "--write-interval must be positive"},
		{[]string{"--skip", "nope"}, `--skip: unknown check "nope"`},
		{[]string{"--outputs", "a", "extra"}, `unexpected argument "extra"`},
		{[]string{"--fault", "explode"}, `--fault: unknown fault "explode"; use kill, stop or partition`},
		{[]string{"--fault", "kill-postgres"}, "run --scenario postgres-crash"},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}

// Bad input gives one line naming what to change, and exit status 2; never
// a stack trace.
func TestBadInputIsOneLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "outputs.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"target":"lab"}`), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--outputs", filepath.Join(dir, "missing.json")}, "reading stack outputs"},
		{[]string{"--outputs", bad}, `output "clusterName": is empty`},
		{[]string{"--stack", "pghaval-no-such-stack"}, ""}, // wording is the Pulumi reader's
		{[]string{"frobnicate"}, `unknown subcommand "frobnicate"`},
	} {
		var out, errb bytes.Buffer
		code := dispatch(tc.args, &out, &errb)
		require.Equal(t, 2, code, tc.args)
		require.Contains(t, errb.String(), tc.want)
		require.NotContains(t, errb.String(), "goroutine")
		require.True(t, strings.HasPrefix(errb.String(), "validate: "), errb.String())
		// One line per problem; further lines each name an output.
		for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n")[1:] {
			require.True(t, strings.HasPrefix(line, "output "), "line %q", line)
		}
	}
}

func TestReproduceCommands(t *testing.T) {
	o := &options{outputsFile: "/var/lib/pgha-lab/x/outputs.json", fault: "kill", selected: []string{"etcd", "failover"}}
	cmds := reproduce(o, outputs.Stack{Target: "lab", Profile: "fast", SynchronousMode: true})
	require.Equal(t, "go run ./lab up --name x --profile fast --sync    # if it is not up", cmds[0])
	require.Equal(t, "go run ./validate --outputs /var/lib/pgha-lab/x/outputs.json --only etcd,failover", cmds[1])
	require.Contains(t, cmds, "go run ./validate --outputs /var/lib/pgha-lab/x/outputs.json --only failover")
}
