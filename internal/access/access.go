// Package access gives validate and the lab one way to reach a cluster's
// private addresses: a dial function. pgx (pgconn.Config.DialFunc) and
// net/http (Transport.DialContext) both take one, so the same checks run
// directly, from inside the lab's client network namespace, or through an SSH
// jump host on AWS.
package access

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// DialFunc matches net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Direct dials from this host's own network.
func Direct() DialFunc {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext
}

// NetnsDir is where `ip netns` keeps its named namespaces.
const NetnsDir = "/run/netns"

// Netns dials from inside the named network namespace. The socket is created
// on a thread that has joined the namespace and keeps living there; the
// thread then returns to the host namespace. Needs CAP_SYS_ADMIN (root).
func Netns(name string) (DialFunc, error) {
	path := filepath.Join(NetnsDir, name)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("network namespace %q not found (is the lab up? try: go run ./lab status): %w", name, err)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := dialIn(ctx, path, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}, nil
}

func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	host, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer host.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering network namespace %s: %w", nsPath, err)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, dialErr := d.DialContext(ctx, network, addr)
	// A thread that cannot go home stays locked, so the runtime retires it
	// with this goroutine instead of reusing it in the wrong namespace.
	if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread()
	}
	return c, dialErr
}

// HTTPClient is an http.Client whose connections go through dial. It does
// not keep idle connections, so each request sees the current state of the
// network (a partition, a stopped node) rather than a cached socket.
func HTTPClient(dial DialFunc, timeout time.Duration) *http.Client {
	return HTTPSClient(dial, timeout, nil)
}

// HTTPSClient is HTTPClient with a TLS configuration for https:// URLs (the
// cluster's: its CA and pgha's client certificate). The server name is
// each URL's host unless cfg names one.
func HTTPSClient(dial DialFunc, timeout time.Duration, cfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       dial,
			DisableKeepAlives: true,
			Proxy:             nil,
			TLSClientConfig:   cfg,
		},
	}
}

// ListenNetns listens on addr inside the named network namespace: the
// socket stays in that namespace whatever thread accepts on it. The lab's
// S3 endpoint listens this way on each PostgreSQL node's own loopback.
func ListenNetns(name, network, addr string) (net.Listener, error) {
	path := filepath.Join(NetnsDir, name)
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer host.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("network namespace %q: %w", name, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("entering network namespace %s: %w", path, err)}
			return
		}
		ln, lnErr := net.Listen(network, addr)
		// As in dialIn: a thread that cannot go home is retired.
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, lnErr}
	}()
	r := <-ch
	return r.ln, r.err
}
