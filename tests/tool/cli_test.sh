#!/usr/bin/env bash
# The gptq executable end to end on tiny generated models: a quantize → eval
# → logits round trip, and the exit statuses and messages of bad input.
#   cli_test.sh GPTQ_EXE MAKE_TINY_MODEL_EXE
set -euo pipefail
gptq=$1
make_model=$2
. "$(dirname "$0")/check_helpers.sh"

"$make_model" "$work/model"
"$make_model" "$work/gpt2" gpt2
# Calibration ids: 8 lines of 40 ids below the tiny vocabulary (96).
for i in $(seq 1 8); do seq "$i" 3 120 | awk '{printf "%d ", $1 % 96} END {print ""}'; done >"$work/ids.txt"

if "$gptq" quantize --model "$work/model" --out "$work/ck" --calib-ids "$work/ids.txt" \
     --samples 4 --seqlen 32 --group 32 --act-order --override '*.down_proj:bits=8' \
     >"$work/q.txt" 2>&1; then
  pass "quantize"
else
  fail "quantize: $(cat "$work/q.txt")"
fi
for f in model.safetensors config.json quantize_config.json quantize_report.json; do
  [ -f "$work/ck/$f" ] && pass "checkpoint has $f" || fail "checkpoint lacks $f"
done
grep -q "model.layers.1.mlp.down_proj .* 8b g32" "$work/q.txt" && pass "per-layer line" \
  || fail "per-layer line missing: $(cat "$work/q.txt")"
[ -z "$(find "$work" -maxdepth 1 -name '.*tmp*')" ] && pass "no temporary directory left" \
  || fail "temporary directory left"
# Calibration sanity: 128 tokens for 128-wide layers is tiny; the report
# carries the statistics and each layer's outlier ratio.
grep -q "warning: the calibration set is tiny: 128 tokens" "$work/q.txt" \
  && grep -q '"repetition_rate"' "$work/ck/quantize_report.json" \
  && grep -q '"unique_tokens"' "$work/ck/quantize_report.json" \
  && grep -q '"loss_outlier_ratio"' "$work/ck/quantize_report.json" \
  && pass "calibration statistics and warnings" \
  || fail "calibration statistics: $(grep calibration "$work/q.txt")"

if "$gptq" eval --model "$work/model" --quantized "$work/ck" --ids "$work/ids.txt" --ctx 32 \
     --json "$work/eval.json" >"$work/e.txt" 2>&1 && grep -q "^GPTQ" "$work/e.txt" \
     && grep -q "^RTN" "$work/e.txt" && grep -q '"perplexity"' "$work/eval.json"; then
  pass "eval"
else
  fail "eval: $(cat "$work/e.txt")"
fi

head -n 1 "$work/ids.txt" >"$work/one.txt"
n=$(wc -w <"$work/one.txt")
if "$gptq" logits --model "$work/ck" --ids "$work/one.txt" --out "$work/l.npy" >/dev/null 2>&1 \
     && head -c 80 "$work/l.npy" | grep -aq "'shape': ($n, 96)"; then
  pass "logits"
else
  fail "logits"
fi

# desc_act follows the g_idx written: full act-order permutes it; static
# groups and group-aware act-order keep it j / group (vLLM refuses desc_act).
grep -q '"desc_act": true' "$work/ck/config.json" && pass "act-order writes desc_act true" \
  || fail "act-order: $(grep desc_act "$work/ck/config.json")"
base=(--calib-ids "$work/ids.txt" --group 32)
quantize_tiny() {  # OUT, then options
  local out=$1
  shift
  "$gptq" quantize --model "$work/model" --out "$work/$out" --samples 4 --seqlen 32 "$@" \
    >"$work/$out.txt" 2>&1
}
if quantize_tiny gar "${base[@]}" --act-group-aware \
     && grep -q '"desc_act": false' "$work/gar/config.json" \
     && grep -q '"act_group_aware": true' "$work/gar/config.json" \
     && grep -q '"act_group_aware": true' "$work/gar/quantize_report.json"; then
  pass "--act-group-aware writes desc_act false"
else
  fail "--act-group-aware: $(cat "$work/gar.txt"; grep -s desc_act "$work/gar/config.json")"
fi
if quantize_tiny static "${base[@]}" --act-order --static-groups \
     && grep -q '"desc_act": false' "$work/static/config.json"; then
  pass "--static-groups writes desc_act false"
else
  fail "--static-groups: $(cat "$work/static.txt"; grep -s desc_act "$work/static/config.json")"
fi
if quantize_tiny f64 "${base[@]}" --act-order --precision f64 \
     && grep -q '"precision": "f64"' "$work/f64/quantize_report.json" \
     && grep -q '"precision": "f64"' "$work/f64/config.json" \
     && ! grep -q '"precision": "f32"' "$work/f64/quantize_report.json" \
     && grep -q '"precision": "f32"' "$work/static/quantize_report.json"; then
  pass "--precision f64 runs and is recorded per layer"
else
  fail "--precision f64: $(cat "$work/f64.txt")"
fi
# GPTQ searches clipping ranges by default; --no-mse turns it off.
if grep -q '"mse": true' "$work/static/quantize_report.json" \
     && ! grep -q '"mse": false' "$work/static/quantize_report.json" \
     && grep -q '"mse": true' "$work/static/config.json" \
     && quantize_tiny nomse "${base[@]}" --act-order --no-mse \
     && grep -q '"mse": false' "$work/nomse/quantize_report.json" \
     && grep -q '"mse": false' "$work/nomse/config.json" \
     && ! grep -q '"mse": true' "$work/nomse/quantize_report.json"; then
  pass "MSE clip search on for GPTQ by default, off with --no-mse"
else
  fail "--no-mse: $(cat "$work/nomse.txt"; grep -s '"mse"' "$work/static/quantize_report.json" | head -2)"
fi
if quantize_tiny mixmse "${base[@]}" --act-order --override '*.down_proj:mse=0' \
     && python3 - "$work/mixmse/quantize_report.json" <<'PY'
import json, sys
layers = [l for l in json.load(open(sys.argv[1]))["layers"] if not l["skipped"]]
assert layers and all(l["mse"] == (not l["name"].endswith("down_proj")) for l in layers), layers
PY
then
  pass "--override mse=0 turns the clip search off for the matching layers only"
else
  fail "--override mse=0: $(cat "$work/mixmse.txt")"
fi
expect_error "--mse with --no-mse" "--mse and --no-mse contradict" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" \
  --mse --no-mse
expect_error "unknown --precision" "--precision must be f32 or f64, not 'f16'" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" \
  --precision f16
expect_error "--precision with --method rtn" "--precision is that of GPTQ's Hessian" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --method rtn --precision f64
if quantize_tiny mixed "${base[@]}" --act-group-aware \
     --override '*.down_proj:act-order=1' \
     && grep -q '"desc_act": false' "$work/mixed/config.json" \
     && grep -q '"+:^model\\\\.layers\\\\.0\\\\.mlp\\\\.down_proj$"' "$work/mixed/config.json"; then
  pass "a layer with its own act-order gets a dynamic desc_act"
else
  fail "mixed orders: $(cat "$work/mixed.txt"; cat "$work/mixed/config.json" 2>/dev/null)"
fi
expect_error "two act-orders" "two different column orders" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" \
  --act-order --act-group-aware
expect_error "two act-orders in one override" "two different column orders" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" \
  --override '*.q_proj:act-order=1,act-group-aware=1'

# --seed: random disjoint windows, the same for the same seed, recorded in
# the report; --save-calib-ids writes them in the --calib-ids format.
quantize_tiny s1 "${base[@]}" --seed 7 --save-calib-ids "$work/s1.ids" \
  && quantize_tiny s2 "${base[@]}" --seed 7 --save-calib-ids "$work/s2.ids" \
  && quantize_tiny s3 "${base[@]}" --seed 8 --save-calib-ids "$work/s3.ids" \
  && quantize_tiny s4 "${base[@]}" --save-calib-ids "$work/s4.ids" \
  || fail "seeded runs: $(cat "$work"/s?.txt)"
if cmp -s "$work/s1.ids" "$work/s2.ids" && ! cmp -s "$work/s1.ids" "$work/s3.ids" \
     && ! cmp -s "$work/s1.ids" "$work/s4.ids" && [ "$(wc -l <"$work/s1.ids")" -eq 4 ] \
     && [ "$(wc -w <"$work/s1.ids")" -eq 128 ] \
     && grep -q '"seed": 7' "$work/s1/quantize_report.json" \
     && grep -q '"seed": null' "$work/s4/quantize_report.json"; then
  pass "--seed windows are reproducible and recorded"
else
  fail "--seed windows: $(head -c 300 "$work/s1.ids" "$work/s3.ids")"
fi
# The saved windows, fed back, are the same calibration: the same checkpoint.
if quantize_tiny s5 --calib-ids "$work/s1.ids" --group 32 && cmp -s "$work/s1/model.safetensors" \
     "$work/s5/model.safetensors"; then
  pass "saved windows reproduce the checkpoint"
else
  fail "saved windows: $(cat "$work/s5.txt")"
fi
expect_error "--seed with rtn" "--seed is calibration" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --method rtn --seed 1
expect_error "--save-calib-ids over an input" "is the input" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" \
  --save-calib-ids "$work/ids.txt"
if quantize_tiny ragged --calib-ids "$work/ids.txt" --group 48 \
     && grep -q "warning: 64 input columns do not divide into groups of 48: 1 full groups and one of 16 (self_attn.q_proj of 2 blocks" "$work/ragged.txt" \
     && grep -q "warning: 128 input columns do not divide into groups of 48" "$work/ragged.txt"; then
  pass "ragged groups are warned about"
else
  fail "ragged groups: $(cat "$work/ragged.txt")"
fi
if ! grep -q "warning: .* do not divide" "$work/q.txt"; then
  pass "no warning when groups divide"
else
  fail "warning: $(cat "$work/q.txt")"
fi

# Unquantized tensors are float16 by default (the model is float32), as
# config.json says; --dtype chooses another.
grep -q '"torch_dtype": "float16"' "$work/ck/config.json" \
  && grep -q "unquantized tensors will be written as F16" "$work/q.txt" \
  && pass "float16 checkpoint by default" || fail "dtype: $(grep dtype "$work/ck/config.json")"
if "$gptq" quantize --model "$work/model" --out "$work/d32" --method rtn --group 32 --dtype f32 \
     >"$work/d32.txt" 2>&1 \
     && grep -q '"torch_dtype": "float32"' "$work/d32/config.json" \
     && [ "$(stat -c %s "$work/d32/model.safetensors")" -gt \
          "$(stat -c %s "$work/s4/model.safetensors")" ] \
     && grep -q '"mse": false' "$work/d32/quantize_report.json"; then
  pass "--dtype f32 (round-to-nearest, without clip search)"
else
  fail "--dtype f32: $(cat "$work/d32.txt")"
fi
# Round-to-nearest with the clip search: other codes than plain round-to-nearest.
if "$gptq" quantize --model "$work/model" --out "$work/rtnmse" --method rtn --group 32 --mse \
     >"$work/rtnmse.txt" 2>&1 \
     && "$gptq" quantize --model "$work/model" --out "$work/rtnplain" --method rtn --group 32 \
     >>"$work/rtnmse.txt" 2>&1 \
     && grep -q '"mse": true' "$work/rtnmse/quantize_report.json" \
     && grep -q '"mse": false' "$work/rtnplain/quantize_report.json" \
     && ! cmp -s "$work/rtnmse/model.safetensors" "$work/rtnplain/model.safetensors"; then
  pass "--method rtn --mse searches the clipping ranges"
else
  fail "--method rtn --mse: $(cat "$work/rtnmse.txt")"
fi
# --max-shard-size: numbered shards and an index, which eval and logits read.
if "$gptq" quantize --model "$work/model" --out "$work/shards" --method rtn --group 32 \
     --max-shard-size 20KB >"$work/shards.txt" 2>&1 \
     && n=$(find "$work/shards" -name 'model-*-of-*.safetensors' | wc -l) && [ "$n" -ge 2 ] \
     && [ -f "$work/shards/model.safetensors.index.json" ] \
     && [ -f "$work/shards/model-00001-of-0000$n.safetensors" ] \
     && [ -f "$work/shards/model-0000$n-of-0000$n.safetensors" ] \
     && [ ! -e "$work/shards/model.safetensors" ] \
     && "$gptq" quantize --model "$work/model" --out "$work/unsharded" --method rtn --group 32 \
       >/dev/null 2>&1 \
     && "$gptq" logits --model "$work/shards" --ids "$work/one.txt" --out "$work/shards.npy" \
       >/dev/null 2>&1 \
     && "$gptq" logits --model "$work/unsharded" --ids "$work/one.txt" --out "$work/unsharded.npy" \
       >/dev/null 2>&1 && cmp -s "$work/shards.npy" "$work/unsharded.npy"; then
  pass "--max-shard-size writes shards that load"
else
  fail "--max-shard-size: $(cat "$work/shards.txt"; ls "$work/shards")"
fi
expect_error "bad --max-shard-size" "--max-shard-size needs a size such as 4GB" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --method rtn --max-shard-size 4XB
# --model org/name: found in the local Hugging Face cache (refs/main names
# the snapshot), never downloaded.
hub="$work/hf/hub/models--tiny-org--tiny-llama"
commit=0123456789abcdef0123456789abcdef01234567
mkdir -p "$hub/refs" "$hub/snapshots/$commit"
printf '%s' "$commit" >"$hub/refs/main"
cp "$work/model"/* "$hub/snapshots/$commit/"
if HF_HOME="$work/hf" "$gptq" quantize --model tiny-org/tiny-llama --out "$work/from_hub" \
     --method rtn --group 32 >"$work/hub.txt" 2>&1 \
     && grep -q "^model: $hub/snapshots/$commit" "$work/hub.txt" \
     && HF_HUB_CACHE="$work/hf/hub" "$gptq" logits --model tiny-org/tiny-llama@$commit \
       --ids "$work/one.txt" --out "$work/hub.npy" >/dev/null 2>&1; then
  pass "--model org/name from the Hugging Face cache"
else
  fail "--model org/name: $(cat "$work/hub.txt")"
fi
HF_HOME="$work/hf" expect_error "a model absent from the cache" \
  "the Hugging Face cache $work/hf/hub has no models--tiny-org--absent; nothing is downloaded" \
  "$gptq" quantize --model tiny-org/absent --out "$work/x" --method rtn
expect_error "unknown --dtype" "--dtype must be auto, f16, bf16 or f32, not 'f64'" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --method rtn --dtype f64

expect_error "existing output" "already exists" \
  "$gptq" quantize --model "$work/model" --out "$work/ck" --calib-ids "$work/ids.txt"

# Outputs never replace, hold or sit inside an input, and --overwrite
# replaces only a checkpoint this tool wrote (it once deleted the model
# given as --out, and turned an existing file into a directory).
model_sum=$(cat "$work/model"/* | cksum)
expect_error "--out is the model, with --overwrite" "is the input" \
  "$gptq" quantize --model "$work/model" --out "$work/model" --overwrite --method rtn
ln -s model "$work/model_link"
expect_error "--out is a link to the model" "is the input" \
  "$gptq" quantize --model "$work/model" --out "$work/model_link/" --overwrite --method rtn
expect_error "--out inside the model" "lies inside the input" \
  "$gptq" quantize --model "$work/model" --out "$work/model/q" --method rtn
expect_error "--out is the calibration file" "is the input" \
  "$gptq" quantize --model "$work/model" --out "$work/ids.txt" --overwrite \
  --calib-ids "$work/ids.txt"
echo "mine" >"$work/file.txt"
expect_error "--out is a file, with --overwrite" "is not a checkpoint this tool wrote" \
  "$gptq" quantize --model "$work/model" --out "$work/file.txt" --overwrite --method rtn
mkdir -p "$work/mine" && echo "mine" >"$work/mine/notes.txt"
expect_error "--out is a foreign directory, with --overwrite" "has no quantize_report.json" \
  "$gptq" quantize --model "$work/model" --out "$work/mine" --overwrite --method rtn
expect_error "logits --out inside the model" "lies inside the input" \
  "$gptq" logits --model "$work/model" --ids "$work/one.txt" --out "$work/model/model.safetensors"
expect_error "eval --json is the ids file" "is the input" \
  "$gptq" eval --model "$work/model" --ids "$work/ids.txt" --json "$work/ids.txt"
[ "$(cat "$work/model"/* | cksum)" = "$model_sum" ] && [ -f "$work/file.txt" ] \
  && [ -f "$work/mine/notes.txt" ] && [ -s "$work/ids.txt" ] \
  && pass "inputs and foreign files untouched" || fail "an input or a foreign file was changed"
if "$gptq" quantize --model "$work/model" --out "$work/ck" --overwrite --method rtn --group 32 \
     >"$work/q2.txt" 2>&1 && [ -f "$work/ck/quantize_report.json" ]; then
  pass "--overwrite replaces a checkpoint of ours"
else
  fail "--overwrite of a checkpoint: $(cat "$work/q2.txt")"
fi
expect_error "unknown option" "unknown option --bitz" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --bitz 4
expect_error "missing --model" "--model is required" "$gptq" quantize --out "$work/x"
expect_error "no calibration" "needs calibration data" \
  "$gptq" quantize --model "$work/model" --out "$work/x"
expect_error "bad bits" "--bits needs an integer in [2, 8]" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --bits 9 --calib-ids "$work/ids.txt"
expect_error "unstorable bits, one global line" \
  "--bits 5: 5-bit weights cannot be written: GPTQ checkpoints store 2, 3, 4 and 8 bits only" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --bits 5 --calib-ids "$work/ids.txt"
grep -q "q_proj" "$work/err.txt" && fail "--bits 5 blamed on a layer" || pass "--bits 5 names no layer"
expect_error "override matching no layer" "the pattern 'model.layer.0.*' matches no layer" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" \
  --override 'model.layer.0.*:bits=8'
expect_error "static groups without act-order" "--static-groups has no effect without an act-order" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" --static-groups
expect_error "calibration with --method rtn" \
  "--calib-ids is calibration, which --method rtn does not use" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/ids.txt" --method rtn
expect_error "--seqlen with --method rtn" "--seqlen is calibration" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --seqlen 64 --method rtn
expect_error "unknown backend" "--backend must be auto, cpu or cuda, not 'gpu'" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --method rtn --backend gpu
# --backend cuda: on a machine without a usable GPU, refused at once with
# the library's reason and nothing written; where there is one, it runs.
rc=0
"$gptq" quantize --model "$work/model" --out "$work/on-cuda" --method rtn --backend cuda \
  >"$work/out.txt" 2>"$work/err.txt" || rc=$?
if [ "$rc" -eq 0 ] && [ -d "$work/on-cuda" ]; then
  pass "--backend cuda on a GPU"
elif [ "$rc" -eq 1 ] && grep -qF -- "--backend cuda: gptq_ctx_create: the CUDA backend was requested but cannot be used" "$work/err.txt" \
     && [ ! -e "$work/on-cuda" ]; then
  pass "--backend cuda without a GPU: $(head -c 160 "$work/err.txt")"
else
  fail "--backend cuda (exit $rc; stderr: $(cat "$work/err.txt"))"
fi
if "$gptq" quantize --model "$work/model" --out "$work/on-cpu" --method rtn --backend cpu \
     >"$work/out.txt" 2>&1 && [ -d "$work/on-cpu" ]; then
  pass "--backend cpu"
else
  fail "--backend cpu: $(cat "$work/out.txt")"
fi
# Where the result goes is checked before any work, not found unusable at
# the end of the run.
expect_error "--out in a missing directory" "the directory $work/nodir does not exist" \
  "$gptq" quantize --model "$work/model" --out "$work/nodir/ck" --calib-ids "$work/ids.txt" \
  --samples 2 --seqlen 16
grep -q "^model:" "$work/out.txt" && fail "quantize ran before checking --out's directory" \
  || pass "quantize checks --out's directory first"
expect_error "eval --json in a missing directory" "the directory $work/nodir does not exist" \
  "$gptq" eval --model "$work/model" --ids "$work/ids.txt" --ctx 32 --json "$work/nodir/e.json"
grep -q "perplexity on" "$work/out.txt" && fail "eval ran before checking --json's directory" \
  || pass "eval checks --json's directory first"
# eval checks every input before evaluating anything (a bad --quantized
# path was found only after the original's evaluation).
expect_error "eval of a missing checkpoint" "does not exist" \
  "$gptq" eval --model "$work/model" --quantized "$work/ck" --quantized "$work/nothing" \
  --ids "$work/ids.txt" --ctx 32
grep -q "perplexity on" "$work/out.txt" && fail "eval ran before checking --quantized" \
  || pass "eval checks --quantized before evaluating"
"$make_model" "$work/qwen" qwen2
# Qwen3 (per-head q/k norms) quantizes, evaluates and runs from its checkpoint.
"$make_model" "$work/qwen3" qwen3
if "$gptq" quantize --model "$work/qwen3" --out "$work/qwen3_ck" --calib-ids "$work/ids.txt" \
     --samples 4 --seqlen 32 --group 32 >"$work/q3.txt" 2>&1 \
     && grep -q "Qwen3ForCausalLM" "$work/q3.txt" \
     && grep -q "model.layers.1.self_attn.o_proj .* 64x96" "$work/q3.txt" \
     && "$gptq" eval --model "$work/qwen3" --quantized "$work/qwen3_ck" --ids "$work/ids.txt" \
       --ctx 32 >"$work/e3.txt" 2>&1 && grep -q "^GPTQ" "$work/e3.txt"; then
  pass "Qwen3 quantize and eval"
else
  fail "Qwen3: $(cat "$work/q3.txt" "$work/e3.txt" 2>/dev/null | tail -5)"
fi
# A mixture of experts: per-expert token counts in the log, the experts
# under --expert-min-share rounded to nearest, warned about and listed in
# the report; eval runs the checkpoint.
"$make_model" "$work/moe" qwen2-moe
if "$gptq" quantize --model "$work/moe" --out "$work/moe_ck" --calib-ids "$work/ids.txt" \
     --samples 4 --seqlen 32 --group 32 --expert-min-share 1 >"$work/qm.txt" 2>&1 \
     && grep -q "model.layers.0.mlp.experts.7.down_proj .* tokens" "$work/qm.txt" \
     && grep -q "tokens: RTN (under-calibrated)" "$work/qm.txt" \
     && grep -q "^warning: .* experts were routed fewer than 32 calibration tokens" "$work/qm.txt" \
     && grep -q '"under_calibrated"' "$work/moe_ck/quantize_report.json" \
     && "$gptq" eval --model "$work/moe" --quantized "$work/moe_ck" --ids "$work/ids.txt" \
       --ctx 32 >"$work/em.txt" 2>&1 && grep -q "^GPTQ" "$work/em.txt"; then
  pass "Qwen2-MoE quantize (under-calibrated experts reported) and eval"
else
  fail "Qwen2-MoE: $(cat "$work/qm.txt" "$work/em.txt" 2>/dev/null | tail -5)"
fi
expect_error "--expert-names on a model without Mixtral's names" \
  "Qwen2MoeForCausalLM's expert names are GPTQModel's already" \
  "$gptq" quantize --model "$work/moe" --out "$work/x" --calib-ids "$work/ids.txt" \
  --expert-names gptqmodel
expect_error "--expert-min-share out of range" "expert-min-share" \
  "$gptq" quantize --model "$work/moe" --out "$work/x" --calib-ids "$work/ids.txt" \
  --expert-min-share 2
"$gptq" quantize --model "$work/qwen" --out "$work/qwen_ck" --method rtn --group 32 >/dev/null
expect_error "eval of another model's checkpoint" "is not a checkpoint of --model" \
  "$gptq" eval --model "$work/model" --quantized "$work/qwen_ck" --ids "$work/ids.txt" --ctx 32
grep -q "perplexity on" "$work/out.txt" && fail "eval ran before comparing the models" \
  || pass "eval compares the models first"
expect_error "unsupported architecture" "GPT2LMHeadModel" \
  "$gptq" quantize --model "$work/gpt2" --out "$work/x" --calib-ids "$work/ids.txt"
expect_error "missing model" "does not exist" \
  "$gptq" quantize --model "$work/nothing" --out "$work/x" --calib-ids "$work/ids.txt"
echo "1 2 999" >"$work/bad_ids.txt"
expect_error "id outside the vocabulary" "outside the vocabulary" \
  "$gptq" quantize --model "$work/model" --out "$work/x" --calib-ids "$work/bad_ids.txt"
expect_error "eval of a checkpoint as original" "is a GPTQ checkpoint" \
  "$gptq" eval --model "$work/ck" --ids "$work/ids.txt"
expect_error "logits longer than the model's positions" "max_position_embeddings" \
  "$gptq" logits --model "$work/model" --ids "$work/ids.txt" --out "$work/l2.npy"
expect_error "unknown command" "unknown command" "$gptq" frobnicate
# A checkpoint's config.json is untrusted: its quantization_config integers
# and its dynamic rules (regular expressions) are checked, and a rule that
# takes a backtracking engine hours is matched at once (these crashed,
# hung, or were undefined behaviour).
"$gptq" quantize --model "$work/model" --out "$work/hck" --method rtn --group 32 >/dev/null
cp -r "$work/hck" "$work/hostile"
with_quantization() {  # TEXT: inserted at the start of quantization_config
  sed "s/\"quantization_config\": {/\"quantization_config\": {$1/" "$work/hck/config.json" \
    >"$work/hostile/config.json"
}
with_quantization "\"dynamic\": {\"+:$(printf '(%.0s' $(seq 1 100))a$(printf ')%.0s' $(seq 1 100))\": {\"bits\": 8}},"
expect_error "deeply nested dynamic rule" "groups nested deeper than 64" \
  timeout -k 10 60 "$gptq" logits --model "$work/hostile" --ids "$work/one.txt" --out "$work/h.npy"
with_quantization "\"dynamic\": {\"+:(a)\\\\\\\\99999999999999999999\": {\"bits\": 8}},"
expect_error "back-reference in a dynamic rule" "back-references" \
  timeout -k 10 60 "$gptq" logits --model "$work/hostile" --ids "$work/one.txt" --out "$work/h.npy"
with_quantization "\"dynamic\": {\"+:(.*)*(.*)*Z\": {\"bits\": 8}},"
if timeout -k 10 60 "$gptq" logits --model "$work/hostile" --ids "$work/one.txt" --out "$work/h.npy" \
     >/dev/null 2>&1; then
  pass "exponential-time dynamic rule matched at once"
else
  fail "exponential-time dynamic rule"
fi
rm -f "$work/h.npy"
sed 's/"bits": 4,/"bits": 9.2e19,/' "$work/hck/config.json" >"$work/hostile/config.json"
expect_error "float bits in quantization_config" "quantization_config.bits is 9.2e+19, not an integer" \
  "$gptq" logits --model "$work/hostile" --ids "$work/one.txt" --out "$work/h.npy"
# A config naming fewer layers than the weights hold (it quantized a
# smaller model and exited 0).
mkdir -p "$work/fewer"
cp "$work/model/model.safetensors" "$work/fewer/"
sed 's/"num_hidden_layers": 2/"num_hidden_layers": 1/' "$work/model/config.json" \
  >"$work/fewer/config.json"
expect_error "config with fewer layers than the weights" \
  "num_hidden_layers is 1 but the weights hold layer 1" \
  "$gptq" quantize --model "$work/fewer" --out "$work/x" --method rtn --group 32
# A truncated model file.
mkdir -p "$work/trunc"
cp "$work/model/config.json" "$work/trunc/"
head -c 5000 "$work/model/model.safetensors" >"$work/trunc/model.safetensors"
expect_error "truncated safetensors" "truncated" \
  "$gptq" quantize --model "$work/trunc" --out "$work/x" --calib-ids "$work/ids.txt"
[ ! -e "$work/x" ] && pass "no output after errors" || fail "output left after errors"

# A file-size limit (ulimit -f, in KiB) reached while writing: SIGXFSZ once
# killed the run silently and left its temporary directory behind.
limited() { (ulimit -f "$1" && shift && exec "$@"); }
expect_error "checkpoint beyond the file-size limit" "File too large" \
  limited 16 "$gptq" quantize --model "$work/model" --out "$work/big" --method rtn --group 32
expect_error "logits beyond the file-size limit" "File too large" \
  limited 4 "$gptq" logits --model "$work/model" --ids "$work/one.txt" --out "$work/big.npy"
[ ! -e "$work/big" ] && [ ! -e "$work/big.npy" ] && [ -z "$(find "$work" -name '.*tmp*')" ] \
  && pass "nothing left by writes beyond the limit" || fail "files left: $(ls -a "$work")"

# The checkpoint's directory and files get the permissions the umask allows
# (the directory was 0700 whatever the umask).
for mask in 022 077 002; do
  (umask "$mask" && exec "$gptq" quantize --model "$work/model" --out "$work/u$mask" \
     --method rtn --group 32 >/dev/null 2>&1)
  want_dir=$(printf '%o' $((0777 & ~0$mask)))
  want_file=$(printf '%o' $((0666 & ~0$mask)))
  got_dir=$(stat -c %a "$work/u$mask" 2>/dev/null || echo none)
  got_files=$(stat -c %a "$work/u$mask"/* 2>/dev/null | sort -u | tr '\n' ' ')
  [ "$got_dir" = "$want_dir" ] && [ "$got_files" = "$want_file " ] \
    && pass "umask $mask: directory $got_dir, files $got_files" \
    || fail "umask $mask: directory $got_dir (want $want_dir), files $got_files (want $want_file)"
done

# One SIGTERM stops every phase at its next check, with exit status 143 and
# nothing left (tokenizing, loading and logits never checked). The command
# reads its input from a FIFO: the signal is sent once the tool has opened
# it (its handler is then in place), and the input follows.
#   term_test NAME INPUT_FILE OUTPUT COMMAND... (the command reads $work/fifo)
term_test() {
  local name=$1 input=$2 output=$3 rc=0 pid
  shift 3
  rm -f "$work/fifo"
  mkfifo "$work/fifo"
  "$@" >"$work/out.txt" 2>"$work/err.txt" &
  pid=$!
  timeout 60 sh -c 'exec 3>"$1" && kill -TERM "$2" && cat "$3" >&3' _ "$work/fifo" "$pid" \
    "$input" || true
  # A run that ignores the signal is stopped after 2 minutes (until waited
  # for, the child's pid cannot be reused).
  for _ in $(seq 1 1200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  if [ "$rc" -eq 143 ] && [ ! -e "$output" ] && [ -z "$(find "$work" -name '.*tmp*')" ]; then
    pass "$name"
  else
    fail "$name (exit $rc; stderr: $(cat "$work/err.txt"))"
  fi
}
mkdir -p "$work/tmodel"
cp "$work/model/config.json" "$work/model/model.safetensors" "$work/tmodel/"
cp "$(dirname "$0")/data/tokenizer/smollm2.json" "$work/tmodel/tokenizer.json"
for i in $(seq 1 200); do echo "Line $i of a calibration text, with some words in it."; done \
  >"$work/text.txt"
# --calib-jsonl: text and chat records (the chat ones through the model's
# ChatML template), mixed with a text file; a missing text field, an empty
# dataset and chat records without a template are refused by name.
python_free_template='{% for message in messages %}{{'"'"'<|im_start|>'"'"' + message['"'"'role'"'"'] + '"'"'\n'"'"' + message['"'"'content'"'"'] + '"'"'<|im_end|>'"'"' + '"'"'\n'"'"'}}{% endfor %}{% if add_generation_prompt %}{{ '"'"'<|im_start|>assistant\n'"'"' }}{% endif %}'
printf '{"chat_template": "%s", "bos_token": null, "eos_token": "<|im_end|>"}\n' \
  "$(printf '%s' "$python_free_template" | sed 's/\\/\\\\/g; s/"/\\"/g')" >"$work/chat_config.json"
"$make_model" "$work/cmodel" llama 49152  # SmolLM2's vocabulary
cp "$(dirname "$0")/data/tokenizer/smollm2.json" "$work/cmodel/tokenizer.json"
cp "$work/chat_config.json" "$work/cmodel/tokenizer_config.json"
for i in $(seq 1 30); do
  echo "{\"text\": \"Record $i of a calibration set, with some words in it.\", \"id\": $i}"
  echo "{\"messages\": [{\"role\": \"user\", \"content\": \"Question $i?\"}, {\"role\": \"assistant\", \"content\": \"Answer $i.\"}]}"
done >"$work/calib.jsonl"
if "$gptq" quantize --model "$work/cmodel" --out "$work/jsonl_ck" --calib-jsonl "$work/calib.jsonl" \
     --calib "$work/text.txt" --samples 4 --seqlen 32 --group 32 >"$work/jsonl.txt" 2>&1 \
     && grep -q "calibration: $work/calib.jsonl: 60 records" "$work/jsonl.txt" \
     && grep -q "^calibration: 4 sequences, 128 tokens" "$work/jsonl.txt"; then
  pass "--calib-jsonl with text and chat records"
else
  fail "--calib-jsonl: $(cat "$work/jsonl.txt")"
fi
echo '[{"content": "an array record"}, {"content": "another"}]' >"$work/calib.json"
if "$gptq" quantize --model "$work/cmodel" --out "$work/json_ck" --calib-jsonl "$work/calib.json" \
     --text-field content --samples 1 --seqlen 4 --group 32 >"$work/json.txt" 2>&1 \
     && grep -q "calib.json: 2 records" "$work/json.txt"; then
  pass "--calib-jsonl with a JSON array and --text-field"
else
  fail "JSON array: $(cat "$work/json.txt")"
fi
expect_error "JSONL without the text field" "calib.json record:1: the record has no \"text\" field" \
  "$gptq" quantize --model "$work/cmodel" --out "$work/x" --calib-jsonl "$work/calib.json"
: >"$work/empty.jsonl"
expect_error "empty JSONL" "holds no records" \
  "$gptq" quantize --model "$work/cmodel" --out "$work/x" --calib-jsonl "$work/empty.jsonl"
mkdir -p "$work/nochat"
cp "$work/cmodel/config.json" "$work/cmodel/model.safetensors" "$work/cmodel/tokenizer.json" \
  "$work/nochat/"
expect_error "chat records without a chat template" "tokenizer_config" \
  "$gptq" quantize --model "$work/nochat" --out "$work/x" --calib-jsonl "$work/calib.jsonl"
expect_error "text beyond the model's vocabulary" "is outside the model's vocabulary of 96" \
  "$gptq" quantize --model "$work/tmodel" --out "$work/x" --calib "$work/text.txt"
grep -q "^model.layers" "$work/out.txt" && fail "quantized before checking the ids" \
  || pass "ids checked before quantizing"
expect_error "--text-field without --calib-jsonl" "there is no --calib-jsonl" \
  "$gptq" quantize --model "$work/cmodel" --out "$work/x" --calib "$work/text.txt" --text-field t
[ ! -e "$work/x" ] && pass "no output after JSONL errors" || fail "output left after JSONL errors"

term_test "SIGTERM while tokenizing" "$work/text.txt" "$work/t1" \
  "$gptq" quantize --model "$work/tmodel" --out "$work/t1" --calib "$work/fifo" \
  --samples 1 --seqlen 16
term_test "SIGTERM before logits load the model" "$work/one.txt" "$work/t2.npy" \
  "$gptq" logits --model "$work/model" --ids "$work/fifo" --out "$work/t2.npy"
term_test "SIGTERM before eval loads the model" "$work/ids.txt" "$work/t3.json" \
  "$gptq" eval --model "$work/model" --ids "$work/fifo" --ctx 32 --json "$work/t3.json"


# generate and bench on a tiny model with a byte tokenizer and a ChatML template.
"$make_model" "$work/chat" chat
gen() { "$gptq" generate --model "$work/chat" "$@" 2>"$work/gen_err.txt"; }
if gen --prompt "Hello" --max-new-tokens 12 >"$work/g1.txt" \
   && gen --prompt "Hello" --max-new-tokens 12 >"$work/g2.txt" \
   && cmp -s "$work/g1.txt" "$work/g2.txt" && grep -q "12 generated" "$work/gen_err.txt"; then
  pass "generate greedy (deterministic, 12 tokens)"
else
  fail "generate greedy: $(cat "$work/gen_err.txt")"
fi
s1=$(gen --prompt "Hi" --max-new-tokens 16 --temperature 0.9 --top-p 0.95 --top-k 50 --seed 5 | od -An -tx1)
s2=$(gen --prompt "Hi" --max-new-tokens 16 --temperature 0.9 --top-p 0.95 --top-k 50 --seed 5 | od -An -tx1)
s3=$(gen --prompt "Hi" --max-new-tokens 16 --temperature 0.9 --top-p 0.95 --top-k 50 --seed 6 | od -An -tx1)
[ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s1" != "$s3" ] && pass "generate --seed reproducible" \
  || fail "generate --seed: '$s1' '$s2' '$s3'"
if gen --chat --system "Be brief." --prompt "Hi" --max-new-tokens 4 >/dev/null \
   && grep -q "\[40 prompt tokens" "$work/gen_err.txt"; then
  # 5 special tokens and 35 bytes: "system\n" "Be brief." "\n" "user\n" "Hi" "\n"
  # "assistant\n" (the byte tokenizer has one token a byte)
  pass "generate --chat"
else
  fail "generate --chat: $(cat "$work/gen_err.txt")"
fi
printf 'Hello\nSecond prompt\nA third, longer prompt\n' >"$work/prompts.txt"
if gen --prompt-file "$work/prompts.txt" --batch 2 --max-new-tokens 10 >"$work/gb.txt"; then
  ok=1
  i=1
  while IFS= read -r line; do
    gen --prompt "$line" --max-new-tokens 10 >"$work/gs.txt" || ok=0
    awk -v n="$i" '$0 ~ "^=== " n " " {on=1; next} /^=== / {on=0} on' "$work/gb.txt" \
      >"$work/gbi.txt"
    cmp -s "$work/gs.txt" "$work/gbi.txt" || ok=0
    i=$((i + 1))
  done <"$work/prompts.txt"
  [ "$ok" = 1 ] && pass "batched generation equals one prompt at a time" \
    || fail "batched generation differs: $(cat "$work/gb.txt")"
else
  fail "generate --prompt-file: $(cat "$work/gen_err.txt")"
fi
expect_error "generate: empty prompt" "the prompt is empty" \
  "$gptq" generate --model "$work/chat" --prompt ""
expect_error "generate: prompt longer than the context" "leaves no room" \
  "$gptq" generate --model "$work/chat" --prompt "$(printf 'x%.0s' $(seq 1 300))"
expect_error "generate: --max-new-tokens 0" "at least 1" \
  "$gptq" generate --model "$work/chat" --prompt "Hi" --max-new-tokens 0
expect_error "generate: negative temperature" "--temperature must be" \
  "$gptq" generate --model "$work/chat" --prompt "Hi" --temperature -1
printf 'one\n\nthree\n' >"$work/gap.txt"
expect_error "generate: empty line in --prompt-file" "line 2 is empty" \
  "$gptq" generate --model "$work/chat" --prompt-file "$work/gap.txt"
cp -r "$work/chat" "$work/chat2"
echo '{"chat_template": "{% for m in messages %}### {{ m.content }}{% endfor %}"}' \
  >"$work/chat2/tokenizer_config.json"
expect_error "generate: a chat template that cannot be rendered" "cannot render" \
  "$gptq" generate --model "$work/chat2" --chat --prompt "Hi"
expect_error "generate: --system without --chat" "--system needs --chat" \
  "$gptq" generate --model "$work/chat" --system "x" --prompt "Hi"
if "$gptq" bench --model "$work/chat" --model "$work/ck" --batch 1,2 --prompt-tokens 8 \
     --new-tokens 4 --reps 2 --json "$work/bench.json" >"$work/b.txt" 2>&1 \
   && [ "$(grep -c '^ *[12] ' "$work/b.txt")" -eq 4 ] \
   && grep -q '"decode_tokens_per_s"' "$work/bench.json" \
   && grep -q '(GPTQ)' "$work/b.txt" && grep -q '(float)' "$work/b.txt"; then
  pass "bench (float and GPTQ side by side, --json)"
else
  fail "bench: $(cat "$work/b.txt")"
fi
expect_error "bench: bad --batch" "--batch takes" \
  "$gptq" bench --model "$work/chat" --batch 1,x
if gen --prompt "Hello" --max-new-tokens 12 --kv-cache bf16 >"$work/g3.txt" \
   && grep -q "12 generated" "$work/gen_err.txt" \
   && "$gptq" bench --model "$work/chat" --batch 2 --prompt-tokens 8 --new-tokens 4 --reps 1 \
        --kv-cache bf16 --json "$work/bench16.json" >"$work/b16.txt" 2>&1 \
   && grep -q 'KV cache bf16' "$work/b16.txt" && grep -q '"kv_cache": "bf16"' "$work/bench16.json"; then
  pass "generate and bench --kv-cache bf16"
else
  fail "--kv-cache bf16: $(cat "$work/gen_err.txt" "$work/b16.txt")"
fi
expect_error "generate: bad --kv-cache" "--kv-cache must be f32 or bf16" \
  "$gptq" generate --model "$work/chat" --prompt "Hi" --kv-cache f16
term_test "SIGTERM before generate reads its prompts" "$work/prompts.txt" "$work/none" \
  "$gptq" generate --model "$work/chat" --prompt-file "$work/fifo"

echo "$fails failed"
[ "$fails" -eq 0 ]
