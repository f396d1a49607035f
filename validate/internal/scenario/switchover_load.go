package scenario

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/pgbench"
	"github.com/pgha/pgha/internal/wait"
)

// 10. A controlled switchover while pgbench hammers the cluster with
// inserts: through the pooler where the stack has one (the switchover is
// then held behind it, and not one of pgbench's transactions may fail),
// else through 5000. pgbench's clients abort when their server goes away,
// so it is restarted at once until the window ends: the load is there
// before, during and after the switchover. In the lab pgbench runs in the
// client namespace; where it cannot (no namespace, no pgbench) the same
// load comes from pgx connections in goroutines.
var switchoverLoad = Scenario{
	Name:    "switchover-load",
	Title:   "switchover under heavy write load (pgbench through the pooler, else 5000)",
	Proves:  "a planned switchover under load keeps every acknowledged write and a short write gap; behind the poolers, no load transaction fails",
	Planned: true,
	Story:   switchoverLoadStory,
}

// Pgbench is Debian's pgbench for PostgreSQL 15.
const Pgbench = pgbench.Path

const loadTable = "pgha_load"

func switchoverLoadStory(ctx context.Context, r *Run) {
	s := r.Env.Stack()
	old := r.Before.Leader
	cand, ok := r.Before.Replica(true)
	if !ok || cand.Name == "" {
		cand = r.Before.Replicas[0]
	}
	wt := AppTarget(s, r.Env.Dial(), true, 3*time.Second)
	if err := exec1(ctx, wt, `CREATE TABLE IF NOT EXISTS `+loadTable+` (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)`); err != nil {
		r.Failf("%v", err)
		return
	}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ld loadStats
	wg.Go(func() {
		ld = runLoad(lctx, r, 8)
	})
	defer func() { stopLoad(); wg.Wait() }()
	_ = r.Hold(ctx, 4*time.Second)
	if ctx.Err() != nil {
		return
	}

	res, at, err := r.PlannedSwitchover(ctx, old, cand)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	r.Notef("Patroni answered: %s", res.Answer)
	st := r.Env.Settings()
	if _, ok := r.WaitLeader(ctx, st.FailoverBound, func(l patroni.Member) bool { return l.Name == cand.Name }); !ok {
		r.Failf("%s did not become the leader within %s", cand.Name, st.FailoverBound)
		return
	}
	r.Event("promotion", cand.Name, cand.Name+" holds the leader key")
	if !r.WaitWritesOn(ctx, cand.Host, at, st.FailoverBound) {
		r.Failf("no write was acknowledged by %s after the switchover (last error: %s)", cand.Name, r.LastErr())
	}
	_ = r.Hold(ctx, 4*time.Second) // load on the new leader too
	stopLoad()
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	r.Text("load_tool", "load", ld.tool)
	r.Figure("load_transactions", "load transactions committed", float64(ld.committed), "")
	if ld.seconds > 0 {
		r.Figure("load_tps", "load throughput (committed / wall time)", float64(ld.committed)/ld.seconds, "tps")
	}
	r.Figure("load_runs", "load runs (short runs, restarted at once)", float64(ld.runs), "")
	r.Figure("load_failed", "load operations failed (aborted clients, failed transactions, refused connections)", float64(ld.failed), "")
	if ld.err != "" {
		r.Notef("the last load run that failed said: %s", ld.err)
	}
	if ld.committed == 0 {
		r.Failf("the load committed nothing: the switchover was not under load (%s)", ld.err)
	}
	if ld.pooled && res.Pooled && ld.failed > 0 {
		r.Failf("%d load operations failed through the pooler during a switchover held behind it (last: %s)", ld.failed, ld.err)
	}
	r.Outcome = fmt.Sprintf("%s → %s under %s (%d transactions, %d failed)", old.Name, cand.Name, ld.tool, ld.committed, ld.failed)
}

type loadStats struct {
	tool      string
	pooled    bool // through the pooler
	committed int64
	// failed counts the operations a client saw fail: aborted clients,
	// failed transactions, runs that could not connect.
	failed  int64
	runs    int
	seconds float64
	err     string
}

// runLoad drives clients concurrent inserts through the pooler (else the
// write endpoint) until ctx ends.
func runLoad(ctx context.Context, r *Run, clients int) loadStats {
	s := r.Env.Stack()
	start := time.Now()
	e, pooled := s.WriteEndpoint, s.PoolerEndpoint != nil
	// A client of the pooler waits as long as PgBouncer holds it; one of
	// HAProxy gives up quickly, as an application's pool would.
	connectTimeout := 2 * time.Second
	if pooled {
		e, connectTimeout = *s.PoolerEndpoint, 2*r.Env.Settings().FailoverBound
	}
	if ns := s.Access.Namespace; s.Target == outputs.TargetLab && ns != "" {
		_, noNS := os.Stat(filepath.Join(access.NetnsDir, ns))
		if _, err := os.Stat(Pgbench); err == nil && noNS == nil {
			st := pgbenchLoop(ctx, ns, e.Host, e.Port,
				s.Credentials.AppName, s.Credentials.AppPassword, s.Credentials.AppDatabase, clients, connectTimeout)
			st.seconds, st.pooled = time.Since(start).Seconds(), pooled
			if pooled {
				st.tool += " through the pooler"
			}
			return st
		}
	}
	t := AppTarget(s, r.Env.Dial(), true, connectTimeout)
	if pt, ok := PoolerTarget(s, r.Env.Dial(), connectTimeout); ok {
		t = pt
	}
	st := pgxLoad(ctx, t, clients)
	st.seconds, st.pooled = time.Since(start).Seconds(), pooled
	if pooled {
		st.tool += " through the pooler"
	}
	return st
}

var (
	processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedTxRE  = regexp.MustCompile(`number of failed transactions: (\d+)`)
	abortedRE   = regexp.MustCompile(`(?m)client \d+ aborted`)
)

// pgbenchFailures counts what a pgbench run's clients saw fail: aborted
// clients and failed transactions, or the whole run when it never got to
// its summary (no connection).
func pgbenchFailures(out string) int64 {
	if processedRE.FindStringSubmatch(out) == nil {
		return 1
	}
	n := int64(len(abortedRE.FindAllString(out, -1)))
	if m := failedTxRE.FindStringSubmatch(out); m != nil {
		f, _ := strconv.ParseInt(m[1], 10, 64)
		n += f
	}
	return n
}

// pgbenchLoop runs pgbench in the namespace until ctx ends, in short runs
// restarted at once (and whenever its clients have aborted).
func pgbenchLoop(ctx context.Context, ns, host string, port int, user, password, db string, clients int, connectTimeout time.Duration) loadStats {
	st := loadStats{tool: fmt.Sprintf("pgbench -c %d", clients)}
	dir, err := os.MkdirTemp("", "pgha-pgbench")
	if err != nil {
		st.err = err.Error()
		return st
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "insert.sql")
	if err := os.WriteFile(script, []byte("INSERT INTO "+loadTable+" (pad) VALUES (repeat('x', 100));\n"), 0o644); err != nil {
		st.err = err.Error()
		return st
	}
	for ctx.Err() == nil {
		st.runs++
		// Short runs, restarted at once: pgbench's clients abort when their
		// server goes away (as a real application would reconnect), and a
		// short -T keeps the loop responsive to the end of the window.
		cmd := exec.Command("ip", "netns", "exec", ns, Pgbench, "-n", "-h", host, "-p", strconv.Itoa(port), "-U", user,
			"-c", strconv.Itoa(clients), "-j", "2", "-T", "3", "-f", script, db)
		// The password goes in the environment, never on the command line.
		cmd.Env = []string{"PGPASSWORD=" + password, "PGSSLMODE=require",
			"PGCONNECT_TIMEOUT=" + strconv.Itoa(int(max(connectTimeout, time.Second)/time.Second)), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() != nil && !strings.Contains(out.String(), "number of transactions actually processed") {
			break // cut short by the end of the window, not by the cluster
		}
		if f := pgbenchFailures(out.String()); f > 0 {
			st.failed += f
			st.err = lastLine(out.String())
			if st.err == "" && err != nil {
				st.err = err.Error()
			}
		}
		if m := processedRE.FindStringSubmatch(out.String()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			st.committed += n
		} else {
			_ = wait.Sleep(ctx, 200*time.Millisecond)
		}
	}
	return st
}

// pgxLoad is the same load from goroutines, for targets without a lab
// namespace or pgbench.
func pgxLoad(ctx context.Context, t pg.Target, clients int) loadStats {
	st := loadStats{tool: fmt.Sprintf("%d pgx clients", clients), runs: 1}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := t.Connect(ctx)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						st.failed++
						st.err = err.Error()
						mu.Unlock()
					}
					_ = wait.Sleep(ctx, 100*time.Millisecond)
					continue
				}
				for ctx.Err() == nil {
					if _, err := c.Exec(ctx, `INSERT INTO `+loadTable+` (pad) VALUES (repeat('x', 100))`); err != nil {
						if ctx.Err() == nil {
							mu.Lock()
							st.failed++
							st.err = err.Error()
							mu.Unlock()
						}
						break
					}
					mu.Lock()
					st.committed++
					mu.Unlock()
				}
				c.Close(context.Background())
			}
		})
	}
	wg.Wait()
	return st
}

func exec1(ctx context.Context, t pg.Target, sql string) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(sql)[0], err)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
