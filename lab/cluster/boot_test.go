package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/boot"
	"github.com/pgha/pgha/lab/image"
	"github.com/pgha/pgha/userdata"
)

// TestBootStateHasTheMonitoringNode: the booted lab's stand-in state
// carries the monitoring node as `pulumi up` creates it (an instance of
// monitor-1's user data, with its own role: its secrets policy and
// sns:Publish on the alert topic alone; its certificate as SSM
// parameters), and the alert topic, whose messages land under the lab's
// aws directory. The outputs name its Prometheus and the topic as
// program.go's stackOutputs does, and monitor-1 is none of the nodes.
func TestBootStateHasTheMonitoringNode(t *testing.T) {
	const acct = "123456789012"
	l, err := newIn(t.TempDir(), "bmon")
	require.NoError(t, err)
	require.NoError(t, l.SetNet(NetBoot))
	l.Settings = Settings{Name: l.Name, Profile: "fast", Net: NetBoot, Account: acct, PostgresSize: LabNodeSize()}
	require.NoError(t, l.writeBase())

	m, ok := l.BootMonitor()
	require.True(t, ok, "the stack's monitoring is on by default, as on AWS")
	assert.Equal(t, l.Plan.Monitor(), m)
	nodes := l.bootNodes()
	require.Len(t, nodes, len(l.Plan.Nodes)+1)
	assert.Equal(t, "monitor-1", nodes[len(nodes)-1].Name)

	spec, err := l.BootSpec()
	require.NoError(t, err)
	require.Len(t, nodes, len(spec.UserData), "the lab boots every instance the program creates")
	for _, n := range nodes {
		assert.Contains(t, spec.UserData, n.Name)
	}
	topicARN := "arn:aws:sns:" + BootRegion + ":" + acct + ":" + spec.Config.AlertTopicName()
	require.Equal(t, topicARN, spec.Cluster.Monitoring.AlertTopicARN)

	st, err := l.writeBootState(spec, image.Image{Repo: t.TempDir()}, UpOptions{})
	require.NoError(t, err)

	var inst *boot.Instance
	for i := range st.Instances {
		if st.Instances[i].Node == "monitor-1" {
			inst = &st.Instances[i]
		}
	}
	require.NotNil(t, inst, "monitor-1 is an instance of the EC2 stand-in")
	assert.Len(t, st.Instances, len(nodes))
	assert.Equal(t, m.IP, inst.IP)
	assert.Equal(t, "pgha-bmon-monitor", inst.Profile)
	assert.Equal(t, spec.Config.MonitoringType, inst.Type)
	assert.Equal(t, BootRegion+"a", inst.AZ)
	assert.Equal(t, "monitor", inst.Tags["pgha:role"])
	assert.Equal(t, l.machineDir("monitor-1"), inst.MachineDir)
	_, err = os.Stat(inst.UserDataFile)
	require.NoError(t, err)

	var role *boot.Role
	for i := range st.Roles {
		if st.Roles[i].Name == "pgha-bmon-monitor" {
			role = &st.Roles[i]
		}
	}
	require.NotNil(t, role, "the monitoring node's instance role")
	assert.Equal(t, spec.TierPolicy(topology.RoleMonitor, "aws", acct), role.Policy)
	assert.Contains(t, role.Policy, spec.Cluster.TLS.Key("monitor-1"))
	assert.Equal(t, map[string]string{"alerts": iampolicy.PublishAlerts(topicARN)}, role.Policies)
	for _, r := range st.Roles {
		if r.Name != role.Name {
			assert.NotContains(t, fmt.Sprint(r.Policy, r.Policies), "sns:", "%s may not page", r.Name)
		}
	}

	var params []string
	for _, p := range st.Parameters {
		params = append(params, p.Name)
	}
	assert.Contains(t, params, spec.Cluster.TLS.Certificate("monitor-1"))
	assert.Contains(t, params, spec.Cluster.TLS.Key("monitor-1"))
	certFile, _ := l.NodeTLSFiles("monitor-1")
	certPEM, err := os.ReadFile(certFile)
	require.NoError(t, err)
	cert, err := pki.ParseCertificate(certPEM)
	require.NoError(t, err)
	assert.Equal(t, "monitor-1", cert.Subject.CommonName)
	assert.Equal(t, m.IP.String(), cert.IPAddresses[0].String())

	assert.Equal(t, []string{spec.Config.AlertTopicName()}, st.Topics)
	assert.Equal(t, l.bootDir("aws", "sns"), st.MessageDir)
	file, err := l.AlertMessageFile()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(l.Dir, "boot", "aws", "sns", spec.Config.AlertTopicName()+".jsonl"), file)

	// The account the stand-in process builds from the state keeps the
	// topic's messages where AlertMessageFile says.
	a, err := st.Account()
	require.NoError(t, err)
	defer a.Close()
	require.NoError(t, a.SetMessageDir(st.MessageDir))
	assert.Equal(t, file, a.MessageFile(topicARN))

	// The outputs, as the readiness gate leaves them.
	require.NoError(t, os.WriteFile(st.APIAddrFile, []byte("127.0.0.1:4443\n"), 0o644))
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sp, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	ready := boot.ReadyResult{HostKeys: map[string][]string{}, ClusterState: `{"members":[]}`}
	for _, n := range nodes {
		ready.HostKeys[n.Name] = []string{hostKey}
	}
	s, err := l.bootOutputs(st, ready)
	require.NoError(t, err)
	assert.Equal(t, "https://10.42.4.40:9090", s.PrometheusEndpoint)
	assert.Equal(t, topicARN, s.AlertTopicARN)
	require.Len(t, s.Nodes, len(l.Plan.Nodes))
	for _, n := range s.Nodes {
		assert.NotEqual(t, "monitor-1", n.Name, "the monitoring node is none of the cluster's nodes")
	}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"prometheusEndpoint":"https://10.42.4.40:9090"`)
	assert.Contains(t, string(b), `"alertTopicArn":"`+topicARN+`"`)
}

// TestPoolModeReachesTheLabsPoolers: `lab up --pool-mode session` gives
// the namespace and loopback labs' PgBouncer session pooling, and the
// booted lab's stack pgha:poolMode, as `pulumi config set` would; a mode
// PgBouncer does not have fails before anything exists.
func TestPoolModeReachesTheLabsPoolers(t *testing.T) {
	l, err := newIn(t.TempDir(), "bpool")
	require.NoError(t, err)
	l.Settings = Settings{Name: l.Name, Profile: "fast", PoolMode: userdata.PoolSession, PostgresSize: LabNodeSize(), Workload: userdata.DefaultWorkload}
	ini, err := userdata.RenderPgBouncerConfig(l.Spec(), "haproxy-1", l.Paths("haproxy-1"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^pool_mode = session$`, ini)

	require.NoError(t, l.SetNet(NetBoot))
	l.Settings.Net, l.Settings.Account = NetBoot, "123456789012"
	spec, err := l.BootSpec()
	require.NoError(t, err)
	assert.Equal(t, userdata.PoolSession, spec.Config.PoolMode)
	assert.Equal(t, userdata.PoolSession, spec.Cluster.PoolMode)

	// A lab from before the setting pools transactions, as the stack does.
	l.Settings.PoolMode = ""
	spec, err = l.BootSpec()
	require.NoError(t, err)
	assert.Equal(t, userdata.PoolTransaction, spec.Cluster.PoolMode)

	fresh, err := newIn(t.TempDir(), "bpool")
	require.NoError(t, err)
	_, err = fresh.Up(context.Background(), UpOptions{PoolMode: "statement"})
	require.ErrorContains(t, err, `pool mode "statement": use transaction (the default) or session`)
	assert.False(t, fresh.Exists(), "a refused lab left its state behind")
}
