package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBenchOptions(t *testing.T) {
	o, err := parseBenchOptions([]string{"--profiles", "fast", "--kinds", "kill", "--runs", "2", "--doc", "x/b.md"}, os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, []string{"fast"}, o.profiles)
	assert.Equal(t, []string{"kill"}, o.kinds)
	assert.Equal(t, filepath.Join("x", "benchmarks.svg"), o.svg)
	assert.Equal(t, "go run ./validate bench --profiles fast --runs 2 --kinds kill --doc x/b.md", reproduceBench(o))
	for _, bad := range [][]string{
		{"--profiles", "turbo"}, {"--kinds", "stop"}, {"--runs", "0"}, {"extra"},
	} {
		_, err := parseBenchOptions(bad, os.Stderr)
		require.Error(t, err, "%v", bad)
		assert.True(t, isUserError(err), "%v: %v", bad, err)
	}
	// A lab name is the lab command's to judge: `lab up` refuses a bad one
	// before it makes anything (lab/cluster TestLabNames).
}
