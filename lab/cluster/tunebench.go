package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/pgbench"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// PgbenchPath is where pgbench is installed.
const PgbenchPath = pgbench.Path

// TuningOptions say how BenchTuning compares workload profiles.
type TuningOptions struct {
	// Workloads are the arms, in the order each round runs them.
	Workloads []string
	Rounds    int
	// Scale is pgbench -i's; Seconds each timed run's, after Warmup
	// seconds of select-only that fill the caches.
	Scale, Seconds, Warmup int
	Clients, Threads       int
	// BurstExtra sessions beyond max_connections, each held BurstHold.
	BurstExtra int
	BurstHold  time.Duration
	// Up builds each arm's lab; its Workload is set per arm.
	Up UpOptions
}

// TuningRun is one arm of one round: a fresh lab with one workload.
type TuningRun struct {
	Workload string
	Round    int
	Load1    float64 // 1-minute load average when the arm began
	// What PostgreSQL ran with (SHOW, through 5000).
	SharedBuffers, WorkMem string
	MaxConnections         int
	HAProxyMaxConn         int // per server, each HAProxy node
	DBBytes                int64
	Init                   time.Duration // pgbench -i
	SelectTPS, TPCBTPS     float64
	// Bursts of max_connections + BurstExtra sessions through HAProxy's
	// write port and straight at the leader's PostgreSQL.
	ViaHAProxy, Direct BurstResult
}

// BenchTuning builds a lab per workload and round (A B A B …, so drift on
// the machine reaches every arm), runs pgbench and the bursts on it and
// takes it down again.
func (l *Lab) BenchTuning(ctx context.Context, o TuningOptions) ([]TuningRun, error) {
	var runs []TuningRun
	for round := 1; round <= o.Rounds; round++ {
		for _, w := range o.Workloads {
			up := o.Up
			up.Workload = w
			r := TuningRun{Workload: w, Round: round, Load1: loadAvg()}
			if _, err := l.Up(ctx, up); err != nil {
				return runs, fmt.Errorf("round %d, %s: up: %w", round, w, err)
			}
			err := l.measureTuning(ctx, o, &r)
			if _, derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("down: %w", derr))
			}
			if err != nil {
				return runs, fmt.Errorf("round %d, %s: %w", round, w, err)
			}
			runs = append(runs, r)
			l.logf("round %d/%d, %s: select-only %.0f tps, TPC-B-like %.0f tps; burst of %d through HAProxy: %d ran, %d refused; straight at the leader: %d ran, %d refused",
				round, o.Rounds, w, r.SelectTPS, r.TPCBTPS, r.ViaHAProxy.Sessions, r.ViaHAProxy.Ran, r.ViaHAProxy.Refused, r.Direct.Ran, r.Direct.Refused)
		}
	}
	return runs, nil
}

func (l *Lab) measureTuning(ctx context.Context, o TuningOptions, r *TuningRun) error {
	p, err := l.Probe()
	if err != nil {
		return err
	}
	f := p.Formation(ctx)
	if err := f.Err(); err != nil {
		return err
	}
	tu, err := l.Spec().Tuning()
	if err != nil {
		return err
	}
	r.HAProxyMaxConn = tu.HAProxyMaxConn(len(l.Plan.ByRole(topology.RoleHAProxy)))
	via := p.Stack.WriteEndpoint
	app := p.App(via.Host, via.Port)
	pb, err := l.pgbench()
	if err != nil {
		return err
	}

	l.logf("%s: pgbench -i -s %d through %s", r.Workload, o.Scale, via)
	t0 := time.Now()
	if _, err := pb.Run(ctx, via.Host, via.Port, "-i", "-q", "-s", strconv.Itoa(o.Scale)); err != nil {
		return err
	}
	r.Init = time.Since(t0)
	cn, err := app.Connect(ctx)
	if err != nil {
		return err
	}
	err = cn.QueryRow(ctx, `SELECT current_setting('shared_buffers'), current_setting('work_mem'),
		current_setting('max_connections')::int, pg_database_size(current_database())`).
		Scan(&r.SharedBuffers, &r.WorkMem, &r.MaxConnections, &r.DBBytes)
	cn.Close(ctx)
	if err != nil {
		return err
	}
	if r.MaxConnections != tu.MaxConnections {
		return fmt.Errorf("PostgreSQL runs with max_connections %d, the %s profile sets %d", r.MaxConnections, r.Workload, tu.MaxConnections)
	}

	timed := func(secs int, extra ...string) []string {
		return append([]string{"-n", "-c", strconv.Itoa(o.Clients), "-j", strconv.Itoa(o.Threads), "-T", strconv.Itoa(secs)}, extra...)
	}
	if o.Warmup > 0 {
		if _, err := pb.Run(ctx, via.Host, via.Port, timed(o.Warmup, "-S")...); err != nil {
			return err
		}
	}
	if r.SelectTPS, err = pb.TPS(ctx, via.Host, via.Port, timed(o.Seconds, "-S")...); err != nil {
		return err
	}
	if r.TPCBTPS, err = pb.TPS(ctx, via.Host, via.Port, timed(o.Seconds)...); err != nil {
		return err
	}

	// pg_hba admits the application user through HAProxy only, the monitor
	// straight to a node as well: each burst as the one that may connect.
	n := r.MaxConnections + o.BurstExtra
	r.ViaHAProxy = Burst(ctx, app, n, o.BurstHold)
	r.Direct = Burst(ctx, p.Monitor(f.Leader.Host), n, o.BurstHold)
	return ctx.Err()
}

// pgbench is pgbench as the application user from the lab's client
// namespace, where an application host would be, with verify-full TLS
// against the lab's CA and nothing of this process's environment but a
// PATH.
func (l *Lab) pgbench() (pgbench.Client, error) {
	s, err := l.stack()
	if err != nil {
		return pgbench.Client{}, err
	}
	c := s.Credentials
	return pgbench.Client{Namespace: l.ClientNamespace(), User: c.AppName, Password: c.AppPassword, Database: c.AppDatabase,
		Env: []string{"PATH=" + basePath, "PGSSLMODE=verify-full", "PGSSLROOTCERT=" + l.TLSCAFile(), "PGCONNECT_TIMEOUT=10"}}, nil
}

// TuningScale is the largest pgbench scale, in tens, whose database (about
// 16 MB a unit) fills at most five sixths of shared_buffers under workload
// w on the lab's node size: beyond PostgreSQL's default 128 MB, within the
// tuned buffers. 0 when no such scale exists.
func TuningScale(w string) int {
	tu, err := userdata.Tune(LabNodeSize(), w)
	if err != nil {
		return 0
	}
	for _, p := range tu.Params {
		if p.Name == "shared_buffers" {
			mb, _ := strconv.Atoi(strings.TrimSuffix(p.Value, "MB"))
			if s := mb * 5 / 6 / 16 / 10 * 10; s*16 > 2*128 {
				return s
			}
		}
	}
	return 0
}

// MachineMemoryMiB is this machine's memory, 0 if unknown.
func MachineMemoryMiB() int { return memTotalMiB() }
