package objectstore

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"

	"github.com/pgha/pgha/lab/awsapi"
)

// Server is an S3 endpoint over one directory. One Server (or process)
// may use a directory at a time; a new Server on the same directory finds
// every bucket and object the last one kept.
type Server struct {
	dir         string
	store       *store
	s3          http.Handler
	keyID       string
	region      string
	vhostBases  []string // lower case, no leading dot
	tlsConfig   *tls.Config
	logf        func(format string, args ...any)
	logRequests bool
	front       bool // BehindFront: no credential check of its own
}

// Option configures a Server.
type Option func(*Server)

// WithAccessKey is the access key id clients must sign with. Required.
func WithAccessKey(keyID string) Option { return func(s *Server) { s.keyID = keyID } }

// WithRegion refuses requests signed for another region, as S3 does
// (AuthorizationHeaderMalformed), so a client configured for the wrong
// region fails in the lab as it would on AWS.
func WithRegion(region string) Option { return func(s *Server) { s.region = region } }

// WithTLS is the configuration Serve serves HTTPS with (see TLSConfig).
func WithTLS(cfg *tls.Config) Option { return func(s *Server) { s.tlsConfig = cfg } }

// WithVirtualHosts accepts virtual-host addressing (BUCKET.ENDPOINT, S3's
// default and pgBackRest's repo-s3-uri-style=host) for these endpoint
// names. Path-style addressing (ENDPOINT/BUCKET) always works.
func WithVirtualHosts(endpoints ...string) Option {
	return func(s *Server) {
		for _, e := range endpoints {
			s.vhostBases = append(s.vhostBases, strings.Trim(strings.ToLower(e), "."))
		}
	}
}

// WithLogf receives the server's errors and, with WithRequestLog, one line
// per request.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(s *Server) { s.logf = logf }
}

// BehindFront makes a Server that checks no credentials because
// something in front of it did: the booted lab's AWS stand-in
// (awsapi.Account.SetObjectStore), which verifies SigV4 and evaluates IAM
// and KMS before it hands a request on, in path style, through
// ServeHTTP. Such a Server needs no WithAccessKey and refuses Serve: on a
// listener of its own it would be an endpoint open to anyone.
func BehindFront() Option { return func(s *Server) { s.front = true } }

// WithRequestLog logs every request (method, path, query, status, time).
func WithRequestLog() Option { return func(s *Server) { s.logRequests = true } }

// New opens (or creates) the store in dir.
func New(dir string, opts ...Option) (*Server, error) {
	s := &Server{logf: func(string, ...any) {}}
	for _, o := range opts {
		o(s)
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.keyID == "" && !s.front {
		return nil, errors.New("objectstore: WithAccessKey is required: clients must name a key")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s.dir = abs
	if s.store, err = openStore(abs); err != nil {
		return nil, fmt.Errorf("objectstore: %s: %w", abs, err)
	}
	s.s3 = gofakes3.New(s.store, gofakes3.WithLogger(errLogger{s.logf})).Server()
	return s, nil
}

// Dir is the directory the store keeps its buckets in.
func (s *Server) Dir() string { return s.dir }

// CreateBucket makes the bucket unless it exists already.
func (s *Server) CreateBucket(name string) error {
	if err := gofakes3.ValidateBucketName(name); err != nil {
		return fmt.Errorf("objectstore: bucket %q: %w", name, err)
	}
	if err := s.store.CreateBucket(name); err != nil && !gofakes3.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// TLSConfig issues a server certificate from the lab's CA for hosts (DNS
// names and IP addresses) and returns a configuration serving it. For
// virtual-host addressing add "*.ENDPOINT". pgBackRest 2.45 checks only
// DNS names: see the package comment.
func TLSConfig(ca *awsapi.CA, hosts ...string) (*tls.Config, error) {
	sc, err := ca.Issue(hosts...)
	if err != nil {
		return nil, err
	}
	cert, err := sc.TLSCertificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Serve serves HTTPS on ln until ctx ends. Then it closes the listener
// and every connection at once, as an endpoint that became unreachable
// would, and returns once no request is still being handled, so another
// Server may take the directory (and the address) over.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.front {
		ln.Close()
		return errors.New("objectstore: a Server BehindFront is served by its front (ServeHTTP), never on a listener of its own")
	}
	if s.tlsConfig == nil {
		ln.Close()
		return errors.New("objectstore: Serve needs WithTLS: clients verify the endpoint's certificate")
	}
	g := &gate{}
	g.idle = sync.NewCond(&g.mu)
	srv := &http.Server{
		Handler:           s.handler(g),
		TLSConfig:         s.tlsConfig.Clone(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(logfWriter{s.logf}, "objectstore: ", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		g.closeAndWait()
		return err
	case <-ctx.Done():
		err := srv.Close()
		<-done
		g.closeAndWait()
		return err
	}
}

func (s *Server) handler(g *gate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.enter() {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		defer g.leave()
		s.ServeHTTP(w, r)
	})
}

// ServeHTTP serves one request: Serve's handler, and for a Server
// BehindFront the entry its front calls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	target := r.URL.RequestURI()
	s.virtualHost(r)
	if code, status, msg := s.authenticate(r); code != "" {
		writeError(rec, r, status, code, msg)
	} else {
		s.s3.ServeHTTP(rec, r)
	}
	if s.logRequests {
		s.logf("%s %s %s -> %d (%s)", r.Method, r.Host, target, rec.status, time.Since(start).Round(time.Millisecond))
	}
}

// virtualHost turns BUCKET.ENDPOINT/KEY into /BUCKET/KEY.
func (s *Server) virtualHost(r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, base := range s.vhostBases {
		bucket, ok := strings.CutSuffix(host, "."+base)
		if !ok || bucket == "" || strings.Contains(bucket, ".") {
			continue
		}
		r.URL.Path = "/" + bucket + r.URL.Path
		r.URL.RawPath = ""
		return
	}
}

// authenticate checks that a request is signed (SigV4) for the store's
// access key, and region when one is set. It does not verify signatures:
// the store serves labs on loopback or inside the lab's own namespaces,
// where the key is a fixed lab value and nothing untrusted can connect;
// what matters is that a client configured with the wrong key, region or
// no credentials at all fails as it would on AWS.
func (s *Server) authenticate(r *http.Request) (code string, status int, msg string) {
	if s.front {
		return "", 0, ""
	}
	var cred string
	if h := r.Header.Get("Authorization"); h != "" {
		rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
		if !ok {
			return "InvalidRequest", http.StatusBadRequest, "Please use AWS4-HMAC-SHA256."
		}
		for _, f := range strings.Split(rest, ",") {
			if k, v, _ := strings.Cut(strings.TrimSpace(f), "="); k == "Credential" {
				cred = v
			}
		}
	} else if q := r.URL.Query(); q.Get("X-Amz-Credential") != "" { // a presigned URL
		cred = q.Get("X-Amz-Credential")
	} else {
		return "AccessDenied", http.StatusForbidden, "Access Denied"
	}
	parts := strings.Split(cred, "/") // KEY/DATE/REGION/s3/aws4_request
	if len(parts) != 5 || parts[3] != "s3" || parts[4] != "aws4_request" {
		return "AuthorizationHeaderMalformed", http.StatusBadRequest, "The authorization header is malformed; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
	}
	if parts[0] != s.keyID {
		return "InvalidAccessKeyId", http.StatusForbidden, "The AWS Access Key Id you provided does not exist in our records."
	}
	if s.region != "" && parts[2] != s.region {
		return "AuthorizationHeaderMalformed", http.StatusBadRequest,
			fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", parts[2], s.region)
	}
	return "", 0, ""
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	body, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}{Code: code, Message: msg})
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

// gate counts the requests being handled, so Serve returns only when the
// directory is quiet, and refuses new ones once closed.
type gate struct {
	mu     sync.Mutex
	idle   *sync.Cond
	n      int
	closed bool
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n--; g.n == 0 {
		g.idle.Broadcast()
	}
}

func (g *gate) closeAndWait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for g.n > 0 {
		g.idle.Wait()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// errLogger passes gofakes3's errors and warnings on; its info lines are
// one per request and repeat what WithRequestLog says.
type errLogger struct{ logf func(string, ...any) }

func (l errLogger) Print(level gofakes3.LogLevel, v ...any) {
	if level == gofakes3.LogErr || level == gofakes3.LogWarn {
		l.logf("objectstore: %s %s", level, fmt.Sprint(v...))
	}
}

type logfWriter struct{ logf func(string, ...any) }

func (w logfWriter) Write(p []byte) (int, error) {
	w.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
