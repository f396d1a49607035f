package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The mirror names in these tests are placeholders under example.invalid.

func TestParseSourcesList(t *testing.T) {
	in := `# a comment
deb http://mirror.example.invalid/debian bookworm main contrib
deb-src http://mirror.example.invalid/debian bookworm main

deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/k.gpg] http://sec.example.invalid/debian-security bookworm-security main # trailing
`
	got, err := ParseSourcesList(strings.NewReader(in), "sources.list")
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, []string{"deb"}, got[0].Types)
	require.Equal(t, []string{"http://mirror.example.invalid/debian"}, got[0].URIs)
	require.Equal(t, []string{"bookworm"}, got[0].Suites)
	require.Equal(t, []string{"main", "contrib"}, got[0].Components)
	require.Equal(t, []string{"deb-src"}, got[1].Types)
	require.Equal(t, map[string]string{
		"architectures": "amd64 arm64",
		"signed-by":     "/usr/share/keyrings/k.gpg",
	}, got[2].Options)

	for _, bad := range []string{
		"rpm http://x.invalid/ bookworm main",
		"deb [arch=amd64 http://x.invalid/ bookworm",
		"deb http://x.invalid/",
		"deb [trusted] http://x.invalid/ bookworm main",
	} {
		_, err := ParseSourcesList(strings.NewReader(bad), "f.list")
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "f.list:1")
	}
}

func TestParseDeb822(t *testing.T) {
	in := `# Debian's own layout
Types: deb deb-src
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

types: deb
uris: http://off.example.invalid/debian
suites: bookworm
components: main
enabled: no

Types: deb
URIs: http://inline.example.invalid/debian
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZ
 -----END PGP PUBLIC KEY BLOCK-----
`
	got, err := ParseDeb822(strings.NewReader(in), "debian.sources")
	require.NoError(t, err)
	require.Len(t, got, 2, "the disabled stanza is dropped")
	require.Equal(t, []string{"deb", "deb-src"}, got[0].Types)
	require.Equal(t, []string{"bookworm", "bookworm-updates"}, got[0].Suites)
	require.Equal(t, "/usr/share/keyrings/debian-archive-keyring.gpg", got[0].Options["signed-by"])
	require.Equal(t, "\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n-----END PGP PUBLIC KEY BLOCK-----",
		got[1].Options["signed-by"])

	// What Deb822 writes parses back to the same sources.
	back, err := ParseDeb822(strings.NewReader(Deb822(got)), "x")
	require.NoError(t, err)
	for i := range got {
		got[i].File, back[i].File = "", ""
	}
	require.Equal(t, got, back)

	_, err = ParseDeb822(strings.NewReader("Types: deb\nSuites: bookworm\n"), "y.sources")
	require.ErrorContains(t, err, "y.sources:1")
	_, err = ParseDeb822(strings.NewReader(" continuation\n"), "z.sources")
	require.Error(t, err)
}

func TestHostSourcesReadsWhatAptReads(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte(s), 0o644))
	}
	write("etc/apt/sources.list", "deb http://a.example.invalid/debian bookworm main\n")
	write("etc/apt/sources.list.d/b.sources", "Types: deb\nURIs: http://b.example.invalid/debian\nSuites: bookworm\nComponents: main\n")
	write("etc/apt/sources.list.d/c.list", "deb http://c.example.invalid/debian bookworm main\n")
	// apt ignores these names, and so must we.
	write("etc/apt/sources.list.d/d.list.disabled", "deb http://d.example.invalid/debian bookworm main\n")
	write("etc/apt/sources.list.d/e.sources.save", "garbage")

	got, err := HostSources(root)
	require.NoError(t, err)
	var uris []string
	for _, s := range got {
		uris = append(uris, s.URIs...)
	}
	require.Equal(t, []string{"http://a.example.invalid/debian", "http://b.example.invalid/debian", "http://c.example.invalid/debian"}, uris)

	empty, err := HostSources(t.TempDir())
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestMirrorAndDebianSources(t *testing.T) {
	srcs := []Source{
		{Types: []string{"deb"}, URIs: []string{"https://tool.example.invalid/apt"}, Suites: []string{"stable"}, Components: []string{"main"}},
		{Types: []string{"deb-src"}, URIs: []string{"http://src.example.invalid/debian"}, Suites: []string{"bookworm"}, Components: []string{"main"}},
		{Types: []string{"deb"}, URIs: []string{"mirror+file:///etc/apt/mirrors/debian.list", "http://m.example.invalid/debian/"}, Suites: []string{"bookworm", "bookworm-updates", "bookworm-backports"}, Components: []string{"main"}},
		{Types: []string{"deb", "deb-src"}, URIs: []string{"http://s.example.invalid/debian-security"}, Suites: []string{"bookworm-security"}, Components: []string{"main"}},
	}
	uri, src, err := Mirror(srcs, "bookworm")
	require.NoError(t, err)
	require.Equal(t, "http://m.example.invalid/debian", uri, "first fetchable URI, without the trailing slash")
	require.Equal(t, srcs[2].Suites, src.Suites)

	deb := DebianSources(srcs, "bookworm")
	require.Len(t, deb, 2)
	require.Equal(t, []string{"bookworm", "bookworm-updates"}, deb[0].Suites, "backports and other suites are dropped")
	require.Equal(t, []string{"deb"}, deb[1].Types)

	_, _, err = Mirror(srcs[:2], "bookworm")
	require.ErrorContains(t, err, "add the Debian mirror")
}
