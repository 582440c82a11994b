#!/usr/bin/env bash
# Builds the Debian package and checks it: the files it installs, its maintainer scripts, the
# unit's syntax (systemd-analyze verify) and its hardening score (≤ 2.0). Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
cargo deb --quiet >/dev/null
deb=$(ls -t target/debian/tidings_*.deb | head -n 1)
echo "package: $deb"

contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/tidings ./usr/lib/systemd/system/tidings.service \
            ./etc/tidings/tidings.toml ./usr/share/doc/tidings/README.md; do
  grep -q " $path\$" <<<"$contents" || { echo "missing from the package: $path"; exit 1; }
done
grep -q -- "-rw-r----- .* ./etc/tidings/tidings.toml$" <<<"$contents" \
  || { echo "the config must not be world-readable"; exit 1; }
dpkg-deb -f "$deb" Depends | grep -q adduser || { echo "Depends lacks adduser"; exit 1; }
[ "$(dpkg-deb -I "$deb" conffiles | tr -d '[:space:]')" = "/etc/tidings/tidings.toml" ] \
  || { echo "the config is not a conffile"; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"
grep -q "adduser --system" "$root/DEBIAN/postinst" || { echo "postinst does not create the user"; exit 1; }
"$root/usr/bin/tidings" --version

# Verify the unit as installed, pointing ExecStart at the extracted binary.
unit="$root/tidings.service"
sed "s|/usr/bin/tidings|$root/usr/bin/tidings|" "$root/usr/lib/systemd/system/tidings.service" > "$unit"
systemd-analyze verify "$unit"
score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null \
  | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' \
  || { echo "exposure $score is above 2.0"; exit 1; }
echo "deb: ok"
