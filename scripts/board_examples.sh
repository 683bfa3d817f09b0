#!/usr/bin/env bash
# Builds the two NUCLEO-L4R5ZI applications (issue 16) around a model compiled by kinglet:
# the embedded-Rust one (cortex-m-rt + stm32l4xx-hal, examples/nucleo-l4r5zi) and the C99 one
# (own start-up and linker script, examples/nucleo-l4r5zi-c), and prints their sizes.
# Uses target/release/kinglet (build it first, e.g. by `cargo test --release`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kinglet="$repo/target/release/kinglet"
model="$repo/crates/kinglet-graph/tests/fixtures/B_s123_1IN_int8.tflite"

rust="$repo/examples/nucleo-l4r5zi"
rm -rf "$rust/model"
"$kinglet" compile "$model" --target cortex-m4 --lang rust --out "$rust/model"
(cd "$rust" && cargo build --quiet --release --locked)
arm-none-eabi-size "$rust/target/thumbv7em-none-eabihf/release/kinglet-nucleo-l4r5zi"

c="$repo/examples/nucleo-l4r5zi-c"
rm -rf "$c/model" "$c/build"
"$kinglet" compile "$model" --target cortex-m4 --lang c --out "$c/model"
make --quiet -C "$c" MODEL=b_s123_1in_int8_tflite
