package cluster

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bootTestLab is testLab for a booted lab: it skips where machines cannot
// boot, builds the lab command (the stand-ins run as `lab aws-standin`),
// and after the test checks that nothing of the lab is left.
func bootTestLab(t *testing.T) (*Lab, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots nine machines")
	}
	if p := bootPrerequisites(); len(p) > 0 {
		t.Skipf("the booted lab cannot run here: %s", strings.Join(p, "; "))
	}
	control := filepath.Join(t.TempDir(), "lab")
	out, err := exec.Command("go", "build", "-o", control, "github.com/pgha/pgha/lab").CombinedOutput()
	require.NoError(t, err, "go build ./lab: %s", out)
	return newTestLab(t, "pghaboot", ""), control
}

// TestFailedBootIsReported boots a lab that cannot come up, in the two ways
// an operator's stack most likely breaks: pg-3's user data asks for a
// package Debian does not have, and the HAProxy role is granted another
// tier's secret instead of its own. `up` must fail within a bounded time
// (not wait out its 15-minute gate), name each broken node with its own
// reason as `pulumi up` would print it, leave the healthy nodes out of the
// complaint, and remove everything it made.
func TestFailedBootIsReported(t *testing.T) {
	l, control := bootTestLab(t)
	const badPackage = "pgha-no-such-package"
	start := time.Now()
	_, err := l.Up(context.Background(), UpOptions{
		Net: NetBoot, Profile: "fast", Control: control, Timeout: 20 * time.Minute,
		EditUserData: func(node, doc string) string {
			if node != "pg-3" {
				return doc
			}
			// The first entry of the package list.
			const list = "\npackages:\n"
			require.Contains(t, doc, list)
			return strings.Replace(doc, list, list+"  - "+badPackage+"\n", 1)
		},
		EditPolicy: func(role, policy string) string {
			if !strings.HasSuffix(role, "-haproxy") {
				return policy
			}
			require.Contains(t, policy, "stats-password")
			return strings.ReplaceAll(policy, "stats-password", "superuser-password")
		},
	})
	took := time.Since(start)
	require.Error(t, err)
	msg := err.Error()
	t.Logf("up failed after %s:\n%s", took.Round(time.Second), msg)

	assert.Less(t, took, 8*time.Minute, "a failed boot must be reported well within the gate's 15 minutes")
	assert.Contains(t, msg, "the nodes did not become ready")
	// The package step fails, and with it the deferred files the boot
	// script is among: cloud-init's own report must carry apt's reason.
	assert.Regexp(t, `\n  pg-3: cloud-init failed in package-update-upgrade-install, .*\(E: Unable to locate package `+badPackage+`\)`, msg)
	for _, n := range []string{"haproxy-1", "haproxy-2"} {
		assert.Regexp(t, `\n  `+n+`: boot failed: pgha-fetch-secrets: cannot read SSM parameter /pgha/`+l.Name+`/stats-password in `+
			BootRegion+` with the instance role: An error occurred \(AccessDeniedException\)`, msg)
	}
	for _, n := range []string{"etcd-1", "etcd-2", "etcd-3", "pg-1", "pg-2", "monitor-1"} {
		assert.NotContains(t, msg, n+":", "%s booted fine and is no part of the failure", n)
	}
	assert.False(t, l.Exists(), "a failed up removes the lab")
}
