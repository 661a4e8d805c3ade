#!/usr/bin/env bash
# Builds the release artifacts from this checkout:
#   release/biha_<version>_<arch>.deb   dpkg -i on Debian/Ubuntu: code in /usr/lib/biha, bihactl on the
#                                       PATH, the systemd unit template biha@.service, a logrotate file
#   release/biha-<version>.tgz          npm install -g
# Needs Node/npm and dpkg-deb (and the npm registry, for the runtime dependencies); the installed
# package needs neither a compiler nor the network. The checkout's dist/ is left untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${BIHA_RELEASE_DIR:-$ROOT/release}
version=$(node -p "require('./package.json').version")
arch=$(dpkg --print-architecture)
node_min=$(node -p "require('./package.json').engines.node.replace(/[^0-9.]/g, '')")

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
lib=$stage/deb/usr/lib/biha
mkdir -p "$lib" "$OUT"

echo "package: compiling into the package tree"
npx tsc -p tsconfig.build.json --outDir "$lib/dist"
echo "package: bundling the dashboard page into the package tree"
node scripts/build-dashboard.mjs "$lib/dist/dashboard"
cp -r bin sql conf-templates package.json package-lock.json README.md "$lib/"
echo "package: installing the runtime dependencies (npm ci --omit=dev)"
(cd "$lib" && { npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  2>/dev/null || npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error; }) >/dev/null

# npm package: what runs, without the runtime dependencies (npm install -g fetches them).
(cd "$lib" && npm pack --ignore-scripts --pack-destination "$OUT" --loglevel=error) >/dev/null

# Debian package.
deb=$stage/deb
mkdir -p "$deb/usr/bin" "$deb/lib/systemd/system" "$deb/etc/logrotate.d" "$deb/usr/share/doc/biha" "$deb/DEBIAN"
ln -s ../lib/biha/bin/bihactl.js "$deb/usr/bin/bihactl"
install -m 0644 packaging/biha@.service "$deb/lib/systemd/system/biha@.service"
install -m 0644 packaging/logrotate "$deb/etc/logrotate.d/biha"
cp -r docs "$deb/usr/share/doc/biha/"
mv "$lib/README.md" "$deb/usr/share/doc/biha/README.md"
rm -f "$lib/package-lock.json"
size=$(du -sk "$deb" | cut -f1)
cat > "$deb/DEBIAN/control" <<CONTROL
Package: biha
Version: $version
Architecture: $arch
Maintainer: biha maintainers <biha@localhost>
Installed-Size: $size
Depends: nodejs (>= $node_min), postgresql-18 | postgresql-17 | postgresql-16 | postgresql-15 | postgresql-14 | postgresql-13
Recommends: perl, openssl, logrotate, iproute2, iputils-arping
Section: database
Priority: optional
Homepage: file:///usr/share/doc/biha/README.md
Description: built-in high availability for stock PostgreSQL
 One controller beside each PostgreSQL instance: raft elections, automatic
 failover, switchover and fencing over PostgreSQL streaming replication.
 bihactl creates, joins and manages the nodes.
CONTROL
echo /etc/logrotate.d/biha > "$deb/DEBIAN/conffiles"
find "$deb" -type d -exec chmod 0755 {} +
dpkg-deb --build --root-owner-group "$deb" "$OUT/biha_${version}_${arch}.deb" >/dev/null
echo "package: $OUT/biha_${version}_${arch}.deb"
echo "package: $OUT/biha-${version}.tgz"
