package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// PrimaryProbe asks one node whether it is the primary right now (Patroni's
// GET /primary answering 200).
type PrimaryProbe func(ctx context.Context, host string) (bool, error)

// Watch polls /primary on every node at once, again and again, and counts
// the instants at which more than one node claimed to be primary. A node
// that does not answer (crashed, partitioned away from the client) cannot
// be counted; the write history's own check covers that case (no write
// acknowledged by the old leader after the new one was seen leading).
//
// This is the bench's own simple detector; the resilience matrix has a
// fuller one.
type Watch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	polls   int
	doubles int
	seen    []string // "hh:mm:ss.mmm a+b" of the first few double instants
}

// WatchPrimaries starts polling hosts every interval; each probe gets at
// most timeout.
func WatchPrimaries(ctx context.Context, hosts []string, probe PrimaryProbe, interval, timeout time.Duration) *Watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.pollOnce(ctx, hosts, probe, timeout)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *Watch) pollOnce(ctx context.Context, hosts []string, probe PrimaryProbe, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	at := time.Now()
	var mu sync.Mutex
	var primaries []string
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := probe(pctx, h); err == nil && ok {
				mu.Lock()
				primaries = append(primaries, h)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // stopped mid-poll: not an instant
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	if len(primaries) > 1 {
		w.doubles++
		if len(w.seen) < 5 {
			sort.Strings(primaries)
			w.seen = append(w.seen, fmt.Sprintf("%s %s", at.UTC().Format("15:04:05.000"), strings.Join(primaries, "+")))
		}
	}
}

// Stop ends the polling and returns the instants with two or more
// primaries, the instants polled, and the first few double instants.
func (w *Watch) Stop() (doubles, polls int, seen []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.doubles, w.polls, append([]string(nil), w.seen...)
}
