// Package wait holds the two context-aware waits that validate and the
// scenarios both poll the cluster with.
package wait

import (
	"context"
	"time"
)

// Poll calls f every interval until it returns true, ctx ends or bound
// passes. It returns whether f succeeded.
func Poll(ctx context.Context, bound, interval time.Duration, f func() bool) bool {
	deadline := time.Now().Add(bound)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
