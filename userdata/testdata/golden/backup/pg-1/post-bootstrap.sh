#!/bin/bash
# Run once by Patroni on the first leader of cluster pgha, right
# after initdb, as: post-bootstrap.sh <superuser connection string>.
# Patroni creates the replication and rewind roles itself; this creates the
# application role and database. The password comes from the environment
# (PGHA_APP_PASSWORD), never from this file or from psql's argv.
set -euo pipefail

if [ -z "$(printenv PGHA_APP_PASSWORD || true)" ]; then
	echo "post-bootstrap: PGHA_APP_PASSWORD is not set; add it to /etc/patroni/secrets.env" >&2
	exit 1
fi

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

psql "$1" --no-psqlrc -w -v ON_ERROR_STOP=1 \
	-v app_user=app -v app_db=app <<'SQL'
\getenv app_password PGHA_APP_PASSWORD
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
SQL

# The repository's stanza, made once by the first leader; every node's
# archive_command then pushes into it.
pgbackrest --config=/etc/pgbackrest.conf --stanza=pgha stanza-create
