#!/usr/bin/env bash
# The sub-byte QAT fine-tuning rate, chosen on the validation subjects (issue 12): for each
# rate (RATES; the defaults are 0.1×, 0.33×, 1× and 3× the 0.000798 kinglet-lite's float
# schedule ends at — big3's ends at 0.000758) and seed (SEEDS, default 1 2 3), QAT fine-tuning of the
# float model for 10 epochs (best epoch on validation), deployed as w<BITS>a8 and scored on
# the validation subjects and the official UCI-HAR test windows. The choice is the rate with
# the best mean validation accuracy over the seeds; test accuracy is printed beside it only
# to be reported.
#
# Usage: bash scripts/qat_rate_grid.sh [MODEL] [BITS] [OUT_DIR]
#   defaults: kinglet-lite, 4, out/qat-rate. Needs out/subbyte/<MODEL>.kgl (from
#   scripts/subbyte_table.sh) and a release build; steps whose outputs exist are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${K:-target/release/kinglet}
D=${DATA:-../shared/data}
H=hapt:$D/hapt.zip
T=uci-har:$D/uci-har:test
M=${1:-kinglet-lite}
B=${2:-4}
O=${3:-out/qat-rate}
F=out/subbyte/$M.kgl
[ -f "$F" ] || { echo "missing $F: run scripts/subbyte_table.sh first" >&2; exit 1; }
mkdir -p "$O"
acc() { python3 -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['accuracy']*100:.2f}\")" "$1"; }
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
printf 'rate seed val_%% test_%%\n'
for rate in ${RATES:-0.00008 0.00027 0.0008 0.0024}; do
  for seed in ${SEEDS:-1 2 3}; do
    n=$M.qat$B.lr$rate.s$seed
    [ -f "$O/$n.kgl" ] || $K train --qat --init "$F" --bits "$B" --lr "$rate" --epochs 10 \
      --data "$H:train" --seed "$seed" --quiet --out "$O/$n.kgl" > "$O/$n.train.log" 2>&1
    [ -f "$O/$n.tflite" ] || $K quantize --model "$O/$n.kgl" --data "$H:train" --scheme w${B}a8 \
      --out "$O/$n.tflite" > "$O/$n.quantize.log"
    [ -f "$O/$n.val.json" ] || $K eval --model "$O/$n.tflite" --data "$H:val" --json > "$O/$n.val.json"
    [ -f "$O/$n.test.json" ] || $K eval --model "$O/$n.tflite" --data "$T" --json > "$O/$n.test.json"
    printf '%s %s %s %s\n' "$rate" "$seed" "$(acc "$O/$n.val.json")" "$(acc "$O/$n.test.json")" \
      | tee -a "$rows"
  done
done
# The choice: best mean validation accuracy over the seeds (the first rate wins a tie).
awk '{ sum[$1] += $3; n[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
  END { for (i = 1; i <= k; i++) { r = order[i]; m = sum[r] / n[r];
          printf "mean validation at %s: %.2f %%\n", r, m;
          if (i == 1 || m > best) { best = m; chosen = r } }
        print "chosen", chosen }' "$rows"
