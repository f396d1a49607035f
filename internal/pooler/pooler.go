// Package pooler drives PgBouncer, the clients' entry point in front of
// HAProxy's leader port, through its admin console, and holds clients
// through a planned switchover so that they see a stall, not an error.
//
// The switchover (Switchover) pauses every pooler (PAUSE waits for the
// running transactions to finish and closes the server connections, new
// queries queue in the pooler), asks Patroni to switch over, waits until
// the write path reaches the new leader, makes the poolers drop any server
// connection they still hold (RECONNECT), and resumes them. Every exit
// path resumes: a failed step, a cancelled context (Ctrl-C), a PAUSE cut
// short. A pooler that cannot be resumed is named in the error, because
// its clients stay held until someone runs RESUME.
//
// PgBouncer 1.18 (Debian 12) facts this package is built on, read in its
// source (src/admin.c, src/janitor.c) and checked on the binary by the
// tests:
//   - The admin console (the virtual database "pgbouncer") speaks only the
//     simple query protocol: a Parse message gets "extended query protocol
//     not supported by admin console" and the connection is dropped.
//   - It has no SHOW STATE (1.19 added it): a global PAUSE cannot be read
//     back. A per-database PAUSE can (SHOW DATABASES, column paused), so
//     Console pauses database by database and reads the state back after
//     RESUME. A global PAUSE (or SIGUSR1) by someone else stays invisible
//     to it, and Resume does not undo it.
//   - PAUSE returns only once the paused databases have no active server
//     connection. The pause takes effect when PgBouncer reads the command,
//     not when it answers: a PAUSE abandoned by its client leaves the
//     database pausing (clients held, server connections closed as they
//     are released) until a RESUME.
//   - RESUME of a database that is not paused is an error ("database X is
//     not paused"); Console treats it as done, so Resume can be retried.
package pooler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgha/pgha/internal/pg"
)

// AdminDatabase is PgBouncer's virtual admin database.
const AdminDatabase = "pgbouncer"

// Console is one PgBouncer's admin console. Every command opens a
// connection of its own: a command cut short closes its connection, and
// a RESUME never waits behind a PAUSE still queued on a shared one.
type Console struct {
	// Node names the pooler in errors and reports.
	Node string
	// Target is how to reach it: address, dial path, an admin_users user
	// and its password (SCRAM), and TLS that verifies PgBouncer's
	// certificate (client_tls_* on its side). Database is ignored.
	Target pg.Target
	// PauseDatabases are the databases to pause; empty means every one
	// it serves (SHOW DATABASES), the admin database excepted.
	PauseDatabases []string
}

// Name is the pooler's name.
func (c *Console) Name() string {
	if c.Node != "" {
		return c.Node
	}
	return c.Target.String()
}

// connect opens an admin session. A cancelled context closes the socket
// at once (pgx would otherwise send PostgreSQL's cancel request, which the
// admin console does not act on, and wait for an answer that never comes
// to a PAUSE).
func (c *Console) connect(ctx context.Context) (*pgx.Conn, error) {
	t := c.Target
	t.Database = AdminDatabase
	t.SessionAttrs = "" // it would run SHOW transaction_read_only
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.StatementCacheCapacity = 0
	cfg.DescriptionCacheCapacity = 0
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pooler %s: admin console: %w", c.Name(), err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// Database is one row of SHOW DATABASES.
type Database struct {
	Name     string
	Host     string
	Port     int
	DBName   string // the server's database
	Paused   bool
	Disabled bool
}

// Pool is one row of SHOW POOLS.
type Pool struct {
	Database, User       string
	ClientsActive        int
	ClientsWaiting       int // queued in the pooler: a pause holds them here
	ServersActive        int
	ServersIdle          int
	ServersUsed          int
	MaxWait              time.Duration // the oldest waiting client's wait
	Mode                 string
	ServersLogin, Tested int
}

// Databases runs SHOW DATABASES.
func (c *Console) Databases(ctx context.Context) ([]Database, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	return c.databases(ctx, conn)
}

func (c *Console) databases(ctx context.Context, conn *pgx.Conn) ([]Database, error) {
	rows, err := show(ctx, conn, "SHOW DATABASES")
	if err != nil {
		return nil, fmt.Errorf("pooler %s: %w", c.Name(), err)
	}
	var dbs []Database
	for _, r := range rows {
		dbs = append(dbs, Database{Name: r["name"], Host: r["host"], Port: atoi(r["port"]), DBName: r["database"],
			Paused: r["paused"] == "1", Disabled: r["disabled"] == "1"})
	}
	return dbs, nil
}

// Pools runs SHOW POOLS.
func (c *Console) Pools(ctx context.Context) ([]Pool, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	rows, err := show(ctx, conn, "SHOW POOLS")
	if err != nil {
		return nil, fmt.Errorf("pooler %s: %w", c.Name(), err)
	}
	var ps []Pool
	for _, r := range rows {
		ps = append(ps, Pool{Database: r["database"], User: r["user"],
			ClientsActive: atoi(r["cl_active"]), ClientsWaiting: atoi(r["cl_waiting"]),
			ServersActive: atoi(r["sv_active"]), ServersIdle: atoi(r["sv_idle"]), ServersUsed: atoi(r["sv_used"]),
			ServersLogin: atoi(r["sv_login"]), Tested: atoi(r["sv_tested"]),
			MaxWait: time.Duration(atoi(r["maxwait"]))*time.Second + time.Duration(atoi(r["maxwait_us"]))*time.Microsecond,
			Mode:    r["pool_mode"]})
	}
	return ps, nil
}

// Paused names the databases that are paused (or pausing).
func (c *Console) Paused(ctx context.Context) ([]string, error) {
	dbs, err := c.Databases(ctx)
	if err != nil {
		return nil, err
	}
	return pausedNames(dbs), nil
}

func pausedNames(dbs []Database) []string {
	var names []string
	for _, d := range dbs {
		if d.Paused {
			names = append(names, d.Name)
		}
	}
	return names
}

// Pause pauses the databases one by one, each PAUSE returning once its
// running transactions have finished. It returns when all are paused.
// If ctx ends first, the databases already paused, and the one whose PAUSE
// was cut short, stay paused: call Resume.
func (c *Console) Pause(ctx context.Context) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("%w (%w)", err, ErrNothingPaused)
	}
	defer closeConn(conn)
	names := c.PauseDatabases
	if len(names) == 0 {
		dbs, err := c.databases(ctx, conn)
		if err != nil {
			return fmt.Errorf("%w (%w)", err, ErrNothingPaused)
		}
		for _, d := range dbs {
			if d.Name != AdminDatabase {
				names = append(names, d.Name)
			}
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("pooler %s serves no database to pause (%w)", c.Name(), ErrNothingPaused)
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "PAUSE "+ident(n)); err != nil {
			return fmt.Errorf("pooler %s: PAUSE %s: %w", c.Name(), n, ctxErr(ctx, err))
		}
	}
	return nil
}

// Resume resumes every paused database, whoever paused it, and reads the
// state back: nil means no database of the pooler is paused.
func (c *Console) Resume(ctx context.Context) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	dbs, err := c.databases(ctx, conn)
	if err != nil {
		return err
	}
	for _, n := range pausedNames(dbs) {
		if _, err := conn.Exec(ctx, "RESUME "+ident(n)); err != nil && !notPaused(err) {
			return fmt.Errorf("pooler %s: RESUME %s: %w", c.Name(), n, ctxErr(ctx, err))
		}
	}
	dbs, err = c.databases(ctx, conn)
	if err != nil {
		return err
	}
	if left := pausedNames(dbs); len(left) > 0 {
		return fmt.Errorf("pooler %s: still paused after RESUME: %v", c.Name(), left)
	}
	return nil
}

// PoolMode is the pooler's pool_mode (SHOW CONFIG): "transaction",
// "session" or "statement".
func (c *Console) PoolMode(ctx context.Context) (string, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return "", err
	}
	defer closeConn(conn)
	rows, err := show(ctx, conn, "SHOW CONFIG")
	if err != nil {
		return "", fmt.Errorf("pooler %s: SHOW CONFIG: %w", c.Name(), ctxErr(ctx, err))
	}
	for _, r := range rows {
		if r["key"] == "pool_mode" {
			return r["value"], nil
		}
	}
	return "", fmt.Errorf("pooler %s: SHOW CONFIG has no pool_mode", c.Name())
}

// Reconnect makes the pooler close every server connection as soon as it
// is released (RECONNECT), so that the next transaction opens a new one
// through HAProxy, to whichever node leads now.
func (c *Console) Reconnect(ctx context.Context) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "RECONNECT"); err != nil {
		return fmt.Errorf("pooler %s: RECONNECT: %w", c.Name(), ctxErr(ctx, err))
	}
	return nil
}

// show runs an admin SHOW and returns its rows by column name: columns are
// looked up by name because newer PgBouncers add some.
func show(ctx context.Context, conn *pgx.Conn, q string) ([]map[string]string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		fds := rows.FieldDescriptions()
		raw := rows.RawValues()
		m := make(map[string]string, len(fds))
		for i, fd := range fds {
			if i < len(raw) && raw[i] != nil {
				m[fd.Name] = string(raw[i])
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", q, ctxErr(ctx, err))
	}
	return out, nil
}

// ident quotes a database name for the admin console's parser, which takes
// [0-9a-z_]+ or a double-quoted word with "" for a quote.
func ident(name string) string {
	if name != "" && !slices.ContainsFunc([]rune(name), func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// notPaused is RESUME's answer for a database that is not paused.
func notPaused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Message == "pooler is not paused/suspended" ||
		strings.HasPrefix(pe.Message, "database ") && strings.HasSuffix(pe.Message, " is not paused"))
}

// ctxErr says that the context ended the command rather than the
// deadline handler's "i/o timeout".
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
