#!/bin/sh
# Builds the pulumi CLI from the Go module proxy into a cache directory, once.
# The Automation API (used by validate to read stack outputs) drives this
# binary; building it from source keeps CI free of any download other than
# Go modules. A cold build takes several minutes, so it is skipped when the
# binary is already there.
#
#   tools/pulumi/build.sh          # prints the path of the binary
#   PGHA_TOOLS=/some/dir tools/pulumi/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tools=${PGHA_TOOLS:-${HOME:-/root}/.cache/pgha}
bin="$tools/bin/pulumi"
version=v3.274.1 # keep in step with go.mod
# The Automation API refuses a CLI that does not report its version, and only
# release builds stamp it; so the check compares it and the build stamps it.
if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null)" = "$version" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$tools/bin"
echo "building the pulumi CLI into $bin (several minutes when cold)..." >&2
cd "$here"
# Build to a temporary name first so an interrupted build never leaves a
# half-written binary that the check above would accept.
nice go build -trimpath -o "$bin.tmp" \
	-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
	github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
mv "$bin.tmp" "$bin"
echo "$bin"
