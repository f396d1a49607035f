package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// The archive lag is the RPO of a cluster that loses its leader and every
// replica at once, or of a restore from the repository: how old the newest
// data already safe in the archive is.
//
// During a window the leader is polled every archiveLagEvery for
// pg_current_wal_lsn() (the sample's time is the client's, halfway through
// the poll) and pg_stat_archiver. A, the archived position, is the end of
// the newest segment pg_stat_archiver reports archived. The lag at a poll's
// time t is t minus the time of the newest poll whose WAL position was at or
// below A: everything written up to then is in the archive, and what came
// after may not be. When every poll so far is beyond A (nothing written in
// the window is archived yet), the lag is at least t minus the window's
// first poll, and that lower bound is what is counted, marked as a bound.
//
// The window starts with a WAL switch, so it starts with nothing
// unarchived; then the validate writer inserts through the write endpoint.
// With a light writer a segment fills slowly, and archive_timeout closes it:
// the lag then rises to about archive_timeout and falls back once the
// closed segment is pushed, so it stays under archive_timeout plus the push
// time. A window shorter than archive_timeout sees only part of one rise.
const archiveLagDefinition = "archive lag at time t = t − the time of the newest poll of the leader whose pg_current_wal_lsn() was at or below the end of the last archived segment (pg_stat_archiver.last_archived_wal): how old the newest data already safe in the archive is; polls every 250 ms from a WAL switch at the start of the window; while nothing written in the window is archived yet, the lag is counted as its lower bound t − the window's start"

// archiveLagEvery is the polling interval of the leader.
const archiveLagEvery = 250 * time.Millisecond

// archiveSample is one poll of the leader.
type archiveSample struct {
	At         time.Time
	LSN        int64  // pg_current_wal_lsn() as a byte position
	Archived   string // pg_stat_archiver.last_archived_wal
	Failed     int64  // pg_stat_archiver.failed_count
	LastFailed string // pg_stat_archiver.last_failed_wal
	// FailedAfterArchived: the last failure is newer than the last
	// success, i.e. archiving is failing right now.
	FailedAfterArchived bool
}

// lagPoint is the archive lag at one poll.
type lagPoint struct {
	At  time.Time
	Lag time.Duration
	// Bound: nothing written in the window is archived yet, and Lag is
	// only a lower bound.
	Bound bool
	// Behind is the WAL not yet archived, in bytes: the position minus
	// the end of the last archived segment.
	Behind int64
}

// archiveLag is what a window's samples say.
type archiveLag struct {
	Points        []lagPoint
	P50, P99, Max time.Duration
	Bounds        int   // points that are lower bounds
	MaxBehind     int64 // bytes
	// Failures is how much failed_count grew over the window;
	// LastFailed the last segment that failed.
	Failures   int64
	LastFailed string
	// FailingAtEnd: at the last poll, the last failure was newer than the
	// last success.
	FailingAtEnd bool
	// LastArchived is last_archived_wal at the last poll.
	LastArchived string
}

// segmentEnd is the WAL position just past the segment a pg_stat_archiver
// name stands for, for segments of segSize bytes. A backup history file
// (…XXXXXXXX.00000028.backup) or a partial segment (….partial) says only
// that the segment before it is complete; a timeline history file says
// nothing about positions (ok is false).
func segmentEnd(name string, segSize int64) (end int64, ok bool) {
	if len(name) < 24 || segSize <= 0 {
		return 0, false
	}
	hi, err1 := strconv.ParseUint(name[8:16], 16, 32)
	lo, err2 := strconv.ParseUint(name[16:24], 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	if _, err := strconv.ParseUint(name[:8], 16, 32); err != nil {
		return 0, false
	}
	segno := int64(hi)*((1<<32)/segSize) + int64(lo)
	switch rest := name[24:]; {
	case rest == "":
		return (segno + 1) * segSize, true
	case strings.HasSuffix(rest, ".backup"), rest == ".partial":
		return segno * segSize, true
	}
	return 0, false
}

// computeArchiveLag turns a window's samples (in time order) into lags.
func computeArchiveLag(samples []archiveSample, segSize int64) archiveLag {
	var r archiveLag
	if len(samples) == 0 {
		return r
	}
	var archived int64 = -1 // the highest archived end seen so far
	for i, s := range samples {
		if end, ok := segmentEnd(s.Archived, segSize); ok && end > archived {
			archived = end
		}
		p := lagPoint{At: s.At, Behind: max(0, s.LSN-archived)}
		if archived < 0 {
			p.Behind = 0
		}
		j := i
		for j >= 0 && samples[j].LSN > archived {
			j--
		}
		if j >= 0 {
			p.Lag = s.At.Sub(samples[j].At)
		} else {
			p.Lag, p.Bound = s.At.Sub(samples[0].At), true
			r.Bounds++
		}
		r.Points = append(r.Points, p)
		r.MaxBehind = max(r.MaxBehind, p.Behind)
	}
	first, last := samples[0], samples[len(samples)-1]
	r.Failures = last.Failed - first.Failed
	r.LastFailed = last.LastFailed
	r.FailingAtEnd = last.FailedAfterArchived
	r.LastArchived = last.Archived
	lags := make([]time.Duration, len(r.Points))
	for i, p := range r.Points {
		lags[i] = p.Lag
	}
	r.P50, r.P99, r.Max = nearestRank(lags, 0.50), nearestRank(lags, 0.99), nearestRank(lags, 1)
	return r
}

// nearestRank is the q-quantile of ds by the nearest-rank method.
func nearestRank(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// failing says whether archiving was failing at the end of the window:
// its last failure newer than its last success. Failures followed by a
// success (a repository back after an outage) are reported, not failing.
func (r archiveLag) failing() bool { return r.FailingAtEnd }

// state is one line on how archiving went in the window.
func (r archiveLag) state() string {
	switch {
	case r.failing():
		return fmt.Sprintf("archiving is FAILING: the last failure (%s) is newer than the last success (%s), %d failures in the window; the newest data in the archive is %s old at least, and %s of WAL waits for it",
			orNone(r.LastFailed), orNone(r.LastArchived), r.Failures, secs(r.Max), mib(r.MaxBehind))
	case r.Failures > 0:
		return fmt.Sprintf("archiving failed %d times in the window (last %s) and recovered; the lag reached %s, and at most %s of WAL waited for the archive",
			r.Failures, orNone(r.LastFailed), secs(r.Max), mib(r.MaxBehind))
	}
	return fmt.Sprintf("archiving kept up: no failures; at most %s of WAL waited for the archive", mib(r.MaxBehind))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// series is the lag as a chart of the report.
func (r archiveLag) series(check string, start, end time.Time, archiveTimeout time.Duration) *report.Series {
	s := &report.Series{Check: check, Name: "archive_lag", Title: "archive lag (RPO) under the validate writer", Unit: "s",
		Start: start, End: end, BoundNote: "lower bound: nothing written in the window was archived yet"}
	for _, p := range r.Points {
		s.Points = append(s.Points, report.Point{At: p.At, Value: p.Lag.Seconds(), Bound: p.Bound})
	}
	if archiveTimeout > 0 {
		s.Refs = append(s.Refs, report.Ref{Value: archiveTimeout.Seconds(), Label: fmt.Sprintf("archive_timeout %g s", archiveTimeout.Seconds())})
	}
	return s
}

// archiveSettings are the leader's settings the lag depends on.
type archiveSettings struct {
	SegSize int64
	Timeout time.Duration
}

func readArchiveSettings(ctx context.Context, conn *pgx.Conn) (archiveSettings, error) {
	var a archiveSettings
	var timeout int64
	err := conn.QueryRow(ctx, `SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
		(SELECT setting::bigint FROM pg_settings WHERE name = 'archive_timeout')`).Scan(&a.SegSize, &timeout)
	a.Timeout = time.Duration(timeout) * time.Second
	return a, err
}

// pollArchive reads the leader's WAL position and its archiver's state.
func pollArchive(ctx context.Context, conn *pgx.Conn) (archiveSample, error) {
	var s archiveSample
	t0 := time.Now()
	err := conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, coalesce(last_archived_wal, ''),
		failed_count, coalesce(last_failed_wal, ''), coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
		FROM pg_stat_archiver`).Scan(&s.LSN, &s.Archived, &s.Failed, &s.LastFailed, &s.FailedAfterArchived)
	s.At = t0.Add(time.Since(t0) / 2)
	return s, err
}

// sampleArchive switches WAL, then polls the leader every archiveLagEvery
// for d (or until ctx ends), while load runs. The first sample is the one
// just before the switch.
func sampleArchive(ctx context.Context, conn *pgx.Conn, d time.Duration) ([]archiveSample, error) {
	first, err := pollArchive(ctx, conn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
		return nil, fmt.Errorf("switching WAL: %w", err)
	}
	samples := []archiveSample{first}
	end := first.At.Add(d)
	tick := time.NewTicker(archiveLagEvery)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return samples, ctx.Err()
		case <-tick.C:
		}
		s, err := pollArchive(ctx, conn)
		if err != nil {
			return samples, err
		}
		samples = append(samples, s)
	}
	return samples, nil
}

// measureArchiveLag runs the validate writer through the write endpoint
// for the --archive-lag-window, samples the archive lag on the leader (at
// host) meanwhile, and reports it as figures and a chart of the check.
// Archiving still failing at the end of the window fails the check,
// saying how far behind the archive is. It returns the lag it measured.
func measureArchiveLag(ctx context.Context, e *env, c *checkRun, host string) archiveLag {
	d := e.opts.archiveLagWindow
	if d <= 0 {
		c.text("archive_lag", "archive lag (RPO)", "not measured (--archive-lag-window 0)")
		return archiveLag{}
	}
	conn, err := e.probe.Monitor(host).Connect(ctx)
	if err != nil {
		c.failf("archive lag: connecting to the leader: %v", err)
		return archiveLag{}
	}
	defer conn.Close(context.Background())
	set, err := readArchiveSettings(ctx, conn)
	if err != nil {
		c.failf("archive lag: reading the leader's settings: %v", err)
		return archiveLag{}
	}
	target := e.writeTarget()
	if err := e.setupTraffic(ctx); err != nil {
		c.failf("archive lag: %v", err)
		return archiveLag{}
	}
	e.logf("  archive lag: %s of the validate writer (an insert every %s), polling the leader every %s", d, e.opts.writeInterval, archiveLagEvery)
	w := &traffic.Writer{Target: target, RunID: e.runID + "-rpo", Interval: e.opts.writeInterval, OpTimeout: e.opts.opTimeout}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	start := time.Now()
	samples, err := sampleArchive(ctx, conn, d)
	stop()
	if werr := <-done; werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		c.failf("archive lag: %v", err)
		return archiveLag{}
	}
	ops := w.Ops()
	r := computeArchiveLag(samples, set.SegSize)
	c.Notes = append(c.Notes, archiveLagDefinition+".")
	c.figure("archive_lag_window_s", "archive lag: window (validate writer through the write endpoint)", d.Seconds(), "s")
	c.figure("archive_lag_writes", "archive lag: acknowledged writes in the window", float64(len(history.Acked(ops))), "")
	c.figure("archive_timeout_s", "archive_timeout on the leader", set.Timeout.Seconds(), "s")
	c.figure("archive_lag_p50_s", "archive lag p50", r.P50.Seconds(), "s")
	c.figure("archive_lag_p99_s", "archive lag p99", r.P99.Seconds(), "s")
	c.figure("archive_lag_max_s", "archive lag max", r.Max.Seconds(), "s")
	c.figure("archive_lag_bounds", "archive lag: polls that are lower bounds (nothing of the window archived yet)", float64(r.Bounds), "")
	c.figure("archive_behind_max_bytes", "WAL position past the end of the archive, at most (a switched segment counts whole)", float64(r.MaxBehind), "bytes")
	c.figure("archive_failures", "archiving failures in the window (pg_stat_archiver.failed_count growth)", float64(r.Failures), "")
	c.text("archive_state", "archiving", r.state())
	c.Series = append(c.Series, r.series(c.Name, start, time.Now(), set.Timeout))
	if r.failing() {
		c.failf("%s", r.state())
		return r
	}
	// The lag of a healthy archive stays under archive_timeout plus the
	// push; a minute more than that is an archive falling behind.
	if slack := time.Minute; set.Timeout > 0 && r.Max > set.Timeout+slack {
		c.failf("the archive fell behind: the lag reached %s, past archive_timeout (%s) plus %s", secs(r.Max), set.Timeout, slack)
	}
	return r
}
