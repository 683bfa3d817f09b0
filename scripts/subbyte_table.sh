#!/usr/bin/env bash
# The precision table of BENCHMARKS.md (issue 12): kinglet-lite and big3 trained on the HAPT
# training subjects (validation subjects held out for every choice: QAT's best epoch, the
# bit-width search, the QAT fine-tuning rate), then float, int8, a16w8, w4a8 and w2a8
# (post-training and with QAT, 10 epochs at the rate chosen for the model) and mixed precision
# at 40 % of int8's weight bytes (QAT fine-tuning at the default rate); accuracy on the official UCI-HAR test
# windows, sizes, and Cortex-M4 instructions/flash/RAM from `kinglet profile` (QEMU). Also the
# seed-sized littles (184 parameters) at 2 bits against int8, one-vs-rest.
#
# Usage: bash scripts/subbyte_table.sh [OUT_DIR]   (default out/subbyte; ~40 min on 2 cores;
# steps whose outputs exist are skipped, so a rerun resumes). Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${K:-target/release/kinglet}
D=${DATA:-../shared/data}
H=hapt:$D/hapt.zip
T=uci-har:$D/uci-har:test
O=${1:-out/subbyte}
EPOCHS=${QAT_EPOCHS:-3}
mkdir -p "$O"
run() { echo "+ $*" >&2; "$@"; }
weight_bytes() { sed -n 's/.* \([0-9]*\) weight bytes;.*/\1/p' "$1" | head -1; }

for m in kinglet-lite big3; do
  [ -f "$O/$m.kgl" ] || run $K train --arch $m --data $H:train --seed 1 --quiet --out "$O/$m.kgl"
  for s in int8 a16w8 w4a8 w2a8; do
    [ -f "$O/$m.$s.tflite" ] || run $K quantize --model "$O/$m.kgl" --data $H:train --scheme $s \
      --out "$O/$m.$s.tflite" > "$O/$m.$s.log"
  done
  # The QAT fine-tuning rate of this model, chosen on validation (mean over three seeds at
  # 4 bits) by scripts/qat_rate_grid.sh; its seed-1 run is the w4a8 QAT row. big3's grid tries
  # 1x and 3x its schedule's final rate, kinglet-lite's also 0.1x and 0.33x.
  rates="0.00008 0.00027 0.0008 0.0024"
  [ $m = big3 ] && rates="0.00076 0.0023"
  rate=$(K=$K RATES="$rates" bash scripts/qat_rate_grid.sh $m 4 | awk '/^chosen/ {print $2}')
  echo "QAT rate for $m: $rate" >&2
  for b in 4 2; do
    [ -f "$O/$m.qat$b.kgl" ] || run $K train --qat --init "$O/$m.kgl" --bits $b --epochs 10 \
      --lr $rate --data $H:train --seed 1 --quiet --out "$O/$m.qat$b.kgl"
    [ -f "$O/$m.w${b}a8-qat.tflite" ] || run $K quantize --model "$O/$m.qat$b.kgl" --data $H:train \
      --scheme w${b}a8 --out "$O/$m.w${b}a8-qat.tflite" > "$O/$m.w${b}a8-qat.log"
  done
  budget=$(( $(weight_bytes "$O/$m.int8.log") * 40 / 100 ))
  [ -f "$O/$m.mixed40.tflite" ] || run $K quantize --model "$O/$m.kgl" --data $H:train \
    --weight-budget $budget --fine-tune-epochs $EPOCHS --out "$O/$m.mixed40.tflite" > "$O/$m.mixed40.log"
  for f in "$O/$m.kgl" "$O"/$m.*.tflite; do
    n=$(basename "$f")
    [ -f "$O/eval-$n.json" ] || run $K eval --model "$f" --data $T --json > "$O/eval-$n.json"
    [ -f "$O/val-$n.json" ] || run $K eval --model "$f" --data $H:val --json > "$O/val-$n.json"
    case "$f" in *.tflite)
      # A model the firmware path cannot run yet leaves its row's device columns empty.
      [ -f "$O/profile-$n.json" ] || run $K profile "$f" --json > "$O/profile-$n.json" \
        || { rm -f "$O/profile-$n.json"; echo "no device figures for $n" >&2; } ;;
    esac
  done
done

# The littles of the main job (trained with --merge-val, as the seed's), one-vs-rest.
for i in 0 1 2 3 4 5; do
  l=out/models/little$i.kgl
  [ -f "$l" ] || { echo "missing $l: run the main job first" >&2; exit 1; }
  [ -f "$O/little$i.int8.tflite" ] || run $K quantize --model $l --data $H:train --scheme int8 --out "$O/little$i.int8.tflite" > /dev/null
  [ -f "$O/little$i.w2a8.tflite" ] || run $K quantize --model $l --data $H:train --scheme w2a8 --out "$O/little$i.w2a8.tflite" > /dev/null
  [ -f "$O/little$i.qat2.kgl" ] || run $K train --qat --init $l --bits 2 --epochs $EPOCHS --data $H:train --seed 1 --quiet --out "$O/little$i.qat2.kgl"
  [ -f "$O/little$i.w2a8-qat.tflite" ] || run $K quantize --model "$O/little$i.qat2.kgl" --data $H:train --scheme w2a8 --out "$O/little$i.w2a8-qat.tflite" > /dev/null
  for s in int8 w2a8 w2a8-qat; do
    n=little$i.$s.tflite
    [ -f "$O/eval-$n.json" ] || run $K eval --model "$O/$n" --data $T --json > "$O/eval-$n.json"
    [ -f "$O/inspect-$n.json" ] || run $K inspect "$O/$n" --json > "$O/inspect-$n.json"
  done
done
python3 scripts/subbyte_table.py "$O"
