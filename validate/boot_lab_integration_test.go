package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// TestValidateAgainstBootedLab is the proof that the cluster `pulumi up`
// would build works: eight Debian 12 machines boot the program's own user
// data (cloud-init, the package step from the lab's mirror, secrets from
// the SSM stand-in under each tier's IAM policy, the boot scripts, systemd),
// the readiness gate writes the outputs, and validate takes the AWS path
// against them: SSH through haproxy-1, the second hop for etcd, the kill
// and partition faults over SSH, and stop through the EC2 API. Every check
// and every scenario must pass with nothing lost; nodes are then replaced
// under traffic as `pulumi up` replaces instances; and `lab down` must
// leave nothing behind. About 17 minutes (plus the image on a fresh
// machine).
func TestValidateAgainstBootedLab(t *testing.T) {
	tl := labtest.StartBooted(t, "pghavb", "--backups")

	s, err := outputs.Load(tl.OutputsFile)
	require.NoError(t, err)
	require.Equal(t, outputs.AccessSSH, s.Access.Kind, "a booted lab is reached as AWS is")
	require.NotNil(t, s.Access.AWSAPI, "validate finds the EC2 stand-in in the outputs")
	require.NotEmpty(t, s.Access.JumpHostKeys)
	for _, n := range s.Nodes {
		assert.True(t, strings.HasPrefix(n.InstanceID, "i-"), "%s has an instance id", n.Name)
		assert.NotEmpty(t, n.HostKeys, "%s: the readiness gate read its host keys", n.Name)
	}

	run := func(t *testing.T, timeout time.Duration, args ...string) (report.Report, string) {
		t.Helper()
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, tl.ValidateBin, append([]string{"--outputs", tl.OutputsFile, "--report-dir", dir}, args...)...)
		cmd.Dir = tl.Root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		start := time.Now()
		err := cmd.Run()
		t.Logf("validate %s took %s:\n%s", strings.Join(args, " "), time.Since(start).Round(time.Second), buf.String())
		require.NoError(t, err, "validate %s failed", strings.Join(args, " "))
		require.Contains(t, buf.String(), "RESULT: PASS")
		r := readReport(t, dir)
		require.True(t, r.Passed)
		return r, buf.String()
	}
	noneLost := func(t *testing.T, r report.Report) {
		t.Helper()
		for _, c := range r.Checks {
			require.Equal(t, report.Pass, c.Verdict, "%s: %s", c.Name, c.Summary)
			if f, ok := c.Figure("lost_writes"); ok {
				require.Zero(t, f.Value, "%s lost acknowledged writes", c.Name)
			}
		}
	}

	t.Run("packages held from upgrades, time from Amazon's service", func(t *testing.T) {
		hostSettingsOnBootedNodes(t, tl)
	})

	t.Run("every check, failing over by stopping the leader's instance", func(t *testing.T) {
		r, _ := run(t, 15*time.Minute, "--fault", "stop")
		noneLost(t, r)
		assert.Equal(t, checkNames(), namesOf(r.Checks))
		// The AWS path, not the lab's: the operator stopped and started the
		// leader's instance through the EC2 API, and the API allowed it
		// under the policy docs/validate-aws.md gives operators.
		trail, err := os.ReadFile(filepath.Join(tl.Cluster.Dir, "boot", "aws", "trail.log"))
		require.NoError(t, err)
		for _, action := range []string{"ec2:StopInstances", "ec2:StartInstances"} {
			assert.Regexp(t, `action=`+action+` caller=\S+:user/pgha-operator resource=\S+instance/i-\S+ decision=allow status=200`, string(trail))
		}
	})

	t.Run("every scenario", func(t *testing.T) {
		r, _ := run(t, 30*time.Minute, "--all-scenarios")
		var want []string
		for _, n := range scenario.Names() {
			want = append(want, "scenario:"+n)
		}
		require.Equal(t, want, namesOf(r.Checks))
		noneLost(t, r)
	})

	t.Run("rolling every node under traffic keeps writes and loses nothing", func(t *testing.T) {
		rollUnderTraffic(t, tl)
	})

	t.Run("whole-cluster point-in-time recovery, by docs/backups.md", func(t *testing.T) {
		pitrAgainstBootedLab(t, tl)
		// The cluster the restore left is whole, and routes.
		run(t, 10*time.Minute, "--only", "formation,replication,routing")
	})

	t.Run("down leaves nothing", func(t *testing.T) {
		out, err := tl.Run(5*time.Minute, "down")
		require.NoError(t, err, out)
		assert.Contains(t, out, "teardown verified: nothing of the lab is left")
		assert.NotContains(t, out, "[FAIL]")
		_, err = os.Stat(tl.Cluster.Dir)
		assert.True(t, os.IsNotExist(err), "the lab's state directory is gone")
	})
}
