package traffic

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
)

// Table is where the writer inserts. The run column keeps runs apart so old
// rows never hide a lost one.
const Table = "pgha_validate"

// Setup creates the table. It runs through the write endpoint as the
// application user, who owns the application database, and lets each of
// readers (the monitor role validate reads every node's rows as) SELECT
// from it: that table, and no other of the application's.
func Setup(ctx context.Context, t pg.Target, readers ...string) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
		run text NOT NULL,
		id bigint NOT NULL,
		at timestamptz NOT NULL DEFAULT clock_timestamp(),
		PRIMARY KEY (run, id))`)
	if err != nil {
		return fmt.Errorf("creating table %s through %s: %w", Table, t, err)
	}
	for _, r := range readers {
		if r == "" {
			continue
		}
		if _, err := c.Exec(ctx, `GRANT SELECT ON `+Table+` TO `+pgx.Identifier{r}.Sanitize()); err != nil {
			return fmt.Errorf("letting %s read %s: %w", r, Table, err)
		}
	}
	return nil
}

// Survivors returns the ids of one run found on the server c is connected to.
func Survivors(ctx context.Context, c *pgx.Conn, run string) ([]int64, error) {
	rows, err := c.Query(ctx, `SELECT id FROM `+Table+` WHERE run = $1`, run)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

var runRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// Writer inserts one row every Interval through Target and records each
// attempt. It keeps one connection and reconnects after any error, like an
// application with a pool would.
type Writer struct {
	Target   pg.Target
	RunID    string
	Interval time.Duration
	// OpTimeout bounds one insert; a write that hangs is a failed write.
	OpTimeout time.Duration
	// FirstID is the id before the writer's first: two writers of one run
	// (direct and pooled) keep their ids apart with it.
	FirstID int64
	// ServerPerWrite asks each insert which server ran it, for a path
	// whose statements may run on different servers over one client
	// connection (a pooler); otherwise the server is asked once per
	// connection.
	ServerPerWrite bool

	opLog
	mu sync.Mutex // guards id
	id int64
}

// Run writes until ctx is done.
func (w *Writer) Run(ctx context.Context) error {
	if !runRE.MatchString(w.RunID) {
		return fmt.Errorf("run id %q must match %s", w.RunID, runRE)
	}
	if w.OpTimeout <= 0 {
		w.OpTimeout = 2 * time.Second
	}
	var conn *pgx.Conn
	var server string
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	w.mu.Lock()
	w.id = max(w.id, w.FirstID)
	w.mu.Unlock()
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		start := time.Now()
		if conn == nil {
			c, err := w.Target.Connect(ctx)
			if err == nil {
				var info pg.ServerInfo
				info, err = pg.Whoami(ctx, c)
				if err != nil {
					c.Close(context.Background())
				} else {
					conn, server = c, info.Addr
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.record(history.Op{Start: start, End: time.Now(), Err: err.Error()})
				continue
			}
		}
		w.mu.Lock()
		w.id++
		id := w.id
		w.mu.Unlock()
		octx, cancel := context.WithTimeout(ctx, w.OpTimeout)
		var err error
		if w.ServerPerWrite {
			err = conn.QueryRow(octx, `INSERT INTO `+Table+` (run, id) VALUES ($1, $2) RETURNING host(inet_server_addr())`, w.RunID, id).Scan(&server)
		} else {
			_, err = conn.Exec(octx, `INSERT INTO `+Table+` (run, id) VALUES ($1, $2)`, w.RunID, id)
		}
		cancel()
		op := history.Op{ID: id, Start: start, End: time.Now(), OK: err == nil, Server: server}
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				// Stopped mid-insert: ambiguous, and not part of the run.
				return nil
			}
			op.Err = err.Error()
			conn.Close(context.Background())
			conn = nil
		}
		w.record(op)
	}
}

// opLog is a history that one goroutine appends to while others read it.
type opLog struct {
	mu  sync.Mutex
	ops []history.Op
}

func (l *opLog) record(o history.Op) {
	l.mu.Lock()
	l.ops = append(l.ops, o)
	l.mu.Unlock()
}

// Ops returns a copy of the history so far.
func (l *opLog) Ops() []history.Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]history.Op(nil), l.ops...)
}

// Reader opens a fresh connection to Target for every read, as a new client
// would, and asks which server answered. A fresh connection per read is what
// shows whether the read endpoint routes to a healthy replica right now.
type Reader struct {
	Target    pg.Target
	Interval  time.Duration
	OpTimeout time.Duration
	// WantReplica makes a read from a primary count as a failure: the read
	// endpoint must only reach replicas (the leader is only a backup).
	WantReplica bool

	opLog
}

// Run reads until ctx is done.
func (r *Reader) Run(ctx context.Context) error {
	if r.OpTimeout <= 0 {
		r.OpTimeout = 2 * time.Second
	}
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		start := time.Now()
		op := history.Op{Start: start}
		octx, cancel := context.WithTimeout(ctx, r.OpTimeout+r.Target.ConnectTimeout)
		c, err := r.Target.Connect(octx)
		if err == nil {
			var info pg.ServerInfo
			info, err = pg.Whoami(octx, c)
			c.Close(context.Background())
			op.Server = info.Addr
			if err == nil && r.WantReplica && !info.InRecovery {
				err = fmt.Errorf("read endpoint reached %s, which is not in recovery", info.Addr)
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		op.End = time.Now()
		op.OK = err == nil
		if err != nil {
			op.Err = err.Error()
		}
		r.record(op)
	}
}

// Session runs a writer and a reader together until Stop, and a second
// writer through the pooler when there is one.
type Session struct {
	Writer *Writer
	Reader *Reader
	// Pooled writes through PgBouncer beside Writer (through HAProxy);
	// nil without a pooler.
	Pooled *Writer
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   []error
	mu     sync.Mutex
}

// Start launches the loops; pooled may be nil.
func Start(ctx context.Context, w *Writer, r *Reader, pooled ...*Writer) *Session {
	ctx, cancel := context.WithCancel(ctx)
	s := &Session{Writer: w, Reader: r, cancel: cancel}
	runs := []func(context.Context) error{w.Run, r.Run}
	for _, p := range pooled {
		if p != nil {
			s.Pooled = p
			runs = append(runs, p.Run)
		}
	}
	for _, run := range runs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := run(ctx); err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
			}
		}()
	}
	return s
}

// Stop ends the traffic and waits for the loops.
func (s *Session) Stop() error {
	s.cancel()
	s.wg.Wait()
	return errors.Join(s.errs...)
}

// Baseline lets the session run for settle, then waits up to 10 s each for
// an acknowledged write (on each writer) and a successful read: before anything is broken,
// both must work, or nothing after it would be measured.
func (s *Session) Baseline(ctx context.Context, settle time.Duration) error {
	if err := wait.Sleep(ctx, settle); err != nil {
		return err
	}
	if !wait.Poll(ctx, 10*time.Second, 100*time.Millisecond, func() bool { return len(history.Acked(s.Writer.Ops())) > 0 }) {
		return fmt.Errorf("writes through %s fail before anything was broken: %s", s.Writer.Target, history.LastErr(s.Writer.Ops()))
	}
	if !wait.Poll(ctx, 10*time.Second, 100*time.Millisecond, func() bool {
		rs := history.Reads(s.Reader.Ops(), time.Time{}, time.Time{})
		return rs.Total > rs.Failed
	}) {
		return fmt.Errorf("reads through %s fail before anything was broken: %s", s.Reader.Target, history.LastErr(s.Reader.Ops()))
	}
	if p := s.Pooled; p != nil && !wait.Poll(ctx, 10*time.Second, 100*time.Millisecond, func() bool { return len(history.Acked(p.Ops())) > 0 }) {
		return fmt.Errorf("writes through the pooler %s fail before anything was broken: %s", p.Target, history.LastErr(p.Ops()))
	}
	return nil
}
