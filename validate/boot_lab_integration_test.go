package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/boot"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/userdata"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// TestValidateAgainstBootedLab is the proof that the cluster `pulumi up`
// would build works: nine Debian 12 machines (the cluster's eight and the
// monitoring node) boot the program's own user data (cloud-init, the
// package step from the lab's mirror, secrets from the SSM stand-in under
// each tier's IAM policy, the boot scripts, systemd), the readiness gate
// writes the outputs, and the monitoring node scrapes every node and pages
// through the SNS stand-in with its instance role. validate then takes the
// AWS path against them: SSH through haproxy-1, the second hop for etcd,
// the kill and partition faults over SSH, stop through the EC2 API, and
// the graphs and alert history from the monitoring node's Prometheus
// through the jump host. Every check and the scenarios whose faults
// travel over SSH must pass with nothing lost; nodes are then replaced
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
		assert.NotEqual(t, topology.RoleMonitor, n.Role, "the monitoring node is none of the cluster's nodes, as on AWS")
	}
	// As program.go's stackOutputs: the monitoring node's Prometheus and
	// the topic it pages through.
	require.Equal(t, "https://10.42.4.40:9090", s.PrometheusEndpoint)
	require.Equal(t, fmt.Sprintf("arn:aws:sns:eu-west-1:%s:pgha-%s-alerts", tl.Cluster.Settings.Account, tl.Name), s.AlertTopicARN)

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

	t.Run("the monitoring node scrapes every node and pages through SNS with its instance role", func(t *testing.T) {
		monitoringPagesThroughSNS(t, tl, s)
	})

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

	// The namespace lab runs all ten scenarios (TestScenariosAgainstLab);
	// here run those whose faults travel differently on AWS: a partition
	// set with nftables over SSH, two etcd members stopped through the
	// second hop, the jump host itself lost (validate falls back to the
	// other), and two leaders killed in a row over SSH. The leader stopped
	// through the EC2 API is the failover check above. All ten against a
	// booted lab: `go run ./validate --outputs ... --all-scenarios`.
	t.Run("the scenarios whose faults travel over SSH", func(t *testing.T) {
		names := []string{"leader-partition", "etcd-quorum-lost", "haproxy-lost", "double-failover"}
		var args, want []string
		for _, n := range names {
			args = append(args, "--scenario", n)
		}
		for _, n := range scenario.Names() {
			if slices.Contains(names, n) {
				want = append(want, "scenario:"+n)
			}
		}
		r, _ := run(t, 20*time.Minute, args...)
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

// monitoringPagesThroughSNS checks, inside the booted monitoring node,
// that Prometheus reaches every target of every node, and that an alert
// given to its Alertmanager reaches the stack's SNS topic, published with
// the node's instance role (IMDS credentials, SigV4): the stand-in keeps
// the message, with who signed it. Another tier's role may not publish.
// About 35 s: Alertmanager's group_wait (30 s, as on AWS) is most of it.
func monitoringPagesThroughSNS(t *testing.T, tl *labtest.Lab, s outputs.Stack) {
	m, ok := tl.Cluster.BootMonitor()
	require.True(t, ok, "the booted lab's stack has its monitoring node")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(node, script string) string {
		t.Helper()
		out, err := tl.Cluster.BootRunScript(ctx, node, script)
		require.NoError(t, err, "%s: %s", node, out)
		return string(out)
	}
	p := userdata.CloudPaths()
	tlsArgs := fmt.Sprintf("--cacert %s --cert %s --key %s", p.TLSCAFile, p.TLSCertFile, p.TLSKeyFile)
	alertmanager := "https://" + net.JoinHostPort(m.IP.String(), fmt.Sprint(topology.PortAlertmanager))
	start := time.Now()

	// The page first: Alertmanager holds a new group for group_wait, and
	// the rest is checked meanwhile. amtool with the node's own
	// certificate, as docs/monitoring.md tells an operator.
	const alert = "pgha_page_test"
	run(m.Name, fmt.Sprintf(`set -e
f=$(mktemp)
trap 'rm -f "$f"' EXIT
printf 'tls_config:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n' >"$f"
amtool --alertmanager.url=%s --http.config.file="$f" alert add %s severity=warning cluster=%s --annotation=summary=test
`, p.TLSCAFile, p.TLSCertFile, p.TLSKeyFile, alertmanager, alert, s.ClusterName))

	// Every target up: node_exporter on all nine machines, the
	// PostgreSQL nodes' postgres_exporter and Patroni, etcd, HAProxy,
	// Prometheus and Alertmanager themselves.
	want := map[string]int{"node": 9, "postgres": 3, "patroni": 3, "etcd": 3, "haproxy": 2, "prometheus": 1, "alertmanager": 1}
	var up map[string]int
	var down []string
	for {
		out := run(m.Name, fmt.Sprintf("curl -sS --fail %s '%s/api/v1/query?query=up'", tlsArgs, s.PrometheusEndpoint))
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &r), "Prometheus's answer: %s", out)
		require.Equal(t, "success", r.Status)
		up, down = map[string]int{}, nil
		for _, x := range r.Data.Result {
			if x.Value[1] == "1" {
				up[x.Metric["job"]]++
			} else {
				down = append(down, x.Metric["job"]+"@"+x.Metric["node"])
			}
		}
		// A node that came up last may have been scraped once while down.
		if len(down) == 0 || ctx.Err() != nil || time.Since(start) > 90*time.Second {
			break
		}
		time.Sleep(5 * time.Second)
	}
	assert.Empty(t, down, "targets down")
	assert.Equal(t, want, up, "targets up, by job")

	// Least privilege, on a booted node: the PostgreSQL tier's role may
	// not publish to the topic.
	out := run("pg-1", fmt.Sprintf("aws sns publish --region %s --topic-arn %s --message denied 2>&1 && echo PUBLISHED || true", s.Region, s.AlertTopicARN))
	assert.Contains(t, out, "AuthorizationError", "pg-1's role publishes nothing")
	assert.NotContains(t, out, "PUBLISHED")

	// The page, in the SNS stand-in's file for the topic, signed as the
	// monitoring node's assumed-role session (its instance id).
	file, err := tl.Cluster.AlertMessageFile()
	require.NoError(t, err)
	require.NotEmpty(t, file)
	var page *awsapi.Message
	for page == nil {
		msgs, err := awsapi.ReadMessages(file)
		require.NoError(t, err)
		for i := range msgs {
			if strings.Contains(msgs[i].Subject, alert) {
				page = &msgs[i]
			}
		}
		if page == nil {
			require.NoError(t, ctx.Err(), "no page for %s in %s (Alertmanager's log: journalctl -u prometheus-alertmanager on %s)", alert, file, m.Name)
			time.Sleep(2 * time.Second)
		}
	}
	t.Logf("paged after %s: %q by %s", time.Since(start).Round(time.Second), page.Subject, page.Caller)
	assert.Equal(t, fmt.Sprintf("[FIRING] %s %s", s.ClusterName, alert), page.Subject)
	assert.Equal(t, s.AlertTopicARN, page.TopicARN)
	assert.Contains(t, page.Message, "summary = test")
	st, err := boot.LoadState(filepath.Join(tl.Cluster.Dir, "boot", "aws", "state.json"))
	require.NoError(t, err)
	var id string
	for _, in := range st.Instances {
		if in.Node == m.Name {
			id = in.ID
		}
	}
	require.NotEmpty(t, id, "monitor-1 is an instance of the EC2 stand-in")
	assert.Equal(t, fmt.Sprintf("arn:aws:sts::%s:assumed-role/pgha-%s-monitor/%s", st.AccountID, tl.Name, id), page.Caller,
		"published with the monitoring node's instance role")
	trail, err := os.ReadFile(filepath.Join(tl.Cluster.Dir, "boot", "aws", "trail.log"))
	require.NoError(t, err)
	assert.Regexp(t, `action=sns:Publish caller=\S+:assumed-role/pgha-`+regexp.QuoteMeta(tl.Name)+`-monitor/`+id+` resource=`+regexp.QuoteMeta(s.AlertTopicARN)+` decision=allow status=200`, string(trail))
	assert.Regexp(t, `action=sns:Publish caller=\S+:assumed-role/pgha-`+regexp.QuoteMeta(tl.Name)+`-patroni/i-\S+ resource=`+regexp.QuoteMeta(s.AlertTopicARN)+` decision=\S*deny`, string(trail))
}
