package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgha/pgha/internal/pg"
)

// BurstResult is what a burst of sessions opened at once got.
type BurstResult struct {
	Sessions int
	// Ran: the sessions that connected and held their slot (through
	// HAProxy, possibly after waiting in its queue).
	Ran int
	// Refused: PostgreSQL's "too many clients" (SQLSTATE 53300).
	Refused int
	// Errors are every session's failure, refusals included.
	Errors []error
	// SlowestWait is the longest a session that ran took to connect (a
	// wait in HAProxy's queue shows here); Slowest adds its hold.
	SlowestWait, Slowest time.Duration
}

// Burst opens n sessions on tg at once, each holding its connection for
// hold (pg_sleep), and counts which ran and which were refused.
func Burst(ctx context.Context, tg pg.Target, n int, hold time.Duration) BurstResult {
	// Long enough to outlast HAProxy's queue (timeout queue 10 s): a
	// session it queues must not give up first.
	tg.ConnectTimeout = 20 * time.Second
	r := BurstResult{Sessions: n}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			start := time.Now()
			var wait time.Duration
			cn, err := tg.Connect(ctx)
			if err == nil {
				wait = time.Since(start)
				_, err = cn.Exec(ctx, "SELECT pg_sleep($1)", hold.Seconds())
				cn.Close(ctx)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.Errors = append(r.Errors, err)
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "53300" {
					r.Refused++
				}
				return
			}
			r.Ran++
			r.SlowestWait = max(r.SlowestWait, wait)
			r.Slowest = max(r.Slowest, time.Since(start))
		})
	}
	wg.Wait()
	return r
}
