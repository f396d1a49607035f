// Package labtest brings up a real lab for an integration test: it builds
// the lab and validate commands from this repository and always takes the
// lab down again.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/cluster"
)

// Lab is a synchronous-mode lab brought up for one test.
type Lab struct {
	Root        string // the repository, where the binaries run
	ValidateBin string
	LabBin      string
	Name        string
	OutputsFile string
	Cluster     *cluster.Lab // the lab's own controls, for faults and checks
}

// Start skips unless the lab can run here (root and the packages, plus
// extraBins), then builds the commands and brings up a lab named
// prefix+pid. The test must run in a package directly below the
// repository's root.
func Start(t *testing.T, prefix string, extraBins ...string) *Lab {
	t.Helper()
	skipUnlessLab(t)
	need := append([]string{"etcd", "patroni", "haproxy", "ip", "/usr/lib/postgresql/15/bin/postgres"}, extraBins...)
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (the lab needs postgresql-15, patroni, etcd-server, haproxy, iproute2)", bin)
		}
	}
	return start(t, prefix, 5*time.Minute)
}

// StartWith is Start with more `lab up` flags (for example --backups).
func StartWith(t *testing.T, prefix string, upArgs ...string) *Lab {
	t.Helper()
	skipUnlessLab(t)
	for _, bin := range []string{"etcd", "patroni", "haproxy", "ip", "/usr/lib/postgresql/15/bin/postgres", "pgbackrest"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (the lab needs postgresql-15, patroni, etcd-server, haproxy, iproute2, pgbackrest)", bin)
		}
	}
	return start(t, prefix, 5*time.Minute, upArgs...)
}

// StartBooted is Start for a booted lab (`lab up --boot`): eight Debian 12
// machines booting their user data, which validate reaches as it reaches
// AWS. The first one on a machine also builds the image (a few minutes).
func StartBooted(t *testing.T, prefix string, upArgs ...string) *Lab {
	t.Helper()
	skipUnlessLab(t)
	probe := &cluster.Lab{Settings: cluster.Settings{Net: cluster.NetBoot}}
	if p := probe.Prerequisites(); len(p) > 0 {
		t.Skipf("the booted lab cannot run here: %s", strings.Join(p, "; "))
	}
	return start(t, prefix, 25*time.Minute, append([]string{"--boot"}, upArgs...)...)
}

func skipUnlessLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("brings up a whole lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces)")
	}
}

func start(t *testing.T, prefix string, timeout time.Duration, upArgs ...string) *Lab {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := t.TempDir()
	build := func(pkg string) string {
		out := filepath.Join(bin, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s: %s", pkg, b)
		return out
	}
	l := &Lab{Root: root, LabBin: build("lab"), ValidateBin: build("validate"),
		Name: fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)}
	t.Cleanup(func() {
		out, err := l.Run(3*time.Minute, "down")
		if err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	// Synchronous mode: then "no acknowledged write lost" is a guarantee
	// the checks must hold, not a matter of luck.
	start := time.Now()
	out, err := l.Run(timeout, append([]string{"up", "--sync"}, upArgs...)...)
	require.NoError(t, err, "lab up: %s", out)
	t.Logf("lab up %s: %s", strings.Join(upArgs, " "), time.Since(start).Round(time.Second))
	l.Cluster, err = cluster.New(l.Name)
	require.NoError(t, err)
	l.OutputsFile = l.Cluster.OutputsFile()
	return l
}

// Run runs the lab command against this lab.
func (l *Lab) Run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.LabBin, append(args, "--name", l.Name)...)
	cmd.Dir = l.Root
	out, err := cmd.CombinedOutput()
	return string(out), err
}
