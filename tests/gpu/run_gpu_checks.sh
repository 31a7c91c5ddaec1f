#!/usr/bin/env bash
# Every GPU test and benchmark of the CUDA backend in one go, for the GPU
# machine (see ../shared/device/README.md for how a CPU-machine build gets
# there), with a summary table last:
#   1. the kernels' arithmetic on the CPU (test_cuda_arith), the plugin
#      loader with the real plugin (test_backend_plugin), and the CUDA
#      backend against the CPU backend (test_cuda_backend);
#   2. the device-pointer and leak tests again under compute-sanitizer;
#   3. bench_gpu (copy bandwidth, Hessian vs cuBLAS, solve, matmul vs cuBLAS
#      f16) and, where PyTorch is installed, bench/gpu_peers.py (matmul vs
#      PyTorch f16 and int4, solve vs the reference gptq.py when
#      GPTQ_REFERENCE names its folder).
#
#   bash tests/gpu/run_gpu_checks.sh [BUILD_DIR]     (default build-cuda)
# JSON figures go to $OUT (default /tmp). Exit status: non-zero if a test failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build=${1:-build-cuda}
out=${OUT:-/tmp}
export GPTQ_CUDA_PLUGIN=$PWD/$build/libgptq-cuda.so
rows=()
failed=0

step() {  # step NAME required|optional COMMAND...
  local name=$1 kind=$2 start rc
  shift 2
  echo
  echo "=== $name: $*"
  start=$(date +%s)
  "$@" 2>&1
  rc=$?
  rows+=("$name|$rc|$(( $(date +%s) - start ))")
  if [ "$rc" -ne 0 ] && [ "$kind" = required ]; then failed=1; fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
step "arithmetic (CPU)" required "$build/tests/test_cuda_arith"
step "plugin loader" required "$build/tests/test_backend_plugin"
step "cuda backend" required "$build/tests/test_cuda_backend"
if command -v compute-sanitizer > /dev/null; then
  step "compute-sanitizer (leaks, device pointers)" optional compute-sanitizer --leak-check full \
    --error-exitcode 9 "$build/tests/test_cuda_backend" --gtest_filter='CudaLeaks.*:CudaDevice.*'
fi
step "bench_gpu" required "$build/bench/bench_gpu" --json "$out/bench_gpu.json"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2> /dev/null; then
  peers=(python3 bench/gpu_peers.py --lib "$build/libgptq.so" --json "$out/gpu_peers.json")
  [ -n "${GPTQ_REFERENCE:-}" ] && peers+=(--ref "$GPTQ_REFERENCE")
  step "peers (PyTorch, reference gptq.py)" optional "${peers[@]}"
fi

echo
echo "=== summary"
printf '%-45s %6s %6s\n' step status seconds
for r in "${rows[@]}"; do
  IFS='|' read -r name rc secs <<< "$r"
  printf '%-45s %6s %6s\n' "$name" "$([ "$rc" -eq 0 ] && echo ok || echo "FAIL $rc")" "$secs"
done
python3 - "$out" <<'PY' || true
import json, os, sys
out = sys.argv[1]
def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None
b, p = load("bench_gpu.json"), load("gpu_peers.json")
if b:
    print(f"\ncopy bandwidth {b['copy_tb_s']:.2f} TB/s")
    for h in b["hessian"]:
        print(f"Hessian K={h['k']}: {h['ours_us'] / 1000:.2f} ms, cuBLAS sgemm {h['sgemm_us'] / 1000:.2f} ms "
              f"({h['sgemm_us'] / h['ours_us']:.0%} of its rate; goal >= 90%)")
    for s in b["solve"]:
        goal = {(4096, 4096): 5, (4096, 11008): 40}.get((s["out"], s["in"]))
        print(f"solve {s['out']}x{s['in']} act-order {'yes' if s['act_order'] else 'no '}: "
              f"{s['median_ms']:.2f} ms" + (f" (goal <= {goal} ms)" if goal else ""))
    worst = {}
    for m in b["matmul"]:
        r = m["cublas_f16_us"] / m["ours_us"]
        key = (m["in"], m["out"])
        worst[key] = min(worst.get(key, 1e9), r) if m["batch"] <= 128 else worst.get(key, 1e9)
        if m["batch"] == 1 and key == (8192, 28672):
            ideal = (m["in"] * m["out"] * 0.5 * (1 + 4 / 128)) / (b["copy_tb_s"] * 1e12) * 1e6
            print(f"matmul 8192->28672 batch 1: {m['ours_us']:.1f} us = {ideal / m['ours_us']:.0%} of copy "
                  f"bandwidth (goal >= 85%, <= 34 us)")
    for m in b["matmul"]:
        if m["batch"] <= 16 and (m["in"], m["out"]) in [(4096, 14336), (14336, 4096), (8192, 28672)]:
            print(f"  {m['in']}->{m['out']} batch {m['batch']}: {m['cublas_f16_us'] / m['ours_us']:.2f}x cuBLAS f16 (goal >= 3x)")
    for key, r in sorted(worst.items()):
        print(f"  {key[0]}->{key[1]}: slowest against cuBLAS f16 up to batch 128: {r:.2f}x (goal >= 1)")
if p:
    for m in p["matmul"]:
        if m["batch"] == 1 and m.get("torch_int4_us"):
            print(f"  {m['in']}->{m['out']} batch 1: {m['torch_int4_us'] / m['libgptq_us']:.2f}x PyTorch int4 (goal >= 2x)")
    for s in p["solve"]:
        print(f"  solve {s['out']}x{s['in']} act {s['act_order']}: {s['reference_s'] / s['libgptq_s']:.0f}x the reference gptq.py")
PY
exit "$failed"
