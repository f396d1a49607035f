package volume

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAttachKeepsTheDisk attaches a real loop device (root only): a second
// Attach of the same file finds the same device, what was written stays
// across a detach and a new attach, and DetachUnder leaves nothing.
func TestAttachKeepsTheDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "vols", "pg-1.img")
	t.Cleanup(func() { _ = DetachUnder(dir) })

	dev, err := Attach(file, 64<<20)
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.EqualValues(t, 64<<20, st.Size())
	again, err := Attach(file, 1<<30)
	require.NoError(t, err)
	require.Equal(t, dev, again, "the file's device is reused")

	loops, err := Under(dir)
	require.NoError(t, err)
	require.Equal(t, []Loop{{Device: dev, File: file}}, loops)

	// Data written through the device is in the file, and comes back on a
	// new attach: the volume outlives its attachment.
	out, err := exec.Command("mkfs.ext4", "-q", "-L", "pgha-test", dev).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, DetachUnder(dir))
	loops, err = Under(dir)
	require.NoError(t, err)
	require.Empty(t, loops)
	dev, err = Attach(file, 1<<30)
	require.NoError(t, err)
	st, err = os.Stat(file)
	require.NoError(t, err)
	require.EqualValues(t, 64<<20, st.Size(), "an existing volume keeps its size")
	label, err := exec.Command("blkid", "-p", "-o", "value", "-s", "LABEL", dev).Output()
	require.NoError(t, err)
	require.Equal(t, "pgha-test\n", string(label))
	require.NoError(t, DetachUnder(dir))
}
