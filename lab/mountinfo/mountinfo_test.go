package mountinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMountinfoParsing(t *testing.T) {
	mi := `22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/cache/rootfs,upperdir=/state/pg\0401/upper,workdir=/state/pg\0401/work
23 22 0:5 / /proc rw - proc proc rw
24 22 0:22 / /state/pg\0401/root rw shared:1 - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c
25 24 0:23 / /state/pg\0401/root/proc rw - proc proc rw
26 24 0:23 / /state/pg\0401/root/proc rw - proc proc rw
short line
`
	p := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(p, []byte(mi), 0o644))
	mps, err := Under(p, "/state/pg 1/")
	require.NoError(t, err)
	require.Equal(t, []string{"/state/pg 1/root/proc", "/state/pg 1/root"}, mps, "deepest first, each once")
	none, err := Under(p, "/state/pg")
	require.NoError(t, err)
	require.Empty(t, none, "a prefix of a name is not a parent")
	_, err = Under(filepath.Join(t.TempDir(), "missing"), "/")
	require.Error(t, err)

	opts := RootOptions(strings.NewReader(mi))
	require.Equal(t, "/state/pg 1/upper", Option(opts, "upperdir"))
	require.Equal(t, "/cache/rootfs", Option(opts, "lowerdir"))
	require.Equal(t, "", Option(opts, "nosuch"))

	ms, err := Mounts(strings.NewReader(mi))
	require.NoError(t, err)
	require.Len(t, ms, 5, "the short line is skipped")
	require.Equal(t, Mount{Root: "/", Point: "/state/pg 1/root", FSType: "overlay", SuperOptions: "rw,lowerdir=/a,upperdir=/b,workdir=/c"}, ms[2])
	require.True(t, HasOption(ms[1].SuperOptions, "rw"))
	require.False(t, HasOption(ms[2].SuperOptions, "lowerdir"), "a key=value is not the bare flag")
}

func TestUnescape(t *testing.T) {
	require.Equal(t, "/tmp/a b", Unescape(`/tmp/a\040b`))
	require.Equal(t, "/plain", Unescape("/plain"))
	require.Equal(t, `/odd\9`, Unescape(`/odd\9`))
}

// TestSelf reads this process's own table: "/" is always mounted.
func TestSelf(t *testing.T) {
	mps, err := Under(Self, "/")
	require.NoError(t, err)
	require.Contains(t, mps, "/")
}
