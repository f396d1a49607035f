package userdata

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/internal/topology"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the renderers")

// renderAll renders every file of the default cluster, keyed by its golden
// path: <node>/<file name> and <node>/cloud-init.yml.
func renderAll(t *testing.T, c Cluster) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range c.Plan.Nodes {
		files, err := NodeFiles(c, n.Name, CloudPaths())
		require.NoError(t, err, n.Name)
		for _, f := range files {
			out[n.Name+"/"+path.Base(f.Path)] = f.Content
		}
		ci, err := RenderCloudInit(c, n.Name)
		require.NoError(t, err, n.Name)
		out[n.Name+"/cloud-init.yml"] = ci
	}
	return out
}

func TestGolden(t *testing.T) {
	c := defaultCluster(t)
	got := renderAll(t, c)
	secrets, err := RenderSecretsEnv(c, testPasswords())
	require.NoError(t, err)
	got["secrets.env.example"] = secrets
	// A PostgreSQL node as AWS gets it by default: backups, the watchdog,
	// the slot bound of a 50 GB data volume.
	bc := c
	bc.Backup = testBackup()
	bc.Watchdog, bc.SlotWALKeepGB = WatchdogAutomatic, 10
	for name, b := range renderAll(t, bc) {
		if strings.HasPrefix(name, "pg-1/") {
			got["backup/"+name] = b
		}
	}
	// The tuning of every workload on three instance sizes, and pg-1's
	// patroni.yml and haproxy-1's haproxy.cfg for each size (oltp).
	for _, sz := range tuningSizes {
		for _, w := range Workloads {
			tu, err := Tune(sz.size, w)
			require.NoError(t, err)
			got["tuning/"+sz.name+"-"+w+".txt"] = tuningText(tu)
		}
		tc := c
		tc.PostgresSize = sz.size
		files := renderAll(t, tc)
		got["tuning/"+sz.name+"/pg-1/patroni.yml"] = files["pg-1/patroni.yml"]
		got["tuning/"+sz.name+"/haproxy-1/haproxy.cfg"] = files["haproxy-1/haproxy.cfg"]
	}

	// Monitoring: what it adds to each role, and the monitoring node's
	// Prometheus configuration.
	mc := c
	mc.Monitoring = &Monitoring{}
	for name, b := range renderAll(t, mc) {
		// Only what monitoring changes: the same file again would say nothing.
		if same, ok := got[name]; ok && bytes.Equal(same, b) {
			continue
		}
		if strings.HasPrefix(name, "pg-1/") || strings.HasPrefix(name, "haproxy-1/") || strings.HasPrefix(name, "etcd-1/") {
			got["monitoring/"+name] = b
		}
	}
	prom, err := RenderPrometheusConfig(mc, CloudPaths())
	require.NoError(t, err)
	got["monitoring/monitor-1/prometheus.yml"] = prom
	mci, err := RenderCloudInit(mc, mc.Plan.Monitor().Name)
	require.NoError(t, err)
	got["monitoring/monitor-1/cloud-init.yml"] = mci

	// The Patroni fix is embedded verbatim (userdata/patroni), not
	// rendered: a golden copy per node would only repeat it. The
	// cloud-init goldens still carry it, and TestPatroniFixLoads runs it.
	for name := range got {
		if path.Base(name) == "sitecustomize.py" {
			assert.Equal(t, string(PatroniFix), string(got[name]), name)
			delete(got, name)
		}
	}

	dir := filepath.Join("testdata", "golden")
	if *update {
		require.NoError(t, os.RemoveAll(dir))
		for name, b := range got {
			p := filepath.Join(dir, filepath.FromSlash(name))
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}
	}
	// Every golden file must still be produced, and every produced file
	// must have a golden file.
	onDisk := map[string]bool{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		onDisk[filepath.ToSlash(rel)] = true
		return nil
	}))
	for name := range onDisk {
		_, ok := got[name]
		assert.True(t, ok, "golden file %s is no longer rendered; run go test ./userdata -update", name)
	}
	for name, b := range got {
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if !assert.NoError(t, err, "missing golden file; run go test ./userdata -update") {
			continue
		}
		assert.Equal(t, string(want), string(b), "%s differs from its golden file; review and run go test ./userdata -update", name)
	}
	// A default 3+3+2 cluster: 3 etcd configs, 3 patroni.yml + scripts,
	// 2 haproxy.cfg and pgbouncer.ini, 8 cloud-init documents, and the
	// secrets example; then
	// pg-1 with backups: its patroni.yml, script, pgbackrest.conf and
	// cloud-init document; the tuning of every workload on 3 sizes, and a
	// patroni.yml and haproxy.cfg per size; with monitoring, what it
	// changes: each node's cloud-init document and exporters' web
	// configuration, pg-1's patroni.yml (pg_ident) and haproxy-1's
	// haproxy.cfg (the metrics frontend), and monitor-1's prometheus.yml
	// and cloud-init document.
	assert.Len(t, got, 3+3*2+2*2+8+1+4+3*len(Workloads)+3*2+3*2+2+2)
}

func TestDeterministic(t *testing.T) {
	c := defaultCluster(t)
	a, b := renderAll(t, c), renderAll(t, c)
	require.Equal(t, len(a), len(b))
	for name := range a {
		assert.True(t, bytes.Equal(a[name], b[name]), name)
	}
}

// TestNoPasswordsOutsideSecretsFile renders everything a node receives with
// real password values known and checks none of them appears anywhere but
// in the secrets file.
func TestNoPasswordsOutsideSecretsFile(t *testing.T) {
	c := defaultCluster(t)
	pw := testPasswords()
	secrets, err := RenderSecretsEnv(c, pw)
	require.NoError(t, err)
	for _, v := range pw.all() {
		require.Contains(t, string(secrets), v, "the secrets file must carry every password")
	}
	for name, b := range renderAll(t, c) {
		for _, v := range pw.all() {
			assert.NotContains(t, string(b), v, name)
		}
		// Nothing that looks like an assigned password either.
		assert.NotRegexp(t, `(?mi)^\s*[a-z_]*password\s*[:=]`, string(b), name)
	}
}

func TestSecretsEnv(t *testing.T) {
	c := defaultCluster(t)
	pw := testPasswords()
	b, err := RenderSecretsEnv(c, pw)
	require.NoError(t, err)
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		env[k] = v
	}
	assert.Equal(t, map[string]string{
		EnvSuperuserUsername: "postgres", EnvSuperuserPassword: pw["superuser"],
		EnvReplicationUsername: "replicator", EnvReplicationPassword: pw["replication"],
		EnvRewindUsername: "rewinder", EnvRewindPassword: pw["rewind"],
		EnvRestAPIUsername: "patroni", EnvRestAPIPassword: pw["restapi"],
		EnvAppPassword: pw["app"], EnvStatsPassword: pw["stats"],
		EnvMonitorPassword: pw["monitor"],
		EnvPoolerPassword:  pw["pooler"], EnvPoolerAdminPassword: pw["pooler-admin"],
	}, env)
}

// TestCloudInitCarriesNodeFiles parses each cloud-config and checks that its
// write_files hold NodeFiles byte for byte, with owner and mode, deferred
// until the packages (and so the postgres and etcd users) exist.
func TestCloudInitCarriesNodeFiles(t *testing.T) {
	c := defaultCluster(t)
	for _, n := range c.Plan.Nodes {
		b, err := RenderCloudInit(c, n.Name)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte("#cloud-config\n")), n.Name)
		var doc struct {
			PackageUpdate bool     `yaml:"package_update"`
			Packages      []string `yaml:"packages"`
			WriteFiles    []struct {
				Path        string `yaml:"path"`
				Owner       string `yaml:"owner"`
				Permissions string `yaml:"permissions"`
				Defer       bool   `yaml:"defer"`
				Content     string `yaml:"content"`
			} `yaml:"write_files"`
			RunCmd [][]string `yaml:"runcmd"`
		}
		require.NoError(t, yaml.Unmarshal(b, &doc), n.Name)
		assert.True(t, doc.PackageUpdate)
		assert.Equal(t, rolePackages[n.Role], doc.Packages)
		assert.Equal(t, [][]string{{bootScript}}, doc.RunCmd)

		byPath := map[string]int{}
		for i, f := range doc.WriteFiles {
			byPath[f.Path] = i
			switch f.Path {
			case createCluster:
				assert.False(t, f.Defer, "createcluster.conf must exist before postgresql-common installs")
				assert.Contains(t, f.Content, "create_main_cluster = false")
			case ChronyConf:
				assert.False(t, f.Defer, "chrony's package must find pgha's configuration and keep it")
			case aptConf:
				assert.False(t, f.Defer, "apt must read its configuration before the package step")
				assert.Contains(t, f.Content, "\nAPT::Install-Recommends \"false\";\n")
			default:
				assert.True(t, f.Defer, "%s on %s must wait for the packages", f.Path, n.Name)
			}
		}
		files, err := NodeFiles(c, n.Name, CloudPaths())
		require.NoError(t, err)
		for _, f := range files {
			i, ok := byPath[f.Path]
			if !assert.True(t, ok, "%s: %s missing from write_files", n.Name, f.Path) {
				continue
			}
			w := doc.WriteFiles[i]
			assert.Equal(t, string(AsCarried(f.Content)), w.Content, "%s: %s", n.Name, f.Path) // TestCompactScriptKeepsMeaning
			assert.Equal(t, f.Owner, w.Owner)
			assert.Equal(t, fmt.Sprintf("%04o", f.Mode.Perm()), w.Permissions)
		}
		for _, p := range []string{bootScript, "/etc/systemd/system/" + string(n.Role) + ".service.d/pgha.conf"} {
			_, ok := byPath[p]
			assert.True(t, ok, "%s: %s missing", n.Name, p)
		}
		_, hasFetch := byPath[fetchSecrets]
		assert.True(t, hasFetch, "%s: every node fetches its certificate and key", n.Name)
		_, hasApt := byPath[aptConf]
		assert.True(t, hasApt, "%s: every node installs without recommends", n.Name)
		_, hasCC := byPath[createCluster]
		assert.Equal(t, n.Role == topology.RolePatroni, hasCC, n.Name)
	}
}

func TestNodeFilesPerRole(t *testing.T) {
	c := defaultCluster(t)
	p := CloudPaths()
	want := map[string][]string{
		"etcd-1":    {p.EtcdConfigFile},
		"pg-2":      {p.PatroniConfigFile, p.PostBootstrap, p.PythonPath + "/sitecustomize.py"},
		"haproxy-2": {p.HAProxyConfigFile, p.PgBouncerConfigFile},
	}
	for node, paths := range want {
		files, err := NodeFiles(c, node, p)
		require.NoError(t, err)
		var got []string
		for _, f := range files {
			got = append(got, f.Path)
			assert.NotEmpty(t, f.Owner)
			assert.NotZero(t, f.Mode)
		}
		assert.Equal(t, paths, got, node)
	}
}

// The rules below would have refused the profile that let a cut-off leader
// outlive its lock: fast at 9/1/4 with PostgreSQL's 60 s wal_sender_timeout.
func TestProfileRulesRefuseTheFormerFast(t *testing.T) {
	former := Profile{Name: "fast", TTL: 9, LoopWait: 1, RetryTimeout: 4, WalSenderTimeout: 60}
	assert.Greater(t, former.DemotionBound(3), former.TTL)
	assert.False(t, former.ShutdownFitsDemotion(3))
	now, err := LookupProfile("fast")
	require.NoError(t, err)
	assert.Equal(t, 9, now.DemotionBound(3), "1 + max(3, 3 × 1) + 4 + 1")
	assert.True(t, now.ShutdownFitsDemotion(3))
}

func TestProfiles(t *testing.T) {
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	etcdMembers := len(plan.ByRole(topology.RoleEtcd))
	names := map[string]bool{}
	for _, p := range Profiles() {
		names[p.Name] = true
		assert.NotEmpty(t, p.Summary)
		// Patroni's rule: a leader must be able to retry a failed DCS
		// update within one ttl; with failsafe_mode it must also have asked
		// the other members and stopped PostgreSQL by then.
		assert.LessOrEqual(t, p.LoopWait+2*p.RetryTimeout, p.TTL, p.Name)
		assert.LessOrEqual(t, p.DemotionBound(etcdMembers), p.TTL, "%s: a cut-off leader would still take writes after its lock expired", p.Name)
		assert.True(t, p.ShutdownFitsDemotion(etcdMembers), "%s: wal_sender_timeout %d s lets a cut-off leader be demoted twice", p.Name, p.WalSenderTimeout)
		// Patroni 3.0.2 gives up taking the leader lock when less than 1 s
		// of retry_timeout is left after its first request: with 1 no
		// replica is ever promoted.
		assert.GreaterOrEqual(t, p.RetryTimeout, 2, p.Name)
		assert.Equal(t, 2, p.CheckRise, "%s: rise 1 lets a node back in while pg_rewind still restarts it", p.Name)
		assert.GreaterOrEqual(t, p.CheckFall, 2, p.Name)
		// Faster transition checks must not make a steady server checked
		// less often than inter.
		assert.LessOrEqual(t, p.CheckFastInterMS, p.CheckInterMS, p.Name)
		assert.LessOrEqual(t, p.CheckDownInterMS, p.CheckInterMS, p.Name)
		assert.Positive(t, p.CheckFastInterMS, p.Name)
		got, err := LookupProfile(p.Name)
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	assert.Equal(t, map[string]bool{"fast": true, "balanced": true, "safe": true}, names)
	fast, _ := LookupProfile("fast")
	assert.Equal(t, []int{9, 1, 3, 1000, 2, 2}, []int{fast.TTL, fast.LoopWait, fast.RetryTimeout, fast.CheckInterMS, fast.CheckFall, fast.CheckRise})
	safe, _ := LookupProfile("safe")
	assert.Equal(t, []int{30, 10, 10, 2000, 3, 2}, []int{safe.TTL, safe.LoopWait, safe.RetryTimeout, safe.CheckInterMS, safe.CheckFall, safe.CheckRise})

	_, err = LookupProfile("turbo")
	require.Error(t, err)
	assert.Equal(t, `unknown profile "turbo": use one of fast, balanced, safe`, err.Error())

	// Profiles returns a copy: callers cannot change the built-ins.
	Profiles()[0].TTL = 1
	again, _ := LookupProfile("fast")
	assert.Equal(t, 9, again.TTL)
}

// TestProfileReachesFiles checks that the profile's numbers land in the files.
func TestProfileReachesFiles(t *testing.T) {
	for _, p := range Profiles() {
		c := defaultCluster(t)
		c.Profile = p.Name
		c.SynchronousMode = p.Name == "safe"
		yml, err := RenderPatroniConfig(c, "pg-1", CloudPaths())
		require.NoError(t, err)
		var cfg struct {
			Etcd3 struct {
				UseProxies bool `yaml:"use_proxies"`
			} `yaml:"etcd3"`
			Bootstrap struct {
				DCS struct {
					Params     map[string]any `yaml:",inline"`
					PostgreSQL struct {
						Parameters map[string]any `yaml:"parameters"`
					} `yaml:"postgresql"`
				} `yaml:"dcs"`
			} `yaml:"bootstrap"`
		}
		require.NoError(t, yaml.Unmarshal(yml, &cfg))
		dcs := cfg.Bootstrap.DCS.Params
		// DemotionBound assumes both.
		assert.True(t, cfg.Etcd3.UseProxies, p.Name)
		assert.Equal(t, strconv.Itoa(p.WalSenderTimeout)+"s", cfg.Bootstrap.DCS.PostgreSQL.Parameters["wal_sender_timeout"], p.Name)
		assert.Equal(t, p.TTL, dcs["ttl"], p.Name)
		assert.Equal(t, p.LoopWait, dcs["loop_wait"], p.Name)
		assert.Equal(t, p.RetryTimeout, dcs["retry_timeout"], p.Name)
		assert.Equal(t, p.PrimaryStartTimeout, dcs["primary_start_timeout"], p.Name)
		assert.Equal(t, int(p.MaximumLagOnFailover), dcs["maximum_lag_on_failover"], p.Name)
		assert.Equal(t, c.SynchronousMode, dcs["synchronous_mode"], p.Name)
		assert.Equal(t, true, dcs["failsafe_mode"], p.Name)

		cfgText, err := RenderHAProxyConfig(c, "haproxy-1", CloudPaths())
		require.NoError(t, err)
		line := "default-server inter " + strconv.Itoa(p.CheckInterMS) + "ms fastinter " + strconv.Itoa(p.CheckFastInterMS) + "ms downinter " + strconv.Itoa(p.CheckDownInterMS) + "ms fall " + strconv.Itoa(p.CheckFall) + " rise " + strconv.Itoa(p.CheckRise) + " on-marked-down shutdown-sessions"
		assert.Equal(t, 2, strings.Count(string(cfgText), line), p.Name)
		assert.Contains(t, string(cfgText), "option httpchk OPTIONS /replica?lag="+strconv.Itoa(int(p.ReplicaMaxLagBytes)))
	}
}

// TestCloudInitFitsEC2 keeps every packed document under EC2's 16 KiB
// user-data limit (before base64), backups, the watchdog and monitoring
// included, with 3 KiB to spare. A PostgreSQL node's is the largest (about
// 12.8 KiB packed, its scripts' comments stripped): a feature that would
// cross this must move static files (the scripts that are the same on every
// node) out of the user data rather than lower it.
func TestCloudInitFitsEC2(t *testing.T) {
	c := defaultCluster(t)
	c.Backup = testBackup()
	c.Watchdog = WatchdogAutomatic
	c.Monitoring = &Monitoring{}
	for _, n := range append(slices.Clone(c.Plan.Nodes), c.Plan.Monitor()) {
		b, err := RenderCloudInit(c, n.Name)
		require.NoError(t, err)
		packed, err := Pack(b)
		require.NoError(t, err)
		assert.Less(t, len(packed), MaxUserData-3072, n.Name)
		back, err := Unpack(packed)
		require.NoError(t, err)
		require.Equal(t, b, back)
		t.Logf("%s: %d bytes, %d packed", n.Name, len(b), len(packed))
	}
	_, err := Pack(bytes.Repeat([]byte("x"), 1)) // sanity: tiny input packs
	require.NoError(t, err)
	_, err = Unpack([]byte("#cloud-config\n"))
	require.ErrorContains(t, err, "not gzip")
}

// TestPackIsStable pins what a fixed document packs to. The instances
// replace whenever their packed user data changes, so a compressor whose
// output changes (a new Go release may bring one) would replace every node
// at the next `pulumi up`. If this fails after a toolchain update, keep the
// old toolchain for this module or plan that update as a roll (runbook).
func TestPackIsStable(t *testing.T) {
	doc := []byte(strings.Repeat("#cloud-config\nwrite_files:\n  - path: /etc/pgha\n    content: |\n      pgha pgha pgha\n", 40))
	packed, err := Pack(doc)
	require.NoError(t, err)
	sum := sha256.Sum256(packed)
	assert.Equal(t, "528832a8156b3cd47edb3847f67fc7c55abd75ede4d6f7f944fef5ae7f188751", hex.EncodeToString(sum[:]), "gzip output changed: see the comment")
	assert.Equal(t, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, packed[:8], "gzip magic, no name, no time")
}

// TestOnlyPathsDiffer renders every node's files with a lab layout and with
// CloudPaths: after swapping the path strings the bytes must be identical,
// so what the lab runs is what EC2 gets.
func TestOnlyPathsDiffer(t *testing.T) {
	c := defaultCluster(t)
	cloud := CloudPaths()
	for _, n := range c.Plan.Nodes {
		lab := labPaths("/srv/lab/nodes", n.Name)
		labFiles, err := NodeFiles(c, n.Name, lab)
		require.NoError(t, err)
		cloudFiles, err := NodeFiles(c, n.Name, cloud)
		require.NoError(t, err)
		require.Len(t, labFiles, len(cloudFiles))

		// Longest lab path first, so a directory never replaces part of a
		// file path below it.
		var pairs [][2]string
		lv, cv := pathValues(lab), pathValues(cloud)
		for i := range lv {
			if lv[i] != cv[i] {
				pairs = append(pairs, [2]string{lv[i], cv[i]})
			}
		}
		sort.Slice(pairs, func(i, j int) bool { return len(pairs[i][0]) > len(pairs[j][0]) })
		for i := range labFiles {
			got := string(labFiles[i].Content)
			for _, p := range pairs {
				got = strings.ReplaceAll(got, p[0], p[1])
			}
			assert.Equal(t, string(cloudFiles[i].Content), got, "%s %s", n.Name, cloudFiles[i].Path)
			assert.Equal(t, cloudFiles[i].Owner, labFiles[i].Owner)
			assert.Equal(t, cloudFiles[i].Mode, labFiles[i].Mode)
		}
	}
}

func pathValues(p Paths) []string {
	return []string{p.TLSCAFile, p.EtcdConfigFile, p.EtcdDataDir, p.PatroniConfigFile, p.SecretsEnvFile, p.PostBootstrap,
		p.PGDataDir, p.PGSocketDir, p.PGPassFile, p.PGLogDir, p.TLSCertFile, p.TLSKeyFile, p.HAProxyConfigFile,
		p.PgBouncerConfigFile, p.PgBouncerAuthFile, p.PgBouncerKeyFile}
}

// testBackup is a repository as the program configures it on AWS.
func testBackup() *Backup {
	return &Backup{Bucket: "pgha-dev-123456789012-eu-west-1", Region: "eu-west-1", Endpoint: "s3.eu-west-1.amazonaws.com",
		Path: "/pgha/pgha", URIStyle: "host", KeyType: "auto", RetentionFull: 2,
		FullSchedule: "Sun *-*-* 02:00:00", DiffSchedule: "Mon..Sat *-*-* 02:00:00"}
}

// TestBackupRendering: a cluster with backups installs pgBackRest on its
// PostgreSQL nodes only, with its configuration beside Patroni's, makes the
// stanza once at bootstrap, and refuses a repository pgBackRest could not
// use, naming each field.
func TestBackupRendering(t *testing.T) {
	c := defaultCluster(t)
	c.Backup = testBackup()
	pg := cloudFileContent(t, c, "pg-1", "/etc/pgbackrest.conf")
	for _, want := range []string{"repo1-type=s3", "repo1-s3-bucket=pgha-dev-123456789012-eu-west-1", "repo1-s3-key-type=auto",
		"repo1-s3-uri-style=host", "archive-async=y", "[pgha]\npg1-path=/var/lib/postgresql/15/pgha"} {
		assert.Contains(t, pg, want)
	}
	assert.NotContains(t, pg, "repo1-storage-ca-file", "AWS: the system's CAs")
	ci, err := RenderCloudInit(c, "pg-1")
	require.NoError(t, err)
	assert.Contains(t, string(ci), "\n  - pgbackrest\n")
	for _, script := range []string{CloudPaths().PostBootstrap, "/usr/local/sbin/pgha-boot", BackupScript} {
		body := cloudFileContent(t, c, "pg-1", script)
		f := filepath.Join(t.TempDir(), "script")
		require.NoError(t, os.WriteFile(f, []byte(body), 0o755))
		out, err := exec.Command("bash", "-n", f).CombinedOutput()
		require.NoError(t, err, "%s: %s", script, out)
	}
	assert.Contains(t, cloudFileContent(t, c, "pg-1", CloudPaths().PostBootstrap), "--stanza=pgha stanza-create")

	// The timers and their service, as systemd reads them.
	if analyze, err := exec.LookPath("systemd-analyze"); assert.NoError(t, err) {
		dir := t.TempDir()
		write := func(name, content string) string {
			p := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
			return p
		}
		// What the service requires, so verify can load it.
		write(DataUnit, "[Service]\nType=oneshot\nExecStart=/bin/true\n")
		write("patroni.service", "[Service]\nExecStart=/bin/true\n")
		write("pgha-backup@.service", cloudFileContent(t, c, "pg-1", "/etc/systemd/system/pgha-backup@.service"))
		var units []string
		for _, tm := range BackupTimers(c.Backup) {
			units = append(units, write(tm.Unit(), cloudFileContent(t, c, "pg-1", "/etc/systemd/system/"+tm.Unit())))
			out, err := exec.Command(analyze, "calendar", tm.Calendar).CombinedOutput()
			require.NoError(t, err, "%s: %s", tm.Calendar, out)
		}
		require.Len(t, units, 2)
		out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
		// verify checks that ExecStart's program exists on this host; the
		// script is only on the nodes.
		msg := strings.ReplaceAll(string(out), BackupScript+" is not executable: No such file or directory", "")
		require.NoError(t, err, out)
		assert.NotContains(t, msg, "Unknown", string(out))
		assert.Contains(t, cloudFileContent(t, c, "pg-1", "/usr/local/sbin/pgha-boot"), "systemctl enable --now pgha-backup-full.timer")
	}
	for _, node := range []string{"etcd-1", "haproxy-1"} {
		ci, err := RenderCloudInit(c, node)
		require.NoError(t, err)
		assert.NotContains(t, string(ci), "pgbackrest", node)
	}

	bad := *c.Backup
	bad.Endpoint, bad.Bucket, bad.KeyType, bad.RetentionFull = "127.0.0.1", "B", "iam", 0
	c.Backup = &bad
	err = c.Validate()
	require.Error(t, err)
	for _, want := range []string{"Backup.Endpoint \"127.0.0.1\" is an address", "Backup.Bucket \"B\"", "Backup.KeyType \"iam\"", "Backup.RetentionFull 0"} {
		assert.Contains(t, err.Error(), want)
	}
}

// tuningSizes are the instance sizes the goldens show: the default
// PostgreSQL instance type, a memory-optimised one and a large one.
var tuningSizes = []struct {
	name string
	size Size
}{
	{"t3.medium", Size{MemoryMiB: 4096, VCPUs: 2}},
	{"r6i.xlarge", Size{MemoryMiB: 32768, VCPUs: 4}},
	{"m6i.4xlarge", Size{MemoryMiB: 65536, VCPUs: 16}},
}

func tuningText(t Tuning) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "workload %s on %s\n", t.Workload, t.Size)
	fmt.Fprintf(&b, "max_connections = %d\nmax_worker_processes = %d\nvm.nr_hugepages = %d\nhaproxy maxconn per server (2 nodes) = %d\n",
		t.MaxConnections, t.MaxWorkerProcesses, t.HugePages, t.HAProxyMaxConn(2))
	for _, p := range t.Params {
		fmt.Fprintf(&b, "%s = %s  # %s\n", p.Name, p.Value, p.Why)
	}
	return []byte(b.String())
}
