#!/usr/bin/env bash
# Runs the libFuzzer harnesses one after another, each for a fixed time on a
# scratch copy of its seed corpus (corpus/<harness>/, never modified) with its
# dictionary, and prints one line per harness: executions, and whether it
# found anything. Fails if any harness crashed, leaked, hung on an input
# (more than 10 s) or ran out of memory; the input that did it is kept under
# the output directory for a regression test.
#
#   bash tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]
#
# BUILD_DIR is a build with -Dfuzz=enabled (clang; README.md here). Without
# HARNESS names, all of them. GPTQ_FUZZ_OUT (default: a new temporary
# directory) receives the grown corpora, the logs and any crashing input.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [HARNESS...]" >&2
  exit 2
fi
build=$1 seconds=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  harnesses=(fuzz_safetensors fuzz_tokenizer fuzz_model_config fuzz_quant_config fuzz_qtensor_import
    fuzz_gguf fuzz_calib_records)
fi
out=${GPTQ_FUZZ_OUT:-$(mktemp -d /tmp/gptq-fuzz.XXXXXX)}
mkdir -p "$out"
# Every harness runs the CPU backend, whatever the machine has.
export GPTQ_BACKEND=cpu
# UBSan only prints by default; a report must stop the run and count.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

status=0
for h in "${harnesses[@]}"; do
  exe="$build/tests/fuzz/$h"
  if [ ! -x "$exe" ]; then
    echo "run_fuzzers: $exe not found (configure with -Dfuzz=enabled and build it)" >&2
    status=1
    continue
  fi
  dict="$here/$h.dict"
  [ -f "$dict" ] || dict="$here/json.dict"
  work="$out/$h"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$here/corpus/$h/"* "$work/corpus/"
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -n 1)
  findings=$(ls "$work/artifacts" | wc -l)
  if grep -q 'runtime error:' "$work/log.txt"; then findings=$((findings + 1)); fi
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    echo "run_fuzzers: $h: FAILED after ${execs:-?} executions (exit $rc): $(ls "$work/artifacts" | tr '\n' ' ')"
    grep -E 'ERROR|SUMMARY|Assertion|abort|==[0-9]+==' "$work/log.txt" | head -n 20
    status=1
  else
    echo "run_fuzzers: $h: ${execs:-?} executions in ${seconds} s, no findings (corpus $(ls "$work/corpus" | wc -l) inputs)"
  fi
done
echo "run_fuzzers: logs, corpora and any findings in $out"
exit $status
