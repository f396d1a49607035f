package probe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSkew(t *testing.T) {
	ms := time.Millisecond
	skew, unc := Skew([]ClockReading{
		{Node: "pg-1", Offset: 3 * ms, Uncertainty: 1 * ms},
		{Node: "pg-2", Offset: -40 * ms, Uncertainty: 2 * ms},
		{Node: "pg-3", Offset: 10 * ms, Uncertainty: 1 * ms},
	})
	assert.Equal(t, 50*ms, skew)
	assert.Equal(t, 3*ms, unc)
	skew, unc = Skew([]ClockReading{{Node: "pg-1", Offset: 5 * ms}})
	assert.Zero(t, skew)
	assert.Zero(t, unc)
}
