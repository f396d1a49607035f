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

psql "$1" --no-psqlrc -v ON_ERROR_STOP=1 \
	-v app_user=app -v app_db=app <<'SQL'
\getenv app_password PGHA_APP_PASSWORD
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
SQL
