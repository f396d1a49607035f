#!/usr/bin/env bash
# The main job on one machine: install the packages, start the lab cluster,
# prove it with validate (switchover and failover under traffic), show where
# the report is, and take the lab down again. Run it as root.
#
#   scripts/demo.sh          # nodes as processes in network namespaces (about a minute)
#   scripts/demo.sh --boot   # nodes as Debian 12 machines booting the user data
#                            # EC2 would get; validate takes the AWS path
#                            # (the first run also builds the image)
set -euo pipefail
cd "$(dirname "$0")/.."

up_args=(--sync) # synchronous mode, as on AWS by default: no acknowledged write may be lost
for arg in "$@"; do
  case "$arg" in
    --boot) up_args+=(--boot) ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $arg (use --boot, or nothing)" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
go build -o bin/lab ./lab
go build -o bin/validate ./validate

name="${PGHA_LAB_NAME:-pgha}"
# Take down only a lab this script started: a running one is refused by
# `up` and left alone.
bin/lab up --name "$name" "${up_args[@]}"
cleanup() { bin/lab down --name "$name" || true; }
trap cleanup EXIT INT TERM
bin/lab status --name "$name"
report_dir="report/$(date -u +%Y%m%dT%H%M%SZ)"
status=0
bin/validate --outputs "/var/lib/pgha-lab/$name/outputs.json" --report-dir "$report_dir" || status=$?
echo
echo "Report: $report_dir/report.md (also report.json and timeline.svg)"
exit "$status"
