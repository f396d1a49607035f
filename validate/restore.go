package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// restorer remembers what validate broke, so that it is put back whatever
// happens next: a failed check, an error, or Ctrl-C. Restores run newest
// first, each with a fresh context, because the run's own context may be the
// thing that was cancelled.
type restorer struct {
	out     io.Writer
	mu      sync.Mutex
	pending []*restoreStep
	errs    []string
}

type restoreStep struct {
	what string
	fn   func(ctx context.Context) error
	done bool
}

// push records how to undo something that is about to be broken, and returns
// a function that performs it now (once) and reports its error.
func (r *restorer) push(what string, fn func(ctx context.Context) error) func() error {
	st := &restoreStep{what: what, fn: fn}
	r.mu.Lock()
	r.pending = append(r.pending, st)
	r.mu.Unlock()
	return func() error { return r.run(st) }
}

func (r *restorer) run(st *restoreStep) error {
	r.mu.Lock()
	if st.done {
		r.mu.Unlock()
		return nil
	}
	st.done = true
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := st.fn(ctx); err != nil {
		msg := fmt.Sprintf("restoring %s failed: %v", st.what, err)
		r.mu.Lock()
		r.errs = append(r.errs, msg)
		r.mu.Unlock()
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// all runs every pending restore. It returns the failures so far.
func (r *restorer) all() []string {
	r.mu.Lock()
	steps := append([]*restoreStep(nil), r.pending...)
	r.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		st := steps[i]
		r.mu.Lock()
		done := st.done
		r.mu.Unlock()
		if done {
			continue
		}
		fmt.Fprintf(r.out, "restoring %s ...\n", st.what)
		if err := r.run(st); err != nil {
			fmt.Fprintf(r.out, "  %v\n", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}
