#!/usr/bin/env bash
# An installed kinglet, away from its checkout (issue 16): `cargo install` (reusing the release
# build in target/), the binary copied into an empty folder, the checkout hidden behind an
# empty tmpfs in a private mount namespace (needs root, as CI is); then `compile` (Rust and C,
# each built there with nothing but its own files), `profile`, and a firmware cascade in QEMU.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo install --quiet --locked --path "$repo/crates/kinglet" --root "$work/root" --target-dir "$repo/target"
mkdir -p "$work/run"
cp "$work/root/bin/kinglet" "$work/run/"
# A model without an extension (recognised by its bytes; the seed's file name says which sensors
# feed it) and a few windows to run it on.
cp "$repo/crates/kinglet-graph/tests/fixtures/B_s123_1IN_int8.tflite" "$work/run/B_s123_1IN_int8"
cp -r "$repo/crates/kinglet-data/tests/fixtures/uci-har" "$work/run/uci-har"

unshare --mount bash -euo pipefail -c "
  mount -t tmpfs none '$repo'
  test -z \"\$(ls -A '$repo')\"
  cd '$work/run'
  export KINGLET_HOME='$work/home'
  ./kinglet compile B_s123_1IN_int8 --target cortex-m4 --lang rust --out model-rust
  (cd model-rust && cargo build --quiet --release --target thumbv7em-none-eabihf --target-dir '$work/target')
  ./kinglet compile B_s123_1IN_int8 --target cortex-m4 --lang c --out model-c
  for c in model-c/*.c; do
    arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -O2 -mcpu=cortex-m4 -mthumb -c \"\$c\" -o \"\$c.o\"
  done
  ./kinglet profile B_s123_1IN_int8 --target cortex-m4 --json > profile.json
  grep -q '\"instructions\"' profile.json
  ./kinglet cascade --target cortex-m4 --strategy signature --threshold 400 --big B_s123_1IN_int8 \
    --data uci-har:uci-har:test --firmware-windows 20 --json > cascade.json
  grep -q '\"decisions_match_host\":true' cascade.json
  ./kinglet cascade --strategy signature --big B_s123_1IN_int8 --data uci-har:uci-har:test --json > host.json
  grep -q '\"energy_per_window_uj\"' host.json
"
echo "installed kinglet: compile (Rust and C), profile and a firmware cascade ran without the checkout"
