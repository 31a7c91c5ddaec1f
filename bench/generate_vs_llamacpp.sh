#!/usr/bin/env bash
# Decode and prefill speed of `gptq bench` against llama.cpp's llama-bench on
# the same machine, in the same run, alternating the two (ABAB) so that a
# change in the machine's load hits both. Batch 1 is compared (llama-bench
# runs one sequence); gptq's batch 8 is printed beside its batch 1.
#
# usage: bench/generate_vs_llamacpp.sh GPTQ_EXE LLAMA_BENCH GGUF CHECKPOINT [CHECKPOINT...]
#   GGUF         llama.cpp's model (e.g. a Q4_0 made by its convert_hf_to_gguf.py
#                and llama-quantize from the same Hugging Face model)
#   CHECKPOINT   gptq checkpoints (or float models) of the same model
# Environment: THREADS (default 2), PROMPT (128), GEN (128), REPS (5),
# ROUNDS (2), MATMUL (int8; or f32), KV_CACHE (f32; or bf16, nearer
# llama.cpp's default f16 cache), OUT (a directory for the JSON files,
# default a temporary one), LLAMA_ARGS (more llama-bench options, e.g.
# "--repack 0").
# llama.cpp is the user's build; nothing of it is built or committed here.
set -euo pipefail
if [ "$#" -lt 4 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
gptq=$1 llama_bench=$2 gguf=$3
shift 3
threads=${THREADS:-2} prompt=${PROMPT:-128} gen=${GEN:-128} reps=${REPS:-5}
rounds=${ROUNDS:-2} matmul=${MATMUL:-int8} kv_cache=${KV_CACHE:-f32}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
models=()
for ck in "$@"; do models+=(--model "$ck"); done

for r in $(seq 1 "$rounds"); do
  echo "round $r: llama-bench" >&2
  # shellcheck disable=SC2086  # LLAMA_ARGS is meant to split
  nice -n 10 "$llama_bench" -m "$gguf" -t "$threads" -p "$prompt" -n "$gen" -r "$reps" \
    ${LLAMA_ARGS:-} -o json \
    >"$out/llama-$r.json" 2>"$out/llama-$r.log"
  echo "round $r: gptq bench" >&2
  nice -n 10 "$gptq" bench "${models[@]}" --batch 1,8 --prompt-tokens "$prompt" \
    --new-tokens "$gen" --reps "$reps" --threads "$threads" --matmul "$matmul" \
    --kv-cache "$kv_cache" --json "$out/gptq-$r.json" >"$out/gptq-$r.txt" 2>"$out/gptq-$r.log"
  cat "$out/gptq-$r.txt"
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
llama = {"pp": [], "tg": []}
ours = {}
for r in range(1, rounds + 1):
    for row in json.load(open(f"{out}/llama-{r}.json")):
        kind = "pp" if row["n_prompt"] > 0 and row["n_gen"] == 0 else "tg"
        llama[kind].append(row["avg_ts"])
    for row in json.load(open(f"{out}/gptq-{r}.json"))["rows"]:
        key = (row["model"], row["batch"])
        ours.setdefault(key, {"pp": [], "tg": []})
        ours[key]["pp"].append(row["prefill_tokens_per_s"])
        ours[key]["tg"].append(row["decode_tokens_per_s"])
lp, lt = statistics.mean(llama["pp"]), statistics.mean(llama["tg"])
print(f"\nllama.cpp (llama-bench): prefill {lp:.1f} t/s, decode {lt:.1f} t/s "
      f"(mean of {rounds} rounds: pp {[round(x, 1) for x in llama['pp']]}, "
      f"tg {[round(x, 1) for x in llama['tg']]})")
print(f"{'model':<55} {'batch':>5} {'prefill t/s':>11} {'decode t/s':>10} "
      f"{'prefill/llama':>13} {'decode/llama':>12}")
for (model, batch), v in sorted(ours.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    p, t = statistics.mean(v["pp"]), statistics.mean(v["tg"])
    print(f"{model[-55:]:<55} {batch:>5} {p:>11.1f} {t:>10.1f} {p / lp:>13.2f} {t / lt:>12.2f}")
PY
echo "(JSON and logs in $out)"
