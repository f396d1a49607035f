#!/bin/bash
# Run once by Patroni on the first leader of cluster pgha, right
# after initdb, as: post-bootstrap.sh <superuser connection string>.
# Patroni creates the replication and rewind roles itself; this creates the
# application role and database, and the role pgha's own checks connect as.
# The passwords come from the environment (PGHA_APP_PASSWORD,
# PGHA_MONITOR_PASSWORD), never from this file or from psql's argv.
set -euo pipefail

for v in PGHA_APP_PASSWORD PGHA_MONITOR_PASSWORD; do
	if [ -z "$(printenv "$v" || true)" ]; then
		echo "post-bootstrap: $v is not set; add it to /etc/patroni/secrets.env" >&2
		exit 1
	fi
done

# Patroni 3.0.2 writes the superuser's line of $PGPASSFILE for host
# /var/run/postgresql, but libpq looks a connection over the default
# socket directory up as "localhost", so on a Debian node (whose default it
# is) psql found no password and the bootstrap failed (Patroni issue 3134,
# fixed after 3.0.2). Add the same line for localhost, in a copy (Patroni
# ends its file without a newline).
if [ -n "${PGPASSFILE:-}" ] && [ -r "$PGPASSFILE" ]; then
	pgpass=$(mktemp)
	trap 'rm -f "$pgpass"' EXIT
	{ cat "$PGPASSFILE"; echo; sed -n 's#^/var/run/postgresql:#localhost:#p' "$PGPASSFILE"; } >"$pgpass"
	export PGPASSFILE=$pgpass
fi

# The monitor reads what pg_monitor may (pg_stat_replication in full,
# pg_stat_archiver, settings) and may close a WAL segment; it owns nothing
# and writes nowhere. pg_hba admits it from the HAProxy nodes only (the jump
# host's), where the superuser is refused. validate's writes go through the
# application user, which grants the monitor SELECT on validate's own table.
psql "$1" --no-psqlrc -w -v ON_ERROR_STOP=1 \
	-v app_user=app -v app_db=app \
	-v monitor_user=pgha_monitor -v exporter_user=pgha_exporter <<'SQL'
\getenv app_password PGHA_APP_PASSWORD
\getenv monitor_password PGHA_MONITOR_PASSWORD
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
CREATE ROLE :"monitor_user" LOGIN PASSWORD :'monitor_password' IN ROLE pg_monitor;
GRANT CONNECT ON DATABASE :"app_db" TO :"monitor_user";
-- postgres_exporter's role: pg_monitor only and no password (pg_hba
-- admits it by peer, from the exporter's OS user, where monitoring is on).
CREATE ROLE :"exporter_user" LOGIN IN ROLE pg_monitor;
-- A function's privileges are kept per database: grant it where the
-- monitor connects.
\connect :"app_db"
GRANT EXECUTE ON FUNCTION pg_switch_wal() TO :"monitor_user";
SQL
