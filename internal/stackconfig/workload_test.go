package stackconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/userdata"
)

func TestWorkload(t *testing.T) {
	base := map[string]string{"aws:region": "eu-west-1", "pgha:allowedCidrs": "100.20.30.0/24"}
	c, err := Load("dev", getter(base), nil)
	require.NoError(t, err)
	assert.Equal(t, userdata.WorkloadOLTP, c.Workload)
	for _, w := range []string{"oltp", "olap", "tiny", "none"} {
		m := map[string]string{"pgha:workload": w}
		for k, v := range base {
			m[k] = v
		}
		c, err := Load("dev", getter(m), nil)
		require.NoError(t, err, w)
		assert.Equal(t, w, c.Workload)
	}
	base["pgha:workload"] = "defaults"
	_, err = Load("dev", getter(base), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"defaults" is not a workload profile (want oltp, olap, tiny or none); fix: pulumi config set pgha:workload oltp`)
}

func TestPoolMode(t *testing.T) {
	base := map[string]string{"aws:region": "eu-west-1", "pgha:allowedCidrs": "100.20.30.0/24"}
	c, err := Load("dev", getter(base), nil)
	require.NoError(t, err)
	assert.Equal(t, userdata.PoolTransaction, c.PoolMode)
	base["pgha:poolMode"] = "session"
	c, err = Load("dev", getter(base), nil)
	require.NoError(t, err)
	assert.Equal(t, userdata.PoolSession, c.PoolMode)
	base["pgha:poolMode"] = "statement"
	_, err = Load("dev", getter(base), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"statement" is not a PgBouncer pool mode (want transaction or session); fix: pulumi config set pgha:poolMode transaction`)
}
