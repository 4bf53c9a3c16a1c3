# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared helpers for scripts/test, scripts/demo and .ci/run. Source it, do not run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets CERTRAY_ROOT (the repository root) and defines the functions below.

CERTRAY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages. Build: a C compiler (ring), pkg-config, the PC/SC headers and GTK 3 (the
# tray on Linux).
CERTRAY_BUILD_PACKAGES=(build-essential pkg-config libpcsclite-dev libgtk-3-dev)
# Run-time tools the demo needs: SoftHSM2 (the demo token), OpenSC (the default module), the
# PC/SC service (pcscd: without it no smart card or USB key is ever seen), and for the desktop
# UI the tray library, OpenGL (Mesa) and a Chinese font.
CERTRAY_DEMO_PACKAGES=(softhsm2 opensc pcscd libayatana-appindicator3-1 libgl1-mesa-dri fonts-noto-cjk)
# Everything the tests drive (tests/common/mod.rs says which test needs what)...
CERTRAY_TEST_PACKAGES=(softhsm2 opensc opencryptoki openssl libnss3-tools pcscd python3 vsmartcard-vpcd vsmartcard-vpicc
    python3-pycryptodome pcsc-tools iproute2 fonts-noto-cjk dbus-daemon dbus-bin
    libayatana-appindicator3-1 libgl1-mesa-dri xvfb dbus-x11 dunst trayer xdotool imagemagick x11-utils x11-xserver-utils)
# ...and what only the heavy tests need (CERTRAY_HEAVY_TESTS=1): Chromium for the browser test,
# a virtualenv for schemathesis (certray_ensure_schemathesis; Node.js: certray_ensure_node).
CERTRAY_HEAVY_TEST_PACKAGES=(chromium python3-venv)

certray_log() {
    printf '==> %s\n' "$*" >&2
}

certray_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# certray_missing_packages PKG... : print the packages dpkg does not have installed.
certray_missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        if [ "$status" != installed ]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# certray_ensure_packages PKG... : install with apt the packages that are missing (as root,
# else through sudo). Does nothing when all are installed; only warns off Debian/Ubuntu.
certray_ensure_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        certray_log "not a Debian system (no dpkg/apt-get): install these yourself: $*"
        return 0
    fi
    local missing
    mapfile -t missing < <(certray_missing_packages "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        certray_log "Debian packages present: $*"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            certray_die "missing packages ${missing[*]}, and not root and no sudo: run as root: apt-get update && apt-get install -y ${missing[*]}"
        fi
    fi
    certray_log "installing missing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    mapfile -t missing < <(certray_missing_packages "$@")
    if [ "${#missing[@]}" -ne 0 ]; then
        certray_die "still missing after apt-get install: ${missing[*]}"
    fi
}

# certray_sudo: the command prefix that runs a command as root: nothing as root, else sudo
# (empty with a failure status when there is neither).
certray_sudo() {
    if [ "$(id -u)" -eq 0 ]; then
        return 0
    elif command -v sudo >/dev/null 2>&1; then
        echo sudo
    else
        return 1
    fi
}

# certray_has_systemd: whether systemd runs this machine (not in most containers).
certray_has_systemd() {
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# certray_pcscd_running: whether the PC/SC service is there: a pcscd process, or (under
# systemd) its socket, which starts pcscd when the first program connects.
certray_pcscd_running() {
    pidof pcscd >/dev/null 2>&1 && return 0
    certray_has_systemd && systemctl is-active --quiet pcscd.socket 2>/dev/null
}

# certray_ensure_pcscd: start the PC/SC service when it is not running. It is a system
# service that every smart card program shares, so it is left running afterwards, as its
# package would have it: under systemd through its socket (which the package enables);
# without systemd (containers, WSL) pcscd is started here and goes into the background as
# its init script would start it. Not `pcscd --auto-exit`: it would end a minute after the
# demo and `certray run` or `certray doctor` would then find no service. A service that
# cannot be started is a warning: the demo token does not need it.
certray_ensure_pcscd() {
    if certray_pcscd_running; then
        certray_log "PC/SC service (pcscd) running"
        return 0
    fi
    local sudo
    if ! sudo=$(certray_sudo); then
        certray_log "warning: pcscd is not running, and not root and no sudo to start it: smart cards will not be seen"
        return 0
    fi
    if certray_has_systemd; then
        certray_log "starting the PC/SC service: systemctl start pcscd.socket"
        $sudo systemctl start pcscd.socket || true
    else
        local pcscd
        pcscd=$(command -v pcscd || echo /usr/sbin/pcscd)
        certray_log "starting the PC/SC service: $pcscd"
        $sudo "$pcscd" || true
    fi
    local i
    for i in $(seq 50); do
        certray_pcscd_running && return 0
        sleep 0.1
    done
    certray_log "warning: the PC/SC service (pcscd) did not start: smart cards will not be seen"
}

# certray_need_cargo: make sure cargo is on PATH (rustup's ~/.cargo/env is sourced if needed).
certray_need_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
        # shellcheck disable=SC1091
        . "${CARGO_HOME:-$HOME/.cargo}/env"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        cat >&2 <<'MSG'
error: cargo not found. Install Rust with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"
(Debian's own rustc is too old for this crate: it needs Rust 1.85 or newer, edition 2024.)
MSG
        exit 1
    fi
}

# certray_skip REASON: for the optional checks (check-windows-build, check-macos-build): print
# "skipped: REASON" and exit 0.
certray_skip() {
    echo "skipped: $*"
    exit 0
}

# certray_rust_target_or_skip TARGET: make sure rustup has the Rust target TARGET, adding it
# if needed; skip the check (certray_skip) with the reason when it cannot be had.
certray_rust_target_or_skip() {
    local target=$1
    rustup target list --installed 2>/dev/null | grep -qx "$target" && return 0
    command -v rustup >/dev/null 2>&1 || certray_skip "rustup not found, and the Rust target $target is not installed"
    certray_log "rustup target add $target"
    rustup target add "$target" >&2 ||
        certray_skip "rustup target add $target failed (is the Rust distribution server reachable?)"
}

# certray_ensure_schemathesis: put schemathesis (PyPI, for the OpenAPI fuzz test) on PATH,
# installed once into a virtualenv under target/ when it is not there already.
certray_ensure_schemathesis() {
    command -v schemathesis >/dev/null 2>&1 && return 0
    local venv="$CERTRAY_ROOT/target/py"
    if [ ! -x "$venv/bin/schemathesis" ]; then
        certray_log "installing schemathesis into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
    fi
    export PATH="$venv/bin:$PATH"
}

# certray_ensure_node: Node.js 20+ and npm for the browser test (playwright-core drives
# Debian's chromium). A machine that has node already keeps it (Debian's npm package
# conflicts with NodeSource's nodejs); otherwise Debian's are installed.
certray_ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        certray_ensure_packages nodejs npm
    fi
}
