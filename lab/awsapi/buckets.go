package awsapi

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// ObjectStore keeps the objects of the account's buckets: S3's data plane
// behind the account's authentication and authorization.
//
// It is an interface, not lab/objectstore itself, because that package
// imports this one (for the CA); its Server, made with
// objectstore.BehindFront, implements it. Keeping the objects behind an
// http.Handler also leaves S3's wire format for objects and listings
// (XML, ranges, multipart bookkeeping) to the store, proven there against
// pgBackRest, while this package adds what AWS adds in front: SigV4, IAM,
// KMS and the errors they produce.
type ObjectStore interface {
	// CreateBucket makes the bucket unless it exists already.
	CreateBucket(name string) error
	// ServeHTTP serves one S3 request in path style (/BUCKET/KEY) that the
	// account has authenticated and authorized; it checks no credentials.
	// The request keeps only headers S3 stores or acts on: no
	// Authorization, X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256.
	http.Handler
}

// Bucket is an S3 bucket of the account.
type Bucket struct {
	Name string
	// KMSKeyARN is the bucket's default encryption (SSE-KMS) key, a key of
	// the account (AddKMSKey). Writing an object then also needs
	// kms:GenerateDataKey on it, and reading one kms:Decrypt, through S3.
	// Empty means SSE-S3 (AES256, S3's default), which needs no KMS
	// permission.
	KMSKeyARN string
	// BucketKeyEnabled is S3 Bucket Keys, as the program configures the
	// backup bucket. The KMS permissions stay the same; the encryption
	// context (kms:EncryptionContext:aws:s3:arn) is then the bucket's
	// ARN instead of the object's.
	BucketKeyEnabled bool
}

// ARN is arn:aws:s3:::NAME, the resource of bucket-level actions
// (s3:ListBucket); objects are arn:aws:s3:::NAME/KEY.
func (b Bucket) ARN() string { return "arn:aws:s3:::" + b.Name }

// S3 bucket names that virtual-host addressing and a wildcard certificate
// can both serve: no dots (a name with one is two DNS labels, which
// *.s3.REGION.amazonaws.com does not cover, on AWS as here).
var bucketNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

var kmsKeyIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// AddKMSKey adds a customer-managed KMS key to the account and returns
// its ARN. key is the key id (a UUID) or the ARN of one in this account
// and region; "" makes a new id. Adding a key twice is no error.
func (a *Account) AddKMSKey(key string) (string, error) {
	prefix := fmt.Sprintf("arn:%s:kms:%s:%s:key/", a.Partition, a.Region, a.ID)
	id := key
	switch {
	case key == "":
		id = newKeyUUID()
	case strings.HasPrefix(key, "arn:"):
		var ok bool
		if id, ok = strings.CutPrefix(key, prefix); !ok {
			return "", fmt.Errorf("KMS key %q: want an ARN %sUUID of this account and region", key, prefix)
		}
	}
	if !kmsKeyIDPattern.MatchString(id) {
		return "", fmt.Errorf("KMS key id %q: want a lower-case UUID like 1234abcd-12ab-34cd-56ef-1234567890ab", id)
	}
	arn := prefix + id
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kmsKeys[arn] = true
	return arn, nil
}

// NewKMSKeyARN makes the ARN of a new customer-managed key of an account,
// for a lab that writes the key into a policy before it builds the
// Account (then give it to AddKMSKey).
func NewKMSKeyARN(partition, region, accountID string) string {
	return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", partition, region, accountID, newKeyUUID())
}

// AddBucket creates a bucket, like s3:CreateBucket followed by
// s3:PutBucketEncryption. Its KMS key must have been added first. With an
// object store set (SetObjectStore) the bucket is made there too.
func (a *Account) AddBucket(b Bucket) error {
	if !bucketNamePattern.MatchString(b.Name) || strings.HasPrefix(b.Name, "xn--") {
		return fmt.Errorf("bucket name %q: use 3-63 lower-case letters, digits and hyphens (the lab refuses dots: *.s3.REGION.amazonaws.com cannot cover them)", b.Name)
	}
	a.mu.Lock()
	if b.KMSKeyARN != "" && !a.kmsKeys[b.KMSKeyARN] {
		a.mu.Unlock()
		return fmt.Errorf("bucket %s: KMS key %s is not in account %s: add it with AddKMSKey first", b.Name, b.KMSKeyARN, a.ID)
	}
	if _, ok := a.buckets[b.Name]; ok {
		a.mu.Unlock()
		return fmt.Errorf("bucket %s already exists", b.Name)
	}
	a.buckets[b.Name] = b
	store := a.objects
	a.mu.Unlock()
	if store != nil {
		if err := store.CreateBucket(b.Name); err != nil {
			return fmt.Errorf("bucket %s in the object store: %w", b.Name, err)
		}
	}
	return nil
}

// Bucket looks a bucket up by name.
func (a *Account) Bucket(name string) (Bucket, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.buckets[name]
	return b, ok
}

// BucketKeyARN is the bucket's default encryption key, "" for none (or no
// such bucket).
func (a *Account) BucketKeyARN(bucket string) string {
	b, _ := a.Bucket(bucket)
	return b.KMSKeyARN
}

// SetObjectStore sets where the buckets' objects are kept and creates
// there the buckets added so far. Without a store, S3 requests that pass
// authorization fail with 503 (ServiceUnavailable).
func (a *Account) SetObjectStore(o ObjectStore) error {
	a.mu.Lock()
	a.objects = o
	names := make([]string, 0, len(a.buckets))
	for n := range a.buckets {
		names = append(names, n)
	}
	a.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		if err := o.CreateBucket(n); err != nil {
			return fmt.Errorf("bucket %s in the object store: %w", n, err)
		}
	}
	return nil
}

func (a *Account) objectStore() ObjectStore {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.objects
}

// S3Endpoint is S3's regional endpoint name, s3.REGION.amazonaws.com: the
// path-style host, and the parent of every virtual-host one.
func S3Endpoint(region string) string { return "s3." + region + ".amazonaws.com" }

// BucketHost is the host a client addresses a bucket by in virtual-host
// style (S3's default, pgBackRest's repo-s3-uri-style=host):
// BUCKET.s3.REGION.amazonaws.com. The certificate covers it through
// *.s3.REGION.amazonaws.com (CertificateNames); a hosts file cannot hold a
// wildcard, so each bucket host needs a line of its own.
func BucketHost(bucket, region string) string { return bucket + "." + S3Endpoint(region) }
