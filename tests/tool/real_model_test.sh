#!/usr/bin/env bash
# Slow test (meson suite "slow"): the gptq tool end to end on a real model,
# SmolLM2-135M-Instruct made by tools/fixtures/smollm2_model.sh (needs PyPI
# access the first time). Quantizes at 4 and 3 bits with act-order, stops a
# run with SIGINT and checks that nothing is left behind, then checks that
# GPTQ's perplexity beats round-to-nearest's at both widths.
#   real_model_test.sh GPTQ_EXE MODEL_DIR
set -euo pipefail
gptq=$1
model=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
calib=/usr/share/doc/gnu-standards/maintain.text.gz
text=/usr/share/doc/gnu-standards/standards.text.gz
for f in "$calib" "$text"; do
  [ -f "$f" ] || { echo "missing $f (Debian package gnu-standards)"; exit 1; }
done
bash "$here/../../tools/fixtures/smollm2_model.sh" "$model"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Ctrl-C half-way: exit status 130, no checkpoint, no temporary directory.
"$gptq" quantize --model "$model" --out "$work/interrupted" --calib "$calib" \
  --samples 8 --seqlen 256 >"$work/int.out" 2>"$work/int.err" &
pid=$!
for _ in $(seq 1 600); do
  grep -q "model.layers.3" "$work/int.out" 2>/dev/null && break
  sleep 0.1
done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
if [ "$rc" -ne 130 ] || ! grep -q "interrupted" "$work/int.err"; then
  echo "FAIL: SIGINT gave exit $rc: $(cat "$work/int.err")"
  exit 1
fi
if [ -n "$(ls -A "$work" | grep -v '^int\.')" ]; then
  echo "FAIL: an interrupted run left: $(ls -A "$work")"
  exit 1
fi
echo "ok: SIGINT stops cleanly (exit 130, nothing written)"

for bits in 4 3; do
  "$gptq" quantize --model "$model" --out "$work/q$bits" --calib "$calib" --samples 16 \
    --seqlen 512 --bits "$bits" --group 128 --act-order --quiet
done
"$gptq" eval --model "$model" --quantized "$work/q4" --quantized "$work/q3" --text "$text" \
  --max-tokens 2048 --json "$work/eval.json"

# The table's verdict, read back from the JSON.
python3 - "$work/eval.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
ppl = [(r["model"], r["bits"], r["perplexity"]) for r in rows]
orig = ppl[0][2]
assert 8 < orig < 40, f"original perplexity {orig} is not that of a working 135M model"
by = {(m, b): p for m, b, p in ppl}
for bits in ("4", "3"):
    rtn, gptq = by[("RTN", bits)], by[("GPTQ", bits)]
    gap_rtn, gap_gptq = rtn - orig, gptq - orig
    print(f"{bits}-bit: original {orig:.3f}  RTN {rtn:.3f}  GPTQ {gptq:.3f}")
    assert gap_gptq < 0.8 * gap_rtn, f"{bits}-bit GPTQ is not clearly closer than RTN"
print("ok: GPTQ closer to the original than round-to-nearest at 4 and 3 bits")
PY
