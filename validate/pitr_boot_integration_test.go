package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/userdata"
)

// pitrAgainstBootedLab runs docs/backups.md's whole-cluster point-in-time
// recovery on a booted lab with backups, over SSH as an operator would:
// rows are written, the target is taken, more rows are written and the
// table is dropped (the mistake); after the procedure the table holds
// exactly the rows from before the target, the cluster leads on a new
// timeline with two streaming replicas rebuilt from the new backup.
func pitrAgainstBootedLab(t *testing.T, tl *labtest.Lab) {
	s, err := outputs.Load(tl.OutputsFile)
	require.NoError(t, err)
	require.NotNil(t, s.Backups, "the lab was brought up with --backups")
	cfg, err := access.SSHConfigFromStack(s)
	require.NoError(t, err)
	jump, err := access.NewJump(cfg)
	require.NoError(t, err)
	defer jump.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	pgs := s.ByRole(topology.RolePatroni)
	host := func(n outputs.Node) access.Host {
		return access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}
	}
	var target string
	root := func(n outputs.Node, script string) string {
		t.Helper()
		full := fmt.Sprintf("set -eu\nCLUSTER=%s\nTARGET='%s'\n%s\n", s.ClusterName, target, script)
		out, err := jump.RunRoot(ctx, host(n), full)
		require.NoError(t, err, "on %s:\n%s\n%s", n.Name, script, out)
		return out
	}
	psql := func(n outputs.Node, sql string) string {
		t.Helper()
		return strings.TrimSpace(root(n, fmt.Sprintf(
			"sudo -u postgres psql -X -A -t -v ON_ERROR_STOP=1 -d %s -c %q",
			s.Credentials.AppDatabase, sql)))
	}
	type member struct{ Member, Role, State string }
	members := func(on outputs.Node) []member {
		var ms []member
		out := root(on, "pgha-patronictl list -f json")
		require.NoError(t, json.Unmarshal([]byte(out), &ms), out)
		return ms
	}
	byName := map[string]outputs.Node{}
	for _, n := range pgs {
		byName[n.Name] = n
	}
	leaderOf := func(ms []member) (outputs.Node, bool) {
		for _, m := range ms {
			if m.Role == "Leader" && m.State == "running" {
				return byName[m.Member], true
			}
		}
		return outputs.Node{}, false
	}
	leader, ok := leaderOf(members(pgs[0]))
	require.True(t, ok, "a leader before the restore")
	timeline := psql(leader, "SELECT timeline_id FROM pg_control_checkpoint()")

	// A backup before the target, as the timers would have taken.
	root(leader, "systemctl start pgha-backup@incr.service")
	require.NoError(t, wait.Sleep(ctx, 1100*time.Millisecond)) // its stop time is kept in whole seconds
	// The history: 40 rows, the target, 40 more, the mistake.
	psql(leader, "DROP TABLE IF EXISTS pgha_pitr; CREATE TABLE pgha_pitr (id int PRIMARY KEY)")
	psql(leader, "INSERT INTO pgha_pitr SELECT generate_series(1, 40)")
	target = psql(leader, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
	require.NoError(t, wait.Sleep(ctx, 1500*time.Millisecond))
	psql(leader, "INSERT INTO pgha_pitr SELECT generate_series(41, 80)")
	psql(leader, "DROP TABLE pgha_pitr")
	t.Logf("target %s on %s (timeline %s); the table was dropped after it", target, leader.Name, timeline)

	// 1. The archive reaches now.
	root(leader, pitrSteps.Check)
	// 2. Patroni down everywhere, the leader last.
	for _, n := range pgs {
		if n.Name != leader.Name {
			root(n, pitrSteps.Stop)
		}
	}
	root(leader, pitrSteps.Stop)
	// 3. The cluster out of etcd.
	root(pgs[0], pitrSteps.Remove)
	// 4-5. The new leader: a replica of before, so that the restore
	// really comes from the repository and not from what the node had.
	next := pgs[0]
	for _, n := range pgs {
		if n.Name != leader.Name {
			next = n
			break
		}
	}
	start := time.Now()
	root(next, pitrSteps.Restore)
	root(next, pitrSteps.Backup)
	// 6. The others, rebuilt.
	for _, n := range pgs {
		if n.Name != next.Name {
			root(n, pitrSteps.Rebuild)
		}
	}
	require.True(t, wait.Poll(ctx, 5*time.Minute, 2*time.Second, func() bool {
		ms := members(next)
		l, ok := leaderOf(ms)
		streaming := 0
		for _, m := range ms {
			// "Replica" or "Sync Standby"; 3.0.2 says running, not streaming.
			if m.Role != "Leader" && (m.State == "running" || m.State == "streaming") {
				streaming++
			}
		}
		return ok && l.Name == next.Name && streaming == 2
	}), "the restored cluster: %s leads and two replicas run", next.Name)
	t.Logf("whole-cluster point-in-time recovery took %s", time.Since(start).Round(time.Second))

	// Exactly the rows from before the target, on every node.
	require.Equal(t, "40|1|40", psql(next, "SELECT count(*), min(id), max(id) FROM pgha_pitr"))
	newTimeline := psql(next, "SELECT timeline_id FROM pg_control_checkpoint()")
	require.NotEqual(t, timeline, newTimeline, "the restore promoted onto a new timeline")
	for _, n := range pgs {
		if n.Name == next.Name {
			continue
		}
		require.True(t, wait.Poll(ctx, 2*time.Minute, 2*time.Second, func() bool {
			out, err := jump.RunRoot(ctx, host(n), fmt.Sprintf(
				"sudo -u postgres psql -X -A -t -d %s -c 'SELECT count(*) FROM pgha_pitr'",
				s.Credentials.AppDatabase))
			return err == nil && strings.TrimSpace(out) == "40"
		}), "%s holds the restored rows", n.Name)
	}
}

// hostSettingsOnBootedNodes asks every booted node, over SSH as an
// operator would, which packages apt holds: exactly the role's cluster
// packages, so unattended-upgrades never restarts them (docs/runbook.md,
// "Update the held packages"); and has the node's own chronyd parse its
// time configuration: the Amazon Time Sync Service and no other source. (A
// container may not set the clock, so chronyd does not run here; on EC2 it
// does.)
func hostSettingsOnBootedNodes(t *testing.T, tl *labtest.Lab) {
	s, err := outputs.Load(tl.OutputsFile)
	require.NoError(t, err)
	cfg, err := access.SSHConfigFromStack(s)
	require.NoError(t, err)
	jump, err := access.NewJump(cfg)
	require.NoError(t, err)
	defer jump.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, n := range s.Nodes {
		out, err := jump.RunRoot(ctx, access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}, "apt-mark showhold")
		require.NoError(t, err, "%s: %s", n.Name, out)
		want := userdata.HeldPackages(n.Role, s.Backups != nil)
		sort.Strings(want)
		require.Equal(t, strings.Join(want, "\n"), strings.TrimSpace(out), "%s holds", n.Name)
		out, err = jump.RunRoot(ctx, access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}, "chronyd -p")
		require.NoError(t, err, "%s: %s", n.Name, out)
		var sources []string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "server ") || strings.HasPrefix(line, "pool ") {
				sources = append(sources, line)
			}
		}
		require.Equal(t, []string{"server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4"}, sources, "%s's time sources", n.Name)
	}
}
