package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/objectstore"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/userdata"
)

// A namespace lab with backups gives pgBackRest on every PostgreSQL node an
// S3 repository of the lab's own (lab/objectstore): the configuration AWS
// gets but for the endpoint, its CA and the key. The endpoint listens on
// each PostgreSQL node's own loopback (the nodes resolve "localhost"
// there, and pgBackRest verifies only DNS names in a certificate), served
// by one lab process, so the repository is one store whichever node leads.
const (
	labBucket   = "pgha-lab"
	labS3Region = "us-east-1"
	labS3Port   = 9000
	// objectStoreHost names the endpoint's process in the lab's records.
	objectStoreHost = "objectstore"
)

// Backups reports whether the lab archives to and backs up into its S3
// endpoint.
func (l *Lab) Backups() bool { return l.Settings.Backups }

func (l *Lab) backupDir(parts ...string) string {
	return filepath.Join(append([]string{l.Dir, "backups"}, parts...)...)
}

// labBackup is the repository as the nodes' pgbackrest.conf names it.
func (l *Lab) labBackup() *userdata.Backup {
	return &userdata.Backup{
		Bucket: labBucket, Region: labS3Region, Endpoint: "localhost", Port: labS3Port,
		Path: "/pgha/" + l.Name, URIStyle: "path", CAFile: l.backupDir("ca.crt"),
		KeyType: "shared", RetentionFull: 2,
	}
}

// backupKey is the repository's access key, made when the lab is made.
type backupKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// writeBackupBase makes the endpoint's CA (the nodes trust it through
// pgbackrest.conf), the access key and the store's directory.
func (l *Lab) writeBackupBase() error {
	if err := os.MkdirAll(l.backupDir("store"), 0o700); err != nil {
		return err
	}
	// postgres reads the CA certificate; the directory must let it in.
	if err := os.Chmod(l.backupDir(), 0o755); err != nil {
		return err
	}
	ca, err := awsapi.NewCA("pgha lab " + l.Name + " backups")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(l.backupDir("ca.crt"), l.backupDir("ca.key")); err != nil {
		return err
	}
	if err := os.Chmod(l.backupDir("ca.crt"), 0o644); err != nil {
		return err
	}
	id, secret := make([]byte, 8), make([]byte, 30)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	k := backupKey{
		ID:     "AKIA" + strings.ToUpper(hex.EncodeToString(id)),
		Secret: base64.RawURLEncoding.EncodeToString(secret),
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return os.WriteFile(l.backupDir("key.json"), b, 0o600)
}

func (l *Lab) backupKey() (backupKey, error) {
	var k backupKey
	b, err := os.ReadFile(l.backupDir("key.json"))
	if err != nil {
		return k, err
	}
	return k, json.Unmarshal(b, &k)
}

// backupEnv is what a PostgreSQL node's secrets file adds for pgBackRest:
// on AWS the instance role signs, here the lab's key does.
func (l *Lab) backupEnv() ([]byte, error) {
	k, err := l.backupKey()
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf("%s=%s\n%s=%s\n", userdata.EnvBackupKey, k.ID, userdata.EnvBackupKeySecret, k.Secret)), nil
}

// startObjectStore runs `lab objectstore` as one of the lab's processes and
// waits until it listens on every PostgreSQL node.
func (l *Lab) startObjectStore(ctx context.Context, control string) error {
	if control == "" {
		return errors.New("a lab with backups runs its S3 endpoint as `lab objectstore`: UpOptions.Control must name the lab command")
	}
	if err := l.InstallControl(control); err != nil {
		return err
	}
	_ = os.Remove(l.backupDir("ready"))
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	r, err := proc.Start(proc.Spec{
		Argv: []string{l.ControlPath(), "objectstore", "--name", l.Name},
		Env:  []string{"PATH=" + basePath, "LANG=C.UTF-8"}, Dir: "/",
		Log: l.backupDir("objectstore.log"), Marker: "objectstore",
	})
	if err == nil {
		err = l.saveRecord(objectStoreHost, r)
	}
	unlock()
	if err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, func(context.Context) error {
		if !r.Alive() {
			return fmt.Errorf("the S3 endpoint exited; last lines of %s:\n%s", r.Log, tail(r.Log, 15))
		}
		if _, err := os.Stat(l.backupDir("ready")); err != nil {
			return errors.New("the S3 endpoint does not listen yet")
		}
		return nil
	})
}

// ServeObjectStore is `lab objectstore`: the lab's S3 endpoint on every
// PostgreSQL node's loopback, until ctx ends.
func (l *Lab) ServeObjectStore(ctx context.Context) error {
	if !l.Backups() {
		return fmt.Errorf("lab %q has no backups (go run ./lab up --backups)", l.Name)
	}
	ca, err := awsapi.LoadCA(l.backupDir("ca.crt"), l.backupDir("ca.key"))
	if err != nil {
		return err
	}
	k, err := l.backupKey()
	if err != nil {
		return err
	}
	tlsCfg, err := objectstore.TLSConfig(ca, "localhost")
	if err != nil {
		return err
	}
	s, err := objectstore.New(l.backupDir("store"), objectstore.WithAccessKey(k.ID), objectstore.WithRegion(labS3Region), objectstore.WithTLS(tlsCfg))
	if err != nil {
		return err
	}
	if err := s.CreateBucket(labBucket); err != nil {
		return err
	}
	var lns []net.Listener
	for _, n := range l.Plan.ByRole(topology.RolePatroni) {
		ln, err := access.ListenNetns(l.Namespace(n.Name), "tcp4", fmt.Sprintf("127.0.0.1:%d", labS3Port))
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return fmt.Errorf("listening in %s: %w", n.Name, err)
		}
		lns = append(lns, ln)
		// "localhost" may resolve to ::1 first; serve there too when the
		// namespace has IPv6.
		if ln6, err := access.ListenNetns(l.Namespace(n.Name), "tcp6", fmt.Sprintf("[::1]:%d", labS3Port)); err == nil {
			lns = append(lns, ln6)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(lns))
	for i, ln := range lns {
		wg.Go(func() {
			if err := s.Serve(ctx, ln); err != nil && ctx.Err() == nil {
				errs[i] = err
				cancel()
			}
		})
	}
	if err := os.WriteFile(l.backupDir("ready"), nil, 0o644); err != nil {
		cancel()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// backupNode checks that node is a PostgreSQL node of a lab with backups.
func (l *Lab) backupNode(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role != topology.RolePatroni {
		return fmt.Errorf("%s is not a PostgreSQL node", node)
	}
	if !l.Backups() {
		return fmt.Errorf("lab %q has no backups (go run ./lab up --backups)", l.Name)
	}
	return nil
}

// asPostgresIn is the command line prefix that runs a program on a
// PostgreSQL node: in its namespace, as postgres, with the node's secrets
// (the repository's key among them) in a clean environment.
func (l *Lab) asPostgresIn(node string) ([]string, []string, error) {
	if err := l.backupNode(node); err != nil {
		return nil, nil, err
	}
	secrets, err := readEnvFile(l.Paths(node).SecretsEnvFile)
	if err != nil {
		return nil, nil, err
	}
	// pgBackRest logs in to PostgreSQL over the node's socket with the
	// superuser's line of Patroni's pgpass file (host: the socket
	// directory), as Patroni itself does.
	env := append([]string{"PATH=" + basePath, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=" + l.NodeDir(node) + "/home",
		"PGPASSFILE=" + l.Paths(node).PGPassFile}, secrets...)
	argv := []string{"ip", "netns", "exec", l.Namespace(node), "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}
	return argv, env, nil
}

// PgBackRest runs pgbackrest with args on a PostgreSQL node, with the
// node's configuration and stanza, and returns what it printed.
func (l *Lab) PgBackRest(ctx context.Context, node string, args ...string) ([]byte, error) {
	if l.Boot() {
		return l.bootPgBackRest(ctx, node, args...)
	}
	argv, env, err := l.asPostgresIn(node)
	if err != nil {
		return nil, err
	}
	argv = append(argv, "pgbackrest", "--config="+l.Paths(node).PgBackRestConfig, "--stanza="+l.Name)
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
	cmd.Env, cmd.Dir = env, "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("pgbackrest %s on %s: %w: %s", strings.Join(args, " "), node, err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// drillPort is where a restore drill's PostgreSQL listens: on a socket in
// its scratch directory only, inside the node's namespace.
const drillPort = 5499

// RestoreDrill restores the repository as it was at target into a scratch
// data directory on a PostgreSQL node, starts a PostgreSQL there that
// nothing else can reach (no TCP, no archiving: it must never write into
// the repository), waits for it to finish recovery, runs query with psql
// in database and returns its output. The scratch directory and the server go on every
// path out.
func (l *Lab) RestoreDrill(ctx context.Context, node string, target time.Time, database, query string) (string, error) {
	if l.Boot() {
		return l.bootRestoreDrill(ctx, node, target, database, query)
	}
	argv, env, err := l.asPostgresIn(node)
	if err != nil {
		return "", err
	}
	scratch := filepath.Join(l.NodeDir(node), "restore-drill")
	if err := os.RemoveAll(scratch); err != nil {
		return "", err
	}
	data, sock := filepath.Join(scratch, "data"), filepath.Join(scratch, "run")
	for _, d := range []string{scratch, data, sock} {
		if err := mkdirOwned(d, "postgres", 0o700); err != nil {
			return "", err
		}
	}
	defer os.RemoveAll(scratch)
	run := func(args ...string) error {
		full := with(argv, args...)
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env, cmd.Dir = env, "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	p := l.Paths(node)
	if err := run("pgbackrest", "--config="+p.PgBackRestConfig, "--stanza="+l.Name, "--pg1-path="+data,
		"--type=time", "--target="+target.UTC().Format("2006-01-02 15:04:05.000000-07"), "--target-action=promote",
		"--log-level-console=warn", "restore"); err != nil {
		return "", fmt.Errorf("restoring to %s: %w", target.UTC().Format(time.RFC3339Nano), err)
	}
	// The restored configuration is the node's own (its archive_command
	// included): the command line overrides what must not apply here.
	full := with(argv, pgBinDir+"/postgres", "-D", data,
		"-c", "listen_addresses=", "-c", fmt.Sprintf("port=%d", drillPort), "-c", "unix_socket_directories="+sock,
		"-c", "archive_mode=off", "-c", "synchronous_standby_names=", "-c", "logging_collector=off",
		"-c", "hba_file="+filepath.Join(data, "pg_hba.conf"), "-c", "ident_file="+filepath.Join(data, "pg_ident.conf"))
	server := exec.Command(full[0], full[1:]...)
	server.Env, server.Dir = env, "/"
	logf, err := os.Create(filepath.Join(l.NodeDir(node), "log", "restore-drill.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	server.Stdout, server.Stderr = logf, logf
	if err := server.Start(); err != nil {
		return "", err
	}
	defer func() {
		// SIGINT: a fast shutdown.
		_ = server.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = server.Process.Kill()
			<-done
		}
	}()
	psql := func(db, sql string) (string, error) {
		full := with(argv, pgBinDir+"/psql", "-X", "-A", "-t", "-w",
			"-h", sock, "-p", fmt.Sprint(drillPort), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql)
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env, cmd.Dir = append(env, "PGCONNECT_TIMEOUT=5", "PGPASSWORD="+envValue(env, userdata.EnvSuperuserPassword)), "/"
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	var last error
	if err := waitFor(ctx, 3*time.Minute, func(context.Context) error {
		out, err := psql("postgres", "SELECT pg_is_in_recovery()")
		if err != nil {
			last = err
			return err
		}
		if out != "f" {
			return errors.New("the restored server is still recovering")
		}
		return nil
	}); err != nil {
		return "", fmt.Errorf("the restored server never finished recovery (%v); see %s", last, logf.Name())
	}
	return psql(database, query)
}

// with returns prefix followed by args, in a slice of its own.
func with(prefix []string, args ...string) []string {
	return append(append([]string(nil), prefix...), args...)
}

// envValue is the value of key in KEY=VALUE lines, or "".
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// StopObjectStore stops the lab's S3 endpoint, as a repository that became
// unreachable: the nodes' archiving falls behind while PostgreSQL serves.
func (l *Lab) StopObjectStore() error {
	recs, err := l.records()
	if err != nil {
		return err
	}
	r, ok := recs[objectStoreHost]
	if !ok || !r.Alive() {
		return nil
	}
	return r.Stop(10 * time.Second)
}

// StartObjectStore starts the S3 endpoint again on the same store, unless
// it runs.
func (l *Lab) StartObjectStore(ctx context.Context) error {
	if recs, err := l.records(); err == nil {
		if r, ok := recs[objectStoreHost]; ok && r.Alive() {
			return nil
		}
	}
	return l.startObjectStore(ctx, l.ControlPath())
}
