#!/usr/bin/env bash
# One-time machine set-up: QEMU (Arm and RISC-V) and the Arm GNU toolchain (firmware tests),
# PostgreSQL (the shared-study tests of `kinglet search` start their own server), Rust targets
# for the microcontrollers kinglet compiles for. Idempotent; safe to run before every command.
set -euo pipefail
need_apt=()
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
# qemu-system-riscv32 (the RISC-V firmware tests) comes in Debian's qemu-system-misc.
command -v qemu-system-riscv32 >/dev/null || need_apt+=(qemu-system-misc)
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
# initdb and pg_ctl live in /usr/lib/postgresql/<version>/bin, off the PATH.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Some images carry a backported qemu-utils whose "Breaks" keeps Debian's own QEMU out;
  # when that happens, bring qemu-utils to the version the QEMU system packages come in.
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null; then
    qemu_version=$(apt-cache policy qemu-system-arm | awk '/Candidate:/ {print $2}')
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --allow-downgrades \
      "${need_apt[@]}" "qemu-utils=${qemu_version}" >/dev/null
  fi
fi
rustup target add thumbv7em-none-eabihf thumbv7m-none-eabi riscv32imc-unknown-none-elf >/dev/null
rustup component add clippy rustfmt >/dev/null
