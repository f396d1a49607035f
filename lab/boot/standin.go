// Package boot is the AWS side of the booted lab, where every node is a
// Debian 12 machine that boots its real user data: the stand-ins for what
// an EC2 instance talks to (the instance metadata service, SSM and EC2 over
// signed HTTPS, S3 for the backup repository, SNS for the monitoring node's
// pages, a Debian mirror), the
// machines behind the EC2 instances,
// and the readiness gate `pulumi up` runs, over the nodes' real sshd.
//
// The stand-ins run as one process for the lab's lifetime (Serve). What
// they serve is written once by the lab at `up` as a State file, so that
// the process can be restarted and two labs never share anything.
package boot

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/image"
	"github.com/pgha/pgha/lab/imds"
	"github.com/pgha/pgha/lab/machine"
	"github.com/pgha/pgha/lab/objectstore"
)

// IMDSAddress is where every EC2 instance finds its metadata service.
var IMDSAddress = netip.MustParseAddr("169.254.169.254")

// State is everything the stand-ins serve, saved by the lab at `up`.
type State struct {
	AccountID string `json:"accountId"`
	Region    string `json:"region"`
	// Namespace holds the stand-ins on the lab's network, with Address
	// (the AWS endpoints' and the mirror's) and IMDSAddress.
	Namespace string     `json:"namespace"`
	Address   netip.Addr `json:"address"`
	// RepoDir is the image's Debian repository, served as the mirror.
	RepoDir string `json:"repoDir"`
	// CACert, CAKey sign the endpoints' certificate (lab files).
	CACert string `json:"caCert"`
	CAKey  string `json:"caKey"`
	// Operator is the IAM user validate acts as, with its key and policy.
	Operator Operator `json:"operator"`
	// Roles are the tiers' instance roles.
	Roles      []Role      `json:"roles"`
	Instances  []Instance  `json:"instances"`
	Parameters []Parameter `json:"parameters"`
	// Buckets are the account's S3 buckets, served at
	// s3.REGION.amazonaws.com and BUCKET.s3.REGION.amazonaws.com
	// (awsapi.BucketHost: one hosts line each on the nodes); their objects
	// are files under ObjectStoreDir, which outlives the process.
	Buckets        []Bucket `json:"buckets,omitempty"`
	ObjectStoreDir string   `json:"objectStoreDir,omitempty"`
	// Topics are the account's SNS topics by name, served at
	// sns.REGION.amazonaws.com (the stack's alert topic, which the
	// monitoring node's Alertmanager publishes to). What is published to
	// one is appended to MessageFile(topic) under MessageDir, the lab's
	// stand-in for a subscriber.
	Topics     []string          `json:"topics,omitempty"`
	MessageDir string            `json:"messageDir,omitempty"`
	KeyPair    KeyPair           `json:"keyPair"`
	Tags       map[string]string `json:"tags"`
	// APIAddrFile is where Serve writes the host-side address of the
	// endpoints (127.0.0.1:PORT) once it listens.
	APIAddrFile string `json:"apiAddrFile"`
	// Logs: the account's trail (every signed call) and the IMDS's.
	TrailLog string `json:"trailLog"`
	IMDSLog  string `json:"imdsLog"`
}

// Operator is an IAM user with a long-term key.
type Operator struct {
	User            string `json:"user"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	Policy          string `json:"policy"`
}

// Role is one tier's instance role and profile. Policy is its secrets
// policy ("" for a tier that reads nothing), attached as NAME-secrets;
// Policies are more inline policies by name (e.g. the PostgreSQL tier's
// backup policy, iampolicy.BackupRepo), attached as named.
type Role struct {
	Name     string            `json:"name"`
	Profile  string            `json:"profile"`
	Policy   string            `json:"policy,omitempty"`
	Policies map[string]string `json:"policies,omitempty"`
}

// Bucket is an S3 bucket whose default encryption is SSE-KMS under
// KMSKeyARN, a customer-managed key of the account
// (arn:aws:kms:REGION:ACCOUNT:key/UUID; awsapi.NewKMSKeyARN makes one),
// which the account gets with it. BucketKeyEnabled mirrors the program's
// bucket (S3 Bucket Keys).
type Bucket struct {
	Name             string `json:"name"`
	KMSKeyARN        string `json:"kmsKeyArn"`
	BucketKeyEnabled bool   `json:"bucketKeyEnabled,omitempty"`
}

// BackupKeyARN is the KMS key of the state's bucket (the lab has one, the
// backup repository's), "" without one.
func (s State) BackupKeyARN() string {
	for _, b := range s.Buckets {
		if b.KMSKeyARN != "" {
			return b.KMSKeyARN
		}
	}
	return ""
}

// Instance is one node as an EC2 instance.
type Instance struct {
	ID         string            `json:"id"`
	Node       string            `json:"node"`
	IP         netip.Addr        `json:"ip"`
	AZ         string            `json:"az"`
	Profile    string            `json:"profile"`
	Type       string            `json:"type"`
	SubnetCIDR string            `json:"subnetCidr"`
	VPCCIDR    string            `json:"vpcCidr"`
	Tags       map[string]string `json:"tags"`
	// UserDataFile holds the node's #cloud-config document, as EC2 keeps
	// it and the IMDS serves it.
	UserDataFile string `json:"userDataFile"`
	// MachineDir is the machine's state (lab/machine) that stop and start
	// act on.
	MachineDir string `json:"machineDir"`
}

// Parameter is one SSM SecureString, its value in a file of the lab.
type Parameter struct {
	Name      string `json:"name"`
	ValueFile string `json:"valueFile"`
}

// KeyPair is the EC2 key pair every instance gets (its public half).
type KeyPair struct {
	Name      string `json:"name"`
	PublicKey string `json:"publicKey"`
}

// Save writes the state (mode 0600: it holds the operator's key).
func (s State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// LoadState reads a saved state.
func LoadState(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Account builds the in-memory AWS account the state describes.
func (s State) Account() (*awsapi.Account, error) {
	a, err := awsapi.NewAccount(s.AccountID, s.Region)
	if err != nil {
		return nil, err
	}
	if err := a.AddUser(s.Operator.User); err != nil {
		return nil, err
	}
	if err := a.PutUserPolicy(s.Operator.User, "pgha-validate", s.Operator.Policy); err != nil {
		return nil, fmt.Errorf("the operator's policy: %w", err)
	}
	if _, err := a.ImportAccessKey(s.Operator.User, awsapi.Credentials{AccessKeyID: s.Operator.AccessKeyID, SecretAccessKey: s.Operator.SecretAccessKey}); err != nil {
		return nil, err
	}
	for _, r := range s.Roles {
		if err := a.AddRole(r.Name); err != nil {
			return nil, err
		}
		if r.Policy != "" {
			if err := a.PutRolePolicy(r.Name, r.Name+"-secrets", r.Policy); err != nil {
				return nil, fmt.Errorf("role %s: %w", r.Name, err)
			}
		}
		for name, doc := range r.Policies {
			if err := a.PutRolePolicy(r.Name, name, doc); err != nil {
				return nil, fmt.Errorf("role %s: %w", r.Name, err)
			}
		}
		if _, err := a.AddInstanceProfile(r.Profile, r.Name); err != nil {
			return nil, err
		}
	}
	for _, p := range s.Parameters {
		v, err := os.ReadFile(p.ValueFile)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", p.Name, err)
		}
		if _, err := a.PutParameter(p.Name, strings.TrimSpace(string(v)), awsapi.SecureString); err != nil {
			return nil, err
		}
	}
	for _, b := range s.Buckets {
		if b.KMSKeyARN != "" {
			if _, err := a.AddKMSKey(b.KMSKeyARN); err != nil {
				return nil, fmt.Errorf("bucket %s: %w", b.Name, err)
			}
		}
		if err := a.AddBucket(awsapi.Bucket{Name: b.Name, KMSKeyARN: b.KMSKeyARN, BucketKeyEnabled: b.BucketKeyEnabled}); err != nil {
			return nil, err
		}
	}
	for _, name := range s.Topics {
		if _, err := a.AddTopic(name); err != nil {
			return nil, err
		}
	}
	for _, in := range s.Instances {
		if err := a.AddInstance(awsapi.Instance{
			ID: in.ID, ImageID: "ami-0pgha0lab0image0", InstanceType: in.Type, PrivateIP: in.IP,
			AvailabilityZone: in.AZ, KeyName: s.KeyPair.Name, InstanceProfile: in.Profile, Tags: in.Tags,
		}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// MessageFile is where the stand-in appends what is published to a topic
// of the state (by name), one JSON line per message (awsapi.ReadMessages
// reads it); "" without a MessageDir. It is the name awsapi's
// Account.MessageFile gives it.
func (s State) MessageFile(topic string) string {
	if s.MessageDir == "" {
		return ""
	}
	return filepath.Join(s.MessageDir, topic+".jsonl")
}

// Serve runs the stand-ins until ctx ends: in the lab's stand-in namespace
// the metadata service (IMDSAddress:80), the Debian mirror (Address:80)
// and the SSM, EC2, S3 and SNS endpoints (Address:443, TLS); on this
// host's loopback the same endpoints for validate (written to
// APIAddrFile).
func Serve(ctx context.Context, s State) error {
	acct, err := s.Account()
	if err != nil {
		return err
	}
	defer acct.Close()
	acct.SetMachines(&machines{state: s})
	if err := s.serveObjects(acct); err != nil {
		return err
	}
	if s.MessageDir != "" {
		if err := acct.SetMessageDir(s.MessageDir); err != nil {
			return err
		}
	}
	trail, err := os.OpenFile(s.TrailLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer trail.Close()
	imdsLog, err := os.OpenFile(s.IMDSLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer imdsLog.Close()
	md, err := imds.New(imds.Options{Account: acct, AllowTokenlessBoot: true, Log: imdsLog})
	if err != nil {
		return err
	}
	for _, in := range s.Instances {
		ud, err := os.ReadFile(in.UserDataFile)
		if err != nil {
			return err
		}
		if err := md.Add(imds.Instance{ID: in.ID, Source: in.IP, UserData: ud, PublicKey: s.KeyPair.PublicKey,
			SubnetCIDR: in.SubnetCIDR, VPCCIDR: in.VPCCIDR}); err != nil {
			return err
		}
	}
	ca, err := awsapi.LoadCA(s.CACert, s.CAKey)
	if err != nil {
		return err
	}
	cert, err := ca.Issue(append(awsapi.CertificateNames(s.Region), s.Address.String(), "127.0.0.1")...)
	if err != nil {
		return err
	}
	tlsCert, err := cert.TLSCertificate()
	if err != nil {
		return err
	}
	api := awsapi.NewHandler(acct, awsapi.HandlerOptions{Log: trail})

	ns := filepath.Join("/run/netns", s.Namespace)
	listeners := []struct {
		what    string
		netns   string
		addr    string
		handler http.Handler
		tls     bool
	}{
		{"instance metadata", ns, net.JoinHostPort(IMDSAddress.String(), "80"), md, false},
		{"Debian mirror", ns, net.JoinHostPort(s.Address.String(), "80"), image.Handler(s.RepoDir), false},
		{"SSM, EC2, S3 and SNS", ns, net.JoinHostPort(s.Address.String(), "443"), api, true},
		{"SSM, EC2, S3 and SNS for validate", "", "127.0.0.1:0", api, true},
	}
	var servers []*http.Server
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		ln, err := listenIn(l.netns, l.addr)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", l.what, l.addr, err)
		}
		srv := &http.Server{Handler: l.handler, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		if l.netns == "" {
			if err := os.WriteFile(s.APIAddrFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
				return err
			}
		}
		go func() {
			var err error
			if l.tls {
				srv.TLSConfig = tlsConfig(tlsCert)
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", l.what, err)
			}
		}()
	}
	var stopErr error
	select {
	case <-ctx.Done():
	case stopErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	return stopErr
}

// serveObjects gives the account its object store (ObjectStoreDir), in
// which the state's buckets then exist. The store checks no credentials:
// the account's handler verifies and authorizes every request first.
func (s State) serveObjects(acct *awsapi.Account) error {
	if len(s.Buckets) == 0 {
		return nil
	}
	if s.ObjectStoreDir == "" {
		return errors.New("the state has buckets but no ObjectStoreDir to keep their objects in")
	}
	store, err := objectstore.New(s.ObjectStoreDir, objectstore.BehindFront(),
		objectstore.WithLogf(func(format string, args ...any) { log.Printf(format, args...) }))
	if err != nil {
		return err
	}
	return acct.SetObjectStore(store)
}

// listenIn listens on addr inside the network namespace at nsPath (this
// host's own when ""). The socket keeps its namespace for life; the thread
// that made it is retired with its goroutine.
func listenIn(nsPath, addr string) (net.Listener, error) {
	if nsPath == "" {
		return net.Listen("tcp", addr)
	}
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, fmt.Errorf("entering %s: %w", nsPath, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- res{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// machines acts out EC2's stop and start on the instances' machines.
type machines struct {
	state State
}

func (m *machines) open(id string) (*machine.Machine, error) {
	for _, in := range m.state.Instances {
		if in.ID == id {
			return machine.Open(in.MachineDir)
		}
	}
	return nil, fmt.Errorf("no machine for instance %s", id)
}

// Stop: a forced stop is the whole machine gone at once, as a host that
// loses power; otherwise the guest shuts down cleanly first, as EC2 asks
// it to.
func (m *machines) Stop(ctx context.Context, id string, force bool) error {
	mc, err := m.open(id)
	if err != nil {
		return err
	}
	if force {
		return mc.Kill()
	}
	err = mc.Poweroff(2 * time.Minute)
	if errors.Is(err, machine.ErrKilled) {
		return nil // EC2 too ends a stop that takes too long by force
	}
	return err
}

// Start boots the machine from its disk, as EC2 starts a stopped instance
// from its root volume (cloud-init does not run the user data again).
func (m *machines) Start(ctx context.Context, id string) error {
	mc, err := m.open(id)
	if err != nil {
		return err
	}
	if err := mc.Start(ctx); err != nil {
		return err
	}
	return mc.WaitBooted(ctx, 2*time.Minute)
}

// tlsConfig serves one certificate, TLS 1.2 and up, as AWS's endpoints do.
func tlsConfig(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
}
