package userdata

import (
	"fmt"
	"regexp"
	"time"

	"github.com/pgha/pgha/internal/topology"
)

// Backup is where pgBackRest keeps the cluster's WAL archive and backups:
// an S3 repository. A nil Backup means no archiving and no backups.
type Backup struct {
	Bucket string
	Region string // the bucket's region
	// Endpoint is the S3 endpoint's DNS name (AWS: s3.<region>.amazonaws.com).
	// pgBackRest checks only DNS names in the certificate, so it must be a
	// name, never an address.
	Endpoint string
	Port     int    // 0 means 443
	Path     string // the repository in the bucket, e.g. /pgha/<cluster>
	// URIStyle is "host" (AWS: <bucket>.<endpoint>) or "path" (the lab's
	// endpoint, where bucket names do not resolve).
	URIStyle string
	// CAFile verifies the endpoint's certificate; empty means the system's
	// CAs (AWS).
	CAFile string
	// KeyType is "auto" (AWS: the instance role's credentials from IMDS)
	// or "shared": the key and secret come from PGBACKREST_REPO1_S3_KEY and
	// PGBACKREST_REPO1_S3_KEY_SECRET in the node's secrets file (the lab).
	KeyType string
	// RetentionFull is how many full backups pgBackRest keeps; older ones
	// and the WAL only they need are expired after each backup.
	RetentionFull int
	// FullSchedule and DiffSchedule are systemd calendar events (OnCalendar)
	// for the full and the differential backups; empty means none of that
	// kind (the labs take theirs by command).
	FullSchedule, DiffSchedule string
}

// UnreachableRepositoryDelay bounds what backups add to a leader's
// stepping down when it cannot reach the repository (a partitioned
// leader): its fast shutdown waits for the archiver's last two rounds of
// three tries, each failing after pgbackrest.conf's archive-push
// archive-timeout (1 s) plus a 1 s pause; then, starting as a replica,
// standby mode asks the archive for a timeline history file and a segment
// before pg_wal, each restore_command bounded to 5 s (patroni.yml).
const UnreachableRepositoryDelay = 6*2*time.Second + 2*5*time.Second

// Environment variables pgBackRest reads the repository's key from when
// KeyType is "shared".
const (
	EnvBackupKey       = "PGBACKREST_REPO1_S3_KEY"
	EnvBackupKeySecret = "PGBACKREST_REPO1_S3_KEY_SECRET"
)

var (
	bucketRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	hostnameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	ipRe       = regexp.MustCompile(`^[0-9.]+$`)
	// calendarRe keeps an OnCalendar value to what a unit file takes
	// unquoted; systemd itself checks the rest (tests run systemd-analyze).
	calendarRe = regexp.MustCompile(`^[A-Za-z0-9 ,.*:/~-]{1,100}$`)
)

func (b *Backup) validate() []error {
	if b == nil {
		return nil
	}
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !bucketRe.MatchString(b.Bucket) {
		add("Backup.Bucket %q is not an S3 bucket name: 3-63 of a-z 0-9 . -", b.Bucket)
	}
	if !regionRe.MatchString(b.Region) {
		add("Backup.Region %q is not an AWS region name: use e.g. %q", b.Region, "eu-west-1")
	}
	switch {
	case !hostnameRe.MatchString(b.Endpoint):
		add("Backup.Endpoint %q is not a host name: use e.g. %q", b.Endpoint, "s3.eu-west-1.amazonaws.com")
	case ipRe.MatchString(b.Endpoint):
		add("Backup.Endpoint %q is an address: pgBackRest verifies only DNS names in the certificate, so give a name that resolves to it", b.Endpoint)
	}
	if b.Port < 0 || b.Port > 65535 {
		add("Backup.Port %d is not a TCP port (0 means 443)", b.Port)
	}
	if err := checkPaths([2]string{"Backup.Path", b.Path}); err != nil {
		errs = append(errs, err)
	}
	if b.CAFile != "" {
		if err := checkPaths([2]string{"Backup.CAFile", b.CAFile}); err != nil {
			errs = append(errs, err)
		}
	}
	if b.URIStyle != "host" && b.URIStyle != "path" {
		add("Backup.URIStyle %q: use host (AWS) or path", b.URIStyle)
	}
	if b.KeyType != "auto" && b.KeyType != "shared" {
		add("Backup.KeyType %q: use auto (the instance role) or shared (%s in the secrets file)", b.KeyType, EnvBackupKey)
	}
	for _, f := range []struct{ field, v string }{{"FullSchedule", b.FullSchedule}, {"DiffSchedule", b.DiffSchedule}} {
		if f.v != "" && !calendarRe.MatchString(f.v) {
			add("Backup.%s %q is not a systemd calendar event: use e.g. %q", f.field, f.v, "Sun *-*-* 02:00:00")
		}
	}
	if b.RetentionFull < 1 || b.RetentionFull > 100 {
		add("Backup.RetentionFull %d: keep 1-100 full backups", b.RetentionFull)
	}
	return errs
}

// backupPaths are the paths a node with backups needs.
func backupPaths(p Paths) [][2]string {
	return [][2]string{
		{"PgBackRestConfig", p.PgBackRestConfig},
		{"PgBackRestSpool", p.PgBackRestSpool},
		{"PgBackRestLog", p.PgBackRestLog},
		{"PgBackRestLock", p.PgBackRestLock},
	}
}

// RenderPgBackRest renders pgbackrest.conf of a Patroni node: the S3
// repository, asynchronous archiving through a spool directory (a slow
// repository must not hold up commits), and the node's own data directory
// as the stanza's pg1.
func RenderPgBackRest(c Cluster, node string, p Paths) ([]byte, error) {
	if c.Backup == nil {
		return nil, fmt.Errorf("the cluster has no Backup: nothing to render")
	}
	d, err := prepare(c, node, p, []topology.Role{topology.RolePatroni}, append(patroniPaths(p), backupPaths(p)...)...)
	if err != nil {
		return nil, err
	}
	return execute("pgbackrest.conf.tmpl", d)
}

// BackupTimer is one scheduled kind of backup.
type BackupTimer struct{ Kind, Calendar string }

// Unit is the timer's unit name.
func (t BackupTimer) Unit() string { return "pgha-backup-" + t.Kind + ".timer" }

// BackupTimers are the scheduled backups of a repository.
func BackupTimers(b *Backup) []BackupTimer {
	var out []BackupTimer
	if b == nil {
		return nil
	}
	if b.FullSchedule != "" {
		out = append(out, BackupTimer{"full", b.FullSchedule})
	}
	if b.DiffSchedule != "" {
		out = append(out, BackupTimer{"diff", b.DiffSchedule})
	}
	return out
}
