#!/usr/bin/env bash
# Build the macOS installer package: target/macos/certray-<version>.pkg
#
#   installer/macos/build-pkg.sh             the host's architecture
#   UNIVERSAL=1 installer/macos/build-pkg.sh arm64 + x86_64 in one binary (lipo)
#
# Runs on macOS only (pkgbuild, productbuild, lipo and codesign come with the Xcode command
# line tools: xcode-select --install), with rustup's Rust. The package installs, for all users:
#   /usr/local/bin/certray
#   /Library/LaunchAgents/com.certray.agent.plist   (certray run at every desktop login)
# and its postinstall starts the agent for the user logged in at the console, so certray runs
# right away. The user's data (~/Library/Application Support/certray, …) is never touched.
#
# Signing, optional (a package for other Macs needs both, then notarization):
#   CODESIGN_IDENTITY="Developer ID Application: …"   signs the binary (hardened runtime)
#   INSTALLER_IDENTITY="Developer ID Installer: …"    signs the package
#   NOTARY_PROFILE=name                                xcrun notarytool submit --wait, staple
#
# Uninstall (as admin):
#   launchctl bootout gui/$(id -u)/com.certray.agent
#   sudo rm /usr/local/bin/certray /Library/LaunchAgents/com.certray.agent.plist
#   sudo pkgutil --forget com.certray.pkg
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf '==> %s\n' "$*" >&2
}

[ "$(uname -s)" = Darwin ] || die "build-pkg.sh builds a macOS package and runs on macOS only"
for tool in cargo pkgbuild productbuild lipo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Rust: rustup; the others: xcode-select --install)"
done

IDENTIFIER=com.certray.pkg
AGENT=com.certray.agent
version=$(sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | sed -n 1p)
[ -n "$version" ] || die "no version in Cargo.toml"
out="$root/target/macos"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The binary.
if [ "${UNIVERSAL:-0}" = 1 ]; then
    targets=(aarch64-apple-darwin x86_64-apple-darwin)
    bins=()
    for t in "${targets[@]}"; do
        rustup target add "$t" >&2
        log "cargo build --release --locked --target $t"
        cargo build --release --locked --target "$t"
        bins+=("$root/target/$t/release/certray")
    done
    lipo -create -output "$work/certray" "${bins[@]}"
    host_arch="arm64,x86_64"
else
    log "cargo build --release --locked"
    cargo build --release --locked
    cp "$root/target/release/certray" "$work/certray"
    host_arch=$(uname -m)
fi
strip -x "$work/certray" 2>/dev/null || true
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    log "codesign $CODESIGN_IDENTITY"
    codesign --force --timestamp --options runtime --sign "$CODESIGN_IDENTITY" "$work/certray"
fi

# 2. The payload, owned by root:wheel (pkgbuild --ownership recommended).
payload="$work/payload"
install -d -m 0755 "$payload/usr/local/bin" "$payload/Library/LaunchAgents"
install -m 0755 "$work/certray" "$payload/usr/local/bin/certray"
install -m 0644 "$here/$AGENT.plist" "$payload/Library/LaunchAgents/$AGENT.plist"
plutil -lint "$payload/Library/LaunchAgents/$AGENT.plist" >&2

# 3. Scripts: stop a running agent before an upgrade; start it for the console user after.
scripts="$work/scripts"
mkdir -p "$scripts"
cat >"$scripts/preinstall" <<EOF
#!/bin/sh
# Stop the agent of the user at the console before the files are replaced.
user=\$(stat -f %Su /dev/console)
if [ -n "\$user" ] && [ "\$user" != root ]; then
    uid=\$(id -u "\$user")
    launchctl bootout "gui/\$uid/$AGENT" 2>/dev/null || true
fi
exit 0
EOF
cat >"$scripts/postinstall" <<EOF
#!/bin/sh
# Start certray now for the user at the console; other users get it at their next login.
user=\$(stat -f %Su /dev/console)
if [ -n "\$user" ] && [ "\$user" != root ]; then
    uid=\$(id -u "\$user")
    launchctl bootstrap "gui/\$uid" "/Library/LaunchAgents/$AGENT.plist" 2>/dev/null ||
        launchctl kickstart -k "gui/\$uid/$AGENT" 2>/dev/null || true
fi
exit 0
EOF
chmod 0755 "$scripts/preinstall" "$scripts/postinstall"

# 4. The component package, then the product archive around it.
log "pkgbuild $IDENTIFIER $version"
pkgbuild --root "$payload" \
    --identifier "$IDENTIFIER" \
    --version "$version" \
    --scripts "$scripts" \
    --install-location / \
    --ownership recommended \
    "$work/certray-component.pkg"

cat >"$work/distribution.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>证书助手 certray $version</title>
    <options customize="never" require-scripts="false" hostArchitectures="$host_arch"/>
    <domains enable_anywhere="false" enable_currentUserHome="false" enable_localSystem="true"/>
    <choices-outline>
        <line choice="default">
            <line choice="$IDENTIFIER"/>
        </line>
    </choices-outline>
    <choice id="default"/>
    <choice id="$IDENTIFIER" visible="false">
        <pkg-ref id="$IDENTIFIER"/>
    </choice>
    <pkg-ref id="$IDENTIFIER" version="$version" onConclusion="none">certray-component.pkg</pkg-ref>
</installer-gui-script>
EOF

mkdir -p "$out"
pkg="$out/certray-$version.pkg"
sign=()
[ -n "${INSTALLER_IDENTITY:-}" ] && sign=(--sign "$INSTALLER_IDENTITY")
log "productbuild $pkg"
# (${sign[@]+…}: macOS bash 3.2 calls an empty array unbound under set -u)
productbuild --distribution "$work/distribution.xml" --package-path "$work" ${sign[@]+"${sign[@]}"} "$pkg"

if [ -n "${NOTARY_PROFILE:-}" ]; then
    [ -n "${INSTALLER_IDENTITY:-}" ] || die "notarization needs a signed package (INSTALLER_IDENTITY)"
    log "xcrun notarytool submit (profile $NOTARY_PROFILE)"
    xcrun notarytool submit "$pkg" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$pkg"
fi

pkgutil --payload-files "$pkg" >&2 || true
log "package: $pkg"
echo "$pkg"
