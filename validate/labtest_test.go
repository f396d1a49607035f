package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/cluster"
)

// testLab is a synchronous-mode lab brought up for one test from freshly
// built lab and validate binaries; it is always taken down.
type testLab struct {
	root        string // the repository, where the binaries run
	validateBin string
	labBin      string
	name        string
	outputsFile string
	cluster     *cluster.Lab // the lab's own controls, for faults and checks
}

// startTestLab skips unless the lab can run here (root and the packages),
// then builds the commands and brings up a lab named prefix+pid.
func startTestLab(t *testing.T, prefix string, extraBins ...string) *testLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces)")
	}
	need := append([]string{"etcd", "patroni", "haproxy", "ip", "/usr/lib/postgresql/15/bin/postgres"}, extraBins...)
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (the lab needs postgresql-15, patroni, etcd-server, haproxy, iproute2)", bin)
		}
	}
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
	l := &testLab{root: root, labBin: build("lab"), validateBin: build("validate"),
		name: fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)}
	t.Cleanup(func() {
		out, err := l.lab(3*time.Minute, "down")
		if err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	// Synchronous mode: then "no acknowledged write lost" is a guarantee
	// the checks must hold, not a matter of luck.
	out, err := l.lab(5*time.Minute, "up", "--sync")
	require.NoError(t, err, "lab up: %s", out)
	l.cluster, err = cluster.New(l.name)
	require.NoError(t, err)
	l.outputsFile = l.cluster.OutputsFile()
	return l
}

// lab runs the lab command against this lab.
func (l *testLab) lab(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.labBin, append(args, "--name", l.name)...)
	cmd.Dir = l.root
	out, err := cmd.CombinedOutput()
	return string(out), err
}
