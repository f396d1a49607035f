package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/pulumicli"
)

// TestPulumiCLIChecksTheConfigSchema drives the real pulumi CLI with this
// project's Pulumi.yaml and Pulumi.dev.yaml, on a file backend of its own
// and with plugin downloads off. It proves that the CLI accepts the project
// and the example stack, refuses mistyped values with the key's name, and
// that the `--path` form the docs give for allowedCidrs passes. (The
// program itself cannot run here: the AWS provider plugin is not
// available, so `preview` stops after config validation.)
func TestPulumiCLIChecksTheConfigSchema(t *testing.T) {
	_, bin, err := pulumicli.Find()
	if err != nil {
		t.Skipf("%v (CI builds it with tools/pulumi/build.sh)", err)
	}
	dir := t.TempDir()
	for _, f := range []string{"Pulumi.yaml", "Pulumi.dev.yaml"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	state := filepath.Join(dir, "state")
	require.NoError(t, os.MkdirAll(state, 0o700))
	env := append(os.Environ(),
		"PULUMI_HOME="+filepath.Join(dir, "home"),
		"PULUMI_BACKEND_URL=file://"+state,
		"PULUMI_CONFIG_PASSPHRASE=test-passphrase",
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
	)
	pulumi := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "--non-interactive")...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	const invalid = "validating stack config"
	// A config the CLI accepts gets as far as starting the program, which
	// fails here for want of the Go language host: the proof that the
	// config checks ran and passed, not that preview failed for another
	// reason first.
	passed := func(out string) {
		t.Helper()
		assert.NotContains(t, out, invalid, out)
		assert.Contains(t, out, "language plugin", "preview never reached the program:\n%s", out)
	}

	out, err := pulumi("stack", "init", "dev")
	require.NoError(t, err, out)

	// The example stack, as committed, is refused by the CLI itself for
	// want of the one value only its user knows, naming the key...
	out, _ = pulumi("preview")
	assert.Contains(t, out, "allowedCidrs", out)
	assert.NotContains(t, out, "language plugin", "preview ran the program without pgha:allowedCidrs:\n%s", out)
	// ...and with it, passes the CLI's own checks.
	out, err = pulumi("config", "set", "--path", "pgha:allowedCidrs[0]", "100.20.30.0/24")
	require.NoError(t, err, out)
	out, _ = pulumi("preview")
	passed(out)
	out, err = pulumi("config", "rm", "pgha:allowedCidrs")
	require.NoError(t, err, out)

	// Every default applies: `config` lists them.
	out, err = pulumi("config", "get", "pgha:patroniInstanceType")
	require.NoError(t, err, out)
	assert.Equal(t, "t3.medium\n", out)

	// A list set as one string is refused, naming the key...
	out, err = pulumi("config", "set", "pgha:allowedCidrs", `["100.20.30.0/24"]`)
	require.NoError(t, err, out)
	out, _ = pulumi("preview")
	assert.Contains(t, out, "configuration key 'allowedCidrs' must be of type 'array<string>'", out)
	// ...and the documented --path form is accepted.
	out, err = pulumi("config", "rm", "pgha:allowedCidrs")
	require.NoError(t, err, out)
	out, err = pulumi("config", "set", "--path", "pgha:allowedCidrs[0]", "100.20.30.0/24")
	require.NoError(t, err, out)
	out, _ = pulumi("preview")
	passed(out)

	out, err = pulumi("config", "set", "pgha:etcdVolumeSize", "ten")
	require.NoError(t, err, out)
	out, _ = pulumi("preview")
	assert.Contains(t, out, "configuration key 'etcdVolumeSize' must be of type 'integer'", out)
}
