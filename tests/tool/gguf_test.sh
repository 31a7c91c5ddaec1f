#!/usr/bin/env bash
# `gptq quantize --format gguf` end to end on tiny generated models: every
# type written and read back by the tool's own reader; bad input refused
# with a message and no file left.
#   gguf_test.sh GPTQ_EXE MAKE_TINY_MODEL_EXE DUMP_GGUF_EXE [--python]
# With --python, each file is also read by the gguf package (PyPI) through
# check_gguf.py, with the Python in $GGUF_PYTHON (default python3); the test
# is skipped (exit 77) when that Python cannot import gguf.
set -euo pipefail
gptq=$1
make_model=$2
dump=$3
with_python=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
python=${GGUF_PYTHON:-python3}
if [ "$with_python" = --python ] && ! "$python" -c 'import gguf, numpy' 2>/dev/null; then
  echo "skip: $python cannot import gguf and numpy (set GGUF_PYTHON to a venv with them)"
  exit 77
fi
. "$(dirname "$0")/check_helpers.sh"

# A byte-level BPE tokenizer for the tiny models' 96 ids: 3 special tokens,
# 92 single characters ('!' .. '|'), and "ab" from the one merge; SmolLM's
# pre-tokenizer (digits split, then byte-level).
write_tokenizer() {
  local dir=$1 pre=${2:-smollm}
  python3 - "$dir" "$pre" <<'PY'
import json, sys
d, pre = sys.argv[1], sys.argv[2]
vocab = {chr(c): 3 + c - 33 for c in range(33, 125)}
vocab["ab"] = 95
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
pre_tok = ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
           if pre == "smollm" else {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"})
added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, t in enumerate(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])]
json.dump({"version": "1.0", "added_tokens": added, "normalizer": None, "pre_tokenizer": pre_tok,
           "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                                               "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "vocab": vocab, "merges": ["a b"]}},
          open(f"{d}/tokenizer.json", "w"))
json.dump({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False,
           "chat_template": "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"},
          open(f"{d}/tokenizer_config.json", "w"))
PY
}

for kind in llama qwen2 mistral mistral-swa narrow wide; do
  "$make_model" "$work/$kind" "$kind"
  write_tokenizer "$work/$kind"
done
"$make_model" "$work/metaspace"
write_tokenizer "$work/metaspace" metaspace
for i in $(seq 1 8); do seq "$i" 3 120 | awk '{printf "%d ", $1 % 96} END {print ""}'; done >"$work/ids.txt"

quantize() {  # quantize MODEL OUT TYPE [options...]
  local model=$1 out=$2 type=$3
  shift 3
  "$gptq" quantize --model "$work/$model" --out "$out" --calib-ids "$work/ids.txt" --samples 4 \
    --seqlen 32 --format gguf --gguf-type "$type" --quiet "$@"
}

# wide: whole 256-column blocks, so the K-quants are written as such; llama
# and qwen2 (widths 64 and 128): their K-quant layers fall back to 32-column
# types, as llama.cpp's do.
for spec in llama:Q4_0 llama:Q4_1 llama:Q5_0 llama:Q5_1 llama:Q8_0 qwen2:Q4_0 mistral:Q8_0 \
  wide:Q4_K wide:Q5_K wide:Q6_K wide:Q4_K_M wide:Q5_K_M llama:Q4_K_M qwen2:Q5_K_M; do
  model=${spec%%:*}
  type=${spec#*:}
  out="$work/$model-$type.gguf"
  if quantize "$model" "$out" "$type" >"$work/q.txt" 2>&1; then
    pass "quantize $model $type"
  else
    fail "quantize $model $type: $(cat "$work/q.txt")"
    continue
  fi
  mkdir -p "$work/dump-$model-$type"
  if "$dump" "$out" "$work/dump-$model-$type" >"$work/d.txt" 2>&1; then
    pass "our reader decodes $model $type"
  else
    fail "our reader on $model $type: $(cat "$work/d.txt")"
    continue
  fi
  if [ "$with_python" = --python ]; then
    if "$python" "$here/check_gguf.py" "$out" "$work/dump-$model-$type" "$work/$model" "$type" \
         >"$work/p.txt" 2>&1; then
      pass "gguf package reads $model $type: $(tail -n 1 "$work/p.txt")"
    else
      fail "gguf package on $model $type: $(cat "$work/p.txt")"
    fi
  fi
done
[ -z "$(find "$work" -maxdepth 1 -name '.*tmp*')" ] && pass "no temporary file left" \
  || fail "temporary file left"

if [ "$with_python" != --python ]; then
  # eval --gguf: our forward pass on the file's weights. Q8_0 is close to
  # the float model (within 2% in perplexity), and a GGUF of another model
  # is refused.
  if "$gptq" eval --model "$work/llama" --gguf "$work/llama-Q8_0.gguf" --gguf "$work/llama-Q4_0.gguf" \
       --ids "$work/ids.txt" --ctx 32 --no-rtn >"$work/e.txt" 2>&1 \
     && awk '$1 == "original" {o = $4} $1 == "GGUF" && $2 == "Q8_0" {g = $4}
             END {exit !(o > 0 && g > 0 && g / o < 1.02 && g / o > 0.98)}' "$work/e.txt" \
     && grep -q "^GGUF .*Q4_0" "$work/e.txt"; then
    pass "eval --gguf"
  else
    fail "eval --gguf: $(cat "$work/e.txt")"
  fi
  # A mix: the row is named by its linear layers' types; Q6_K is close to
  # the float model.
  if "$gptq" eval --model "$work/wide" --gguf "$work/wide-Q4_K_M.gguf" --gguf "$work/wide-Q6_K.gguf" \
       --ids "$work/ids.txt" --ctx 32 --no-rtn >"$work/e.txt" 2>&1 \
     && grep -q "^GGUF .*Q4_K+Q6_K" "$work/e.txt" \
     && awk '$1 == "original" {o = $4} $1 == "GGUF" && $2 == "Q6_K" {g = $4}
             END {exit !(o > 0 && g > 0 && g / o < 1.02 && g / o > 0.98)}' "$work/e.txt"; then
    pass "eval --gguf K-quants"
  else
    fail "eval --gguf K-quants: $(cat "$work/e.txt")"
  fi
  if "$gptq" eval --model "$work/qwen2" --gguf "$work/qwen2-Q4_0.gguf" --ids "$work/ids.txt" \
       --ctx 32 --no-rtn >"$work/e.txt" 2>&1 && grep -q "^GGUF .*Q4_0" "$work/e.txt"; then
    pass "eval --gguf qwen2"
  else
    fail "eval --gguf qwen2: $(cat "$work/e.txt")"
  fi
  expect_error "gguf of another model" "is a qwen2 model" \
    "$gptq" eval --model "$work/llama" --gguf "$work/qwen2-Q4_0.gguf" --ids "$work/ids.txt" --ctx 32
  # A tensor of 2^31 x 2^9 x 2^31 elements: the element count wrapped to 0
  # and the file was accepted (fuzz_gguf); it is refused, and so is 2^31 x 2^31.
  for dims in "2147483648 512 2147483648" "2147483648 2147483648"; do
    python3 - "$work/huge.gguf" $dims <<'PY'
import struct, sys
def s(b): return struct.pack("<Q", len(b)) + b
dims = [int(d) for d in sys.argv[2:]]
head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + s(b"general.architecture") + struct.pack("<I", 8) + s(b"llama")
head += s(b"t") + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, 0)
open(sys.argv[1], "wb").write(head + b"\0" * (-len(head) % 32) + b"\0" * 64)
PY
    mkdir -p "$work/huge-out"
    expect_error "tensor of ${dims// /x} elements refused" "tensor t is too large" "$dump" "$work/huge.gguf" "$work/huge-out"
  done
  expect_error "not a gguf" "not a GGUF file" \
    "$gptq" eval --model "$work/llama" --gguf "$work/ids.txt" --ids "$work/ids.txt" --ctx 32

  # Bad input: a message, a non-zero exit, and no file.
  expect_error "unsupported type" "is not a type this tool writes" \
    quantize llama "$work/bad1.gguf" Q3_K
  expect_error "width not a multiple of the block" "not a multiple of the Q4_0 block" \
    quantize narrow "$work/bad2.gguf" Q4_0
  expect_error "width not a multiple of the fallback's block" "32-column block of Q5_0, which Q4_K_M falls back to" \
    quantize narrow "$work/bad8.gguf" Q4_K_M
  expect_error "sliding window" "sliding-window attention" quantize mistral-swa "$work/bad3.gguf" Q4_0
  expect_error "tokenizer llama.cpp cannot name" "pre_tokenizer is not one llama.cpp" \
    quantize metaspace "$work/bad4.gguf" Q4_0
  expect_error "bits with gguf" "--bits does not apply to --format gguf" \
    quantize llama "$work/bad5.gguf" Q4_0 --bits 3
  # Flags too: they would otherwise be dropped without a word.
  expect_error "asym with gguf" "--asym does not apply to --format gguf" \
    quantize llama "$work/bad9.gguf" Q4_0 --asym
  expect_error "mse with gguf" "--mse does not apply to --format gguf" \
    quantize llama "$work/bad10.gguf" Q4_0 --mse
  expect_error "act-order scatters blocks" "--static-groups" \
    quantize llama "$work/bad6.gguf" Q4_0 --act-order
  expect_error "gguf-type without gguf" "--gguf-type needs --format gguf" \
    "$gptq" quantize --model "$work/llama" --out "$work/bad7" --calib-ids "$work/ids.txt" \
    --gguf-type Q4_0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    [ ! -e "$work/bad$i.gguf" ] && [ ! -e "$work/bad7" ] && pass "no output for bad input $i" \
      || fail "bad input $i left an output"
  done
  expect_error "existing file kept" "exists; --overwrite" quantize llama "$work/llama-Q4_0.gguf" Q4_0
  echo "not gguf" >"$work/notes.txt"
  expect_error "overwrite only a GGUF" "is not a GGUF file" \
    quantize llama "$work/notes.txt" Q4_0 --overwrite
  [ "$(cat "$work/notes.txt")" = "not gguf" ] && pass "non-GGUF file untouched" || fail "non-GGUF file changed"
  if quantize llama "$work/llama-Q4_0.gguf" Q4_0 --overwrite --act-group-aware >/dev/null 2>&1; then
    pass "overwrite a GGUF, act-group-aware"
  else
    fail "overwrite a GGUF"
  fi
fi

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all gguf checks passed"
