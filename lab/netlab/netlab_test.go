package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nstest"
)

// TestNetworkConnectsCutsAndHeals builds a two-host lab network, proves a
// TCP connection crosses the bridge, that a cut link is a real partition,
// and that Delete leaves no namespace behind. About 1 s, as root.
func TestNetworkConnectsCutsAndHeals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	lab := fmt.Sprintf("pghanet%d", os.Getpid())
	n := Network{
		Lab:    lab,
		Prefix: netip.MustParsePrefix("10.42.0.0/16"),
		Hosts: []Host{
			{Name: "a", IP: netip.MustParseAddr("10.42.4.10")},
			{Name: "b", IP: netip.MustParseAddr("10.42.0.200")},
		},
	}
	require.NoError(t, n.Create())
	t.Cleanup(func() { _ = n.Delete() })
	require.ElementsMatch(t, []string{lab + "-a", lab + "-b", lab + "-net"}, Existing(lab))
	require.ErrorContains(t, n.Create(), "already exist", "a second Create must fail, not build over the first")

	ln := nstest.Listen(t, filepath.Join(NetnsDir, Namespace(lab, "a")), "10.42.4.10:7777")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			c.Close()
		}
	}()
	dial, err := access.Netns(Namespace(lab, "b"))
	require.NoError(t, err)
	reach := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := dial(ctx, "tcp", "10.42.4.10:7777")
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2)
		_, err = c.Read(buf)
		return err
	}
	require.NoError(t, reach())
	require.Len(t, Existing(lab), 3, "the refused second Create must leave the first intact")

	require.NoError(t, n.Cut("a"))
	cut, err := n.IsCut("a")
	require.NoError(t, err)
	require.True(t, cut)
	require.Error(t, reach(), "a cut link must not carry traffic")

	require.NoError(t, n.Heal("a"))
	cut, err = n.IsCut("a")
	require.NoError(t, err)
	require.False(t, cut)
	require.Eventually(t, func() bool { return reach() == nil }, 10*time.Second, 100*time.Millisecond)

	require.NoError(t, n.Delete())
	require.Empty(t, Existing(lab))
}
