#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# check. The lab tests start real etcd, Patroni, PostgreSQL and HAProxy in
# network namespaces, so this runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Automation API tests drive a real pulumi CLI, built once from Go
# modules and then cached. A cold build is CPU-bound and the package install
# is network-bound, so they overlap.
build_log="$(mktemp)"
tools/pulumi/build.sh >"$build_log" 2>&1 &
build_pid=$!
scripts/install-deps.sh
if ! wait "$build_pid"; then
  echo "building the pulumi CLI failed:"; cat "$build_log"; exit 1
fi
echo "pulumi CLI: $(tail -n1 "$build_log")"
rm -f "$build_log"

echo "== gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
# -p 1: the lab tests each run a whole cluster; running two at once on a
# small machine would only measure CPU starvation.
go test -p 1 -count=1 -timeout 45m "$@" ./...
