package userdata

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTuneNoneIsPostgresDefaults(t *testing.T) {
	for _, sz := range tuningSizes {
		tu, err := Tune(sz.size, WorkloadNone)
		require.NoError(t, err, sz.name)
		assert.Equal(t, WorkloadNone, tu.Workload)
		assert.Equal(t, sz.size, tu.Size)
		assert.Equal(t, 100, tu.MaxConnections, sz.name)
		assert.Equal(t, 8, tu.MaxWorkerProcesses, sz.name)
		assert.Empty(t, tu.Params, "%s: none leaves every per-node parameter to PostgreSQL", sz.name)
		assert.Zero(t, tu.HugePages, sz.name)
		assert.Equal(t, 45, tu.HAProxyMaxConn(2), sz.name)
	}
	// The size is still checked.
	_, err := Tune(Size{MemoryMiB: 256, VCPUs: 1}, WorkloadNone)
	assert.ErrorContains(t, err, "PostgreSQL needs at least")
	// A tuned profile on the same node differs from none where it matters.
	tu, err := Tune(tuningSizes[0].size, WorkloadOLTP)
	require.NoError(t, err)
	assert.NotEmpty(t, tu.Params)
}

func TestWorkloads(t *testing.T) {
	assert.Equal(t, DefaultWorkload, Workloads[0])
	for _, w := range Workloads {
		assert.True(t, ValidWorkload(w), w)
		_, err := Tune(DefaultSize, w)
		assert.NoError(t, err, w)
	}
	for _, w := range []string{"", "None", "default", "oltp "} {
		assert.False(t, ValidWorkload(w), "%q", w)
	}
	assert.Equal(t, "oltp, olap, tiny or none", WorkloadChoices())
	_, err := Tune(DefaultSize, "default")
	assert.EqualError(t, err, `workload "default": use oltp, olap, tiny or none`)
}
