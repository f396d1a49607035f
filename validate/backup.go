package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/fault"
)

// drillTable holds the restore drill's rows: written before and after the
// target time, and counted on the restored server.
const drillTable = "pgha_restore_drill"

// checkBackup proves the backups where the stack has them: the leader's
// WAL reaches the repository (a switched segment is archived), a backup is
// taken, and a point-in-time restore into a scratch server holds exactly
// the rows committed before the target and none after. In a namespace lab
// the lab command does the backup and the drill; on EC2 instances (AWS,
// the booted lab) the nodes' own backup unit and pgha-restore-drill do,
// over SSH, so the drill proves what an operator would run.
func checkBackup(ctx context.Context, e *env, c *checkRun) {
	if e.stack.Backups == nil {
		c.text("backups", "backups", "not configured (pgha:backups on AWS; go run ./lab up --backups in a lab)")
		return
	}
	ops, err := fault.BackupOpsFor(e.stack)
	if err != nil {
		c.failf("cannot reach the nodes' backup tools: %v", err)
		return
	}
	defer ops.Close()
	f := e.probe.Formation(ctx)
	if err := f.Err(); err != nil {
		c.failf("the cluster is not whole: %v", err)
		return
	}
	leader := f.Leader
	// The monitor role on the leader closes WAL segments and watches the
	// archiver; the drill's rows are the application user's, written
	// through the write endpoint (to the leader) into its own database.
	conn, err := e.probe.Monitor(leader.Host).Connect(ctx)
	if err != nil {
		c.failf("connecting to the leader %s: %v", leader.Name, err)
		return
	}
	defer conn.Close(context.Background())

	// 0. The archive lag (RPO) under the writer's traffic: first, so an
	// unreachable repository is reported with how far behind it is.
	measureArchiveLag(ctx, e, c, leader.Host)

	app, err := e.writeTarget().Connect(ctx)
	if err != nil {
		c.failf("connecting to the write endpoint: %v", err)
		return
	}
	defer app.Close(context.Background())

	// 1. Archiving: write something, close its segment; that segment must
	// reach the repository. (A switch with nothing written since the last
	// one closes nothing.)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := app.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+drillTable+" (run text, id int, at timestamptz DEFAULT clock_timestamp())"); err != nil {
		c.failf("creating %s: %v", drillTable, err)
		return
	}
	defer func() {
		// The rows are this run's evidence only: they go whatever happened,
		// with any a killed earlier run left behind.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := app.Exec(dctx, "DELETE FROM "+drillTable+" WHERE run = $1 OR at < now() - interval '1 day'", run); err != nil {
			e.logf("  removing the drill's rows from %s: %v", drillTable, err)
		}
	}()
	switchWAL := func() (string, error) {
		if _, err := app.Exec(ctx, "INSERT INTO "+drillTable+" (run, id) VALUES ($1, 0)", run); err != nil {
			return "", err
		}
		var seg string
		err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg)
		return seg, err
	}
	t0 := time.Now()
	segment, err := switchWAL()
	if err != nil {
		c.failf("switching WAL on %s: %v", leader.Name, err)
		return
	}
	var archived, lastFailed string
	var failed int64
	ok := wait.Poll(ctx, 60*time.Second, 250*time.Millisecond, func() bool {
		err := conn.QueryRow(ctx, "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver").Scan(&archived, &failed, &lastFailed)
		return err == nil && archived >= segment
	})
	if !ok {
		c.failf("segment %s was not archived within 60 s (last archived %q; %d failures, last %q): see the leader's PostgreSQL log and pgBackRest's", segment, archived, failed, lastFailed)
		return
	}
	c.figure("archive_s", "a switched WAL segment reached the repository", time.Since(t0).Seconds(), "s")

	// 2. A backup, on the leader: incremental, so that on a cluster with
	// a full backup already the drill costs little (pgBackRest takes a full
	// one when the repository has none).
	t0 = time.Now()
	if _, err := ops.Backup(ctx, e.node(leader.Name)); err != nil {
		c.failf("%v", err)
		return
	}
	c.figure("backup_s", "backup (incremental; a full one when the repository has none)", time.Since(t0).Seconds(), "s")
	// pgBackRest keeps a backup's stop time in whole seconds: a target in
	// the same second as the backup's end finds no backup before it.
	if err := wait.Sleep(ctx, 1100*time.Millisecond); err != nil {
		return
	}

	// 3. Rows before the target, the target, rows after.
	const before, after = 50, 50
	insert := func(from, to int) error {
		for i := from; i <= to; i++ {
			// One transaction per row: each is committed on its own.
			if _, err := app.Exec(ctx, "INSERT INTO "+drillTable+" (run, id) VALUES ($1, $2)", run, i); err != nil {
				return err
			}
		}
		return nil
	}
	if err := insert(1, before); err != nil {
		c.failf("writing the rows before the target: %v", err)
		return
	}
	var target time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&target); err != nil {
		c.failf("reading the target time: %v", err)
		return
	}
	if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
		return
	}
	if err := insert(before+1, before+after); err != nil {
		c.failf("writing the rows after the target: %v", err)
		return
	}
	// The rows after the target must be in the archive too, or a restore
	// that stops early would pass for an exact one.
	if segment, err = switchWAL(); err != nil {
		c.failf("switching WAL: %v", err)
		return
	}
	if !wait.Poll(ctx, 60*time.Second, 250*time.Millisecond, func() bool {
		return conn.QueryRow(ctx, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").Scan(&archived) == nil && archived >= segment
	}) {
		c.failf("the WAL with the rows after the target (%s) was not archived within 60 s", segment)
		return
	}

	// 4. The drill, on a replica: nothing of the cluster is touched.
	node := leader.Name
	if r, ok := f.Replica(false); ok {
		node = r.Name
	} else if r, ok := f.Replica(true); ok {
		node = r.Name
	}
	query := fmt.Sprintf("SELECT count(*) FILTER (WHERE id BETWEEN 1 AND %d), count(*) FILTER (WHERE id > %d), coalesce(min(id) FILTER (WHERE id > 0), 0), coalesce(max(id), 0) FROM %s WHERE run = %s",
		before, before, drillTable, quoteLiteral(run))
	t0 = time.Now()
	out, err := ops.RestoreDrill(ctx, e.node(node), target, e.stack.Credentials.AppDatabase, query)
	if err != nil {
		c.failf("%v", err)
		return
	}
	c.figure("restore_s", "point-in-time restore into a scratch server, recovery included", time.Since(t0).Seconds(), "s")
	got := strings.Split(strings.TrimSpace(out), "|")
	if len(got) != 4 {
		c.failf("the restored server answered %q, not four counts", strings.TrimSpace(out))
		return
	}
	c.text("restored", "rows on the restored server (before the target | after it | min id | max id)", strings.TrimSpace(out))
	if got[0] != strconv.Itoa(before) || got[1] != "0" {
		c.failf("restored to %s on %s: %s rows from before the target (want %d) and %s from after it (want 0)",
			target.UTC().Format(time.RFC3339Nano), node, got[0], before, got[1])
	}
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// node is the stack's node of that name (a zero Node with only the name when
// the outputs lack it, which the operations then report).
func (e *env) node(name string) outputs.Node {
	if n, ok := e.stack.NodeByName(name); ok {
		return n
	}
	return outputs.Node{Name: name}
}
