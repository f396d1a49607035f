package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/benchdoc"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/bench"
	"github.com/pgha/pgha/validate/internal/fault"
	"github.com/pgha/pgha/validate/internal/report"
)

// backupBenchHeading is the section of the benchmark page that
// `validate bench --backups` writes.
const backupBenchHeading = "## Backups and point-in-time recovery"

// backupBench is what `validate bench --backups` measured.
type backupBench struct {
	Started, Finished time.Time
	Load              [2][3]float64 // before, after
	Scale             int
	DBBytes           int64 // pg_database_size after pgbench -i
	Init              time.Duration
	CatchUp           time.Duration // the load's WAL all archived, after pgbench -i returned
	Backup            time.Duration
	// From `pgbackrest info`, as it prints them.
	DBSize, RepoSize string
	Restore          time.Duration // the latest backup, into a scratch server
	RestoreCheck     string        // what the restored server answered
	PITRTraffic      time.Duration // pgbench before the target
	PITR             time.Duration
	PITRWant         string
	PITRGot          string
	// The archive lag under pgbench (heavy) and under the validate writer
	// (light).
	LoadLag, WriterLag archiveLag
	LoadTPS            float64
	WriterWindow       time.Duration
	WriterWrites       int
	ArchiveTimeout     time.Duration
	Node               string // where the restores ran
	Command            string
}

// runBackupBench is `validate bench --backups`: on a fresh namespace lab
// with backups, a pgbench database of --scale, its full backup, a restore
// of it and a point-in-time restore after more pgbench traffic, and the
// archive lag under pgbench and under the validate writer.
func runBackupBench(ctx context.Context, o *benchOptions, stdout, stderr io.Writer) int {
	tmp, err := os.MkdirTemp("", "pgha-bench")
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	lab, err := newLabCmd(ctx, o.lab, tmp, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 2
	}
	name := o.prefix + "k"
	if lab.exists(ctx, name) {
		fmt.Fprintf(stderr, "validate bench: lab %q exists; pick another --name or run: go run ./lab down --name %s\n", name, name)
		return 1
	}
	res := backupBench{Started: time.Now(), Scale: o.scale, Command: reproduceBackupBench(o)}
	res.Load[0] = loadAvg()
	fmt.Fprintf(stdout, "bench: lab %s with backups\n", name)
	if err := lab.run(ctx, "up", "--name", name, "--profile", "fast", "--backups"); err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := lab.down(dctx, name, ""); err != nil {
				fmt.Fprintf(stderr, "validate bench: %v\n", err)
			}
		}()
	}
	cmd := exec.CommandContext(ctx, lab.bin, "outputs", "--name", name)
	cmd.Stderr = stderr
	b, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: lab outputs: %v\n", err)
		return 1
	}
	s, err := outputs.Parse(b)
	if err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	if err := benchBackups(ctx, o, s, &res, stdout); err != nil {
		fmt.Fprintf(stderr, "validate bench: %v\n", err)
		return 1
	}
	res.Finished = time.Now()
	res.Load[1] = loadAvg()
	section := backupBenchMarkdown(res)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, section)
	if o.doc != "" {
		if err := benchdoc.WriteSection(o.doc, backupBenchHeading, section); err != nil {
			fmt.Fprintf(stderr, "validate bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "written: %s\n", o.doc)
	}
	return 0
}

// benchBackups measures, on the lab s.
func benchBackups(ctx context.Context, o *benchOptions, s outputs.Stack, res *backupBench, out io.Writer) error {
	dial, err := dialerFor(s)
	if err != nil {
		return err
	}
	vo, err := parseOptions(nil, io.Discard)
	if err != nil {
		return err
	}
	vo.archiveLagWindow = o.lagWindow
	e := newEnv(s, vo, dial, out)
	f := e.probe.Formation(ctx)
	if err := f.Err(); err != nil {
		return err
	}
	leader := f.Leader
	res.Node = leader.Name
	if r, ok := f.Replica(false); ok {
		res.Node = r.Name
	}
	// The monitor role on the leader watches the archive and closes WAL
	// segments; what the benchmark writes and counts is the application
	// user's, through the write endpoint.
	conn, err := e.probe.Monitor(leader.Host).Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	app, err := e.writeTarget().Connect(ctx)
	if err != nil {
		return err
	}
	defer app.Close(context.Background())
	set, err := readArchiveSettings(ctx, conn)
	if err != nil {
		return err
	}
	res.ArchiveTimeout = set.Timeout
	c := s.Credentials
	pb := bench.Pgbench{Namespace: s.Access.Namespace, User: c.AppName, Password: c.AppPassword, Database: c.AppDatabase}
	via := s.WriteEndpoint
	step := func(format string, a ...any) { e.logf("bench: "+format, a...) }

	// 1. The database.
	step("pgbench -i -s %d through %s", o.scale, via)
	t0 := time.Now()
	if _, err := pb.Run(ctx, via.Host, via.Port, "-i", "-q", "-s", strconv.Itoa(o.scale)); err != nil {
		return err
	}
	res.Init = time.Since(t0)
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&res.DBBytes); err != nil {
		return err
	}
	step("pgbench -i: %s, %s", secs(res.Init), mib(res.DBBytes))
	t0 = time.Now()
	if err := archiveAll(ctx, conn, 10*time.Minute); err != nil {
		return err
	}
	res.CatchUp = time.Since(t0)
	step("its WAL archived %s after pgbench -i returned", secs(res.CatchUp))

	// 2. A full backup.
	t0 = time.Now()
	info, err := fault.LabRun(ctx, s, "backup", leader.Name, "--type", "full")
	if err != nil {
		return err
	}
	res.Backup = time.Since(t0)
	res.DBSize, res.RepoSize = backupSizes(info)
	step("full backup: %s (database %s, in the repository %s)", secs(res.Backup), res.DBSize, res.RepoSize)

	// 3. The latest backup restored: a target just past its end (stop
	// times are kept in whole seconds), so recovery replays only the
	// backup's own WAL. Recovery must find a commit past the target in
	// the archive, or it ends before reaching it: one row, archived.
	if err := wait.Sleep(ctx, 1100*time.Millisecond); err != nil {
		return err
	}
	var target time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&target); err != nil {
		return err
	}
	if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	if _, err := app.Exec(ctx, "CREATE TABLE IF NOT EXISTS pgha_bench_mark (at timestamptz DEFAULT clock_timestamp()); INSERT INTO pgha_bench_mark DEFAULT VALUES"); err != nil {
		return err
	}
	if err := archiveAll(ctx, conn, 5*time.Minute); err != nil {
		return err
	}
	want := fmt.Sprint(o.scale)
	t0 = time.Now()
	got, err := fault.LabRun(ctx, s, "restore-drill", res.Node, "--target", target.UTC().Format(time.RFC3339Nano),
		"--database", c.AppDatabase, "--query", "SELECT count(*) FROM pgbench_branches")
	if err != nil {
		return err
	}
	res.Restore = time.Since(t0)
	res.RestoreCheck = strings.TrimSpace(got)
	if res.RestoreCheck != want {
		return fmt.Errorf("the restored backup has %q branches, want %s", res.RestoreCheck, want)
	}
	step("latest backup restored on %s: %s", res.Node, secs(res.Restore))

	// 4. More traffic, the archive lag sampled meanwhile; the target;
	// traffic after it; a point-in-time restore to the target.
	res.PITRTraffic = o.pgbenchLoad
	step("pgbench (TPC-B-like, 4 clients) for %s, sampling the archive lag", o.pgbenchLoad)
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan []archiveSample, 1)
	go func() {
		ss, _ := sampleArchive(lagCtx, conn, o.pgbenchLoad+time.Minute)
		lagDone <- ss
	}()
	pgbenchArgs := []string{"-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(int(o.pgbenchLoad.Seconds()))}
	res.LoadTPS, err = pb.TPS(ctx, via.Host, via.Port, pgbenchArgs...)
	stopLag()
	loadSamples := <-lagDone
	if err != nil {
		return err
	}
	res.LoadLag = computeArchiveLag(loadSamples, set.SegSize)
	var rows int64
	if err := app.QueryRow(ctx, "SELECT clock_timestamp(), (SELECT count(*) FROM pgbench_history)").Scan(&target, &rows); err != nil {
		return err
	}
	res.PITRWant = fmt.Sprint(rows)
	if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	if _, err := pb.Run(ctx, via.Host, via.Port, "-n", "-c", "2", "-T", "5"); err != nil {
		return err
	}
	if err := archiveAll(ctx, conn, 5*time.Minute); err != nil {
		return err
	}
	step("point-in-time restore on %s to %s (%s rows in pgbench_history then)", res.Node, target.UTC().Format(time.RFC3339Nano), res.PITRWant)
	t0 = time.Now()
	got, err = fault.LabRun(ctx, s, "restore-drill", res.Node, "--target", target.UTC().Format(time.RFC3339Nano),
		"--database", c.AppDatabase, "--query", "SELECT count(*) FROM pgbench_history")
	if err != nil {
		return err
	}
	res.PITR = time.Since(t0)
	res.PITRGot = strings.TrimSpace(got)
	if res.PITRGot != res.PITRWant {
		return fmt.Errorf("restored to %s: %s rows in pgbench_history, want %s", target.UTC().Format(time.RFC3339Nano), res.PITRGot, res.PITRWant)
	}
	step("point-in-time restore: %s", secs(res.PITR))

	// 5. The archive lag under the validate writer: the backup check's
	// own measurement.
	cr := &checkRun{Check: report.Check{Name: "backup", Started: time.Now()}, e: e}
	res.WriterLag = measureArchiveLag(ctx, e, cr, leader.Host)
	if len(cr.Problems) > 0 {
		return fmt.Errorf("archive lag under the writer: %s", strings.Join(cr.Problems, "; "))
	}
	if f, ok := cr.Figure("archive_lag_writes"); ok {
		res.WriterWrites = int(f.Value)
	}
	res.WriterWindow = o.lagWindow
	return nil
}

// archiveAll switches WAL on the leader and waits until the switched
// segment is archived: everything written so far is then in the archive.
func archiveAll(ctx context.Context, conn *pgx.Conn, bound time.Duration) error {
	var seg string
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		return err
	}
	var archived string
	if !wait.Poll(ctx, bound, 250*time.Millisecond, func() bool {
		return conn.QueryRow(ctx, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").Scan(&archived) == nil && archived >= seg
	}) {
		return fmt.Errorf("segment %s was not archived within %s (last archived %q)", seg, bound, archived)
	}
	return nil
}

var (
	dbSizeRE   = regexp.MustCompile(`database size: ([^,\n]+)`)
	repoSizeRE = regexp.MustCompile(`repo1: backup set size: ([^,\n]+)`)
)

// backupSizes reads the newest backup's database size and its size in the
// repository from `pgbackrest info`.
func backupSizes(info string) (db, repo string) {
	last := func(re *regexp.Regexp) string {
		m := re.FindAllStringSubmatch(info, -1)
		if len(m) == 0 {
			return "?"
		}
		return strings.TrimSpace(m[len(m)-1][1])
	}
	return last(dbSizeRE), last(repoSizeRE)
}

// rdsBackupFigures are Amazon RDS's published point-in-time recovery
// figures, shown beside ours.
var rdsBackupFigures = [][2]string{
	{"point-in-time recovery granularity", "to the second, within the backup retention period (up to 35 days)"},
	{"latest restorable time (how far behind the archive is)", "typically within the last 5 minutes"},
}

func backupBenchMarkdown(r backupBench) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("%s\n\n", backupBenchHeading)
	p("Measured %s–%s UTC by `validate bench --backups` on this repository's lab: %d CPUs, Linux %s, 1/5/15-minute load average %.2f/%.2f/%.2f before and %.2f/%.2f/%.2f after. ",
		r.Started.UTC().Format("2006-01-02 15:04"), r.Finished.UTC().Format("15:04"), runtime.NumCPU(), kernel(),
		r.Load[0][0], r.Load[0][1], r.Load[0][2], r.Load[1][0], r.Load[1][1], r.Load[1][2])
	p("A fresh namespace lab with backups (`go run ./lab up --backups`, profile `fast`, synchronous mode on): pgBackRest 2.45 archiving asynchronously into the lab's own S3 endpoint on the same disk, so the times are pgBackRest's and PostgreSQL's work on 2 cores, not a network's.\n\n")
	p("| measure | value |\n|---|---|\n")
	p("| database: `pgbench -i -s %d` through the write endpoint | %s, %s |\n", r.Scale, mib(r.DBBytes), secs(r.Init))
	p("| its WAL all in the archive, after pgbench returned | %s |\n", secs(r.CatchUp))
	p("| full backup (`lab backup`, from the leader) | %s; database %s, %s in the repository (compressed) |\n", secs(r.Backup), r.DBSize, r.RepoSize)
	p("| restore of the latest backup into a scratch server, recovery included (`lab restore-drill`, on %s) | %s (answered %s branches, as written) |\n", r.Node, secs(r.Restore), r.RestoreCheck)
	p("| point-in-time restore after %s of pgbench (%.0f tps), to a target between it and more traffic | %s (%s rows of pgbench_history, exactly those committed before the target) |\n",
		secs(r.PITRTraffic), r.LoadTPS, secs(r.PITR), r.PITRGot)
	p("| archive lag under pgbench (TPC-B-like, 4 clients), p50 / p99 / max | %s / %s / %s (%d polls; %d lower bounds) |\n",
		secs(r.LoadLag.P50), secs(r.LoadLag.P99), secs(r.LoadLag.Max), len(r.LoadLag.Points), r.LoadLag.Bounds)
	p("| archive lag under the validate writer (an insert every 50 ms, %d acknowledged in %s), p50 / p99 / max | %s / %s / %s (%d polls; %d lower bounds) |\n",
		r.WriterWrites, secs(r.WriterWindow), secs(r.WriterLag.P50), secs(r.WriterLag.P99), secs(r.WriterLag.Max), len(r.WriterLag.Points), r.WriterLag.Bounds)
	p("| archive_timeout (configured) | %s |\n\n", secs(r.ArchiveTimeout))
	p("The archive lag at a time t is t minus the time of the newest poll of the leader (every 250 ms) whose `pg_current_wal_lsn()` was at or below the end of the last archived segment (`pg_stat_archiver.last_archived_wal`): how old the newest data already safe in the archive is, which is the RPO of losing the whole cluster at t. Each window starts with a WAL switch; until something written in it is archived, the lag is counted as its lower bound. ")
	p("Under pgbench segments fill in seconds and are pushed as they fill; under the light writer a segment fills slowly and `archive_timeout` closes it, so the lag rises to about archive_timeout and drops once the segment is pushed: the bound is archive_timeout plus the push.\n\n")
	p("Beside Amazon RDS (published figures, not measured here):\n\n| | Amazon RDS | pgha (measured above) |\n|---|---|---|\n")
	p("| %s | %s | to any instant the archive holds (pgBackRest `--type=time`): the restore above stopped exactly at its target |\n", rdsBackupFigures[0][0], rdsBackupFigures[0][1])
	p("| %s | %s | archive lag max %s under the writer (archive_timeout %s) |\n\n", rdsBackupFigures[1][0], rdsBackupFigures[1][1], secs(r.WriterLag.Max), secs(r.ArchiveTimeout))
	p("Reproduce (as root, about %d minutes; builds and removes its own lab):\n\n    %s\n", int(r.Finished.Sub(r.Started).Minutes()+1), r.Command)
	return b.String()
}

func reproduceBackupBench(o *benchOptions) string {
	cmd := "go run ./validate bench --backups"
	if o.scale != 50 {
		cmd += fmt.Sprintf(" --scale %d", o.scale)
	}
	if o.lagWindow != 3*time.Minute {
		cmd += " --lag-window " + o.lagWindow.String()
	}
	if o.pgbenchLoad != time.Minute {
		cmd += " --pgbench-load " + o.pgbenchLoad.String()
	}
	switch o.doc {
	case "docs/benchmarks.md":
	case "":
		cmd += ` --doc ""`
	default:
		cmd += " --doc " + o.doc
	}
	return cmd
}
