package objectstore

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sync/atomic"

	"github.com/spf13/afero"
)

// atomicFs makes every whole-file write (create or truncate) land in one
// rename: the file is written under tmpDir and renamed over its name when
// closed. S3 never shows a partial object, and pgBackRest relies on that:
// it takes a WAL segment it finds in the repository as archived, so a
// segment cut short when the store stopped would be a hole in the archive.
// A reader streaming the old object keeps the old file.
type atomicFs struct {
	afero.Fs
	tmpDir string // under the same root, so the rename stays on one file system
}

var tmpSeq atomic.Uint64

func (fs *atomicFs) Create(name string) (afero.File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (fs *atomicFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if flag&os.O_CREATE == 0 || flag&os.O_TRUNC == 0 || flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return fs.Fs.OpenFile(name, flag, perm)
	}
	tmp := path.Join(fs.tmpDir, fmt.Sprintf("write-%d-%d", os.Getpid(), tmpSeq.Add(1)))
	f, err := fs.Fs.OpenFile(tmp, flag|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return &atomicFile{File: f, fs: fs.Fs, tmp: tmp, target: name}, nil
}

type atomicFile struct {
	afero.File
	fs          afero.Fs
	tmp, target string
	closed      bool
	failed      bool // a write failed: the file must not replace the object
}

func (f *atomicFile) Name() string { return f.target }

func (f *atomicFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if err != nil {
		f.failed = true
	}
	return n, err
}

func (f *atomicFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *atomicFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		f.failed = true
	}
	return n, err
}

func (f *atomicFile) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.File.Close()
	if err == nil && f.failed {
		err = errors.New("objectstore: a write failed; the object was not replaced")
	}
	if err != nil {
		_ = f.fs.Remove(f.tmp)
		return err
	}
	return f.fs.Rename(f.tmp, f.target)
}
