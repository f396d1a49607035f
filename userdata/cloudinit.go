package userdata

import (
	"fmt"
	"path"
	"slices"
	"sort"

	"github.com/pgha/pgha/internal/topology"
)

// cloudFile is one write_files entry. Defer puts it after package
// installation, when the postgres and etcd users exist and the units the
// drop-ins extend are installed.
type cloudFile struct {
	File
	Defer bool
}

// Boot-time paths on EC2; the lab does not use them.
const (
	bootScript = "/usr/local/sbin/pgha-boot"
	// EtcdJoinScript decides, on an etcd node's first boot, whether etcd
	// creates the cluster or joins the existing one.
	EtcdJoinScript = "/usr/local/sbin/pgha-etcd-join"
	fetchSecrets   = "/usr/local/sbin/pgha-fetch-secrets"
	readyDir       = "/var/lib/pgha"
	createCluster  = "/etc/postgresql-common/createcluster.conf"
	dataScript     = "/usr/local/sbin/pgha-data-volume"
	// BackupScript takes a backup when its node leads (the timers run it).
	BackupScript = "/usr/local/sbin/pgha-backup"
	// PatroniCtl is patronictl with the node's configuration and secrets.
	PatroniCtl = "/usr/local/sbin/pgha-patronictl"
	// RestoreDrillScript restores the repository into a scratch server on
	// its node and runs one query there (validate's drill; an operator's).
	RestoreDrillScript = "/usr/local/sbin/pgha-restore-drill"
	aptConf            = "/etc/apt/apt.conf.d/90pgha-no-recommends"
	// ChronyConf points chrony at the Amazon Time Sync Service.
	ChronyConf = "/etc/chrony/chrony.conf"
	// PgBouncerDropIn extends Debian's pgbouncer.service on HAProxy nodes.
	PgBouncerDropIn = "/etc/systemd/system/pgbouncer.service.d/pgha.conf"
)

// ReadyMarker is written on an EC2 node once its service is healthy; a
// readiness check waits for it. On failure the boot script writes
// FailedMarker with the reason instead.
const (
	ReadyMarker  = readyDir + "/ready"
	FailedMarker = readyDir + "/failed"
)

// DataDevice is the device name the program attaches each etcd and
// PostgreSQL node's data volume as (and the lab binds its stand-in volume to,
// under the name a Xen instance shows: /dev/xvdf).
const DataDevice = "/dev/sdf"

// DataVolume is where a role keeps the data that must outlive its instance.
type DataVolume struct {
	DataMount  string // mount point: the parent of the data directory
	DataLabel  string // ext4 label, per role: a volume is never mounted on the wrong role
	DataDevice string
	DataUnit   string // the systemd unit that mounts it at every boot
}

// DataUnit mounts the data volume; the role's service requires it.
const DataUnit = "pgha-data.service"

// DataVolumeOf returns the data volume layout of a role, and false for a
// role without one (HAProxy keeps nothing).
func DataVolumeOf(role topology.Role) (DataVolume, bool) {
	p := CloudPaths()
	v := DataVolume{DataDevice: DataDevice, DataUnit: DataUnit}
	switch role {
	case topology.RoleEtcd:
		v.DataMount, v.DataLabel = path.Dir(p.EtcdDataDir), "pgha-etcd"
	case topology.RolePatroni:
		// /var/lib/postgresql: the data directory, and postgres's home with
		// the pgpass file Patroni writes.
		v.DataMount, v.DataLabel = path.Dir(path.Dir(p.PGDataDir)), "pgha-postgres"
	default:
		// HAProxy keeps nothing. The monitoring node keeps Prometheus's
		// samples on its root volume, bounded by the retention: a replaced
		// one starts with none, which costs history, not service.
		return DataVolume{}, false
	}
	return v, true
}

// DaemonUser is who starts a role's daemon under systemd: etcd, postgres
// (Patroni and PostgreSQL), ExporterUser for Prometheus (which presents
// the node's certificate and key itself), or root for HAProxy, which drops
// to its own user from haproxy.cfg once it has read its certificate and
// key.
func DaemonUser(role topology.Role) string {
	switch role {
	case topology.RoleEtcd:
		return "etcd"
	case topology.RolePatroni:
		return "postgres"
	case topology.RoleMonitor:
		return ExporterUser
	default:
		return "root"
	}
}

// KeyOwner is who owns a role's private key (user:group): its daemon's
// user.
func KeyOwner(role topology.Role) string {
	u := DaemonUser(role)
	return u + ":" + u
}

// tlsFetch is what a node's fetch script installs: its TLS material's
// parameters, and the owner of its key and, with monitoring, of the
// exporters' copy of it.
type tlsFetch struct {
	CA, Cert, Key string
	KeyOwner      string
	ExporterOwner string
	// PoolerOwner owns PgBouncer's copy of the key (HAProxy nodes).
	PoolerOwner string
}

// PoolerUser is who PgBouncer runs as: Debian's pgbouncer.service says
// postgres.
const PoolerUser = "postgres"

// poolerAuth is what an HAProxy node's fetch script writes into
// PgBouncer's auth_file: the same lines as RenderPgBouncerAuthFile.
type poolerAuth struct {
	File  string
	Group string // PgBouncer's: it reads the file, root writes it
	Users []authUser
}

// authUser is one line of the auth_file: a user, and the secrets-file
// variable with its password.
type authUser struct{ User, Env string }

// poolerAuthOf is the auth_file's content as the fetch script writes it.
func poolerAuthOf(c Cluster, p Paths) *poolerAuth {
	a := &poolerAuth{File: p.PgBouncerAuthFile, Group: PoolerUser}
	for _, name := range poolerAuthSecrets {
		s, _ := SecretByName(name)
		a.Users = append(a.Users, authUser{s.User(c.Users), s.Env})
	}
	return a
}

// rolePackages are what each role's user data installs (awscli reads the
// node's secrets from SSM; chrony keeps the clock). nftables is on
// every node because validate's partition fault cuts a node with it, and
// the AMI's package set does not promise it.
var rolePackages = map[topology.Role][]string{
	topology.RoleEtcd:    {"etcd-server", "etcd-client", "awscli", "curl", "nftables", "chrony"},
	topology.RolePatroni: {"postgresql-15", "patroni", "python3-etcd", "ssl-cert", "awscli", "curl", "nftables", "chrony"},
	topology.RoleHAProxy: {"haproxy", "pgbouncer", "awscli", "curl", "nftables", "chrony"},
	// prometheus only recommends the node exporter, and recommends are off.
	topology.RoleMonitor: {"prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "awscli", "curl", "nftables", "chrony"},
}

// heldPackages are the role's packages that run the cluster: held from
// upgrades (unattended-upgrades respects holds), so that a security update
// never restarts etcd, Patroni, PostgreSQL or HAProxy on every node in the
// same window, an uncoordinated failover storm. docs/runbook.md rolls
// them one node at a time instead.
var heldPackages = map[topology.Role][]string{
	topology.RoleEtcd:    {"etcd-server", "etcd-client"},
	topology.RolePatroni: {"postgresql-15", "postgresql-client-15", "postgresql-common", "patroni"},
	topology.RoleHAProxy: {"haproxy", "pgbouncer"},
	topology.RoleMonitor: {"prometheus", "prometheus-alertmanager"},
}

// HeldPackages are the packages a role's node holds (with backups, also
// pgbackrest on the PostgreSQL nodes).
func HeldPackages(role topology.Role, backups bool) []string {
	held := append([]string(nil), heldPackages[role]...)
	if role == topology.RolePatroni && backups {
		held = append(held, "pgbackrest")
	}
	return held
}

// Host settings of a PostgreSQL node, applied at every boot.
const (
	sysctlFile = "/etc/sysctl.d/60-pgha-postgresql.conf"
	thpFile    = "/etc/tmpfiles.d/pgha-transparent-hugepages.conf"
)

// optionalPackages are installed by a role's user data only where a
// feature asks for them (pgbackrest: pgha:backups; the exporters:
// pgha:monitoring).
var optionalPackages = []string{"pgbackrest", "prometheus-node-exporter", "prometheus-postgres-exporter"}

// packagesOf are what a node of the role installs in the cluster.
func packagesOf(c Cluster, role topology.Role) []string {
	ps := slices.Clone(rolePackages[role])
	if role == topology.RolePatroni && c.Backup != nil {
		ps = append(ps, "pgbackrest")
	}
	if c.Monitoring != nil && role != topology.RoleMonitor {
		ps = append(ps, "prometheus-node-exporter")
		if role == topology.RolePatroni {
			ps = append(ps, "prometheus-postgres-exporter")
		}
	}
	return ps
}

// AllPackages is every package any role's user data may install, sorted:
// what the booted lab's Debian repository must hold.
func AllPackages() []string {
	seen := map[string]bool{}
	var out []string
	add := func(ps []string) {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	for _, ps := range rolePackages {
		add(ps)
	}
	add(optionalPackages)
	sort.Strings(out)
	return out
}

// RenderCloudInit renders the #cloud-config user data of one node. It embeds
// NodeFiles(c, node, CloudPaths()) plus the boot script, systemd drop-ins and,
// where the role needs passwords, a script that reads them from SSM with the
// instance role. It holds no password. With Cluster.Monitoring, node may
// also be the monitoring node (Plan.Monitor), whose files are MonitorFiles.
func RenderCloudInit(c Cluster, node string) ([]byte, error) {
	d, cf, err := cloudFiles(c, node)
	if err != nil {
		return nil, err
	}
	for i := range cf {
		cf[i].Content = AsCarried(cf[i].Content)
	}
	d.Files = cf
	return execute("cloud-config.yml.tmpl", d)
}

// cloudFiles is what RenderCloudInit writes on a node, scripts with their
// comments, and the data its cloud-config template reads.
func cloudFiles(c Cluster, node string) (data, []cloudFile, error) {
	p := CloudPaths()
	// The only renderer that accepts the monitoring node by name.
	d, err := prepare(c, node, p, []topology.Role{topology.RoleEtcd, topology.RolePatroni, topology.RoleHAProxy, topology.RoleMonitor})
	if err != nil {
		return data{}, nil, err
	}
	role := d.Node.Role
	var files []File
	if role == topology.RoleMonitor {
		files, err = monitorNodeFiles(c, p)
	} else {
		files, err = NodeFiles(c, node, p)
	}
	if err != nil {
		return data{}, nil, err
	}
	d.Packages = packagesOf(c, role)
	d.Held = HeldPackages(role, c.Backup != nil)
	d.Monitored = monitoredUnits(c, role)
	dv, hasData := DataVolumeOf(role)
	d.DataVolume = dv
	d.Secrets = secretEntries(c, role)
	if c.TLS.Prefix == "" {
		return data{}, nil, fmt.Errorf("Cluster.TLS names no SSM parameters: node %s would boot without its certificate", node)
	}
	d.TLS = tlsFetch{CA: c.TLS.CA(), Cert: c.TLS.Certificate(node), Key: c.TLS.Key(node), KeyOwner: KeyOwner(role)}
	if c.Monitoring != nil {
		d.TLS.ExporterOwner = ExporterUser + ":" + ExporterUser
	}
	if role == topology.RoleHAProxy {
		d.TLS.PoolerOwner = PoolerUser + ":" + PoolerUser
		d.PoolerAuth = poolerAuthOf(c, p)
	}

	// Not deferred: apt must read it before the package step.
	aptNoRec, err := execute("apt-no-recommends.conf.tmpl", d)
	if err != nil {
		return data{}, nil, err
	}
	cf := []cloudFile{{File: File{Path: aptConf, Content: aptNoRec, Owner: "root:root", Mode: 0o644}}}
	// Not deferred either: the chrony package then keeps it (cloud-init
	// installs with --force-confold); the boot script restarts a chrony the
	// AMI already ran.
	chrony, err := execute("chrony.conf.tmpl", d)
	if err != nil {
		return data{}, nil, err
	}
	cf = append(cf, cloudFile{File: File{Path: ChronyConf, Content: chrony, Owner: "root:root", Mode: 0o644}})
	if c.Monitoring != nil {
		// Not deferred: they are the packages' conffiles, which dpkg keeps
		// (--force-confold), so the daemons never run with Debian's
		// defaults (plain HTTP on every address). Their first start, at
		// install, fails for want of the web configuration and key; the
		// boot script starts them once those are in place.
		defaults, err := defaultsFiles(c, d.Node, p)
		if err != nil {
			return data{}, nil, err
		}
		for _, f := range defaults {
			cf = append(cf, cloudFile{File: f})
		}
	}
	if role == topology.RolePatroni {
		// Not deferred: it must exist before postgresql-common is installed,
		// so Debian never creates and starts its own 15/main next to Patroni.
		// cloud-init installs with --force-confold, which keeps this file.
		b, err := execute("createcluster.conf.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: createCluster, Content: b, Owner: "root:root", Mode: 0o644}})
	}
	for _, f := range files {
		cf = append(cf, cloudFile{File: f, Defer: true})
	}
	if role == topology.RoleEtcd {
		b, err := RenderEtcdJoin(c, node, p)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: EtcdJoinScript, Content: b, Owner: "root:root", Mode: 0o755}, Defer: true})
	}
	if hasData {
		b, err := execute("data-volume.sh.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: dataScript, Content: b, Owner: "root:root", Mode: 0o755}, Defer: true})
		unit, err := execute("pgha-data.service.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: "/etc/systemd/system/" + DataUnit, Content: unit, Owner: "root:root", Mode: 0o644}, Defer: true})
	}
	if role == topology.RolePatroni {
		for _, f := range []struct{ path, tmpl string }{{sysctlFile, "sysctl-postgresql.conf.tmpl"}, {thpFile, "tmpfiles-thp.conf.tmpl"}} {
			b, err := execute(f.tmpl, d)
			if err != nil {
				return data{}, nil, err
			}
			cf = append(cf, cloudFile{File: File{Path: f.path, Content: b, Owner: "root:root", Mode: 0o644}, Defer: true})
		}
		b, err := execute("pgha-patronictl.sh.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: PatroniCtl, Content: b, Owner: "root:root", Mode: 0o755}, Defer: true})
		if c.WatchdogMode() != WatchdogOff {
			// Before the module loads, so its device is created postgres's.
			cf = append(cf,
				cloudFile{File: File{Path: "/etc/modules-load.d/pgha-softdog.conf", Content: []byte("# Patroni's watchdog (pgha)\nsoftdog\n"), Owner: "root:root", Mode: 0o644}},
				cloudFile{File: File{Path: "/etc/udev/rules.d/60-pgha-watchdog.rules", Content: []byte("# Patroni runs as postgres and feeds the watchdog while it leads (pgha).\nKERNEL==\"watchdog\", OWNER=\"postgres\", GROUP=\"postgres\", MODE=\"0600\"\n"), Owner: "root:root", Mode: 0o644}})
		}
	}
	if role == topology.RolePatroni && c.Backup != nil {
		b, err := execute("pgha-backup.sh.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: BackupScript, Content: b, Owner: "root:root", Mode: 0o755}, Defer: true})
		if b, err = execute("pgha-restore-drill.sh.tmpl", d); err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: RestoreDrillScript, Content: b, Owner: "root:root", Mode: 0o755}, Defer: true})
		unit, err := execute("pgha-backup.service.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: "/etc/systemd/system/pgha-backup@.service", Content: unit, Owner: "root:root", Mode: 0o644}, Defer: true})
		for _, t := range BackupTimers(c.Backup) {
			td := d
			td.BackupKind, td.BackupCalendar = t.Kind, t.Calendar
			b, err := execute("pgha-backup.timer.tmpl", td)
			if err != nil {
				return data{}, nil, err
			}
			cf = append(cf, cloudFile{File: File{Path: "/etc/systemd/system/" + t.Unit(), Content: b, Owner: "root:root", Mode: 0o644}, Defer: true})
		}
	}
	// Every node fetches its certificate and key; most also passwords.
	b, err := execute("fetch-secrets.sh.tmpl", d)
	if err != nil {
		return data{}, nil, err
	}
	cf = append(cf, cloudFile{File: File{Path: fetchSecrets, Content: b, Owner: "root:root", Mode: 0o755}, Defer: true})
	if role != topology.RoleMonitor {
		dropIn, err := execute("dropin-"+string(role)+".conf.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{
			Path: "/etc/systemd/system/" + string(role) + ".service.d/pgha.conf", Content: dropIn, Owner: "root:root", Mode: 0o644,
		}, Defer: true})
	}
	if role == topology.RoleHAProxy {
		dropIn, err := execute("dropin-pgbouncer.conf.tmpl", d)
		if err != nil {
			return data{}, nil, err
		}
		cf = append(cf, cloudFile{File: File{Path: PgBouncerDropIn, Content: dropIn, Owner: "root:root", Mode: 0o644}, Defer: true})
	}
	monDropIn, err := execute("dropin-monitoring.conf.tmpl", d)
	if err != nil {
		return data{}, nil, err
	}
	for _, u := range d.Monitored {
		cf = append(cf, cloudFile{File: File{
			Path: "/etc/systemd/system/" + u.Unit + ".d/pgha.conf", Content: monDropIn, Owner: "root:root", Mode: 0o644,
		}, Defer: true})
	}
	boot, err := execute("boot-"+string(role)+".sh.tmpl", d)
	if err != nil {
		return data{}, nil, err
	}
	cf = append(cf, cloudFile{File: File{Path: bootScript, Content: boot, Owner: "root:root", Mode: 0o755}, Defer: true})
	return d, cf, nil
}
