#!/usr/bin/env python3
"""Model-level quality against GPTQModel, averaged over calibration seeds.

For every seed the `gptq` tool cuts random disjoint calibration windows
(`--seed`) and writes them out (`--save-calib-ids`); libgptq and GPTQModel
then quantize the same model from exactly those token windows, at each bit
width and column order asked for, and `gptq eval` measures every checkpoint
on the same text with the same evaluator. The script prints the perplexity
per seed, the mean and sample standard deviation per (tool, bits, order),
and the difference between the tools paired by seed with its standard error.

    python3 bench/peer_quality.py --gptq build/tools/gptq/gptq --model DIR \\
        --calib maintain.text.gz --text standards.text.gz \\
        --peer-python VENV/bin/python [--seeds 0 1 2 3 4] [--bits 4 3] \\
        [--orders full group-aware] [--tools libgptq gptqmodel] \\
        [--work DIR] [--json results.json] [--reuse] \\
        [--variant "NAME=GPTQ OPTIONS"]...

GPTQModel runs in its own interpreter (--peer-python: a venv with CPU torch
and gptqmodel from PyPI; never a CI dependency) through this same file's
`gptqmodel-worker` mode, in float32 like the tool, with the run's damping
and true-sequential order. On a machine with few cores GPTQModel needs
GPTQMODEL_CPU_WORKERS set to the core count; the script sets it when unset.
GPTQModel's own loader refuses float32 inference, so its checkpoints are
measured by `gptq eval`, as ours are.

A --variant is libgptq with more `gptq quantize` options (e.g.
`--variant "f64=--precision f64"`): it runs beside plain libgptq as a tool of
its own, named libgptq-NAME, and is compared with GPTQModel and with plain
libgptq, paired by seed.

Orders: `full` is act-order with a permuted g_idx (desc_act), `group-aware`
keeps groups contiguous (GPTQModel's act_group_aware), `static` is act-order
with static groups (parameters fixed before the loop, so g_idx stays
trivial), `none` is column order. Runs take minutes each on a CPU; --reuse keeps
checkpoints already made in --work (each is written atomically, so one that
exists is whole) and evaluations that already cover a seed's checkpoints.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ORDERS = ("full", "group-aware", "static", "none")


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# the GPTQModel side (run in the peer interpreter)


def gptqmodel_worker(argv):
    p = argparse.ArgumentParser(prog="peer_quality.py gptqmodel-worker")
    p.add_argument("--model", required=True)
    p.add_argument("--ids", required=True, help="one calibration window per line")
    p.add_argument("--out", required=True)
    p.add_argument("--bits", type=int, required=True)
    p.add_argument("--group", type=int, required=True)
    p.add_argument("--order", choices=ORDERS, required=True)
    p.add_argument("--damp", type=float, required=True)
    a = p.parse_args(argv)

    # Eager torch: compiling GPTQModel's CPU kernels costs more than one run.
    os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig

    windows = []
    with open(a.ids) as f:
        for line in f:
            ids = [int(t) for t in line.split()]
            if ids:
                windows.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    config = QuantizeConfig(
        bits=a.bits,
        group_size=a.group,
        sym=True,
        desc_act=a.order in ("full", "static"),
        static_groups=a.order == "static",
        act_group_aware=a.order == "group-aware",
        damp_percent=a.damp,
        true_sequential=True,
    )
    model = GPTQModel.load(a.model, config, dtype=torch.float32, device="cpu")
    start = time.time()
    # The windows all have one length; calibration_sort keeps their order.
    model.quantize(windows, batch_size=1, calibration_sort=None)
    seconds = time.time() - start
    # Written beside the target and renamed, so an existing --out is whole.
    tmp = a.out + ".tmp"
    model.save(tmp)
    os.rename(tmp, a.out)
    print(json.dumps({"seconds": seconds}), flush=True)


# --------------------------------------------------------------------------
# the driver


def run(cmd, env=None):
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit(f"command failed with status {proc.returncode}: {' '.join(cmd)}")
    return proc.stdout


def order_flags(order):
    return {"full": ["--act-order"], "group-aware": ["--act-group-aware"],
            "static": ["--act-order", "--static-groups"], "none": []}[order]


def quantize_ours(a, seed, bits, order, out, ids_file, extra=()):
    cmd = [a.gptq, "quantize", "--model", a.model, "--out", out, "--calib", a.calib,
           "--samples", str(a.samples), "--seqlen", str(a.seqlen), "--seed", str(seed),
           "--bits", str(bits), "--group", str(a.group), "--damp", str(a.damp),
           "--backend", "cpu", "--quiet", "--overwrite", "--save-calib-ids", ids_file]
    start = time.time()
    run(cmd + order_flags(order) + list(extra))
    return time.time() - start


def quantize_peer(a, bits, order, out, ids_file):
    env = dict(os.environ)
    env.setdefault("GPTQMODEL_CPU_WORKERS", str(os.cpu_count() or 1))
    start = time.time()
    run([a.peer_python, os.path.abspath(__file__), "gptqmodel-worker", "--model", a.model,
         "--ids", ids_file, "--out", out, "--bits", str(bits), "--group", str(a.group),
         "--order", order, "--damp", str(a.damp)], env=env)
    return time.time() - start


def evaluate(a, checkpoints, json_path):
    if a.reuse and os.path.isfile(json_path):  # an earlier run evaluated these already
        with open(json_path) as f:
            rows = json.load(f)["rows"]
        by_source = {r["source"]: r["perplexity"] for r in rows if r["model"] == "GPTQ"}
        if all(c in by_source for c in checkpoints):
            original = next(r["perplexity"] for r in rows if r["model"] == "original")
            return original, [by_source[c] for c in checkpoints]
    cmd = [a.gptq, "eval", "--model", a.model, "--text", a.text, "--max-tokens",
           str(a.max_tokens), "--ctx", str(a.ctx), "--no-rtn", "--backend", "cpu",
           "--json", json_path]
    for c in checkpoints:
        cmd += ["--quantized", c]
    run(cmd)
    with open(json_path) as f:
        rows = json.load(f)["rows"]
    by_source = {r["source"]: r["perplexity"] for r in rows if r["model"] == "GPTQ"}
    original = next(r["perplexity"] for r in rows if r["model"] == "original")
    return original, [by_source[c] for c in checkpoints]


def mean_sd(values):
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else float("nan"))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "gptqmodel-worker":
        gptqmodel_worker(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gptq", required=True, help="the gptq executable")
    p.add_argument("--model", required=True, help="Hugging Face model directory")
    p.add_argument("--calib", required=True, help="calibration text")
    p.add_argument("--text", required=True, help="evaluation text")
    p.add_argument("--peer-python", help="python of a venv with gptqmodel (for --tools gptqmodel)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--bits", type=int, nargs="+", default=[4, 3])
    p.add_argument("--orders", nargs="+", choices=ORDERS, default=["full", "group-aware"])
    p.add_argument("--tools", nargs="+", choices=("libgptq", "gptqmodel"),
                   default=["libgptq", "gptqmodel"])
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--group", type=int, default=128)
    p.add_argument("--damp", type=float, default=0.01)
    p.add_argument("--max-tokens", type=int, default=8192)
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--work", default="peer-quality")
    p.add_argument("--json", help="write every result here")
    p.add_argument("--reuse", action="store_true", help="keep checkpoints already in --work")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS",
                   help="also libgptq with these gptq quantize options, as tool libgptq-NAME")
    a = p.parse_args()
    variants = {}
    for text in a.variant:
        name, _, options = text.partition("=")
        if not options.strip():
            p.error(f"--variant '{text}' is not NAME=OPTIONS")
        if not name.replace("-", "").replace("_", "").isalnum() or f"libgptq-{name}" in variants:
            p.error(f"--variant name '{name}' must be unique, letters, digits, - and _")
        variants[f"libgptq-{name}"] = options.split()
    if variants and "libgptq" not in a.tools:
        p.error("--variant runs beside plain libgptq: keep libgptq in --tools")
    tools = list(a.tools) + list(variants)
    if "gptqmodel" in a.tools and not a.peer_python:
        p.error("--tools gptqmodel needs --peer-python")
    for path in (a.gptq, a.model, a.calib, a.text):
        if not os.path.exists(path):
            p.error(f"{path} does not exist")
    os.makedirs(a.work, exist_ok=True)

    results = []  # {tool, bits, order, seed, perplexity, seconds}
    original = None
    for seed in a.seeds:
        ids_file = os.path.join(a.work, f"calib-seed{seed}.ids")
        checkpoints, keys = [], []
        for tool in tools:
            for bits in a.bits:
                for order in a.orders:
                    out = os.path.abspath(os.path.join(a.work, f"{tool}-{bits}bit-{order}-seed{seed}"))
                    have = a.reuse and os.path.isfile(os.path.join(out, "config.json"))
                    seconds = None
                    if tool.startswith("libgptq") and not have:
                        seconds = quantize_ours(a, seed, bits, order, out, ids_file,
                                                variants.get(tool, ()))
                    elif tool == "gptqmodel" and not have:
                        if not os.path.isfile(ids_file):  # windows come from our --seed
                            quantize_ours(a, seed, bits, order,
                                          os.path.join(a.work, f"windows-seed{seed}"), ids_file)
                        seconds = quantize_peer(a, bits, order, out, ids_file)
                    checkpoints.append(out)
                    keys.append({"tool": tool, "bits": bits, "order": order, "seed": seed,
                                 "seconds": seconds})
        original, ppl = evaluate(a, checkpoints, os.path.join(a.work, f"eval-seed{seed}.json"))
        for k, v in zip(keys, ppl):
            k["perplexity"] = v
            results.append(k)
            log(f"seed {seed}: {k['tool']:12s} {k['bits']}-bit {k['order']:11s} "
                f"perplexity {v:.3f}")

    log(f"\noriginal (float32): {original:.3f}")
    log(f"group {a.group}, sym, damp {a.damp}, {a.samples} windows of {a.seqlen} tokens, "
        f"seeds {' '.join(map(str, a.seeds))}\n")
    log(f"{'tool':14s} {'bits':>4s} {'order':12s} {'mean':>9s} {'sd':>7s}  per seed")
    summary = []
    for bits in a.bits:
        for order in a.orders:
            for tool in tools:
                vals = [r["perplexity"] for r in results
                        if (r["tool"], r["bits"], r["order"]) == (tool, bits, order)]
                m, sd = mean_sd(vals)
                summary.append({"tool": tool, "bits": bits, "order": order, "mean": m,
                                "sd": None if math.isnan(sd) else sd, "n": len(vals)})
                log(f"{tool:14s} {bits:4d} {order:12s} {m:9.3f} {sd:7.3f}  "
                    + " ".join(f"{v:.3f}" for v in vals))
    # Seeds are paired (all tools see the same windows), so the paired difference
    # is the fair test: its standard error is far below the tools' own spread.
    pairs = [(v, "gptqmodel") for v in ["libgptq"] + list(variants) if "gptqmodel" in a.tools]
    pairs += [(v, "libgptq") for v in variants]
    for first, second in pairs if len(a.seeds) > 1 else []:
        log(f"\n{first} minus {second}, paired by seed (negative: {first} better)")
        for bits in a.bits:
            for order in a.orders:
                per = {(r["tool"], r["seed"]): r["perplexity"] for r in results
                       if (r["bits"], r["order"]) == (bits, order)}
                diffs = [per[(first, s)] - per[(second, s)] for s in a.seeds]
                m, sd = mean_sd(diffs)
                se = sd / math.sqrt(len(diffs))
                log(f"{bits}-bit {order:12s} {m:+8.3f} ± {se:.3f} (standard error; sd {sd:.3f}; "
                    f"{sum(d < 0 for d in diffs)} of {len(diffs)} seeds better)")
                summary.append({"first": first, "second": second, "bits": bits, "order": order,
                                "paired_difference": m, "sd": sd, "standard_error": se,
                                "n": len(diffs)})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"original": original, "results": results, "summary": summary,
                       "settings": {k: getattr(a, k) for k in
                                    ("seeds", "bits", "orders", "samples", "seqlen", "group",
                                     "damp", "max_tokens", "ctx", "calib", "text")}},
                      f, indent=2)


if __name__ == "__main__":
    main()
