package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// builder runs one build. All work happens in a temporary directory under
// images/ that is renamed into place only when complete.
type builder struct {
	opts   Options
	recipe Recipe
	images string
	say    func(string)
	out    io.Writer // Progress, may be nil

	tmp     string // images/.build-<hash>-<pid>
	rootfs  string
	repo    string
	log     *os.File // tmp/build.log: every command's output
	mirror  string
	sources []Source
	aptConf string // host apt options lent to the build
}

func (b *builder) build(ctx context.Context) (im Image, err error) {
	r := b.recipe
	b.tmp = filepath.Join(b.images, fmt.Sprintf(".build-%s-%d", r.Hash(), os.Getpid()))
	b.rootfs = filepath.Join(b.tmp, "rootfs")
	b.repo = filepath.Join(b.tmp, "repo")
	if err := os.MkdirAll(b.tmp, 0o755); err != nil {
		return Image{}, err
	}
	b.log, err = os.Create(filepath.Join(b.tmp, "build.log"))
	if err != nil {
		return Image{}, err
	}
	defer func() {
		b.log.Close()
		if err != nil {
			failed := filepath.Join(b.images, "failed-"+r.Hash()+".log")
			_ = copyFile(filepath.Join(b.tmp, "build.log"), failed)
			if rmErr := removeTree(b.tmp); rmErr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, rmErr)
			}
			err = fmt.Errorf("%w\nNothing was cached; the build's full log is %s", err, failed)
		}
	}()

	all, err := HostSources(b.opts.HostRoot)
	if err != nil {
		return Image{}, fmt.Errorf("reading the host's apt sources: %w", err)
	}
	mirror, msrc, err := Mirror(all, r.Suite)
	if err != nil {
		return Image{}, err
	}
	b.mirror, b.sources = mirror, DebianSources(all, r.Suite)
	b.aptConf = hostAptConf()

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"debootstrap " + r.Suite + " (" + r.Variant + ", about 2-7 min)", func(ctx context.Context) error { return b.debootstrap(ctx, msrc) }},
		{"update the image from the host's Debian sources", b.upgrade},
		{"download the repository's packages", b.download},
		{"index the repository", func(context.Context) error { return writeRepoIndex(b.repo, r.Suite, r.Arch) }},
		{"configure the image as the AMI", b.configure},
		{"check the repository completes the image", b.checkClosure},
		{"check no trace of the host's mirror is left", func(context.Context) error { return b.checkNoHostMirror() }},
	}
	for _, s := range steps {
		t := time.Now()
		b.say(s.name)
		fmt.Fprintf(b.log, "==> %s\n", s.name)
		if err := s.fn(ctx); err != nil {
			return Image{}, err
		}
		b.say(fmt.Sprintf("  done in %s", time.Since(t).Round(100*time.Millisecond)))
	}

	rb, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(b.tmp, "recipe.json"), append(rb, '\n'), 0o644); err != nil {
		return Image{}, err
	}
	final := filepath.Join(b.images, r.Hash())
	if _, err := os.Stat(final); err == nil {
		// An entry without a valid recipe.json (lookup found none), damaged
		// by hand. Set it aside rather than delete it: a running machine
		// may still have it as its lower layer.
		aside := filepath.Join(b.images, fmt.Sprintf(".broken-%s-%d", r.Hash(), time.Now().Unix()))
		if err := os.Rename(final, aside); err != nil {
			return Image{}, err
		}
		b.say("set a damaged cache entry aside: " + aside)
	}
	if err := os.Rename(b.tmp, final); err != nil {
		return Image{}, fmt.Errorf("moving the finished image into the cache: %w", err)
	}
	_ = os.Remove(filepath.Join(b.images, "failed-"+r.Hash()+".log"))
	return newImage(final, r), nil
}

// debootstrap builds the base system in a mount namespace of its own, so
// the /proc and /sys it mounts into the target vanish with it even when it
// is killed halfway.
func (b *builder) debootstrap(ctx context.Context, src Source) error {
	r := b.recipe
	args := []string{"--variant=" + r.Variant, "--arch=" + r.Arch, "--include=" + strings.Join(r.Include, ",")}
	if k := src.Options["signed-by"]; strings.HasPrefix(k, "/") && !strings.Contains(k, "\n") {
		args = append(args, "--keyring="+filepath.Join(b.opts.HostRoot, k))
	}
	args = append(args, r.Suite, b.rootfs, b.mirror)
	env := os.Environ()
	for _, p := range []string{"http", "https"} {
		if v := aptConfValue(b.aptConf, "Acquire::"+p+"::Proxy"); v != "" {
			env = append(env, p+"_proxy="+v)
		}
	}
	err := b.run(ctx, env, true, "debootstrap", args...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	detail, _ := os.ReadFile(filepath.Join(b.rootfs, "debootstrap", "debootstrap.log"))
	fmt.Fprintf(b.log, "==> debootstrap.log\n%s\n", detail)
	var status string
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = " (" + ee.String() + ")"
	}
	b.log.Sync()
	out, _ := os.ReadFile(b.log.Name())
	return debootstrapFailure(r.Suite, b.mirror, status, out, detail)
}

// debootstrapFailure explains a failed debootstrap from its output and its
// own log, and says what to do.
func debootstrapFailure(suite, mirror, status string, out, detail []byte) error {
	hint := "Check that this machine reaches the mirror (apt-get update on the host) and run again."
	if bytes.Contains(detail, []byte("python3-cffi-backend-api")) {
		hint = "python3-cryptography was left unconfigured because debootstrap missed the virtual package " +
			"python3-cffi-backend-api-*: keep python3-cffi-backend in BaseInclude."
	}
	return fmt.Errorf("debootstrap of Debian %s from %s failed%s:\n%s\n%s",
		suite, mirror, status, indent(errorLines(out, detail)), hint)
}

// errorLines picks what explains a failed debootstrap: its E: lines, or
// else the end of its own log.
func errorLines(out, detail []byte) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return lastLines(detail, 5)
	}
	return strings.Join(keep, "\n") + "\n" + lastLines(detail, 2)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}

// upgrade lends the host's Debian sources to the image and brings it up to
// date with them, as an AMI is current when it is published.
func (b *builder) upgrade(ctx context.Context) error {
	if err := os.Remove(filepath.Join(b.rootfs, "etc/apt/sources.list")); err != nil && !os.IsNotExist(err) {
		return err
	}
	srcs, err := b.lendKeyrings(b.sources)
	if err != nil {
		return err
	}
	if err := writeFile(b.rootfs, "etc/apt/sources.list.d/pgha-build.sources", Deb822(srcs), 0o644); err != nil {
		return err
	}
	if err := writeFile(b.rootfs, "etc/apt/apt.conf.d/99pgha-build", b.aptConf, 0o644); err != nil {
		return err
	}
	if err := b.nspawn(ctx, "apt-get", "update"); err != nil {
		return fmt.Errorf("apt-get update in the image with the host's sources: %w", err)
	}
	if err := b.nspawn(ctx, "apt-get", "-y", "dist-upgrade"); err != nil {
		return err
	}
	return b.nspawn(ctx, "apt-get", "clean")
}

// lendKeyrings copies each Signed-By keyring file the host's sources name
// into the image (removed again at the end), since the image may lack it.
func (b *builder) lendKeyrings(srcs []Source) ([]Source, error) {
	out := make([]Source, len(srcs))
	for i, s := range srcs {
		c := s
		c.Options = map[string]string{}
		for k, v := range s.Options {
			c.Options[k] = v
		}
		if k := c.Options["signed-by"]; k != "" && !strings.Contains(k, "\n") && strings.HasPrefix(k, "/") {
			dst := fmt.Sprintf("/etc/apt/pgha-build-keyrings/%d-%s", i, filepath.Base(k))
			if err := copyFile(filepath.Join(b.opts.HostRoot, k), filepath.Join(b.rootfs, dst)); err != nil {
				return nil, fmt.Errorf("keyring of %s: %w", s.File, err)
			}
			c.Options["signed-by"] = dst
		}
		out[i] = c
	}
	return out, nil
}

// download fetches the closure of the repository's packages minus what the
// image has: apt-get's own resolver decides, with the recommends the
// nodes' apt-get install will also pull in.
func (b *builder) download(ctx context.Context) error {
	pool := filepath.Join(b.repo, "pool", Component)
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	if len(b.recipe.RepoPackages) > 0 {
		args := append([]string{"-y", "install", "--download-only"}, b.recipe.RepoPackages...)
		if err := b.nspawn(ctx, "apt-get", args...); err != nil {
			return fmt.Errorf("downloading %s: %w", strings.Join(b.recipe.RepoPackages, " "), err)
		}
	}
	archives := filepath.Join(b.rootfs, "var/cache/apt/archives")
	debs, _ := filepath.Glob(filepath.Join(archives, "*.deb"))
	var size int64
	for _, d := range debs {
		if fi, err := os.Stat(d); err == nil {
			size += fi.Size()
		}
		if err := os.Rename(d, filepath.Join(pool, filepath.Base(d))); err != nil {
			return err
		}
	}
	b.say(fmt.Sprintf("  %d packages, %.0f MB", len(debs), float64(size)/1e6))
	return nil
}

// configure writes the recipe's files and removes the build's traces and
// per-instance state.
func (b *builder) configure(ctx context.Context) error {
	if err := b.nspawn(ctx, "apt-get", "clean"); err != nil {
		return err
	}
	for _, pat := range b.recipe.Remove {
		ms, _ := filepath.Glob(filepath.Join(b.rootfs, pat))
		for _, m := range ms {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	for _, f := range b.recipe.Files {
		if err := writeFile(b.rootfs, f.Path, f.Data, os.FileMode(f.Mode)); err != nil {
			return err
		}
	}
	return nil
}

// checkClosure proves, before anything is cached, that the image plus the
// repository can install every package of the list offline: apt-get
// --simulate against the repository alone, read through a file: URI.
func (b *builder) checkClosure(ctx context.Context) error {
	if len(b.recipe.RepoPackages) == 0 {
		return nil
	}
	script := strings.Join([]string{
		"set -e",
		"mkdir -p /run/pgha-check/lists/partial",
		"printf '%s' '" + repoFileSource("/run/pgha-repo", b.recipe.Suite) + "' >/run/pgha-check/sources.list",
		`o="-o Dir::Etc::SourceList=/run/pgha-check/sources.list -o Dir::Etc::SourceParts=/run/pgha-check/none -o Dir::State::Lists=/run/pgha-check/lists -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Debug::NoLocking=1"`,
		"apt-get $o update",
		`apt-get $o --simulate install "$@"`,
	}, "\n")
	args := append([]string{"-c", script, "check"}, b.recipe.RepoPackages...)
	if err := b.nspawnWith(ctx, []string{"--bind-ro=" + b.repo + ":/run/pgha-repo", "--resolv-conf=off"}, "/bin/sh", args...); err != nil {
		return fmt.Errorf("the image cannot install %s from the lab repository alone (see the log): %w",
			strings.Join(b.recipe.RepoPackages, " "), err)
	}
	return nil
}

// checkNoHostMirror fails the build if the host's mirror still appears in
// the image's apt or cloud-init configuration: nodes must never be pointed
// at a mirror they cannot reach.
func (b *builder) checkNoHostMirror() error {
	for _, dir := range []string{"etc/apt", "etc/cloud/cloud.cfg.d"} {
		err := filepath.Walk(filepath.Join(b.rootfs, dir), func(p string, fi os.FileInfo, err error) error {
			if err != nil || !fi.Mode().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte(b.mirror)) {
				return fmt.Errorf("%s still names the build host's mirror", strings.TrimPrefix(p, b.rootfs))
			}
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
