#!/usr/bin/env bash
# Installs the Debian 12 packages lens-embed needs to build, test and demo.
# Idempotent: when everything is present it only checks and returns quickly.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libpq-dev libcurl4-openssl-dev libsimdjson-dev libpcre2-dev libsqlite3-dev
  libcli11-dev libfmt-dev libspdlog-dev libtomlplusplus-dev nlohmann-json3-dev
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
  postgresql-15 postgresql-client-15 sqlite3 clang-format
  clang libclang-rt-14-dev  # libFuzzer (fuzz/run.sh)
  dpkg-dev file systemd     # the .deb (cpack, dpkg-shlibdeps) and its test (systemd-analyze verify)
  nginx-core openssl        # tests/tls: the TLS (HTTP/2) front and the test's own CA
  prometheus                # tests/metrics: promtool check metrics, and a real scrape
  iproute2                  # tests/partition: ip netns and veth pairs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
  exit 1
fi
# Stop apt from creating (and trying to start) a default cluster: tests make their own.
mkdir -p /etc/postgresql-common/createcluster.d
[ -f /etc/postgresql-common/createcluster.d/00-nomain.conf ] ||
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/00-nomain.conf
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
