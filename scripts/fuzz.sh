#!/usr/bin/env bash
# Fuzzes every parser of client input: `scripts/fuzz.sh [SECONDS]` runs each target in
# tests/fuzz for SECONDS (default 10, the CI smoke) from its committed seeds, on the stable
# toolchain (`cargo fuzz build -s none`: coverage-guided libFuzzer, no sanitizer, with
# debug assertions and overflow checks). Installs cargo-fuzz if it is missing. A crash
# fails the script and leaves its input under tests/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
fuzz_dir=tests/fuzz

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

echo "== cargo fuzz build (stable, no sanitizer)"
cargo fuzz build --fuzz-dir "$fuzz_dir" -s none

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
targets=$(cargo fuzz list --fuzz-dir "$fuzz_dir")
for target in $targets; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  echo "== fuzz $target for ${seconds}s"
  # New inputs go to the scratch corpus; the committed seeds are only read.
  log="$work/$target.log"
  if ! cargo fuzz run --fuzz-dir "$fuzz_dir" -s none "$target" "$corpus" "$fuzz_dir/seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target failed; the input is under $fuzz_dir/artifacts/$target/" >&2
    exit 1
  fi
  # What the run reached: executions, speed, coverage.
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|^#[0-9]+ +DONE' "$log" || true
done
echo "fuzz: every target ran ${seconds}s without a crash"
