package imds

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/lab/awsapi"
)

// Options configure a Server.
type Options struct {
	// Account knows the instances (awsapi.Account.AddInstance) and issues
	// their role credentials. Required.
	Account *awsapi.Account
	// AllowTokenlessBoot lets requests without an IMDSv2 token read
	// meta-data (but never iam/security-credentials) and user-data.
	//
	// Why: cloud-init decides whether to fetch a token from the platform
	// it detects, and inside a container it detects "unknown" (it skips
	// DMI there, and nspawn's read-only sysfs hides /sys/hypervisor/uuid),
	// so it probes IMDSv1-style. On EC2 with HttpTokens=required it would
	// use a token. The allowance is limited to what cloud-init reads, so
	// that awscli and the SDKs on the node still need a token for
	// credentials, as on EC2.
	AllowTokenlessBoot bool
	// CredentialTTL is how long role credentials last; zero means
	// awsapi.DefaultRoleCredentialTTL (six hours, as EC2). The server hands
	// out new ones when less than half the TTL is left, so clients that
	// refresh early (botocore within 15 minutes of expiry) get fresh ones.
	CredentialTTL time.Duration
	// Log receives one line per request; nil discards them.
	Log io.Writer
}

// Instance is what the metadata service knows about an instance beyond
// what the account's EC2 side holds (id, private IP, AZ, type, image,
// key name, instance profile).
type Instance struct {
	ID     string     // an instance of Options.Account
	Source netip.Addr // where its requests come from: usually its private IP
	// UserData is served as is (cloud-init's #cloud-config document).
	UserData []byte
	// PublicKey is the OpenSSH public key of the instance's key pair
	// (served as public-keys/0/openssh-key, named by its KeyName).
	PublicKey string
	// MAC defaults to one derived from the private IP. cloud-init matches
	// it against the node's interfaces when it renders network config.
	MAC              string
	SubnetCIDR       string // subnet-ipv4-cidr-block
	VPCCIDR          string // vpc-ipv4-cidr-block
	SecurityGroups   []string
	SecurityGroupIDs []string
}

// Server answers metadata requests for many instances.
type Server struct {
	opts Options

	mu       sync.Mutex
	bySource map[netip.Addr]*Instance
	tokens   map[string]token
	creds    map[string]awsapi.Credentials // by instance id/role
	logMu    sync.Mutex
}

type token struct {
	instance string
	expires  time.Time
}

// New returns a server with no instances.
func New(o Options) (*Server, error) {
	if o.Account == nil {
		return nil, fmt.Errorf("imds: Options.Account is required (it holds the instances and issues role credentials)")
	}
	if o.CredentialTTL <= 0 {
		o.CredentialTTL = awsapi.DefaultRoleCredentialTTL
	}
	return &Server{opts: o, bySource: map[netip.Addr]*Instance{}, tokens: map[string]token{},
		creds: map[string]awsapi.Credentials{}}, nil
}

// Add registers an instance; its requests are recognized by Source.
func (s *Server) Add(in Instance) error {
	acct, ok := s.opts.Account.Instance(in.ID)
	if !ok {
		return fmt.Errorf("imds: instance %s is not in account %s: add it with awsapi.Account.AddInstance first", in.ID, s.opts.Account.ID)
	}
	if !in.Source.IsValid() {
		return fmt.Errorf("imds: instance %s: Source (the address its requests come from) is required", in.ID)
	}
	in.Source = in.Source.Unmap()
	if in.MAC == "" {
		in.MAC = macFor(acct.PrivateIP)
	}
	hw, err := net.ParseMAC(in.MAC)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("imds: instance %s: MAC %q is not a MAC-48 address like 0e:00:0a:2a:02:0a", in.ID, in.MAC)
	}
	in.MAC = hw.String() // lower case, as IMDS lists it
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.bySource[in.Source]; ok {
		return fmt.Errorf("imds: source %s already belongs to instance %s", in.Source, other.ID)
	}
	c := in
	s.bySource[in.Source] = &c
	return nil
}

// Remove forgets the instance at a source address, and its tokens.
func (s *Server) Remove(source netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.bySource[source.Unmap()]
	if !ok {
		return
	}
	delete(s.bySource, source.Unmap())
	for k := range s.creds {
		if strings.HasPrefix(k, in.ID+"/") {
			delete(s.creds, k)
		}
	}
	for k, t := range s.tokens {
		if t.instance == in.ID {
			delete(s.tokens, k)
		}
	}
}

// macFor derives a stable, locally administered MAC from an IPv4 address.
func macFor(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("0e:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

const (
	tokenHeader    = "X-aws-ec2-metadata-token"
	tokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
	maxTokenTTL    = 21600
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	var inst *Instance
	how := ""
	defer func() { s.log(r, inst, rec.status, how) }()
	w.Header().Set("Server", "EC2ws")

	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		s.mu.Lock()
		inst = s.bySource[src.Addr().Unmap()]
		s.mu.Unlock()
	}
	if inst == nil {
		how = "unknown source"
		notFound(rec)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		how = "issue token"
		s.putToken(rec, r, inst)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		how = "method"
		status(rec, http.StatusMethodNotAllowed, "405 - Method Not Allowed")
		return
	}
	switch t := r.Header.Get(tokenHeader); {
	case t != "":
		how = "token"
		if !s.validToken(t, inst.ID) {
			status(rec, http.StatusUnauthorized, "401 - Unauthorized")
			return
		}
	case s.opts.AllowTokenlessBoot && tokenlessAllowed(r.URL.Path):
		how = "tokenless"
	default:
		how = "no token"
		status(rec, http.StatusUnauthorized, "401 - Unauthorized")
		return
	}
	body, ok, err := s.lookup(inst, r.URL.Path)
	switch {
	case err != nil:
		how += ": " + err.Error()
		status(rec, http.StatusInternalServerError, "500 - Internal Server Error")
	case !ok:
		notFound(rec)
	default:
		rec.Header().Set("Content-Type", "text/plain")
		rec.Header().Set("Content-Length", strconv.Itoa(len(body)))
		rec.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(rec, body)
		}
	}
}

// tokenlessAllowed is the IMDSv1 allowance for cloud-init in a container:
// meta-data and user-data, never the role credentials.
func tokenlessAllowed(path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 2 || !knownVersion(parts[0]) {
		return false
	}
	switch parts[1] {
	case "user-data":
		return len(parts) == 2
	case "meta-data":
		return !(len(parts) >= 4 && parts[2] == "iam" && parts[3] == "security-credentials")
	}
	return false
}

func (s *Server) putToken(w http.ResponseWriter, r *http.Request, inst *Instance) {
	if r.Method != http.MethodPut {
		status(w, http.StatusMethodNotAllowed, "405 - Method Not Allowed")
		return
	}
	// IMDS refuses token requests that went through a proxy: a token must
	// not be obtainable on behalf of someone else.
	if r.Header.Get("X-Forwarded-For") != "" {
		status(w, http.StatusForbidden, "403 - Forbidden")
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(tokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		status(w, http.StatusBadRequest, "400 - Bad Request")
		return
	}
	tok := newToken()
	now := s.opts.Account.Now()
	s.mu.Lock()
	for k, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = token{instance: inst.ID, expires: now.Add(time.Duration(ttl) * time.Second)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set(tokenTTLHeader, strconv.Itoa(ttl))
	_, _ = io.WriteString(w, tok)
}

// validToken: a token works only for the instance it was issued to, and
// only until it expires.
func (s *Server) validToken(tok, instance string) bool {
	now := s.opts.Account.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	return ok && t.instance == instance && !now.After(t.expires)
}

// newToken makes an opaque token, about as long as EC2's.
func newToken() string {
	b := make([]byte, 42)
	_, _ = rand.Read(b)
	return base64.URLEncoding.EncodeToString(b)
}

func status(w http.ResponseWriter, code int, title string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, errorPage, title, title)
}

func notFound(w http.ResponseWriter) { status(w, http.StatusNotFound, "404 - Not Found") }

// errorPage is the shape of IMDS's error bodies.
const errorPage = `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>%s</title>
 </head>
 <body>
  <h1>%s</h1>
 </body>
</html>
`

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// log writes one line per request: enough to see what a booting node
// asked and why it was refused.
func (s *Server) log(r *http.Request, inst *Instance, code int, how string) {
	if s.opts.Log == nil {
		return
	}
	id := "-"
	if inst != nil {
		id = inst.ID
	}
	line := fmt.Sprintf("%s imds source=%s instance=%s %s %s status=%d auth=%q\n",
		s.opts.Account.Now().UTC().Format("2006-01-02T15:04:05.000Z"), r.RemoteAddr, id, r.Method, r.URL.Path, code, how)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	_, _ = io.WriteString(s.opts.Log, line)
}
