package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgha/pgha/lab/mountinfo"
)

// Hash names the recipe's cache entry: the first 16 hex digits of the
// SHA-256 of its JSON form.
func (r Recipe) Hash() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a Recipe always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// DefaultCacheDir is $XDG_CACHE_HOME/pgha, or $HOME/.cache/pgha.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set XDG_CACHE_HOME or HOME, or Options.CacheDir): %w", err)
	}
	return filepath.Join(d, "pgha"), nil
}

// lookup returns the cached image of r under images, if a complete one
// is there. An entry exists only once its recipe.json is in place (it is
// written last, before the atomic rename), so a half image never matches.
func lookup(images string, r Recipe) (Image, bool) {
	dir := filepath.Join(images, r.Hash())
	b, err := os.ReadFile(filepath.Join(dir, "recipe.json"))
	if err != nil {
		return Image{}, false
	}
	var got Recipe
	if json.Unmarshal(b, &got) != nil || got.Hash() != r.Hash() {
		return Image{}, false
	}
	return newImage(dir, r), true
}

func newImage(dir string, r Recipe) Image {
	return Image{
		Dir:    dir,
		RootFS: filepath.Join(dir, "rootfs"),
		Repo:   filepath.Join(dir, "repo"),
		Recipe: r,
		Hash:   r.Hash(),
	}
}

// lockFile takes an exclusive flock on path, polling so that ctx can end
// the wait; say is told once that another process holds it.
func lockFile(ctx context.Context, path string, say func(string)) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !told {
			say("another process is building an image; waiting for it (" + path + ")")
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// removeTree deletes dir, first unmounting anything mounted below it. It
// refuses to delete while a mount remains: os.RemoveAll would walk into a
// bind mount of /dev or /proc and delete the host's files.
func removeTree(dir string) error {
	mps, err := mountinfo.Under(mountinfo.Self, dir)
	if err != nil {
		return err
	}
	for _, mp := range mps {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if mps, err = mountinfo.Under(mountinfo.Self, dir); err != nil {
		return err
	} else if len(mps) > 0 {
		return fmt.Errorf("not deleting %s: still mounted: %s; unmount them (umount -l) and try again", dir, strings.Join(mps, ", "))
	}
	return os.RemoveAll(dir)
}
