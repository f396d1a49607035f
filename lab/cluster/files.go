package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// The lab's stand-ins for the SSM parameters are one 0600 file per secret
// under <state>/secrets, named after the secret.
func (l *Lab) secretsDir() string { return filepath.Join(l.Dir, "secrets") }

// generateSecrets writes a fresh random password per secret.
func (l *Lab) generateSecrets() error {
	if err := os.MkdirAll(l.secretsDir(), 0o700); err != nil {
		return err
	}
	for _, s := range userdata.Secrets {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		// URL-safe base64 has no ':' or '\', which pgpass would need escaped.
		if err := os.WriteFile(filepath.Join(l.secretsDir(), s.Name), []byte(base64.RawURLEncoding.EncodeToString(b)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Passwords reads the lab's secrets.
func (l *Lab) Passwords() (userdata.Passwords, error) {
	pw := userdata.Passwords{}
	for _, s := range userdata.Secrets {
		b, err := os.ReadFile(filepath.Join(l.secretsDir(), s.Name))
		if err != nil {
			return nil, fmt.Errorf("lab secret %q: %w", s.Name, err)
		}
		pw[s.Name] = strings.TrimSpace(string(b))
	}
	return pw, nil
}

// Credentials are the outputs' credentials, from the secrets.
func (l *Lab) Credentials() (outputs.Credentials, error) {
	p, err := l.Passwords()
	if err != nil {
		return outputs.Credentials{}, err
	}
	// The same fields the program exports, by the same table.
	b, err := json.Marshal(userdata.Credentials(userdata.DefaultUsers(), p))
	if err != nil {
		return outputs.Credentials{}, err
	}
	var c outputs.Credentials
	return c, json.Unmarshal(b, &c)
}

// daemonUser is who runs a role's daemon, as on EC2 under systemd.
func daemonUser(r topology.Role) string { return userdata.DaemonUser(r) }

// writeNodeFiles lays out one node's directory: the rendered files, the
// secrets env file, and the node's TLS material.
func (l *Lab) writeNodeFiles(n topology.Node, pw userdata.Passwords) error {
	spec := l.Spec()
	paths := l.Paths(n.Name)
	owner := daemonUser(n.Role)
	dir := l.NodeDir(n.Name)
	// The node directory itself stays root's; the daemon owns what it writes.
	if err := mkdirOwned(dir, "root", 0o755); err != nil {
		return err
	}
	for _, d := range []string{"etc", "log"} {
		if err := mkdirOwned(filepath.Join(dir, d), "root", 0o755); err != nil {
			return err
		}
	}
	if err := mkdirOwned(filepath.Join(dir, "secrets"), owner, 0o700); err != nil {
		return err
	}
	switch n.Role {
	case topology.RoleEtcd:
		if err := mkdirOwned(paths.EtcdDataDir, owner, 0o700); err != nil {
			return err
		}
	case topology.RolePatroni:
		for _, d := range []string{filepath.Join(dir, "home"), paths.PGSocketDir, paths.PGLogDir} {
			if err := mkdirOwned(d, owner, 0o755); err != nil {
				return err
			}
		}
		if err := mkdirOwned(filepath.Dir(paths.PGDataDir), owner, 0o700); err != nil {
			return err
		}
		if err := mkdirOwned(paths.PGDataDir, owner, 0o700); err != nil {
			return err
		}
		if l.Backups() {
			for _, d := range []string{filepath.Dir(paths.PgBackRestSpool), paths.PgBackRestSpool, paths.PgBackRestLog, paths.PgBackRestLock} {
				if err := mkdirOwned(d, owner, 0o750); err != nil {
					return err
				}
			}
		}
	}
	if err := l.writeNodeTLS(n, owner); err != nil {
		return err
	}
	files, err := userdata.NodeFiles(spec, n.Name, paths)
	if err != nil {
		return fmt.Errorf("rendering %s: %w", n.Name, err)
	}
	for _, f := range files {
		// A file outside the node's directory would land on the host itself
		// (a systemd unit, say); the lab runs its daemons without those.
		if !strings.HasPrefix(f.Path, dir+"/") {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			return err
		}
		if err := writeOwned(f.Path, f.Content, f.Owner, f.Mode); err != nil {
			return err
		}
	}
	env, err := userdata.RenderSecretsEnv(spec, pw)
	if err != nil {
		return err
	}
	env = forRole(env, n.Role)
	if n.Role == topology.RolePatroni && l.Backups() {
		b, err := l.backupEnv()
		if err != nil {
			return err
		}
		env = append(env, b...)
	}
	if err := writeOwned(paths.SecretsEnvFile, env, owner, 0o600); err != nil {
		return err
	}
	if n.Role == topology.RoleHAProxy {
		return l.writePoolerFiles(n, pw)
	}
	return nil
}

// forRole keeps the secrets a role's daemon reads, as the boot script does
// on AWS: an etcd node holds no password, an HAProxy node only the stats one.
func forRole(env []byte, r topology.Role) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(env), "\n") {
		key, _, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			out.WriteString(line)
			continue
		}
		for _, s := range userdata.Secrets {
			if (key == s.Env || key == s.UserEnv) && s.ReadBy(r) {
				out.WriteString(line)
			}
		}
	}
	return out.Bytes()
}

// ids resolves "user" or "user:group".
func ids(owner string) (int, int, error) {
	u, g, _ := strings.Cut(owner, ":")
	if g == "" {
		g = u
	}
	uu, err := user.Lookup(u)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q is missing (install the Debian packages: apt-get install -y etcd-server patroni postgresql-15 haproxy)", u)
	}
	gg, err := user.LookupGroup(g)
	if err != nil {
		return 0, 0, fmt.Errorf("group %q is missing", g)
	}
	uid, _ := strconv.Atoi(uu.Uid)
	gid, _ := strconv.Atoi(gg.Gid)
	return uid, gid, nil
}

// asInvoker: without root every file belongs to the invoking user, who
// also runs every daemon; the owners the cloud uses cannot be set.
func asInvoker() bool { return os.Geteuid() != 0 }

func mkdirOwned(path, owner string, mode os.FileMode) error {
	if err := os.MkdirAll(path, mode); err != nil {
		return err
	}
	if asInvoker() {
		return os.Chmod(path, mode)
	}
	uid, gid, err := ids(owner)
	if err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func writeOwned(path string, content []byte, owner string, mode os.FileMode) error {
	if owner == "" {
		owner = "root"
	}
	if mode == 0 {
		mode = 0o644
	}
	if asInvoker() {
		if err := os.WriteFile(path, content, mode); err != nil {
			return err
		}
		return os.Chmod(path, mode)
	}
	uid, gid, err := ids(owner)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, content, mode); err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}
