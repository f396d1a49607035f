package image

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// writeRepoIndex writes dists/SUITE/{Release,main/binary-ARCH/Packages{,.gz}}
// for the .debs in pool/main. apt-ftparchive reads the packages' control
// data (compressed with xz, which Go's standard library cannot read); the
// Release file, with the hashes apt checks, is written here.
func writeRepoIndex(repo, suite, arch string) error {
	cmd := exec.Command("apt-ftparchive", "packages", filepath.Join("pool", Component))
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pk, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("apt-ftparchive packages: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	rel := filepath.Join(Component, "binary-"+arch)
	dist := filepath.Join(repo, "dists", suite)
	if err := os.MkdirAll(filepath.Join(dist, rel), 0o755); err != nil {
		return err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(pk); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	files := map[string][]byte{
		filepath.Join(rel, "Packages"):    pk,
		filepath.Join(rel, "Packages.gz"): gz.Bytes(),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dist, name), data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dist, "Release"), releaseFile(suite, arch, files, time.Now()), 0o644)
}

// releaseFile is a Release file (no signature: the image's source says
// Trusted: yes) listing files, paths relative to dists/SUITE.
func releaseFile(suite, arch string, files map[string][]byte, now time.Time) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "Origin: pgha-lab\nLabel: pgha-lab\nSuite: %s\nCodename: %s\n", suite, suite)
	fmt.Fprintf(&b, "Date: %s\n", now.UTC().Format(time.RFC1123))
	fmt.Fprintf(&b, "Architectures: %s\nComponents: %s\n", arch, Component)
	b.WriteString("Description: pgha lab repository: the packages the nodes' user data installs\n")
	b.WriteString("MD5Sum:\n")
	for _, n := range names {
		s := md5.Sum(files[n])
		fmt.Fprintf(&b, " %s %d %s\n", hex.EncodeToString(s[:]), len(files[n]), n)
	}
	b.WriteString("SHA256:\n")
	for _, n := range names {
		s := sha256.Sum256(files[n])
		fmt.Fprintf(&b, " %s %d %s\n", hex.EncodeToString(s[:]), len(files[n]), n)
	}
	return []byte(b.String())
}

// Handler serves the repository at dir under MirrorPath, read-only: what
// the machines' apt fetches from http://MirrorHost/debian/.
func Handler(dir string) http.Handler {
	files := http.StripPrefix(MirrorPath, http.FileServer(http.Dir(dir)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only repository", http.StatusMethodNotAllowed)
			return
		}
		if !strings.HasPrefix(r.URL.Path, MirrorPath+"/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Handler serves the image's repository; see the package function.
func (im Image) Handler() http.Handler { return Handler(im.Repo) }
