package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Options says which image to build and where.
type Options struct {
	// Packages is the list whose closure the lab's repository holds:
	// what the nodes' user data installs (package names, as apt takes
	// them). Packages the image already has are not downloaded again.
	Packages []string
	// Suite is the Debian release; DefaultSuite when empty.
	Suite string
	// CacheDir holds images/<hash>/; DefaultCacheDir() when empty.
	CacheDir string
	// Progress, when set, receives one line per build step (a cached
	// image reports one line). The commands' output goes to the build's
	// log (images/<hash>/build.log), and to Progress too when Verbose.
	Progress io.Writer
	Verbose  bool
	// HostRoot is where the host's apt configuration is read from ("/"
	// when empty); tests point it elsewhere.
	HostRoot string
}

// Image is a built, cached image. Nothing under Dir may be changed: every
// machine's root is an overlay with RootFS as its read-only lower layer.
type Image struct {
	Dir    string // images/<hash>
	RootFS string // the Debian root file system
	Repo   string // the repository served at MirrorPath (dists/, pool/)
	Recipe Recipe
	Hash   string
	Cached bool // found in the cache rather than built by this call
}

// Build returns the image for opts, from the cache when it is there, and
// otherwise builds it (a few minutes; only one process builds at a time,
// and a failed build leaves nothing in the cache). It needs root and the
// host tools debootstrap, systemd-nspawn and apt-ftparchive.
func Build(ctx context.Context, opts Options) (Image, error) {
	start := time.Now()
	if opts.Suite == "" {
		opts.Suite = DefaultSuite
	}
	if opts.HostRoot == "" {
		opts.HostRoot = "/"
	}
	if opts.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return Image{}, err
		}
		opts.CacheDir = d
	}
	say := progress(opts.Progress, start)
	arch, err := hostArch()
	if err != nil {
		return Image{}, err
	}
	r := NewRecipe(opts.Suite, arch, opts.Packages)
	images := filepath.Join(opts.CacheDir, "images")
	if im, ok := lookup(images, r); ok {
		im.Cached = true
		say(fmt.Sprintf("cached image %s (%s)", im.Hash, im.Dir))
		return im, nil
	}
	if os.Geteuid() != 0 {
		return Image{}, fmt.Errorf("building the lab image needs root (debootstrap, systemd-nspawn); run as root")
	}
	if err := checkTools(); err != nil {
		return Image{}, err
	}
	if err := os.MkdirAll(images, 0o755); err != nil {
		return Image{}, err
	}
	unlock, err := lockFile(ctx, filepath.Join(images, ".build.lock"), say)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	// Someone else may have built it while we waited.
	if im, ok := lookup(images, r); ok {
		im.Cached = true
		say(fmt.Sprintf("cached image %s (built by another process)", im.Hash))
		return im, nil
	}
	cleanStale(images, say)
	b := &builder{opts: opts, recipe: r, images: images, say: say}
	if opts.Verbose {
		b.out = opts.Progress
	}
	im, err := b.build(ctx)
	if err != nil {
		return Image{}, err
	}
	say(fmt.Sprintf("built image %s in %s (%s)", im.Hash, time.Since(start).Round(time.Second), im.Dir))
	return im, nil
}

// checkTools names the packages to install for any missing host tool.
func checkTools() error {
	var missing []string
	for _, t := range [][2]string{
		{"debootstrap", "debootstrap"},
		{"systemd-nspawn", "systemd-container"},
		{"apt-ftparchive", "apt-utils"},
	} {
		if _, err := exec.LookPath(t[0]); err != nil {
			missing = append(missing, t[1])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("building the lab image needs %s; install with: apt-get install %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return nil
}

// hostArch is dpkg's name for this machine's architecture: the image is
// built for it, and it is part of the recipe.
func hostArch() (string, error) {
	out, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		return "", fmt.Errorf("dpkg --print-architecture: %w (the lab image is built on Debian hosts only)", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// cleanStale removes what a crashed build left (build dirs are only ever
// in use while the lock is held, and we hold it).
func cleanStale(images string, say func(string)) {
	ents, _ := os.ReadDir(images)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".build-") {
			p := filepath.Join(images, e.Name())
			if err := removeTree(p); err != nil {
				say("could not remove an interrupted build: " + err.Error())
			} else {
				say("removed an interrupted build: " + p)
			}
		}
	}
}

// progress returns a function that writes one timestamped line to w.
func progress(w io.Writer, start time.Time) func(string) {
	return func(s string) {
		if w != nil {
			fmt.Fprintf(w, "image [%5.1fs] %s\n", time.Since(start).Seconds(), s)
		}
	}
}
