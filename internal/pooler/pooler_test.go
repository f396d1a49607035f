package pooler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// PAUSE holds a client's query, RESUME lets it finish, RECONNECT moves the
// client to a new server connection: each seen on the real daemons.
func TestConsoleOnRealPgBouncer(t *testing.T) {
	e := newEnv(t)
	s := e.startPostgres()
	b := e.startPgBouncer(s.port, bouncerOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dbs, err := b.console.Databases(ctx)
	require.NoError(t, err)
	var names []string
	for _, d := range dbs {
		names = append(names, d.Name)
	}
	require.ElementsMatch(t, []string{"app", AdminDatabase}, names)
	mode, err := b.console.PoolMode(ctx)
	require.NoError(t, err)
	require.Equal(t, "transaction", mode)

	c, err := e.client(ctx, b)
	require.NoError(t, err)
	defer c.Close(ctx)
	pid := func() int {
		t.Helper()
		var p int
		require.NoError(t, c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p))
		return p
	}

	t.Run("pause holds a query until resume", func(t *testing.T) {
		require.NoError(t, b.console.Pause(ctx))
		paused, err := b.console.Paused(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"app"}, paused)

		done := make(chan error, 1)
		go func() {
			var n int
			err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&n)
			if err == nil && n != 42 {
				err = fmt.Errorf("got %d", n)
			}
			done <- err
		}()
		// The query is queued in the pooler (not merely slow).
		require.Eventually(t, func() bool {
			pools, err := b.console.Pools(ctx)
			require.NoError(t, err)
			for _, p := range pools {
				if p.Database == "app" && p.User == "app" && p.ClientsWaiting > 0 {
					return true
				}
			}
			return false
		}, 30*time.Second, 50*time.Millisecond, "no client waiting in the paused pool")
		select {
		case err := <-done:
			t.Fatalf("the query finished while the pooler was paused: %v", err)
		default:
		}
		require.NoError(t, b.console.Resume(ctx))
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("the query did not finish after RESUME")
		}
		e.requireResumed(b)
		require.NoError(t, b.console.Resume(ctx), "RESUME of a pooler that is not paused is no error")
	})

	t.Run("reconnect replaces the server connection", func(t *testing.T) {
		before := pid()
		require.Equal(t, before, pid(), "an idle pool reuses its server connection")
		require.NoError(t, b.console.Reconnect(ctx))
		require.NotEqual(t, before, pid(), "after RECONNECT the next transaction has a new server connection")
	})

	t.Run("a PAUSE cut short leaves the pooler pausing", func(t *testing.T) {
		// A transaction through the pooler keeps PAUSE waiting.
		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err = b.console.Pause(pctx)
		pcancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotErrorIs(t, err, ErrNothingPaused)
		paused, err := b.console.Paused(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"app"}, paused, "the abandoned PAUSE still holds the database")
		require.NoError(t, b.console.Resume(ctx))
		require.NoError(t, tx.Commit(ctx), "the transaction PAUSE waited for goes on")
		e.requireResumed(b)
	})

	t.Run("the admin console refuses the extended protocol", func(t *testing.T) {
		// Why Console forces the simple protocol: pgx's default prepares.
		tg := b.console.Target
		tg.Database = AdminDatabase
		conn, err := tg.Connect(ctx)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SHOW DATABASES", pgx.QueryExecModeCacheStatement)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		require.ErrorContains(t, err, "extended query protocol not supported by admin console")
	})

	t.Run("unreachable or refused: nothing paused", func(t *testing.T) {
		bad := *b.console
		bad.Target.Password = "wrong"
		require.ErrorIs(t, bad.Pause(ctx), ErrNothingPaused)
		gone := *b.console
		gone.Target.Port = freePort(t)
		require.ErrorIs(t, gone.Pause(ctx), ErrNothingPaused)
		e.requireResumed(b)
	})
}

// PgBouncer 1.18 cannot log its auth_user into PostgreSQL with a SCRAM
// secret (no client's keys to pass through): the auth_user's password must
// be in auth_file as such. If this starts passing, the secret will do.
func TestAuthUserNeedsItsPassword(t *testing.T) {
	e := newEnv(t)
	s := e.startPostgres()
	b := e.startPgBouncer(s.port, bouncerOpts{authUserSecret: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.client(ctx, b)
	if err == nil {
		c.Close(ctx)
	}
	require.Error(t, err, "a client logged in through an auth_user that has only a SCRAM secret")
	logb, err := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	require.NoError(t, err)
	require.Contains(t, string(logb), "password is SCRAM secret but client authentication did not provide SCRAM keys")
}

// The planned switchover with clients running through the pooler: the
// leader port moves from one server to another, cutting its sessions as
// HAProxy does, and no client sees an error.
func TestSwitchoverUnderLoadNoClientError(t *testing.T) {
	e := newEnv(t)
	a, bsrv := e.startPostgres(), e.startPostgres()
	px := startProxy(t, a.port)
	pb := e.startPgBouncer(px.port(), bouncerOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	writePathOn := func(port int) func(context.Context) error {
		return func(ctx context.Context) error {
			for {
				if c, err := e.client(ctx, &bouncer{port: px.port()}); err == nil {
					// straight through the leader port, not the pooler
					p, err := serverPort(ctx, c)
					c.Close(context.Background())
					if err == nil && p == port {
						return nil
					}
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}
	l := e.startLoad(pb, 4)
	require.Eventually(t, func() bool { return l.on(a.port) >= 50 }, time.Minute, 50*time.Millisecond)

	var switched int
	res, err := Switchover(ctx, []Admin{pb.console}, Steps{
		Switch: func(ctx context.Context) error {
			switched++
			paused, err := pb.console.Paused(ctx)
			if err != nil || len(paused) == 0 {
				return fmt.Errorf("the pooler is not paused during the switch: %v %v", paused, err)
			}
			px.point(bsrv.port)
			return nil
		},
		WritePathReady: writePathOn(bsrv.port),
		Logf:           t.Logf,
	})
	require.NoError(t, err)
	require.Equal(t, 1, switched)
	require.Eventually(t, func() bool { return l.on(bsrv.port) >= 50 }, time.Minute, 50*time.Millisecond)
	l.stop()
	require.Empty(t, l.failures(), "clients saw errors through the switchover")
	e.requireResumed(pb)

	var order []string
	for _, s := range res.Steps {
		order = append(order, s.Name)
		require.Empty(t, s.Err)
	}
	require.Equal(t, []string{"pause", "switch", "write-path", "reconnect", "resume"}, order)
	require.Positive(t, res.Stall)
	require.Empty(t, res.NotResumed)
	t.Logf("stall %s, steps %+v, ops on the old server %d, on the new %d", res.Stall, res.Steps, l.on(a.port), l.on(bsrv.port))

	// The control: the same move without the pooler's protocol fails
	// clients, so the zero above is the protocol's doing.
	l2 := e.startLoad(pb, 4)
	defer l2.stop()
	to := a.port
	for i := 0; i < 10 && len(l2.failures()) == 0; i++ {
		before := l2.on(a.port) + l2.on(bsrv.port)
		require.Eventually(t, func() bool { return l2.on(a.port)+l2.on(bsrv.port) > before+20 }, time.Minute, 10*time.Millisecond)
		px.point(to)
		to = map[int]int{a.port: bsrv.port, bsrv.port: a.port}[to]
		time.Sleep(500 * time.Millisecond)
	}
	require.NotEmpty(t, l2.failures(), "cutting the leader's sessions under the pooler never failed a client")
	t.Logf("control, without the protocol: %d failed operations, e.g. %v", len(l2.failures()), l2.failures()[0])
}

// A pooler left paused is impossible: interrupt the switchover at each
// step and ask the real PgBouncer afterwards.
func TestSwitchoverNeverLeavesThePoolerPaused(t *testing.T) {
	e := newEnv(t)
	s := e.startPostgres()
	b := e.startPgBouncer(s.port, bouncerOpts{})
	base, cancelBase := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelBase()

	// mustBePaused proves that the interruption hit a paused pooler.
	mustBePaused := func(ctx context.Context) error {
		paused, err := b.console.Paused(ctx)
		if err != nil {
			return err
		}
		if len(paused) == 0 {
			return errors.New("the pooler is not paused during the switchover")
		}
		return nil
	}
	ok := func(ctx context.Context) error { return mustBePaused(ctx) }
	fail := func(ctx context.Context) error {
		if err := mustBePaused(ctx); err != nil {
			return err
		}
		return errInjected
	}

	for _, tc := range []struct {
		name     string
		poolers  func() []Admin
		steps    func(cancel context.CancelFunc) Steps
		wantErr  error
		wantStep string // the last step before resuming
	}{
		{name: "switch fails", steps: func(context.CancelFunc) Steps {
			return Steps{Switch: fail, WritePathReady: ok}
		}, wantErr: errInjected, wantStep: "switch"},
		{name: "write path never ready", steps: func(context.CancelFunc) Steps {
			return Steps{Switch: ok, WritePathReady: fail}
		}, wantErr: errInjected, wantStep: "write-path"},
		{name: "cancelled during switch", steps: func(cancel context.CancelFunc) Steps {
			return Steps{Switch: func(ctx context.Context) error {
				if err := mustBePaused(ctx); err != nil {
					return err
				}
				cancel() // Ctrl-C
				<-ctx.Done()
				return ctx.Err()
			}, WritePathReady: ok}
		}, wantErr: context.Canceled, wantStep: "switch"},
		{name: "cancelled during write path", steps: func(cancel context.CancelFunc) Steps {
			return Steps{Switch: ok, WritePathReady: func(ctx context.Context) error {
				if err := mustBePaused(ctx); err != nil {
					return err
				}
				cancel()
				<-ctx.Done()
				return ctx.Err()
			}}
		}, wantErr: context.Canceled, wantStep: "write-path"},
		{name: "a switch that ignores its context", steps: func(context.CancelFunc) Steps {
			stuck := make(chan struct{})
			t.Cleanup(func() { close(stuck) })
			return Steps{Switch: func(ctx context.Context) error {
				if err := mustBePaused(ctx); err != nil {
					return err
				}
				<-stuck
				return nil
			}, WritePathReady: ok, StallBound: 2 * time.Second}
		}, wantErr: context.DeadlineExceeded, wantStep: "switch"},
		{name: "reconnect fails", poolers: func() []Admin {
			return []Admin{failReconnect{b.console}}
		}, steps: func(context.CancelFunc) Steps {
			return Steps{Switch: ok, WritePathReady: ok}
		}, wantErr: errInjected, wantStep: "reconnect"},
		{name: "another pooler refuses the pause", poolers: func() []Admin {
			bad := *b.console
			bad.Node = "refusing"
			bad.Target.Password = "wrong"
			return []Admin{b.console, &bad}
		}, steps: func(context.CancelFunc) Steps {
			return Steps{Switch: fail, WritePathReady: fail}
		}, wantErr: ErrNothingPaused, wantStep: "pause"},
		{name: "cancelled while PAUSE waits for a transaction", steps: func(cancel context.CancelFunc) Steps {
			c, err := e.client(base, b)
			require.NoError(t, err)
			tx, err := c.Begin(base)
			require.NoError(t, err)
			_, err = tx.Exec(base, "SELECT 1")
			require.NoError(t, err)
			t.Cleanup(func() { tx.Rollback(context.Background()); c.Close(context.Background()) })
			go func() {
				// Ctrl-C once the pooler is pausing.
				for range 600 {
					if mustBePaused(base) == nil {
						cancel()
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			return Steps{Switch: fail, WritePathReady: fail}
		}, wantErr: context.Canceled, wantStep: "pause"},
		{name: "a transaction outlives the pause bound", steps: func(context.CancelFunc) Steps {
			c, err := e.client(base, b)
			require.NoError(t, err)
			tx, err := c.Begin(base)
			require.NoError(t, err)
			_, err = tx.Exec(base, "SELECT 1")
			require.NoError(t, err)
			t.Cleanup(func() { tx.Rollback(context.Background()); c.Close(context.Background()) })
			return Steps{Switch: fail, WritePathReady: fail, PauseBound: time.Second}
		}, wantErr: context.DeadlineExceeded, wantStep: "pause"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(base)
			defer cancel()
			poolers := []Admin{b.console}
			if tc.poolers != nil {
				poolers = tc.poolers()
			}
			res, err := Switchover(ctx, poolers, tc.steps(cancel))
			require.ErrorIs(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "LEFT PAUSED")
			require.Empty(t, res.NotResumed)
			var last string
			for _, s := range res.Steps {
				if s.Name != "resume" && !(s.Name == "reconnect" && tc.wantStep != "reconnect") {
					last = s.Name
				}
			}
			require.Equal(t, tc.wantStep, last, "steps %+v", res.Steps)
			rs, ran := res.Step("resume")
			require.True(t, ran, "no resume in %+v", res.Steps)
			require.Empty(t, rs.Err)
			e.requireResumed(b)
		})
	}
}

// failReconnect is a pooler whose RECONNECT fails.
type failReconnect struct{ *Console }

func (failReconnect) Reconnect(context.Context) error { return errInjected }

// A pooler that cannot be resumed is named, loudly.
func TestSwitchoverReportsAPoolerLeftPaused(t *testing.T) {
	stuck := &fakeAdmin{name: "stuck", resumeErr: errInjected}
	fine := &fakeAdmin{name: "fine"}
	res, err := Switchover(context.Background(), []Admin{fine, stuck}, Steps{
		Switch:         func(context.Context) error { return nil },
		WritePathReady: func(context.Context) error { return nil },
		ResumeBound:    time.Second,
	})
	require.ErrorIs(t, err, errInjected)
	require.ErrorContains(t, err, "POOLERS LEFT PAUSED")
	require.ErrorContains(t, err, "stuck")
	require.Equal(t, []string{"stuck"}, res.NotResumed)
	require.Greater(t, stuck.resumes, 1, "resuming is retried")
	require.Equal(t, 1, fine.resumes)
	require.Equal(t, 1, fine.reconnects)
}

// A pooler never reached is not resumed, and not reported as left paused.
func TestSwitchoverSkipsPoolersNeverPaused(t *testing.T) {
	gone := &fakeAdmin{name: "gone", pauseErr: fmt.Errorf("dial: refused (%w)", ErrNothingPaused)}
	fine := &fakeAdmin{name: "fine"}
	switched := false
	res, err := Switchover(context.Background(), []Admin{fine, gone}, Steps{
		Switch:         func(context.Context) error { switched = true; return nil },
		WritePathReady: func(context.Context) error { return nil },
	})
	require.ErrorIs(t, err, ErrNothingPaused)
	require.False(t, switched, "no switchover without every pooler paused")
	require.Empty(t, res.NotResumed)
	require.Equal(t, 0, gone.resumes)
	require.Equal(t, 1, fine.resumes)
}

type fakeAdmin struct {
	name                        string
	pauseErr, resumeErr         error
	mu                          sync.Mutex
	pauses, resumes, reconnects int
}

func (f *fakeAdmin) Name() string { return f.name }
func (f *fakeAdmin) Pause(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pauses++
	return f.pauseErr
}
func (f *fakeAdmin) Resume(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumes++
	return f.resumeErr
}
func (f *fakeAdmin) Reconnect(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconnects++
	return nil
}

// A pooler that pools sessions says so: the switchover asks before it
// pauses, because PAUSE would wait for every client session to end.
func TestPoolModeOnRealPgBouncer(t *testing.T) {
	e := newEnv(t)
	s := e.startPostgres()
	b := e.startPgBouncer(s.port, bouncerOpts{poolMode: "session"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mode, err := b.console.PoolMode(ctx)
	require.NoError(t, err)
	require.Equal(t, "session", mode)
}
