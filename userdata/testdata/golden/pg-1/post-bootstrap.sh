#!/bin/bash
# Run once by Patroni on the first leader of cluster pgha, right
# after initdb, as: post-bootstrap.sh <superuser connection string>.
# Patroni creates the replication and rewind roles itself; this creates the
# application role and database, the role pgha's own checks connect as,
# and PgBouncer's auth user with the one function it may call. The
# passwords come from the environment (PGHA_APP_PASSWORD,
# PGHA_MONITOR_PASSWORD, PGHA_POOLER_PASSWORD), never from this file or
# from psql's argv.
set -euo pipefail

for v in PGHA_APP_PASSWORD PGHA_MONITOR_PASSWORD PGHA_POOLER_PASSWORD; do
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
# postgres_exporter's role: pg_monitor only and no password (pg_hba admits
# it by peer, from the exporter's OS user, where monitoring is on).
# PgBouncer's auth user may connect to the application database, the only
# one PgBouncer serves, and there call pgbouncer.get_auth, PgBouncer's
# documented auth_query function: owned by the superuser, SECURITY DEFINER
# with a fixed search_path, EXECUTE for the auth user alone. It returns the
# SCRAM secret of a login role that is neither a superuser nor a
# replication role (PgBouncer 1.18 has no auth_dbname: the function must
# exist in every database clients reach through it; that is this one).
# Function privileges are kept per database: they are granted where the
# monitor and PgBouncer connect.
psql "$1" --no-psqlrc -w -v ON_ERROR_STOP=1 \
	-v app_user=app -v app_db=app \
	-v monitor_user=pgha_monitor -v exporter_user=pgha_exporter \
	-v pooler_user=pgha_pooler <<'SQL'
\getenv app_password PGHA_APP_PASSWORD
\getenv monitor_password PGHA_MONITOR_PASSWORD
\getenv pooler_password PGHA_POOLER_PASSWORD
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
CREATE ROLE :"monitor_user" LOGIN PASSWORD :'monitor_password' IN ROLE pg_monitor;
CREATE ROLE :"exporter_user" LOGIN IN ROLE pg_monitor;
CREATE ROLE :"pooler_user" LOGIN PASSWORD :'pooler_password';
GRANT CONNECT ON DATABASE :"app_db" TO :"monitor_user", :"pooler_user";
\connect :"app_db"
GRANT EXECUTE ON FUNCTION pg_switch_wal() TO :"monitor_user";
CREATE SCHEMA pgbouncer;
CREATE FUNCTION pgbouncer.get_auth(text) RETURNS TABLE (uname text, phash text) LANGUAGE sql
SECURITY DEFINER SET search_path = pg_catalog AS $$SELECT rolname::text, rolpassword
FROM pg_authid WHERE rolname = $1 AND rolcanlogin AND NOT rolsuper AND NOT rolreplication$$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO :"pooler_user";
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth TO :"pooler_user";
SQL
