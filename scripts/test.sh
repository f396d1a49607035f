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
# Two streams. The cluster stream runs the packages whose tests start whole
# clusters (namespace labs, booted machines, userdata's live cluster), one
# package and one test at a time: two clusters at once on a small machine
# would only measure CPU starvation, and their failovers have time bounds.
# The other stream runs everything else beside it, one package at a time:
# unit tests and single real daemons, which take a fraction of the cluster
# stream's time.
cluster_pkgs=(./validate ./lab/cluster ./lab ./lab/machine ./userdata)
mapfile -t other_pkgs < <(go list ./... | grep -v -x -F \
  -e github.com/pgha/pgha/validate -e github.com/pgha/pgha/lab/cluster \
  -e github.com/pgha/pgha/lab -e github.com/pgha/pgha/lab/machine \
  -e github.com/pgha/pgha/userdata)
cluster_log="$(mktemp)"
other_log="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$cluster_log" "$other_log" "$log"' EXIT
set +e
go test -p 1 -count=1 -timeout 45m -v "$@" "${cluster_pkgs[@]}" >"$cluster_log" 2>&1 &
cluster_pid=$!
go test -p 1 -count=1 -timeout 45m -v "$@" "${other_pkgs[@]}" >"$other_log" 2>&1
other_status=$?
grep -E '^(ok|FAIL|--- |panic:|\?)' "$other_log"
# The cluster stream's progress, as it comes.
tail -n +1 -f "$cluster_log" --pid "$cluster_pid" | grep --line-buffered -E '^(ok|FAIL|--- |panic:|\?)'
wait "$cluster_pid"
cluster_status=$?
set -e
cat "$other_log" "$cluster_log" >"$log"
status=$((other_status | cluster_status))
if [ "$status" -ne 0 ]; then
  # go test -v streams each test's log as it runs, so the evidence of a
  # failure sits above its "--- FAIL" line: print each failed test's own
  # output (its last lines, where the failure is), not the lines after it.
  echo "== failures"
  # Subtests fail as "    --- FAIL: T/sub": print the innermost failed
  # tests (a parent's own failure is only its children's), each from its
  # "=== RUN" line, so that a failed subtest is not hidden by the output
  # of its passing siblings.
  failed=$(sed -n -E 's/^ *--- FAIL: (\S+) .*/\1/p' "$log" | sort -u)
  leaves=()
  for t in $failed; do
    inner=0
    for u in $failed; do [[ $u == "$t"/* ]] && inner=1; done
    [ "$inner" -eq 1 ] || leaves+=("$t")
  done
  section() {
    awk -v t="$1" '
      $0 == "=== RUN   " t { on = 1; print; next }
      on && ((/^=== RUN   / && index($0, "=== RUN   " t "/") != 1) || /^(ok|FAIL|PASS)([ \t]|$)/) { on = 0 }
      on { print }' "$log"
  }
  for t in "${leaves[@]}"; do
    echo "== $t"
    section "$t" | tail -n 120
  done
  # Last, where a shortened copy of this output still shows it: each
  # failed test's assertions alone.
  echo "== what failed"
  for t in "${leaves[@]}"; do
    echo "-- $t"
    section "$t" | grep -A8 'Error Trace:' | grep -v -E '^\s+Test:' | head -n 40
  done
  [ "${#leaves[@]}" -gt 0 ] || tail -n 150 "$log"
  grep -E '^(FAIL|panic:)' "$log" || true
  exit "$status"
fi
# As root with the packages installed, every real-tool and lab test must
# run: a skip here means a missing install step, not a pass.
if [ "$(id -u)" -eq 0 ] && [ -z "${PGHA_ALLOW_SKIP:-}" ] && grep -q -- '--- SKIP' "$log"; then
  echo "== tests skipped (set PGHA_ALLOW_SKIP=1 to allow):"
  grep -A1 -- '--- SKIP' "$log"
  exit 1
fi
passed=$(grep -c -- '--- PASS' "$log" || true)
echo "$passed passed, 0 failed"
