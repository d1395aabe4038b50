#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs missing system packages, then checks
# formatting and lints, runs every workspace test with cargo-nextest, and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh
elif command -v sudo >/dev/null 2>&1; then
  sudo bash scripts/install-deps.sh
else
  bash scripts/install-deps.sh
fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "== cargo nextest"
profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --all-features --locked --profile "$profile"

echo "== the gateways as the README runs them: without optional features (no Kerberos)"
cargo clippy -p auth-examples --lib --bins --locked -- -D warnings
cargo test -p auth-examples --lib --locked

echo "== doc tests, with every feature and with the defaults (no doc example may need a feature it does not name)"
cargo test --workspace --all-features --locked --doc
cargo test --workspace --locked --doc

echo "== the minimum supported Rust version (rust-version in Cargo.toml) builds everything"
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
msrv_toolchain="$msrv.0"
if [ "$(rustc --version | cut -d' ' -f2)" = "$msrv_toolchain" ]; then
  # The default toolchain is that version: every build above already proved it, and a
  # second check of the whole workspace would only cost CI minutes.
  echo "the default toolchain is rustc $msrv_toolchain: proved by the builds above"
else
  rustup toolchain list | grep -q "^$msrv_toolchain-" || rustup toolchain install "$msrv_toolchain" --profile minimal
  cargo "+$msrv_toolchain" check --workspace --all-targets --all-features --locked
fi

echo "== API docs: no broken intra-doc links, no rustdoc warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked

echo "== every crate packages (metadata complete, path dependencies versioned)"
cargo package --workspace --no-verify --locked --allow-dirty --quiet
