#!/usr/bin/env bash
# Builds director_<version>_amd64.deb: the director with the Swift standard library and
# Foundation linked in (no Swift runtime on the target), the tuning script where the daemon
# looks for it, the systemd unit, an example config, man pages generated from the CLI and
# shell completions. Prints the package's path last.
#
#   bash scripts/package.sh [--output DIR]     (default DIR: .build/package)
set -euo pipefail
cd "$(dirname "$0")/.."

output=.build/package
while [ $# -gt 0 ]; do
  case "$1" in
    --output) output="$2"; shift 2 ;;
    *) echo "package: unknown option $1 (--output DIR)" >&2; exit 2 ;;
  esac
done

version=$(sed -n 's/.*static let current = "\([0-9][0-9.]*\)".*/\1/p' Sources/DirectorDaemon/DirectorVersion.swift)
[ -n "$version" ] || { echo "package: no version in Sources/DirectorDaemon/DirectorVersion.swift" >&2; exit 1; }
architecture=$(dpkg --print-architecture)

# Its own scratch path: the static build's flags differ from the everyday release build's.
swift build -c release --static-swift-stdlib --product director --scratch-path .build-static >&2
binary=.build-static/release/director
if ldd "$binary" | grep -q libswift; then
  echo "package: $binary still needs a Swift runtime library:" >&2
  ldd "$binary" | grep libswift >&2
  exit 1
fi

# Man pages from the command line's own help (swift-argument-parser's generate-manual).
swift package --disable-sandbox plugin generate-manual --multi-page --section 8 --configuration debug \
  --date "$(date -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%d)" >&2
manuals=.build/plugins/GenerateManual/outputs/director

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/sbin/director"
strip --strip-unneeded "$root/usr/sbin/director"
install -D -m 0755 tuning/director-tuning "$root/usr/lib/director/director-tuning"
install -D -m 0644 packaging/director.service "$root/lib/systemd/system/director.service"
install -D -m 0644 packaging/director.yaml "$root/etc/director/director.yaml"
install -d -m 0755 "$root/usr/share/man/man8"
for page in "$manuals"/director*.8; do
  name=$(basename "$page" .8)
  [ "$name" = "director.help" ] && continue
  # director.services.8 → director-services.8, as Debian names a command's subcommand pages;
  # its NAME says so too (whatis), while the synopsis keeps the command as typed.
  page_name=${name//./-}
  command=${name//./ }
  sed -e "s/^\.Dt .*/.Dt ${page_name^^} 8/" -e "0,/^\.Nm .*/s//.Nm ${page_name}/" -e "s/^\.Nm\$/.Nm \"${command}\"/" "$page" \
    | gzip -9n > "$root/usr/share/man/man8/${page_name}.8.gz"
done
install -d -m 0755 "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
# bash-completion sources the file: no interpreter line.
"$binary" --generate-completion-script bash | sed '1{/^#!/d}' > "$root/usr/share/bash-completion/completions/director"
"$binary" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_director"
"$binary" --generate-completion-script fish > "$root/usr/share/fish/vendor_completions.d/director.fish"
chmod 0644 "$root"/usr/share/*/completions/director "$root/usr/share/zsh/vendor-completions/_director" "$root/usr/share/fish/vendor_completions.d/director.fish"
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/director/copyright"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/director"
printf 'director (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- director maintainers <maintainers@director.example>  %s\n' \
  "$version" "$version" "$(date -u -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" | gzip -9n > "$root/usr/share/doc/director/changelog.gz"

install -d -m 0755 "$root/DEBIAN"
for script in postinst prerm postrm; do install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"; done
echo /etc/director/director.yaml > "$root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# The libraries the binary links, as this distribution names and versions them.
shlibs=$(mktemp -d)
mkdir "$shlibs/debian"
printf 'Source: director\n\nPackage: director\nArchitecture: any\n' > "$shlibs/debian/control"
# (Its warning about the RPATH's $ORIGIN says only that it cannot look there.)
libraries=$(cd "$shlibs" && dpkg-shlibdeps -O "$root/usr/sbin/director" 2> "$shlibs/errors" | sed -n 's/^shlibs:Depends=//p') || true
if [ -z "$libraries" ]; then
  echo "package: dpkg-shlibdeps found no libraries for the binary:" >&2
  cat "$shlibs/errors" >&2
  rm -rf "$shlibs"
  exit 1
fi
rm -rf "$shlibs"
cat > "$root/DEBIAN/control" <<CONTROL
Package: director
Version: $version
Architecture: $architecture
Maintainer: director maintainers <maintainers@director.example>
Installed-Size: $installed_size
Depends: $libraries, nftables, adduser
Recommends: iproute2, ethtool
Section: net
Priority: optional
Description: layer-4 load balancer with connection sync between a pair
 Forwards TCP and UDP flows for virtual services to real servers by direct
 routing, from TPACKET_V3 rings on per-core pinned workers. Two directors share
 a virtual IP and MAC, a kernel filter in each admitting the flows it owns; they
 stream their connection tables to each other, and when one dies the other
 takes its flows over with the established connections intact. Health checks,
 live reloads, per-server statistics, Prometheus metrics and a status page.
CONTROL

mkdir -p "$output"
package="$output/director_${version}_${architecture}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$package" >&2
echo "$package"
