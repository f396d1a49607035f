package access

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/nstest"
)

func TestNetnsDialReachesOnlyTheNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	name := "pgha-access-test"
	nstest.New(t, name)

	// A listener on loopback inside the namespace.
	ln := nstest.Listen(t, filepath.Join(NetnsDir, name), "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()

	dial, err := Netns(name)
	require.NoError(t, err)
	c, err := dial(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	buf := make([]byte, 2)
	_, err = c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "hi", string(buf))
	c.Close()

	// The same address from the host namespace is not that listener.
	_, err = Direct()(context.Background(), "tcp", ln.Addr().String())
	require.Error(t, err)

	_, err = Netns("pgha-no-such-namespace")
	require.ErrorContains(t, err, "not found")
}
