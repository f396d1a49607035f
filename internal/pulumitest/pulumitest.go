// Package pulumitest holds test helpers for driving the real pulumi CLI.
package pulumitest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/pulumicli"
)

// Backend points the pulumi CLI, for the rest of the test, at a file
// backend and a home of its own, with plugin downloads and update checks
// off, so the test touches nothing of the user's and no network. It skips
// the test when no pulumi CLI is installed (CI builds one with
// tools/pulumi/build.sh) and returns the CLI's root for auto.NewPulumiCommand
// and a scratch directory.
func Backend(t *testing.T) (cliRoot, dir string) {
	t.Helper()
	root, _, err := pulumicli.Find()
	if err != nil {
		t.Skipf("%v (CI builds it with tools/pulumi/build.sh)", err)
	}
	dir = t.TempDir()
	state := filepath.Join(dir, "state")
	require.NoError(t, os.MkdirAll(state, 0o700))
	t.Setenv("PULUMI_HOME", filepath.Join(dir, "home"))
	t.Setenv("PULUMI_BACKEND_URL", "file://"+state)
	t.Setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
	t.Setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
	t.Setenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
	return root, dir
}
