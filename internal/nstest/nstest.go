// Package nstest holds test helpers for network namespaces.
package nstest

import (
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Listen listens on TCP addr inside the network namespace bound at path
// (e.g. /run/netns/NAME) and closes the listener when the test ends. The
// goroutine's thread stays in the namespace and is retired with it.
func Listen(t testing.TB, path, addr string) net.Listener {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- res{ln, err}
	}()
	r := <-ch
	require.NoError(t, r.err)
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}
