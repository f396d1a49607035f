package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pitrSteps are docs/backups.md's point-in-time recovery of the whole
// cluster on AWS, command for command: the booted lab's test runs exactly
// these over SSH, as an operator would, with CLUSTER and TARGET set.
var pitrSteps = struct {
	// Check runs on the leader while it still serves: pgBackRest switches
	// WAL and waits until the segment is in the archive, so the archive
	// reaches the target.
	Check string
	// Stop runs on every PostgreSQL node, replicas first.
	Stop string
	// Remove runs on one PostgreSQL node: the cluster's keys in etcd go.
	Remove string
	// Restore runs on the node that will lead.
	Restore string
	// Backup runs there too, once it leads.
	Backup string
	// Rebuild runs on each other PostgreSQL node.
	Rebuild string
}{
	Check: `sudo -u postgres pgbackrest --stanza="$CLUSTER" check`,
	Stop:  `sudo systemctl stop patroni`,
	Remove: `printf '%s\nYes I am aware\n' "$CLUSTER" |
  sudo pgha-patronictl remove "$CLUSTER"`,
	Restore: `sudo -u postgres pgbackrest --stanza="$CLUSTER" --delta \
  --type=time --target="$TARGET" --target-action=promote restore
sudo -u postgres /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/pgha \
  -l /var/log/postgresql/pitr.log -o "-c listen_addresses=''" -W start
until sudo test ! -e /var/lib/postgresql/15/pgha/recovery.signal; do sleep 2; done
sudo -u postgres /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/pgha -m fast -w stop
sudo systemctl start patroni`,
	Backup: `until sudo pgha-patronictl list -f json |
  grep -q '"Role": "Leader", "State": "running"'; do sleep 2; done
sudo systemctl start pgha-backup@full.service`,
	Rebuild: `sudo find /var/lib/postgresql/15/pgha -mindepth 1 -delete
sudo systemctl start patroni`,
}

// TestPITRProcedureIsDocumented: what the booted lab proves is what
// docs/backups.md tells operators to type.
func TestPITRProcedureIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/backups.md")
	require.NoError(t, err)
	doc := string(b)
	for name, cmd := range map[string]string{
		"check": pitrSteps.Check, "stop": pitrSteps.Stop, "remove": pitrSteps.Remove,
		"restore": pitrSteps.Restore, "backup": pitrSteps.Backup, "rebuild": pitrSteps.Rebuild,
	} {
		assert.True(t, strings.Contains(doc, "```sh\n"+cmd+"\n```"), "docs/backups.md lacks the %s step as the test runs it:\n%s", name, cmd)
	}
}
