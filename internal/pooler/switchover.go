package pooler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Admin is what a switchover needs of one pooler; *Console is one.
type Admin interface {
	Name() string
	// Pause holds new transactions and returns once the running ones
	// have finished. An error wrapping ErrNothingPaused says that the
	// pooler was never reached; any other error may leave it paused.
	Pause(ctx context.Context) error
	// Resume lets the held clients go on; nil means nothing is paused.
	// It must be safe to repeat.
	Resume(ctx context.Context) error
	// Reconnect drops the server connections, so the next transaction
	// opens one to whichever node leads now.
	Reconnect(ctx context.Context) error
}

// ErrNothingPaused marks a Pause that failed before any PAUSE was sent.
var ErrNothingPaused = errors.New("nothing was paused")

// Defaults of Steps' bounds.
const (
	// DefaultPauseBound: transactions still running this long after PAUSE
	// make the switchover give up before asking Patroni (clients stall
	// meanwhile, so it is short).
	DefaultPauseBound = 10 * time.Second
	// DefaultStallBound bounds the paused phase (switch, write path,
	// reconnect). Clients are held from PAUSE on, and PgBouncer fails them
	// at query_wait_timeout: the two bounds together stay under the
	// fast profile's 30 s (userdata renders twice the failover bound); a
	// planned switchover takes a few seconds of it.
	DefaultStallBound = 15 * time.Second
	// DefaultResumeBound is how long resuming is retried, even after the
	// caller's context has ended.
	DefaultResumeBound = 30 * time.Second
)

// Steps are the caller's part of a switchover, and its bounds.
type Steps struct {
	// Switch asks Patroni to switch over and returns when it has answered.
	Switch func(ctx context.Context) error
	// WritePathReady returns once a write through the path the poolers
	// use (HAProxy's leader port) reaches the new leader.
	WritePathReady func(ctx context.Context) error
	// Bounds; zero means the default.
	PauseBound, StallBound, ResumeBound time.Duration
	// Logf, if set, narrates the steps.
	Logf func(format string, args ...any)
}

// StepTiming is one step as it ran.
type StepTiming struct {
	Name  string // pause, switch, write-path, reconnect, resume
	Start time.Time
	Took  time.Duration
	Err   string `json:",omitempty"`
}

// Result is the timing of a switchover, for the report.
type Result struct {
	Steps []StepTiming
	// PausedAt is when the first PAUSE was sent, ResumedAt when the last
	// pooler was resumed: Stall, between them, bounds how long any client
	// was held.
	PausedAt, ResumedAt time.Time
	Stall               time.Duration
	// NotResumed names the poolers that may still be paused; empty unless
	// the error says so too.
	NotResumed []string `json:",omitempty"`
}

// Step returns the named step's timing, if it ran.
func (r Result) Step(name string) (StepTiming, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return StepTiming{}, false
}

// Switchover performs a planned switchover behind the poolers: PAUSE all,
// Switch, WritePathReady, RECONNECT all, RESUME all. Clients are held, not
// failed, in between. Whatever happens (a step fails, a bound passes, ctx
// is cancelled) every pooler whose PAUSE may have taken effect is resumed,
// under a context of its own when ctx has ended, and resuming is retried
// for ResumeBound. After a failed Switch the clients resume on whichever
// node leads (the old leader, unless Patroni went ahead after all): the
// poolers are told to RECONNECT first, best effort.
func Switchover(ctx context.Context, poolers []Admin, steps Steps) (Result, error) {
	var res Result
	if steps.Switch == nil || steps.WritePathReady == nil {
		return res, errors.New("switchover: Switch and WritePathReady are required")
	}
	if len(poolers) == 0 {
		return res, errors.New("switchover: no pooler")
	}
	s := &switchover{ctx: ctx, poolers: poolers, steps: steps, res: &res}

	// PAUSE all at once: each waits for its own transactions only.
	res.PausedAt = time.Now()
	pctx, cancel := context.WithTimeout(ctx, or(steps.PauseBound, DefaultPauseBound))
	errs := s.each(pctx, "pause", Admin.Pause)
	cancel()
	for i, err := range errs {
		if err == nil || !errors.Is(err, ErrNothingPaused) {
			s.maybePaused = append(s.maybePaused, poolers[i])
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s.finish(false, fmt.Errorf("pausing the poolers (switchover not attempted): %w", err))
	}

	sctx, cancel := context.WithTimeout(ctx, or(steps.StallBound, DefaultStallBound))
	defer cancel()
	if err := s.run(sctx, "switch", steps.Switch); err != nil {
		return s.finish(true, fmt.Errorf("switchover: %w", err))
	}
	if err := s.run(sctx, "write-path", steps.WritePathReady); err != nil {
		return s.finish(true, fmt.Errorf("waiting for the write path to reach the new leader: %w", err))
	}
	if err := errors.Join(s.each(sctx, "reconnect", Admin.Reconnect)...); err != nil {
		return s.finish(false, fmt.Errorf("RECONNECT: %w", err))
	}
	return s.finish(false, nil)
}

type switchover struct {
	ctx         context.Context
	poolers     []Admin
	maybePaused []Admin
	steps       Steps
	res         *Result
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *switchover) logf(format string, args ...any) {
	if s.steps.Logf != nil {
		s.steps.Logf(format, args...)
	}
}

func (s *switchover) record(name string, start time.Time, err error) {
	t := StepTiming{Name: name, Start: start, Took: time.Since(start)}
	if err != nil {
		t.Err = err.Error()
		s.logf("pooler switchover: %s failed after %s: %v", name, t.Took.Round(time.Millisecond), err)
	} else {
		s.logf("pooler switchover: %s done in %s", name, t.Took.Round(time.Millisecond))
	}
	s.res.Steps = append(s.res.Steps, t)
}

// run runs a caller's step, and stops waiting for it when ctx ends: a
// step that ignores its context must not keep the clients held.
func (s *switchover) run(ctx context.Context, name string, f func(context.Context) error) error {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var err error
	select {
	case err = <-done:
		if err == nil && ctx.Err() != nil {
			err = ctx.Err() // finished, but past the bound: resume anyway
		}
	case <-ctx.Done():
		err = fmt.Errorf("%s abandoned: %w", name, ctx.Err())
	}
	s.record(name, start, err)
	return err
}

// each runs op on every pooler at once and returns their errors in order.
func (s *switchover) each(ctx context.Context, name string, op func(Admin, context.Context) error) []error {
	return s.eachOf(ctx, name, s.poolers, op)
}

func (s *switchover) eachOf(ctx context.Context, name string, poolers []Admin, op func(Admin, context.Context) error) []error {
	start := time.Now()
	errs := make([]error, len(poolers))
	var wg sync.WaitGroup
	for i, p := range poolers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op(p, ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.Name(), err)
			}
		}()
	}
	wg.Wait()
	s.record(name, start, errors.Join(errs...))
	return errs
}

// finish resumes every pooler that may be paused and returns the result.
// reconnect asks for a best-effort RECONNECT first (after a failed Switch
// the leader may have moved all the same).
func (s *switchover) finish(reconnect bool, cause error) (Result, error) {
	// The caller's context may be why we are here: resume under one of our
	// own, bounded, that keeps its values.
	bound := or(s.steps.ResumeBound, DefaultResumeBound)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), bound)
	defer cancel()
	if reconnect && len(s.maybePaused) > 0 {
		cctx, ccancel := context.WithTimeout(rctx, min(5*time.Second, bound/4))
		s.eachOf(cctx, "reconnect", s.maybePaused, Admin.Reconnect)
		ccancel()
	}
	if len(s.maybePaused) == 0 {
		return *s.res, cause
	}
	errs := s.eachOf(rctx, "resume", s.maybePaused, func(p Admin, ctx context.Context) error {
		return retryResume(ctx, p)
	})
	s.res.ResumedAt = time.Now()
	s.res.Stall = s.res.ResumedAt.Sub(s.res.PausedAt)
	var left []string
	for i, err := range errs {
		if err != nil {
			left = append(left, s.maybePaused[i].Name())
		}
	}
	if len(left) == 0 {
		return *s.res, cause
	}
	s.res.NotResumed = left
	loud := fmt.Errorf("POOLERS LEFT PAUSED, their clients are held until someone runs RESUME on their admin console: %s (tried for %s): %w",
		strings.Join(left, ", "), bound, errors.Join(errs...))
	return *s.res, errors.Join(loud, cause)
}

// retryResume resumes p until it says nothing is paused or ctx ends.
func retryResume(ctx context.Context, p Admin) error {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.Resume(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
