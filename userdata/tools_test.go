package userdata

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/internal/topology"
)

// These tests hand the rendered files to the real consumers installed from
// Debian 12: haproxy, cloud-init and bash. None needs root.

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s is not installed; .ci/run installs it", name)
	return p
}

func TestHAProxyAcceptsConfig(t *testing.T) {
	haproxy := lookTool(t, "haproxy")
	// HAProxy loads the CA and the node's certificate and key while it
	// checks: real ones, where the lab layout puts them.
	base := t.TempDir()
	tt := newTestTLS(t, base)
	for _, profile := range Profiles() {
		c := defaultCluster(t)
		c.Profile = profile.Name
		for _, n := range c.Plan.ByRole(topology.RoleHAProxy) {
			p := labPaths(base, n.Name)
			tt.install(t, c, n.Name, p, "")
			b, err := RenderHAProxyConfig(c, n.Name, p)
			require.NoError(t, err)
			f := filepath.Join(t.TempDir(), "haproxy.cfg")
			require.NoError(t, os.WriteFile(f, b, 0o644))
			out, err := haproxyCheck(haproxy, f)
			require.NoError(t, err, "%s/%s: %s", profile.Name, n.Name, out)
			// Warnings are defects too: HAProxy prints them for settings it
			// ignores.
			assert.NotContains(t, out, "[WARNING]", "%s/%s", profile.Name, n.Name)
			assert.NotContains(t, out, "[ALERT]", "%s/%s", profile.Name, n.Name)
			assert.Contains(t, out, "Configuration file is valid")
		}
	}

	// The check is not a rubber stamp: a backup server tracking a server
	// that does not exist must be refused.
	c := defaultCluster(t)
	b, err := RenderHAProxyConfig(c, "haproxy-1", labPaths(base, "haproxy-1"))
	require.NoError(t, err)
	bad := strings.Replace(string(b), "track primary/pg-1", "track primary/pg-9", 1)
	require.NotEqual(t, string(b), bad)
	f := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(f, []byte(bad), 0o644))
	out, err := haproxyCheck(haproxy, f)
	assert.Error(t, err, out)
}

func haproxyCheck(haproxy, cfg string) (string, error) {
	cmd := exec.Command(haproxy, "-c", "-f", cfg)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", EnvStatsPassword + "=" + testPasswords()["stats"]}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCloudInitSchema(t *testing.T) {
	cloudInit := lookTool(t, "cloud-init")
	dir := t.TempDir()
	for _, sync := range []bool{false, true} {
		c := defaultCluster(t)
		c.SynchronousMode = sync
		nodes := c.Plan.Nodes
		if sync {
			// With monitoring: every node's exporters, and the monitoring
			// node.
			c.Monitoring = &Monitoring{}
			nodes = append(slices.Clone(nodes), c.Plan.Monitor())
		}
		for _, n := range nodes {
			b, err := RenderCloudInit(c, n.Name)
			require.NoError(t, err)
			f := filepath.Join(dir, n.Name+".yml")
			require.NoError(t, os.WriteFile(f, b, 0o644))
			out, err := exec.Command(cloudInit, "schema", "--config-file", f).CombinedOutput()
			require.NoError(t, err, "%s: %s", n.Name, out)
			assert.Contains(t, string(out), "Valid cloud-config", n.Name)
		}
	}
	// And it does reject what 22.4 does not know.
	b, err := RenderCloudInit(defaultCluster(t), "pg-1")
	require.NoError(t, err)
	bad := strings.Replace(string(b), "    defer: true\n", "    deferred: true\n", 1)
	f := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(f, []byte(bad), 0o644))
	out, err := exec.Command(cloudInit, "schema", "--config-file", f).CombinedOutput()
	assert.Error(t, err, string(out))
}

// TestScriptsParse runs bash -n on every script a node receives: the
// post-bootstrap script, the boot script and the secrets fetcher.
func TestScriptsParse(t *testing.T) {
	bash := lookTool(t, "bash")
	for _, mon := range []bool{false, true} {
		c := defaultCluster(t)
		nodes := c.Plan.Nodes
		if mon {
			c.Monitoring = &Monitoring{}
			nodes = append(slices.Clone(nodes), c.Plan.Monitor())
		}
		scriptsParse(t, bash, c, nodes)
	}
}

func scriptsParse(t *testing.T, bash string, c Cluster, nodes []topology.Node) {
	dir := t.TempDir()
	scripts := 0
	for _, n := range nodes {
		b, err := RenderCloudInit(c, n.Name)
		require.NoError(t, err)
		var doc struct {
			WriteFiles []struct {
				Path    string `yaml:"path"`
				Content string `yaml:"content"`
			} `yaml:"write_files"`
		}
		require.NoError(t, yaml.Unmarshal(b, &doc))
		for _, wf := range doc.WriteFiles {
			if !strings.HasPrefix(wf.Content, "#!/bin/bash\n") {
				continue
			}
			scripts++
			f := filepath.Join(dir, n.Name+"-"+filepath.Base(wf.Path))
			require.NoError(t, os.WriteFile(f, []byte(wf.Content), 0o755))
			out, err := exec.Command(bash, "-n", f).CombinedOutput()
			assert.NoError(t, err, "%s %s: %s", n.Name, wf.Path, out)
		}
	}
	// etcd: join, data volume, fetch, boot; patroni: post-bootstrap, data
	// volume, fetch, boot; haproxy: fetch, boot; the monitoring node:
	// fetch, boot.
	want := 3*4 + 3*4 + 2*2
	if c.Monitoring != nil {
		want += 2
	}
	assert.Equal(t, want, scripts)
}

// TestSystemdDropIns checks each role's drop-in against the unit Debian's
// package installs, with systemd's own parser: an unknown key or a bad
// directive is reported, and reports fail the test.
func TestSystemdDropIns(t *testing.T) {
	analyze := lookTool(t, "systemd-analyze")
	c := defaultCluster(t)
	verify := func(unit, dropIn string, extra map[string]string) (string, error) {
		dir := t.TempDir()
		for name, content := range extra {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
		pkg, err := os.ReadFile(filepath.Join("/lib/systemd/system", unit))
		require.NoError(t, err, "the package that ships %s is not installed", unit)
		require.NoError(t, os.WriteFile(filepath.Join(dir, unit), pkg, 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, unit+".d"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, unit+".d", "pgha.conf"), []byte(dropIn), 0o644))
		out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, unit)).CombinedOutput()
		return string(out), err
	}
	for _, node := range []string{"etcd-1", "pg-1", "haproxy-1"} {
		n, _ := c.Plan.Node(node)
		unit := string(n.Role) + ".service"
		b, err := RenderCloudInit(c, node)
		require.NoError(t, err)
		var doc struct {
			WriteFiles []struct {
				Path    string `yaml:"path"`
				Content string `yaml:"content"`
			} `yaml:"write_files"`
		}
		require.NoError(t, yaml.Unmarshal(b, &doc))
		var dropIn string
		units := map[string]string{}
		for _, wf := range doc.WriteFiles {
			if wf.Path == "/etc/systemd/system/"+unit+".d/pgha.conf" {
				dropIn = wf.Content
			}
			if wf.Path == "/etc/systemd/system/"+DataUnit {
				units[DataUnit] = wf.Content
			}
		}
		require.NotEmpty(t, dropIn, "%s: no drop-in for %s", node, unit)
		if _, ok := DataVolumeOf(n.Role); ok {
			require.Contains(t, units, DataUnit, "%s keeps its data on a volume: the unit that mounts it ships too", node)
			require.Contains(t, dropIn, "Requires="+DataUnit, "%s must never start on the root disk", unit)
		}
		out, err := verify(unit, dropIn, units)
		require.NoError(t, err, "%s: %s", unit, out)
		assert.Empty(t, out, unit)

		out, _ = verify(unit, dropIn+"NoSuchSetting=1\n", units)
		assert.Contains(t, out, "Unknown key", "systemd-analyze must notice a bad drop-in")
	}

	// With monitoring, the drop-ins of the exporters' and Prometheus's
	// units, against Debian's units.
	c.Monitoring = &Monitoring{}
	checked := 0
	for _, node := range []string{"etcd-1", "pg-1", "haproxy-1", c.Plan.Monitor().Name} {
		d, files, err := cloudFiles(c, node)
		require.NoError(t, err)
		for _, u := range d.Monitored {
			var dropIn string
			for _, f := range files {
				if f.Path == "/etc/systemd/system/"+u.Unit+".d/pgha.conf" {
					dropIn = string(f.Content)
				}
			}
			require.NotEmpty(t, dropIn, "%s: no drop-in for %s", node, u.Unit)
			out, err := verify(u.Unit, dropIn, nil)
			require.NoError(t, err, "%s: %s", u.Unit, out)
			assert.Empty(t, out, u.Unit)
			out, _ = verify(u.Unit, dropIn+"NoSuchSetting=1\n", nil)
			assert.Contains(t, out, "Unknown key", "systemd-analyze must notice a bad drop-in")
			checked++
		}
	}
	assert.Equal(t, 1+2+1+3, checked, "node_exporter everywhere, postgres_exporter on pg-1, Prometheus and Alertmanager on the monitoring node")
}

// cloudFileContent returns one write_files entry of a node's cloud-config.
func cloudFileContent(t *testing.T, c Cluster, node, path string) string {
	t.Helper()
	b, err := RenderCloudInit(c, node)
	require.NoError(t, err)
	var doc struct {
		WriteFiles []struct {
			Path    string `yaml:"path"`
			Content string `yaml:"content"`
		} `yaml:"write_files"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	for _, wf := range doc.WriteFiles {
		if wf.Path == path {
			return wf.Content
		}
	}
	t.Fatalf("%s: no %s in write_files", node, path)
	return ""
}

// TestFetchSecretsScript runs the boot-time SSM reader with a stand-in for
// the aws CLI (there is no AWS here): it must write exactly the role's keys
// into a 0600 file, and refuse a value that would need quoting without
// leaving a partial file behind.
// fetchCase is a node and the secrets-file keys its fetch script writes.
type fetchCase struct {
	node string
	keys []string
}

func TestFetchSecretsScript(t *testing.T) {
	cases := []fetchCase{
		{"pg-1", []string{EnvSuperuserUsername, EnvSuperuserPassword, EnvReplicationUsername, EnvReplicationPassword,
			EnvRewindUsername, EnvRewindPassword, EnvRestAPIUsername, EnvRestAPIPassword, EnvAppPassword, EnvMonitorPassword,
			EnvPoolerPassword}},
		{"haproxy-1", []string{EnvStatsPassword, EnvPoolerPassword, EnvPoolerAdminPassword}},
		{"etcd-1", nil},
	}
	c := defaultCluster(t)
	testFetchSecrets(t, c, cases...)
	// With monitoring, every node also installs the exporters' copy of its
	// key; the monitoring node reads no password.
	c.Monitoring = &Monitoring{}
	testFetchSecrets(t, c, append(cases, fetchCase{c.Plan.Monitor().Name, nil})...)
}

func testFetchSecrets(t *testing.T, c Cluster, cases ...fetchCase) {
	for _, tc := range cases {
		dir := t.TempDir()
		out := filepath.Join(dir, "etc", "secrets.env")
		script := cloudFileContent(t, c, tc.node, fetchSecrets)
		orig := "out=" + CloudPaths().SecretsEnvFile + "\n"
		if tc.keys != nil {
			require.Contains(t, script, orig)
			script = strings.Replace(script, orig, "out="+out+"\n", 1)
		} else {
			assert.NotContains(t, script, orig, "a node without passwords writes no secrets file")
		}
		tlsDir := filepath.Join(dir, "tls")
		script = strings.ReplaceAll(script, path.Dir(CloudPaths().TLSCertFile), tlsDir)
		authFile := filepath.Join(dir, "pgbouncer", "userlist.txt")
		require.NoError(t, os.MkdirAll(filepath.Dir(authFile), 0o755))
		script = strings.ReplaceAll(script, CloudPaths().PgBouncerAuthFile, authFile)
		scriptPath := filepath.Join(dir, "fetch")
		require.NoError(t, os.WriteFile(scriptPath, []byte(script), 0o755))

		// aws ssm get-parameter ... --name N ...: prints a value derived
		// from N, or BAD_VALUE for the parameter named in $BAD_PARAM.
		bin := filepath.Join(dir, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		stub := `#!/bin/bash
while [ $# -gt 0 ]; do case "$1" in --name) name=$2; shift;; --region) region=$2; shift;; esac; shift; done
[ "$region" = eu-west-1 ] || { echo "wrong region $region" >&2; exit 2; }
if [ "$name" = "${BAD_PARAM:-}" ]; then echo 'has space'; exit 0; fi
case "$name" in
*/tls/*-key) printf -- '-----BEGIN EC PRIVATE KEY-----\nk%s\n-----END EC PRIVATE KEY-----\n' "${name//\//_}"; exit 0;;
*/tls/*) printf -- '-----BEGIN CERTIFICATE-----\nc%s\n-----END CERTIFICATE-----\n' "${name//\//_}"; exit 0;;
esac
if [ "$name" = "${DENIED_PARAM:-}" ]; then
	echo >>"$CALLS"
	echo >&2
	echo "An error occurred (AccessDeniedException) when calling the GetParameter operation: not authorized to perform ssm:GetParameter on $name" >&2
	exit 254
fi
echo "v${name//\//_}"
`
		require.NoError(t, os.WriteFile(filepath.Join(bin, "aws"), []byte(stub), 0o755))
		// The retry waits are real on a node; here they would only slow the test.
		require.NoError(t, os.WriteFile(filepath.Join(bin, "sleep"), []byte("#!/bin/sh\n"), 0o755))
		// chown records who would own what (the daemon users exist on a node).
		chowns := filepath.Join(dir, "chowns")
		require.NoError(t, os.WriteFile(filepath.Join(bin, "chown"), []byte("#!/bin/sh\necho \"$1 ${2%.*}\" >>"+chowns+"\n"), 0o755))
		runFetch := func(extra ...string) (string, error) {
			cmd := exec.Command("bash", scriptPath)
			cmd.Env = append([]string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin"}, extra...)
			b, err := cmd.CombinedOutput()
			return string(b), err
		}

		msg, err := runFetch()
		require.NoError(t, err, msg)
		// The TLS material: the key its daemon's and 0600, the rest 0644.
		n, err := c.node(tc.node, topology.RoleEtcd, topology.RolePatroni, topology.RoleHAProxy, topology.RoleMonitor)
		require.NoError(t, err)
		for _, f := range []struct {
			name, begin string
			mode        os.FileMode
		}{{"ca.crt", "CERTIFICATE", 0o644}, {"node.crt", "CERTIFICATE", 0o644}, {"node.crt.key", "EC PRIVATE KEY", 0o600}} {
			st, err := os.Stat(filepath.Join(tlsDir, f.name))
			require.NoError(t, err, tc.node)
			assert.Equal(t, f.mode, st.Mode().Perm(), "%s %s", tc.node, f.name)
			b, _ := os.ReadFile(filepath.Join(tlsDir, f.name))
			assert.True(t, strings.HasPrefix(string(b), "-----BEGIN "+f.begin+"-----\n"), "%s %s: %q", tc.node, f.name, b)
		}
		key, _ := os.ReadFile(filepath.Join(tlsDir, "node.crt.key"))
		assert.Contains(t, string(key), "k_pgha_dev_tls_"+tc.node+"-key", "each node reads its own key")
		owners, _ := os.ReadFile(chowns)
		assert.Contains(t, string(owners), KeyOwner(n.Role)+" "+filepath.Join(tlsDir, "node.crt.key")+"\n")
		exporterKey := filepath.Join(tlsDir, path.Base(CloudPaths().ExporterKeyFile))
		if c.Monitoring != nil {
			assert.Contains(t, string(owners), "prometheus:prometheus "+exporterKey+"\n", tc.node)
			st, err := os.Stat(exporterKey)
			require.NoError(t, err, tc.node)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), tc.node)
			b, _ := os.ReadFile(exporterKey)
			assert.Equal(t, string(key), string(b), "%s: the exporters' copy is the node's key", tc.node)
		} else {
			assert.NoFileExists(t, exporterKey, tc.node)
		}
		checkPoolerFiles(t, c, n.Role, string(key), string(owners), filepath.Join(tlsDir, path.Base(CloudPaths().PgBouncerKeyFile)), authFile)
		// A parameter that holds no PEM is refused, and the key stays.
		msg, err = runFetch("BAD_PARAM=" + c.TLS.Key(tc.node))
		require.Error(t, err)
		assert.Contains(t, msg, "SSM parameter "+c.TLS.Key(tc.node)+" does not hold a PEM PRIVATE KEY")
		after, _ := os.ReadFile(filepath.Join(tlsDir, "node.crt.key"))
		assert.Equal(t, string(key), string(after))
		if tc.keys == nil {
			continue
		}
		st, err := os.Stat(out)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), tc.node)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		var keys []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			keys = append(keys, k)
			assert.NotEmpty(t, v, line)
		}
		assert.Equal(t, tc.keys, keys, tc.node)
		if tc.node == "pg-1" {
			assert.Contains(t, string(b), EnvAppPassword+"=v_pgha_dev_app-password\n")
		}

		// A value with a space is refused, and the old file stays as it was.
		msg, err = runFetch("BAD_PARAM=" + c.Secrets["stats"])
		if tc.node == "haproxy-1" {
			require.Error(t, err)
			assert.Contains(t, msg, "SSM parameter /pgha/dev/stats-password is empty or has characters outside")
			after, _ := os.ReadFile(out)
			assert.Equal(t, string(b), string(after))
			left, _ := filepath.Glob(out + ".*")
			assert.Empty(t, left, "no temporary file left behind")
		} else {
			require.NoError(t, err, "pg-1 never reads the stats password: %s", msg)
		}

		// A denied read gives up after 12 tries (60 s on a node, not the
		// 150 s a missing credential gets) and says what AWS said.
		calls := filepath.Join(dir, "calls")
		param := c.Secrets["stats"]
		if tc.node == "pg-1" {
			param = c.Secrets["superuser"]
		}
		msg, err = runFetch("DENIED_PARAM="+param, "CALLS="+calls)
		require.Error(t, err)
		assert.Contains(t, msg, "cannot read SSM parameter "+param+" in eu-west-1 with the instance role: "+
			"An error occurred (AccessDeniedException)", tc.node)
		tries, _ := os.ReadFile(calls)
		assert.Equal(t, 12, strings.Count(string(tries), "\n"), "tries before giving up")
		after, _ = os.ReadFile(out)
		assert.Equal(t, string(b), string(after), "a denied read leaves the old file")
	}
}

// TestPostBootstrapNeedsPassword: without PGHA_APP_PASSWORD the script stops
// before touching the database, with a message saying what to set.
func TestPostBootstrapNeedsPassword(t *testing.T) {
	b, err := RenderPostBootstrap(defaultCluster(t), CloudPaths())
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "post-bootstrap.sh")
	require.NoError(t, os.WriteFile(f, b, 0o755))
	cmd := exec.Command("bash", f, "host=/nonexistent dbname=postgres")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, "post-bootstrap: PGHA_APP_PASSWORD is not set; add it to /etc/patroni/secrets.env\n", string(out))
}

// TestAptConfigParses hands the nodes' apt configuration to apt itself: a
// syntax error there would fail every node's package step.
func TestAptConfigParses(t *testing.T) {
	if _, err := exec.LookPath("apt-config"); err != nil {
		t.Skip("apt-config not found (Debian's apt)")
	}
	for _, n := range defaultCluster(t).Plan.Nodes {
		f := filepath.Join(t.TempDir(), "apt.conf")
		require.NoError(t, os.WriteFile(f, []byte(cloudFileContent(t, defaultCluster(t), n.Name, aptConf)), 0o644))
		out, err := exec.Command("apt-config", "-c", f, "dump", "APT::Install-Recommends").CombinedOutput()
		require.NoError(t, err, "%s: %s", n.Name, out)
		assert.Equal(t, "APT::Install-Recommends \"false\";\n", string(out), n.Name)
	}
}

// checkPoolerFiles: an HAProxy node's fetch installs PgBouncer's copy of
// the node's key (PgBouncer's user's, 0600) and its auth_file (root's,
// readable by PgBouncer's group, 0640) with exactly the lines the lab
// writes (RenderPgBouncerAuthFile), from the values SSM holds; no other
// node has either.
func checkPoolerFiles(t *testing.T, c Cluster, role topology.Role, key, owners, keyFile, authFile string) {
	t.Helper()
	if role != topology.RoleHAProxy {
		assert.NoFileExists(t, keyFile, role)
		assert.NoFileExists(t, authFile, role)
		return
	}
	b, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	assert.Equal(t, key, string(b), "PgBouncer's copy is the node's key")
	assert.Contains(t, owners, PoolerUser+":"+PoolerUser+" "+keyFile+"\n")
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// The stub's value of each parameter: v + its name with / as _.
	pw := Passwords{}
	for _, s := range Secrets {
		pw[s.Name] = "v" + strings.ReplaceAll(c.Secrets[s.Name], "/", "_")
	}
	want, err := RenderPgBouncerAuthFile(c, pw)
	require.NoError(t, err)
	got, err := os.ReadFile(authFile)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
	assert.Equal(t, "\"pgha_pooler\" \"v_pgha_dev_pooler-password\"\n\"pgha_pooler_admin\" \"v_pgha_dev_pooler-admin-password\"\n", string(got))
	assert.Contains(t, owners, "root:"+PoolerUser+" "+authFile+"\n")
	st, err = os.Stat(authFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), st.Mode().Perm())
	left, _ := filepath.Glob(authFile + ".*")
	assert.Empty(t, left, "no temporary file left behind")
}
