#!/usr/bin/env bash
# Two builds of the tool (or two library builds under one tool) timed on the
# same decode, alternating in short runs (ABAB...), so that a machine whose
# speed wanders from minute to minute hits both alike. Prints each round's
# decode step (ms per token) and, last, the medians and the median over the
# rounds of B's step over A's: a ratio that holds up where the step times
# themselves move by a quarter.
#
# usage: bench/decode_builds_ab.sh MODEL A_EXE A_LIBDIR B_EXE B_LIBDIR
#   MODEL      a checkpoint or float model directory
#   *_EXE      a `gptq` executable; *_LIBDIR the directory of the
#              libgptq.so.0 it should load (LD_LIBRARY_PATH), or "-" for its own
# Environment: BATCH (8), ROUNDS (10), THREADS (2), PROMPT (128), GEN (128),
# MATMUL (int8), KV_CACHE (bf16).
set -euo pipefail
if [ "$#" -ne 5 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
model=$1
exes=("$2" "$4") libs=("$3" "$5")
batch=${BATCH:-8} rounds=${ROUNDS:-10} threads=${THREADS:-2}
prompt=${PROMPT:-128} gen=${GEN:-128} matmul=${MATMUL:-int8} kv_cache=${KV_CACHE:-bf16}

step_ms() {  # exe libdir -> the batch's `tok ms`
  local env=()
  [ "$2" != "-" ] && env=(env "LD_LIBRARY_PATH=$2")
  "${env[@]}" "$1" bench --model "$model" --batch "$batch" --prompt-tokens "$prompt" \
    --new-tokens "$gen" --reps 1 --threads "$threads" --matmul "$matmul" \
    --kv-cache "$kv_cache" 2>&1 | awk -v b="$batch" '$1 == b && NF >= 9 { print $(NF-4) }'
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "batch $batch, $rounds rounds, $threads threads, matmul $matmul, KV cache $kv_cache"
echo "round   A ms   B ms"
for r in $(seq "$rounds"); do
  a=$(step_ms "${exes[0]}" "${libs[0]}")
  b=$(step_ms "${exes[1]}" "${libs[1]}")
  if [ -z "$a" ] || [ -z "$b" ]; then
    echo "a bench run printed no row for batch $batch" >&2
    exit 1
  fi
  printf '%5d %6s %6s\n' "$r" "$a" "$b"
  echo "$a $b" >> "$results"
done
python3 - "$results" <<'PY'
import statistics, sys
pairs = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
ratios = [b / a for a, b in pairs]
print("median ms: A %.2f, B %.2f; B/A median %.3f (range %.3f-%.3f)" % (
    statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
    statistics.median(ratios), min(ratios), max(ratios)))
PY
