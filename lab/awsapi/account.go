package awsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sync"
	"time"
)

// Account is one AWS account in one region, in memory: IAM principals and
// their keys, SSM parameters, EC2 instances, KMS keys, S3 buckets (whose
// objects an ObjectStore keeps) and SNS topics (with what was published to
// them). It is safe for concurrent use.
type Account struct {
	ID        string // 12 digits
	Partition string // "aws"
	Region    string // e.g. "eu-west-1"

	mu        sync.Mutex
	clock     func() time.Time
	roles     map[string]*principal
	users     map[string]*principal
	profiles  map[string]InstanceProfile
	keys      map[string]*accessKey
	params    map[string]*parameter
	instances map[string]*instance
	kmsKeyID  string
	machines  Machines
	kmsKeys   map[string]bool // customer-managed keys, by ARN
	buckets   map[string]Bucket
	objects   ObjectStore

	sns topics // locked on its own (see topics)

	// Instance state changes run in the background, as on EC2; Close
	// cancels and waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	iamNamePattern   = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)
)

// NewAccount returns an empty account in the "aws" partition.
func NewAccount(id, region string) (*Account, error) {
	if !accountIDPattern.MatchString(id) {
		return nil, fmt.Errorf("account id %q must be 12 digits, e.g. 123456789012", id)
	}
	if !regionPattern.MatchString(region) {
		return nil, fmt.Errorf("region %q is not a region name like eu-west-1", region)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Account{
		ID: id, Partition: "aws", Region: region,
		clock:     time.Now,
		roles:     map[string]*principal{},
		users:     map[string]*principal{},
		profiles:  map[string]InstanceProfile{},
		keys:      map[string]*accessKey{},
		params:    map[string]*parameter{},
		instances: map[string]*instance{},
		kmsKeyID:  newKeyUUID(),
		kmsKeys:   map[string]bool{},
		buckets:   map[string]Bucket{},
		ctx:       ctx, cancel: cancel,
	}
	return a, nil
}

// SetClock replaces the account's clock (tests: expiring credentials,
// clock skew). It governs credential expiry and the signature time check.
func (a *Account) SetClock(now func() time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock = now
}

// Now is the account's current time.
func (a *Account) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clock()
}

// KMSKeyARN is the ARN of the account's AWS-managed aws/ssm key, which
// encrypts every SecureString parameter; reading one needs kms:Decrypt on it.
func (a *Account) KMSKeyARN() string {
	return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", a.Partition, a.Region, a.ID, a.kmsKeyID)
}

// Close stops the instance state changes still in flight and waits for
// them to return.
func (a *Account) Close() {
	a.cancel()
	a.wg.Wait()
}

// newKeyUUID makes a KMS-style key id (a random UUID).
func newKeyUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newRequestID makes an AWS-style request id.
func newRequestID() string { return newKeyUUID() }
