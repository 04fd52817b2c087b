#!/usr/bin/env bash
# Installs the system packages the director, its lab and its tests need (Debian 12).
# Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  libnuma-dev   # libnuma: per-node memory for each worker
  libbpf-dev    # libbpf: loads the XDP fast path and reaches its maps (its headers build the program too)
  libssl-dev    # OpenSSL: the https health checks
  openssl       # the tests' https server (openssl s_server) and its certificate
  nftables      # the host-stack guard (netdev ingress rule) and the benchmark's baseline
  iproute2      # ip netns, veth, bridge: the lab
  ethtool       # GRO off on director ports
  nginx-light   # the lab's real servers
  curl          # the lab's clients
  tcpdump       # the failover tests capture what the clients receive (download stalls)
  procps        # sysctl
  util-linux    # taskset: the benchmark pins NAPI threads
  linux-perf    # the benchmark's profile of the director's CPU
  prometheus    # promtool: the tests lint /metrics with it
  chromium      # the status page's test drives it headless
  python3-websocket  # … over the DevTools protocol
  fonts-dejavu-core  # … and its screenshot needs a font
  lintian       # the package's test checks the .deb
  dpkg-dev      # dpkg-deb, dpkg-architecture: scripts/package.sh
  adduser       # the package's postinst makes user director
  systemd       # systemd-analyze verify on the unit
  man-db        # the package's test looks its man pages up
  passwd        # useradd: the lab runs directors as user director
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-dependencies: run as root (apt-get install, and the lab needs network namespaces)" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "install-dependencies: swift is not on PATH (Swift 6.1 or later is needed)" >&2; exit 1; }
