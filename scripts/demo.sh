#!/usr/bin/env bash
# The main job on one machine: install the packages, start the lab cluster,
# prove it with validate (switchover and failover under traffic), show where
# the report is, and take the lab down again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
go build -o bin/lab ./lab
go build -o bin/validate ./validate

name="${PGHA_LAB_NAME:-pgha}"
# Take down only a lab this script started: a running one is refused by
# `up` and left alone.
# Synchronous mode, as on AWS by default: no acknowledged write may be lost.
bin/lab up --name "$name" --sync
cleanup() { bin/lab down --name "$name" || true; }
trap cleanup EXIT INT TERM
bin/lab status --name "$name"
report_dir="report/$(date -u +%Y%m%dT%H%M%SZ)"
status=0
bin/validate --outputs "/var/lib/pgha-lab/$name/outputs.json" --report-dir "$report_dir" || status=$?
echo
echo "Report: $report_dir/report.md (also report.json and timeline.svg)"
exit "$status"
