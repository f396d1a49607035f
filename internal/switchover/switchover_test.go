package switchover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pooler"
)

// admin is a pooler that records when it was paused and resumed.
type admin struct {
	mu                sync.Mutex
	paused, resumedAt time.Time
	resumes           int
}

func (a *admin) Name() string { return "fake" }
func (a *admin) Pause(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paused = time.Now()
	return nil
}
func (a *admin) Resume(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resumes++
	a.resumedAt = time.Now()
	return nil
}
func (a *admin) Reconnect(context.Context) error { return nil }

func (a *admin) resumed() (time.Time, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.resumedAt, a.resumes
}

var (
	leader    = patroni.Member{Name: "pg-1", Host: "10.0.0.1"}
	candidate = patroni.Member{Name: "pg-2", Host: "10.0.0.2"}
	errRefuse = errors.New("HTTP 412: candidate name does not match with sync_standby")
)

// The clients go on as soon as the write path has moved, not when Patroni
// gets round to answering (its next whole-second poll); the answer is
// still waited for and reported.
func TestResumesOnTheWritePathBeforePatroniAnswers(t *testing.T) {
	a := &admin{}
	moved := make(chan struct{})
	var answeredAt time.Time
	res, err := Run(context.Background(), nil, leader, candidate, Options{
		Poolers: []pooler.Admin{a},
		Ask: func(ctx context.Context) (string, error) {
			close(moved)
			time.Sleep(800 * time.Millisecond) // Patroni's poll
			answeredAt = time.Now()
			return `Successfully switched over to "pg-2"`, nil
		},
		WritePath: func(ctx context.Context) error {
			select {
			case <-moved:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	require.NoError(t, err)
	require.True(t, res.Pooled)
	require.Equal(t, `Successfully switched over to "pg-2"`, res.Answer)
	at, n := a.resumed()
	require.Equal(t, 1, n)
	require.True(t, at.Before(answeredAt), "resumed at %s, after Patroni's answer at %s", at, answeredAt)
	require.Less(t, res.Pooler.Stall, 500*time.Millisecond)
}

// Patroni's refusal ends the switchover at once, resumed, without waiting
// out the stall bound for a write path that will not move.
func TestARefusalResumesAtOnce(t *testing.T) {
	a := &admin{}
	start := time.Now()
	_, err := Run(context.Background(), nil, leader, candidate, Options{
		Poolers:    []pooler.Admin{a},
		Ask:        func(context.Context) (string, error) { return "", errRefuse },
		WritePath:  func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		StallBound: time.Minute,
	})
	require.ErrorIs(t, err, errRefuse)
	require.Less(t, time.Since(start), 10*time.Second)
	_, n := a.resumed()
	require.Equal(t, 1, n)
}

// Patroni answers success but the write path never reaches the candidate:
// the stall bound resumes the clients and the error says why.
func TestAWritePathThatNeverMovesIsBounded(t *testing.T) {
	a := &admin{}
	res, err := Run(context.Background(), nil, leader, candidate, Options{
		Poolers:    []pooler.Admin{a},
		Ask:        func(context.Context) (string, error) { return "ok", nil },
		WritePath:  func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		StallBound: time.Second,
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, "ok", res.Answer)
	_, n := a.resumed()
	require.Equal(t, 1, n)
}

// The write path moved but Patroni then answered with an error: the
// clients are already on, and the error is reported.
func TestALateErrorIsReported(t *testing.T) {
	a := &admin{}
	_, err := Run(context.Background(), nil, leader, candidate, Options{
		Poolers: []pooler.Admin{a},
		Ask: func(context.Context) (string, error) {
			time.Sleep(300 * time.Millisecond)
			return "", errors.New("HTTP 503: Switchover status unknown")
		},
		WritePath: func(context.Context) error { return nil },
	})
	require.ErrorContains(t, err, "the write path reached pg-2, but Patroni answered")
	require.ErrorContains(t, err, "status unknown")
	_, n := a.resumed()
	require.Equal(t, 1, n)
}

// Ctrl-C while Patroni works: the poolers resume, and Run does not wait
// for the answer past the cancellation.
func TestCancelledDuringTheSwitchResumes(t *testing.T) {
	a := &admin{}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	_, err := Run(ctx, nil, leader, candidate, Options{
		Poolers: []pooler.Admin{a},
		Ask: func(ctx context.Context) (string, error) {
			cancel()
			<-ctx.Done()
			return "", ctx.Err()
		},
		WritePath: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 10*time.Second)
	_, n := a.resumed()
	require.Equal(t, 1, n)
}

// sessionAdmin is a pooler that pools sessions.
type sessionAdmin struct{ admin }

func (a *sessionAdmin) PoolMode(context.Context) (string, error) { return "session", nil }

// Poolers that pool sessions are not paused: PAUSE would wait for every
// client session to end, and a session cannot move to the new leader.
// The switchover is asked for at once and said to be unheld.
func TestSessionPoolersAreNotPaused(t *testing.T) {
	a := &sessionAdmin{}
	asked := 0
	var logged []string
	res, err := Run(context.Background(), nil, leader, candidate, Options{
		Poolers: []pooler.Admin{a},
		Ask:     func(context.Context) (string, error) { asked++; return "Successfully switched over", nil },
		WritePath: func(context.Context) error {
			t.Error("the write path was waited for behind session poolers")
			return nil
		},
		Logf: func(f string, args ...any) { logged = append(logged, fmt.Sprintf(f, args...)) },
	})
	require.NoError(t, err)
	require.Equal(t, 1, asked)
	require.True(t, res.SessionPooled)
	require.False(t, res.Pooled)
	require.Equal(t, "Successfully switched over", res.Answer)
	require.True(t, a.paused.IsZero(), "a session pooler was paused")
	require.Len(t, logged, 1)
	require.Contains(t, logged[0], "pool sessions")

	// A transaction pooler is paused as before.
	tx := &admin{}
	res, err = Run(context.Background(), nil, leader, candidate, Options{
		Poolers:   []pooler.Admin{tx},
		Ask:       func(context.Context) (string, error) { return "", nil },
		WritePath: func(context.Context) error { return nil },
	})
	require.NoError(t, err)
	require.True(t, res.Pooled)
	require.False(t, res.SessionPooled)
	require.False(t, tx.paused.IsZero())
}
