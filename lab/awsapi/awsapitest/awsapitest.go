// Package awsapitest starts the awsapi stand-in on loopback for tests, and
// finds and runs the real clients (awscli v2) against it.
package awsapitest

import (
	"bytes"
	"context"
	"crypto/tls"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/pgha/pgha/lab/awsapi"
)

// Server is an awsapi handler on a loopback TLS listener, with a CA of
// its own whose certificate covers 127.0.0.1 and the region's endpoint names
// (awsapi.CertificateNames).
type Server struct {
	URL     string // https://127.0.0.1:PORT
	CA      *awsapi.CA
	CAFile  string // the CA certificate, for AWS_CA_BUNDLE
	Account *awsapi.Account
	log     *SyncBuffer
	http    *http.Client
}

// Start serves the account until the test ends.
func Start(t testing.TB, a *awsapi.Account) *Server {
	t.Helper()
	ca, err := awsapi.NewCA("pgha lab test CA")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ca.Issue(append(awsapi.CertificateNames(a.Region), "127.0.0.1")...)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sc.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	log := &SyncBuffer{}
	srv := httptest.NewUnstartedServer(awsapi.NewHandler(a, awsapi.HandlerOptions{Log: log}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Handshake errors (a client refusing the CA, as one test wants) go to
	// the test's log, not to stderr.
	srv.Config.ErrorLog = stdlog.New(testWriter{t}, "awsapi server: ", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(a.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("awsapi trail:\n%s", log.String())
		}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	return &Server{URL: srv.URL, CA: ca, CAFile: caFile, Account: a, log: log, http: client}
}

// Log returns the trail so far.
func (s *Server) Log() string { return s.log.String() }

// HTTPClient trusts only the test CA.
func (s *Server) HTTPClient() *http.Client { return s.http }

// Config is an aws.Config that reaches the stand-in with these credentials.
func (s *Server) Config(creds aws.CredentialsProvider) aws.Config {
	return aws.Config{Region: s.Account.Region, Credentials: creds, HTTPClient: s.http,
		BaseEndpoint: aws.String(s.URL)}
}

// SSM is an SSM client of the stand-in.
func (s *Server) SSM(creds aws.CredentialsProvider) *ssm.Client {
	return ssm.NewFromConfig(s.Config(creds))
}

// EC2 is an EC2 client of the stand-in.
func (s *Server) EC2(creds aws.CredentialsProvider) *ec2.Client {
	return ec2.NewFromConfig(s.Config(creds))
}

// AWSCLI returns an awscli v2 executable (Debian's package: apt-get install
// awscli), or skips the test. PGHA_AWSCLI names one explicitly; otherwise
// the first `aws` on PATH that is v2, then Debian's location. A v1 awscli
// (pip's) is passed over: its exit codes and output differ.
func AWSCLI(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("PGHA_AWSCLI")}
	if p, err := exec.LookPath("aws"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/aws")
	for _, c := range candidates {
		if c == "" {
			continue
		}
		out, err := exec.Command(c, "--version").CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "aws-cli/2.") {
			return c
		}
	}
	t.Skip("awscli v2 not found: apt-get install -y awscli (Debian 12 ships 2.9), or set PGHA_AWSCLI")
	return ""
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Run runs a command with exactly env (nothing inherited: no stray
// AWS_* variables, proxies or CA bundles from the calling environment).
func Run(ctx context.Context, env []string, name string, args ...string) Result {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		r.ExitCode = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.ExitCode = ee.ExitCode()
		} else {
			r.Stderr += err.Error()
		}
	}
	return r
}

// CLIEnv is an environment for awscli with no credentials or
// configuration of its own: HOME and both config files point at empty
// files in a fresh directory, the CA bundle is caFile (none: the system
// store), and IMDS is disabled unless imdsEndpoint is set. Add credentials
// (AWS_ACCESS_KEY_ID, …) to it, or let awscli find them through IMDS.
func CLIEnv(t testing.TB, caFile, imdsEndpoint string) []string {
	t.Helper()
	home := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_PAGER=",
	}
	if caFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+caFile)
	}
	if imdsEndpoint != "" {
		env = append(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsEndpoint)
	} else {
		env = append(env, "AWS_EC2_METADATA_DISABLED=true")
	}
	return env
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// SyncBuffer collects what a server or a child process writes while the
// test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
