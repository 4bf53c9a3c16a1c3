#!/usr/bin/env bash
# Build softskf, the test-only SKF library (a stand-in for SKF USB keys), and the variants
# the ABI tests load. scripts/test runs this before the tests; tests/common/skf.rs fails
# naming this script when a library is missing or older than its sources.
#
#   target/softskf/minimal/libsoftskf.so      no optional exports (only what certray requires)
#   target/softskf/no-ecc-sign/libsoftskf.so  everything but SKF_ECCSignData (a required one)
#   target/debug/libsoftskf.so                the full library (built last)
#
# Features are switched in one target directory: cargo relinks only softskf each time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target=${CARGO_TARGET_DIR:-target}

variant() {
    local name=$1
    shift
    cargo build -p softskf --no-default-features "$@"
    mkdir -p "$target/softskf/$name"
    cp "$target/debug/libsoftskf.so" "$target/softskf/$name/libsoftskf.so.tmp"
    mv "$target/softskf/$name/libsoftskf.so.tmp" "$target/softskf/$name/libsoftskf.so"
}

variant minimal --features ecc-sign
variant no-ecc-sign --features optional
cargo build -p softskf
