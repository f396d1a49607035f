package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// ---- 4. replication ----

// checkReplication writes one row through 5000 and watches every replica
// directly until it is visible there: the lag a reader on 5001 would see.
func checkReplication(ctx context.Context, e *env, c *checkRun) {
	f := e.probe.Formation(ctx)
	if f.Leader.Name == "" || len(f.Replicas) == 0 {
		c.failf("cannot check replication without a leader and replicas: %s", f.Problem())
		return
	}
	if err := e.setupTraffic(ctx); err != nil {
		c.failf("%v", err)
		return
	}
	// Connect first, so connection set-up does not count as lag.
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, cn := range conns {
			cn.Close(context.Background())
		}
	}()
	for _, r := range f.Replicas {
		cn, err := e.probe.Monitor(r.Host).Connect(ctx)
		if err != nil {
			c.failf("replica %s: %v", r.Name, err)
			return
		}
		conns[r.Name] = cn
	}
	w, err := e.writeTarget().Connect(ctx)
	if err != nil {
		c.failf("write endpoint: %v", err)
		return
	}
	run := e.runID + "-repl"
	_, err = w.Exec(ctx, `INSERT INTO `+traffic.Table+` (run, id) VALUES ($1, 1)`, run)
	acked := time.Now()
	w.Close(context.Background())
	if err != nil {
		c.failf("insert through the write endpoint failed: %v", err)
		return
	}
	type result struct {
		lag time.Duration
		err error
	}
	results := map[string]result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, cn := range conns {
		wg.Go(func() {
			var res result
			ok := wait.Poll(ctx, e.opts.replicationBound, 10*time.Millisecond, func() bool {
				var n int
				if err := cn.QueryRow(ctx, `SELECT count(*) FROM `+traffic.Table+` WHERE run = $1`, run).Scan(&n); err != nil {
					res.err = err
					return false
				}
				res.err = nil
				return n == 1
			})
			res.lag = time.Since(acked)
			if !ok && res.err == nil {
				res.err = fmt.Errorf("the row written through %s is not visible after %s", e.stack.WriteEndpoint, e.opts.replicationBound)
			}
			mu.Lock()
			results[name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	var worst time.Duration
	for _, r := range f.Replicas {
		res := results[r.Name]
		if res.err != nil {
			c.failf("replica %s: %v", r.Name, res.err)
			continue
		}
		c.figure("visible_ms_"+r.Name, "row visible on "+r.Name+" after", float64(res.lag.Microseconds())/1000, "ms")
		if res.lag > worst {
			worst = res.lag
		}
	}
	c.figure("max_visible_ms", "slowest replica", float64(worst.Microseconds())/1000, "ms")
	if rows, err := e.probe.Replication(ctx, f.Leader.Host); err == nil {
		for _, r := range f.Replicas {
			if row, ok := rows[r.Name]; ok {
				c.figure("lag_bytes_"+r.Name, "replay lag of "+r.Name+" (leader's view)", float64(row.LagBytes), "bytes")
			}
		}
	}
	c.Summary = fmt.Sprintf("row visible on %d replicas within %.0f ms", len(f.Replicas)-len(c.Problems), float64(worst.Microseconds())/1000)
	if len(c.Problems) > 0 {
		c.Summary = c.Problems[0]
	}
}
