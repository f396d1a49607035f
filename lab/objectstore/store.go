package objectstore

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// Directories under the store's root. s3afero keeps objects as files under
// buckets/BUCKET/KEY and their ETags and headers under metadata/.
const (
	bucketsDir  = "buckets"
	incomingDir = "incoming" // request bodies and files being written, emptied at start
)

// store is s3afero's multi-bucket backend with what pgBackRest needs and
// s3afero does not do:
//   - a PUT is received in full (length and Content-MD5 checked) before it
//     touches the bucket, and lands in one rename (atomicFs);
//   - listing follows S3: a prefix whose directory does not exist yet is an
//     empty list, not NoSuchBucket, and common prefixes are right for any
//     prefix, not only one ending in "/";
//   - keys that would not map one-to-one onto a file are refused.
type store struct {
	*s3afero.MultiBucketBackend
	root string
}

var _ gofakes3.Backend = (*store)(nil)

func openStore(root string) (*store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	// Left over from a process that stopped mid-write: never part of an object.
	if err := os.RemoveAll(filepath.Join(root, incomingDir)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, incomingDir), 0o700); err != nil {
		return nil, err
	}
	base := afero.NewBasePathFs(afero.NewOsFs(), root)
	b, err := s3afero.MultiBucket(&atomicFs{Fs: base, tmpDir: incomingDir})
	if err != nil {
		return nil, err
	}
	return &store{MultiBucketBackend: b, root: root}, nil
}

// checkKey refuses keys that two different S3 keys would share as a file
// ("a//b" and "a/b"), that climb out of the bucket ("../x"), or that name a
// directory ("a/").
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || path.Clean(key) != key ||
		key == "." || strings.HasPrefix(key, "../") || key == ".." {
		return gofakes3.ErrorInvalidArgument("key", key, "this store keeps objects as files: a key must be a clean relative path")
	}
	return nil
}

// notFound maps "a parent of the key is an object" to NoSuchKey, as S3 would.
func notFound(key string, err error) error {
	if errors.Is(err, syscall.ENOTDIR) {
		return gofakes3.KeyNotFound(key)
	}
	return err
}

func (s *store) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if err := checkKey(key); err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	// Receiving the body first also keeps s3afero's lock, which it holds
	// while it copies, from waiting on the network.
	body, err := os.CreateTemp(filepath.Join(s.root, incomingDir), "body-")
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	defer os.Remove(body.Name())
	defer body.Close()
	n, err := io.Copy(body, input)
	if err != nil {
		return gofakes3.PutObjectResult{}, err // a cut connection, or a Content-MD5 mismatch
	}
	if n != size {
		return gofakes3.PutObjectResult{}, gofakes3.ErrIncompleteBody
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	return s.MultiBucketBackend.PutObject(bucket, key, meta, body, size, cond)
}

func (s *store) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	if err := checkKey(key); err != nil {
		return nil, gofakes3.KeyNotFound(key)
	}
	obj, err := s.MultiBucketBackend.GetObject(bucket, key, rng)
	if s.repair(bucket, key, err) {
		obj, err = s.MultiBucketBackend.GetObject(bucket, key, rng)
	}
	return obj, notFound(key, err)
}

func (s *store) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	if err := checkKey(key); err != nil {
		return nil, gofakes3.KeyNotFound(key)
	}
	obj, err := s.MultiBucketBackend.HeadObject(bucket, key)
	if s.repair(bucket, key, err) {
		obj, err = s.MultiBucketBackend.HeadObject(bucket, key)
	}
	return obj, notFound(key, err)
}

// repair rewrites an object whose metadata file is missing, which a stop
// between writing an object and its metadata leaves: s3afero then hashes
// the wrong path and fails every read and listing of it. Writing the
// object again through s3afero writes the metadata too. It reports
// whether it did.
func (s *store) repair(bucket, key string, err error) bool {
	if err == nil || errors.Is(err, syscall.ENOTDIR) {
		return false
	}
	if _, isS3 := err.(interface{ ErrorCode() gofakes3.ErrorCode }); isS3 {
		return false
	}
	f, oerr := os.Open(filepath.Join(s.root, bucketsDir, bucket, filepath.FromSlash(key)))
	if oerr != nil {
		return false
	}
	defer f.Close()
	st, serr := f.Stat()
	if serr != nil || !st.Mode().IsRegular() {
		return false
	}
	meta := map[string]string{"Last-Modified": st.ModTime().UTC().Format(http.TimeFormat)}
	_, perr := s.MultiBucketBackend.PutObject(bucket, key, meta, f, st.Size(), nil)
	return perr == nil
}

func (s *store) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	if checkKey(key) != nil {
		return gofakes3.ObjectDeleteResult{}, nil // S3 deletes a missing key without complaint
	}
	r, err := s.MultiBucketBackend.DeleteObject(bucket, key)
	if errors.Is(err, syscall.ENOTDIR) {
		err = nil
	}
	return r, err
}

// ListBucket lists the bucket's files as S3 would: every key that starts
// with the prefix, and with a delimiter, every key with the delimiter past
// the prefix rolled up into one common prefix. It returns the whole list in
// one page (gofakes3 asks again without the page when told so), which S3
// clients accept: they follow IsTruncated, and it is never set.
func (s *store) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if !page.IsEmpty() {
		return nil, gofakes3.ErrInternalPageNotImplemented
	}
	if err := gofakes3.ValidateBucketName(bucket); err != nil {
		return nil, gofakes3.BucketNotFound(bucket)
	}
	bdir := filepath.Join(s.root, bucketsDir, bucket)
	if st, err := os.Stat(bdir); err != nil || !st.IsDir() {
		return nil, gofakes3.BucketNotFound(bucket)
	}
	var p, delim string
	if prefix != nil {
		if prefix.HasPrefix {
			p = prefix.Prefix
		}
		if prefix.HasDelimiter {
			delim = prefix.Delimiter
		}
	}
	l := &lister{s: s, bucket: bucket, prefix: p, delim: delim, list: gofakes3.NewObjectList()}
	// Only the directory the prefix names up to its last "/" can hold matches.
	dir := ""
	if i := strings.LastIndex(p, "/"); i >= 0 {
		dir = p[:i+1]
		if checkKey(dir[:i]) != nil {
			return l.list, nil // no key has it as a prefix (and it must not climb out)
		}
	}
	if err := l.walk(filepath.Join(bdir, filepath.FromSlash(dir)), dir); err != nil {
		return nil, err
	}
	sort.Slice(l.list.Contents, func(i, j int) bool { return l.list.Contents[i].Key < l.list.Contents[j].Key })
	sort.Slice(l.list.CommonPrefixes, func(i, j int) bool {
		return l.list.CommonPrefixes[i].Prefix < l.list.CommonPrefixes[j].Prefix
	})
	return l.list, nil
}

type lister struct {
	s             *store
	bucket        string
	prefix, delim string
	list          *gofakes3.ObjectList
}

// walk lists dir, whose keys start with keyDir ("" or ending in "/").
func (l *lister) walk(dir, keyDir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil // nothing under this prefix yet
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		key := keyDir + e.Name()
		if e.IsDir() {
			sub := key + "/"
			if !strings.HasPrefix(sub, l.prefix) && !strings.HasPrefix(l.prefix, sub) {
				continue
			}
			// With "/" as the delimiter a directory past the prefix is one
			// common prefix, if any object is left in it.
			if l.delim == "/" && strings.HasPrefix(sub, l.prefix) {
				if has, err := hasFile(filepath.Join(dir, e.Name())); err != nil {
					return err
				} else if has {
					l.list.AddPrefix(sub)
				}
				continue
			}
			if err := l.walk(filepath.Join(dir, e.Name()), sub); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, l.prefix) {
			continue
		}
		if l.delim != "" {
			if i := strings.Index(key[len(l.prefix):], l.delim); i >= 0 {
				l.list.AddPrefix(key[:len(l.prefix)+i+len(l.delim)])
				continue
			}
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while listing
		} else if err != nil {
			return err
		}
		obj, err := l.s.HeadObject(l.bucket, key)
		if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
			continue
		} else if err != nil {
			return err
		}
		l.list.Add(&gofakes3.Content{
			Key:          key,
			LastModified: gofakes3.NewContentTime(info.ModTime()),
			ETag:         gofakes3.FormatETag(obj.Hash),
			Size:         info.Size(),
			StorageClass: gofakes3.StorageStandard,
		})
	}
	return nil
}

func hasFile(dir string) (bool, error) {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			return found
		}
		return nil
	})
	if err == found {
		return true, nil
	}
	return false, err
}
