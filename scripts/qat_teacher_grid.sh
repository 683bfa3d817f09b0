#!/usr/bin/env bash
# QAT at 4 bits with and without the float model as teacher (issue 12): teacher weights
# 0, 0.5 and 0.9 for one network (3 epochs at the default sub-byte fine-tuning rate), each deployed as w4a8 and scored on the
# validation subjects (the choice) and on the official UCI-HAR test windows (reported only).
#
# Usage: bash scripts/qat_teacher_grid.sh [MODEL] [BITS] [OUT_DIR]
#   defaults: kinglet-lite, 4, out/qat-teacher. Needs out/subbyte/<MODEL>.kgl from
#   scripts/subbyte_table.sh and a release build. Prints one row per setting
#   (weight, epochs, val %, test %); steps whose outputs exist are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${K:-target/release/kinglet}
D=${DATA:-../shared/data}
H=hapt:$D/hapt.zip
T=uci-har:$D/uci-har:test
M=${1:-kinglet-lite}
B=${2:-4}
O=${3:-out/qat-teacher}
F=out/subbyte/$M.kgl
[ -f "$F" ] || { echo "missing $F: run scripts/subbyte_table.sh first" >&2; exit 1; }
mkdir -p "$O"
acc() { python3 -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['accuracy']*100:.2f}\")" "$1"; }
printf 'teacher_weight epochs val_%% test_%%\n'
for w in 0 0.5 0.9; do
  for e in 3; do
    n=$M.qat$B.t$w.e$e
    teacher=()
    [ "$w" != 0 ] && teacher=(--teacher "$F" --teacher-weight "$w")
    [ -f "$O/$n.kgl" ] || $K train --qat --init "$F" "${teacher[@]}" --bits "$B" --epochs "$e" \
      --data "$H:train" --seed 1 --quiet --out "$O/$n.kgl" > "$O/$n.train.log" 2>&1
    [ -f "$O/$n.tflite" ] || $K quantize --model "$O/$n.kgl" --data "$H:train" --scheme w${B}a8 \
      --out "$O/$n.tflite" > "$O/$n.quantize.log"
    [ -f "$O/$n.val.json" ] || $K eval --model "$O/$n.tflite" --data "$H:val" --json > "$O/$n.val.json"
    [ -f "$O/$n.test.json" ] || $K eval --model "$O/$n.tflite" --data "$T" --json > "$O/$n.test.json"
    printf '%s %s %s %s\n' "$w" "$e" "$(acc "$O/$n.val.json")" "$(acc "$O/$n.test.json")"
  done
done
