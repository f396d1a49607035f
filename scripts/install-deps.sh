#!/usr/bin/env bash
# Installs the Debian 12 packages the lab and the tests run: the same
# package versions the Debian 12 AMI installs on AWS. Safe to run again.
set -euo pipefail

packages=(
  postgresql-15 postgresql-client-15 patroni etcd-server etcd-client haproxy
  cloud-init openssh-server openssh-client nftables iproute2 util-linux ssl-cert
  procps ca-certificates systemd
  # The booted lab: the image (debootstrap), the machines (systemd-nspawn),
  # the package mirror's index (apt-ftparchive), and the nodes' AWS client,
  # which the stand-in tests drive from the host too.
  debootstrap systemd-container apt-utils awscli
  # Backups: the lab's S3 endpoint is proven with the real pgBackRest.
  pgbackrest
  # Monitoring: promtool (in prometheus) checks and unit-tests the alert rules;
  # the real Alertmanager pages through the lab's SNS stand-in (lab/awsapi).
  prometheus prometheus-alertmanager
  # The exporters Prometheus scrapes (only recommended by prometheus, and
  # this script installs no recommends).
  prometheus-node-exporter prometheus-postgres-exporter
  # chronyd parses the nodes' time configuration in the tests.
  chrony
  # The clients' pooler (issue 17): internal/pooler's tests run the real one.
  pgbouncer
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (sudo $0): it installs Debian packages" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian would start its own etcd/haproxy/postgres/prometheus/alertmanager
  # where systemd runs; the lab and the tests run their own daemons, so keep
  # the host's off.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The lab needs Go to build its commands.
need_go="1.26.6"
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go ${need_go} or newer is needed on PATH (Debian 12's golang package is too old; install the official Go toolchain)" >&2
  exit 1
fi
have_go="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -n1)" != "$need_go" ]; then
  echo "install-deps: Go ${have_go} found; ${need_go} or newer is needed" >&2
  exit 1
fi
echo "install-deps: all packages present"
