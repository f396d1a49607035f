package wait

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPoll(t *testing.T) {
	n := 0
	require.True(t, Poll(context.Background(), time.Second, time.Millisecond, func() bool { n++; return n == 3 }))
	require.Equal(t, 3, n)
	require.False(t, Poll(context.Background(), 10*time.Millisecond, time.Millisecond, func() bool { return false }))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, Poll(ctx, time.Hour, time.Hour, func() bool { return false }))
}

func TestSleep(t *testing.T) {
	require.NoError(t, Sleep(context.Background(), time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
}
