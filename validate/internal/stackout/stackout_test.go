package stackout

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/pulumicli"
	"github.com/pgha/pgha/internal/pulumitest"
	"github.com/pgha/pgha/internal/topology"
)

const testProject = "pgha-outputs-test"

// sample is a complete AWS outputs contract.
func sample() outputs.Stack {
	var nodes []outputs.Node
	azs := []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}
	for i, role := range []topology.Role{topology.RoleEtcd, topology.RolePatroni, topology.RoleHAProxy} {
		n := 3
		if role == topology.RoleHAProxy {
			n = 2
		}
		for j := 0; j < n; j++ {
			nodes = append(nodes, outputs.Node{
				Name:       string(role) + "-" + string(rune('1'+j)),
				Role:       role,
				AZ:         azs[j],
				PrivateIP:  "10.42." + string(rune('1'+j)) + "." + string(rune('1'+i)) + "0",
				InstanceID: "i-0" + string(role) + string(rune('1'+j)),
				HostKeys:   []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"},
			})
		}
	}
	return outputs.Stack{
		Target: outputs.TargetAWS, ClusterName: "pgha", Region: "eu-west-1", Profile: "fast",
		SynchronousMode: true, VPCCIDR: "10.42.0.0/16",
		WriteEndpoint: outputs.Endpoint{Host: "nlb.example", Port: 5000},
		ReadEndpoint:  outputs.Endpoint{Host: "nlb.example", Port: 5001},
		StatsEndpoint: outputs.Endpoint{Host: "nlb.example", Port: 7000},
		Nodes:         nodes,
		Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: "203.0.113.7:22", JumpUser: "admin",
			JumpHostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}},
		Credentials: outputs.Credentials{
			SuperuserName: "postgres", SuperuserPassword: "s3cr3t-super",
			ReplicationName: "replicator", ReplicationPassword: "s3cr3t-repl",
			AppName: "app", AppPassword: "s3cr3t-app", AppDatabase: "app",
			RestAPIName: "patroni", RestAPIPassword: "s3cr3t-rest",
			StatsName: "stats", StatsPassword: "s3cr3t-stats",
			MonitorName: "pgha_monitor", MonitorPassword: "s3cr3t-monitor",
		},
		SSHPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n",
		CACertificate: string(testCA.CertPEM),
		ClientTLS:     &outputs.ClientTLS{Certificate: string(testClientCert), PrivateKey: string(testClientKey)},
		ClusterState:  map[string]any{"members": []any{map[string]any{"name": "patroni-1", "role": "leader"}}},
	}
}

// A real CA and client certificate: outputs.Validate parses them.
var testCA, testClientCert, testClientKey = func() (*pki.CA, []byte, []byte) {
	ca, err := pki.NewCA("stackout test CA")
	if err != nil {
		panic(err)
	}
	cert, key, err := ca.Issue(pki.ClientLeaf())
	if err != nil {
		panic(err)
	}
	return ca, cert, key
}()

// backend points the CLI at a fresh file backend and a home of its own, so
// the test touches nothing of the user's and no network.
func backend(t *testing.T) (projectDir string) {
	t.Helper()
	_, root := pulumitest.Backend(t)
	projectDir = filepath.Join(root, "project")
	require.NoError(t, os.MkdirAll(projectDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(projectDir, "Pulumi.yaml"),
		[]byte("name: "+testProject+"\nruntime: go\n"), 0o644))
	return projectDir
}

// up creates the stack with an inline program that exports want, the
// secret keys as secrets, the way the real program does.
func up(t *testing.T, ctx context.Context, stack string, want outputs.Stack, secret bool) {
	t.Helper()
	b, err := json.Marshal(want)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	secrets := map[string]bool{}
	for _, k := range outputs.SecretKeys {
		secrets[k] = secret
	}
	program := func(ctx *pulumi.Context) error {
		for k, v := range m {
			if secrets[k] {
				ctx.Export(k, pulumi.ToSecret(pulumi.Any(v)))
			} else {
				ctx.Export(k, pulumi.Any(v))
			}
		}
		return nil
	}
	root, _, err := pulumicli.Find()
	require.NoError(t, err)
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	require.NoError(t, err)
	st, err := auto.UpsertStackInlineSource(ctx, stack, testProject, program, auto.Pulumi(cmd))
	require.NoError(t, err)
	_, err = st.Up(ctx)
	require.NoError(t, err)
}

func TestReadsOutputsWithSecretsFromARealStack(t *testing.T) {
	dir := backend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	want := sample()
	up(t, ctx, "dev", want, true)

	got, err := Read(ctx, Options{Dir: dir, Stack: "dev"})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, "s3cr3t-super", got.Credentials.SuperuserPassword)

	// The plain `pulumi stack output` really hides them: they are secrets.
	masked, err := pulumicli.Run(ctx, dir, "stack", "output", "--json", "--stack", "dev")
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(masked, &m))
	require.Equal(t, SecretMask, m[outputs.KeyCredentials])
	require.Equal(t, SecretMask, m[outputs.KeySSHPrivateKey])
	require.NotEqual(t, SecretMask, m[outputs.KeyNodes])

	// Config is read through the CLI too.
	_, err = pulumicli.Run(ctx, dir, "config", "set", "aws:region", "eu-west-1", "--stack", "dev")
	require.NoError(t, err)
	region, err := Config(ctx, Options{Dir: dir, Stack: "dev"}, "aws:region")
	require.NoError(t, err)
	require.Equal(t, "eu-west-1", region)
	unset, err := Config(ctx, Options{Dir: dir, Stack: "dev"}, "pgha:nothing")
	require.NoError(t, err)
	require.Empty(t, unset)

	// With no --stack, the current stack is read; none is selected yet in
	// the project directory (the stack was made by an inline program).
	_, err = CurrentStack(ctx, dir)
	require.ErrorContains(t, err, "pulumi stack select")
	_, err = pulumicli.Run(ctx, dir, "stack", "select", "dev")
	require.NoError(t, err)
	cur, err := CurrentStack(ctx, dir)
	require.NoError(t, err)
	require.Equal(t, "dev", cur)
	got, err = Read(ctx, Options{Dir: dir})
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Errors that a user meets, each one line and saying what to do.
	_, err = Read(ctx, Options{Dir: dir, Stack: "nosuch"})
	require.ErrorContains(t, err, "does not exist")
	require.NotContains(t, err.Error(), "\n")

	t.Run("no passphrase", func(t *testing.T) {
		t.Setenv("PULUMI_CONFIG_PASSPHRASE", "")
		os.Unsetenv("PULUMI_CONFIG_PASSPHRASE")
		_, err := Read(ctx, Options{Dir: dir, Stack: "dev"})
		require.ErrorContains(t, err, "PULUMI_CONFIG_PASSPHRASE")
		require.NotContains(t, err.Error(), "\n")
		t.Log(err)
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		t.Setenv("PULUMI_CONFIG_PASSPHRASE", "not-it")
		_, err := Read(ctx, Options{Dir: dir, Stack: "dev"})
		require.ErrorContains(t, err, "does not decrypt")
		require.NotContains(t, err.Error(), "\n")
		t.Log(err)
	})
	t.Run("no backend", func(t *testing.T) {
		t.Setenv("PULUMI_BACKEND_URL", "")
		os.Unsetenv("PULUMI_BACKEND_URL")
		t.Setenv("PULUMI_HOME", t.TempDir())
		_, err := Read(ctx, Options{Dir: dir, Stack: "dev"})
		require.ErrorContains(t, err, "pulumi login")
		t.Log(err)
	})
	t.Run("no project", func(t *testing.T) {
		_, err := Read(ctx, Options{Dir: t.TempDir(), Stack: "dev"})
		require.ErrorContains(t, err, "no Pulumi.yaml")
	})
	t.Run("no CLI", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		t.Setenv("PGHA_TOOLS", t.TempDir())
		_, err := Read(ctx, Options{Dir: dir, Stack: "dev"})
		require.ErrorIs(t, err, ErrNoCLI)
		require.ErrorContains(t, err, "tools/pulumi/build.sh")
	})
}

func TestRefusesSecretsExportedInClear(t *testing.T) {
	dir := backend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	up(t, ctx, "leaky", sample(), false)
	_, err := Read(ctx, Options{Dir: dir, Stack: "leaky"})
	require.ErrorContains(t, err, "not marked secret")
	require.ErrorContains(t, err, outputs.KeyCredentials)
}

// cliJSON is what `pulumi stack output --json` prints for s, with or
// without --show-secrets.
func cliJSON(t *testing.T, s outputs.Stack, showSecrets bool) []byte {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	if !showSecrets {
		for _, k := range outputs.SecretKeys {
			if _, ok := m[k]; ok {
				m[k] = SecretMask
			}
		}
	}
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestParse(t *testing.T) {
	good := sample()
	got, err := Parse(cliJSON(t, good, false), cliJSON(t, good, true))
	require.NoError(t, err)
	require.Equal(t, good, got)

	bad := sample()
	bad.Nodes = bad.Nodes[:7] // one haproxy missing
	_, err = Parse(cliJSON(t, bad, false), cliJSON(t, bad, true))
	require.ErrorContains(t, err, `output "nodes"`)

	_, err = Parse([]byte(`{}`), []byte(`{}`))
	require.ErrorContains(t, err, "pulumi up")

	// A secret exported in clear shows its value even without --show-secrets.
	_, err = Parse(cliJSON(t, good, true), cliJSON(t, good, true))
	require.ErrorContains(t, err, "not marked secret")

	// A backend that would not reveal them must not pass "[secret]" on as a password.
	_, err = Parse(cliJSON(t, good, false), cliJSON(t, good, false))
	require.ErrorContains(t, err, "did not reveal")
}
