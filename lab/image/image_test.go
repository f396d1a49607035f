package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecipeHash(t *testing.T) {
	a := NewRecipe("bookworm", "amd64", []string{"haproxy", "curl", "curl"})
	b := NewRecipe("bookworm", "amd64", []string{"curl", "haproxy"})
	require.Equal(t, a.Hash(), b.Hash(), "order and duplicates of the package list do not matter")
	require.Len(t, a.Hash(), 16)
	require.Equal(t, []string{"curl", "haproxy"}, a.RepoPackages)

	differ := map[string]Recipe{
		"packages": NewRecipe("bookworm", "amd64", []string{"curl"}),
		"suite":    NewRecipe("trixie", "amd64", []string{"curl", "haproxy"}),
		"arch":     NewRecipe("bookworm", "arm64", []string{"curl", "haproxy"}),
	}
	c := b
	c.Files = append(append([]File(nil), b.Files...), File{Path: "etc/x", Mode: 0o644, Data: "x"})
	differ["files"] = c
	d := b
	d.Version++
	differ["version"] = d
	e := b
	e.Include = append(append([]string(nil), b.Include...), "vim")
	differ["include"] = e
	for what, r := range differ {
		require.NotEqual(t, a.Hash(), r.Hash(), what)
	}
}

func fileOf(t *testing.T, r Recipe, path string) string {
	t.Helper()
	for _, f := range r.Files {
		if f.Path == path {
			return f.Data
		}
	}
	t.Fatalf("recipe writes no %s", path)
	return ""
}

func TestImageCloudInitConfig(t *testing.T) {
	r := NewRecipe("bookworm", "amd64", nil)
	debian := fileOf(t, r, "etc/cloud/cloud.cfg.d/01_debian_cloud.cfg")
	dpkg := fileOf(t, r, "etc/cloud/cloud.cfg.d/90_dpkg.cfg")
	lab := fileOf(t, r, "etc/cloud/cloud.cfg.d/95_pgha_lab.cfg")

	require.Contains(t, dpkg, "\ndatasource_list: [ Ec2, None ]\n")
	require.Contains(t, lab, "\n  Ec2:\n    strict_id: false\n    metadata_urls: ['http://169.254.169.254']\n")
	require.Contains(t, lab, "\nnetwork: {config: disabled}\n")
	// The AMI's default user, with passwordless sudo.
	require.Contains(t, debian, "  default_user:\n    name: admin\n")
	require.Contains(t, debian, `    sudo: ["ALL=(ALL) NOPASSWD:ALL"]`)
	require.Contains(t, debian, "\nmanage_etc_hosts: true\n")
	// cloud-init rewrites the mirror lists on first boot: with the lab's.
	require.Contains(t, debian, "\n  generate_mirrorlists: true\n")
	require.Equal(t, 2, strings.Count(debian, "      uri: "+MirrorURL+"\n"), "primary and security")

	// cloud-init's own schema check, where the host has cloud-init.
	if _, err := exec.LookPath("cloud-init"); err != nil {
		t.Skip("no cloud-init here for the schema check")
	}
	for name, doc := range map[string]string{"01": debian, "90": dpkg, "95": lab} {
		f := filepath.Join(t.TempDir(), name+".cfg")
		require.NoError(t, os.WriteFile(f, []byte("#cloud-config\n"+doc), 0o644))
		out, err := exec.Command("cloud-init", "schema", "--config-file", f).CombinedOutput()
		require.NoError(t, err, "%s: %s", name, out)
	}
}

func TestImageAptSources(t *testing.T) {
	r := NewRecipe("bookworm", "amd64", nil)
	srcs, err := ParseDeb822(strings.NewReader(fileOf(t, r, "etc/apt/sources.list.d/debian.sources")), "debian.sources")
	require.NoError(t, err)
	require.Len(t, srcs, 1)
	require.Equal(t, []string{"mirror+file:///etc/apt/mirrors/debian.list"}, srcs[0].URIs)
	require.Equal(t, []string{"bookworm"}, srcs[0].Suites)
	require.Equal(t, "yes", srcs[0].Options["trusted"])
	require.Equal(t, MirrorURL+"\n", fileOf(t, r, "etc/apt/mirrors/debian.list"))
	require.Equal(t, "LANG=C.UTF-8\n", fileOf(t, r, "etc/default/locale"))
	require.Empty(t, fileOf(t, r, "etc/machine-id"))
	require.NotContains(t, fileOf(t, r, "etc/resolv.conf"), "nameserver")
	require.Contains(t, r.Remove, "etc/apt/sources.list", "debootstrap's sources.list names the build host's mirror")
	require.Contains(t, r.Remove, "etc/ssh/ssh_host_*")
}

func TestReleaseFile(t *testing.T) {
	pk := []byte("Package: x\n")
	rel := string(releaseFile("bookworm", "amd64", map[string][]byte{"main/binary-amd64/Packages": pk},
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
	sum := sha256.Sum256(pk)
	require.Contains(t, rel, "Suite: bookworm\nCodename: bookworm\n")
	require.Contains(t, rel, "Date: Tue, 01 Dec 2026 00:00:00 UTC\n")
	require.Contains(t, rel, "Architectures: amd64\nComponents: main\n")
	require.Contains(t, rel, fmt.Sprintf("SHA256:\n %s %d main/binary-amd64/Packages\n", hex.EncodeToString(sum[:]), len(pk)))
}

func TestHandlerServesTheRepositoryReadOnly(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "dists/bookworm"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dists/bookworm/Release"), []byte("Suite: bookworm\n"), 0o644))
	srv := httptest.NewServer(Handler(dir))
	defer srv.Close()

	get := func(method, path string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get("GET", MirrorPath+"/dists/bookworm/Release")
	require.Equal(t, 200, code)
	require.Equal(t, "Suite: bookworm\n", body)
	code, _ = get("GET", MirrorPath+"/dists/bookworm/InRelease")
	require.Equal(t, 404, code, "unsigned: apt falls back to Release")
	code, _ = get("GET", "/dists/bookworm/Release")
	require.Equal(t, 404, code)
	code, _ = get("GET", MirrorPath+"/../"+filepath.Base(dir))
	require.NotEqual(t, 200, code)
	code, _ = get("PUT", MirrorPath+"/dists/bookworm/Release")
	require.Equal(t, 405, code)
}

func TestLookupIgnoresHalfImages(t *testing.T) {
	images := t.TempDir()
	r := NewRecipe("bookworm", "amd64", []string{"curl"})
	dir := filepath.Join(images, r.Hash())
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755))
	_, ok := lookup(images, r)
	require.False(t, ok, "no recipe.json: not an image")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "recipe.json"), []byte(`{"suite":"other"}`), 0o644))
	_, ok = lookup(images, r)
	require.False(t, ok, "another recipe")
}

func TestLockFileExcludesASecondHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(context.Background(), p, func(string) {})
	require.NoError(t, err)
	var said []string
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err = lockFile(ctx, p, func(s string) { said = append(said, s) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Len(t, said, 1)
	unlock()
	unlock2, err := lockFile(context.Background(), p, func(string) {})
	require.NoError(t, err)
	unlock2()
}

func TestHostAptConfValue(t *testing.T) {
	conf := "Acquire::http::Proxy \"http://proxy.example.invalid:3128\";\nAcquire::Check-Valid-Until \"false\";\n"
	require.Equal(t, "http://proxy.example.invalid:3128", aptConfValue(conf, "Acquire::http::Proxy"))
	require.Equal(t, "", aptConfValue(conf, "Acquire::https::Proxy"))
}

func TestProgressLines(t *testing.T) {
	var b strings.Builder
	say := progress(&b, time.Now())
	say("step")
	require.Regexp(t, `^image \[\s*0\.\ds\] step\n$`, b.String())
	progress(nil, time.Now())("nothing happens")

	var p strings.Builder
	w := prefixWriter(&p, "  | ")
	_, _ = w.Write([]byte("a\nb"))
	_, _ = w.Write([]byte("c\n"))
	require.Equal(t, "  | a\n  | bc\n", p.String())
}

func TestDebootstrapFailureSaysWhatToDo(t *testing.T) {
	// The end of debootstrap.log when python3-cffi-backend is not included
	// (reproduced on Debian 12 with --include=systemd,systemd-sysv,dbus,cloud-init).
	detail := []byte(`dpkg: dependency problems prevent configuration of python3-cryptography:
 python3-cryptography depends on python3-cffi-backend-api-min (<= 9729); however:
  Package python3-cffi-backend-api-min is not installed.
 dependency problems - leaving unconfigured
Errors were encountered while processing:
 python3-cryptography
 cloud-init
`)
	out := []byte("I: Configuring dbus...\nW: Failure while configuring base packages.\n")
	err := debootstrapFailure("bookworm", "http://m.example.invalid/debian", " (exit status 1)", out, detail)
	require.ErrorContains(t, err, "debootstrap of Debian bookworm from http://m.example.invalid/debian failed (exit status 1):")
	require.ErrorContains(t, err, "  cloud-init")
	require.ErrorContains(t, err, "keep python3-cffi-backend in BaseInclude")

	err = debootstrapFailure("bookworm", "http://m.example.invalid/debian", "", []byte("E: Failed getting release file\n"), []byte("failed: Connection refused.\n"))
	require.ErrorContains(t, err, "  E: Failed getting release file\n  failed: Connection refused.")
	require.ErrorContains(t, err, "Check that this machine reaches the mirror")
}
