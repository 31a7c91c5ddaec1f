#!/usr/bin/env bash
# Runs the libFuzzer harnesses, each for a fixed time on a scratch copy of its
# seed corpus (corpus/<harness>/, never modified) with its dictionary, as
# many at once as there are cores (each harness is one process on one core,
# so each gets its full time), and prints one line per harness, in the order
# given: executions, and whether it found anything. Fails if any harness crashed, leaked, hung on an input
# (more than 10 s) or ran out of memory; the input that did it is kept under
# the output directory for a regression test.
#
#   bash tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]
#
# BUILD_DIR is a build with -Dfuzz=enabled (clang; README.md here). Without
# HARNESS names, all of them. GPTQ_FUZZ_OUT (default: a new temporary
# directory) receives the grown corpora, the logs and any crashing input.
# GPTQ_FUZZ_JOBS (default: the number of cores) caps the harnesses run at
# once.
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

# One harness: its summary line to $out/<harness>/summary.txt, and 0 or 1
# (whether it passed) to $out/<harness>/status.
run_harness() {
  local h=$1
  local exe="$build/tests/fuzz/$h" work="$out/$h" dict rc execs findings
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  if [ ! -x "$exe" ]; then
    echo "run_fuzzers: $exe not found (configure with -Dfuzz=enabled and build it)" >"$work/summary.txt"
    echo 1 >"$work/status"
    return
  fi
  dict="$here/$h.dict"
  [ -f "$dict" ] || dict="$here/json.dict"
  cp "$here/corpus/$h/"* "$work/corpus/"
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log.txt" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -n 1)
  findings=$(ls "$work/artifacts" | wc -l)
  if grep -q 'runtime error:' "$work/log.txt"; then findings=$((findings + 1)); fi
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    {
      echo "run_fuzzers: $h: FAILED after ${execs:-?} executions (exit $rc): $(ls "$work/artifacts" | tr '\n' ' ')"
      grep -E 'ERROR|SUMMARY|Assertion|abort|==[0-9]+==' "$work/log.txt" | head -n 20
    } >"$work/summary.txt"
    echo 1 >"$work/status"
  else
    echo "run_fuzzers: $h: ${execs:-?} executions in ${seconds} s, no findings (corpus $(ls "$work/corpus" | wc -l) inputs)" >"$work/summary.txt"
    echo 0 >"$work/status"
  fi
}

jobs_max=${GPTQ_FUZZ_JOBS:-$(nproc)}
running=0
for h in "${harnesses[@]}"; do
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n
    running=$((running - 1))
  fi
  run_harness "$h" &
  running=$((running + 1))
done
wait

status=0
for h in "${harnesses[@]}"; do
  cat "$out/$h/summary.txt"
  [ "$(cat "$out/$h/status" 2>/dev/null)" = 0 ] || status=1
done
echo "run_fuzzers: logs, corpora and any findings in $out"
exit $status
