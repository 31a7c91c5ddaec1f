#!/usr/bin/env python3
"""Generate golden test vectors for libgptq from the reference GPTQ implementation.

What it does
------------
For a fixed list of quantization cases (bits / group size / sym / act-order /
static groups / MSE grid search / odd shapes / dead input channels) this script
builds deterministic inputs with numpy (fixed seeds), feeds them to the GPTQ
authors' published reference implementation (IST-DASLab/gptq, files gptq.py and
quant.py, run on PyTorch CPU in float32), and records what the reference
produces:

  * the integer codes q = clamp(round(w / scale) + zero, 0, maxq) of every
    column, captured by wrapping the `quantize` function the gptq module calls,
  * the per-group scale / zero vectors (also cross-checked against the results
    of Quantizer.find_params, which is wrapped as well),
  * the dequantized weight matrix the reference writes into layer.weight,
  * the Hessian accumulated by add_batch (before fasterquant; small cases only),
  * the act-order permutation and the total loss printed by fasterquant.

The reference code itself is NOT part of this repository: it is imported from
the directory given with --ref and driven from the outside.  Nothing here is
copied from it.

Each case is written to <out>/<case>.gold and read back to check it
round-trips.  The script also checks, for every weight, that
scales[g_idx[j], r] * (codes[r, j] - zeros[g_idx[j], r]) equals the
reference's dequantized weight Q[r, j], and aborts on any mismatch.

File format (.gold, little-endian)
----------------------------------
  magic  8 bytes  b"GPTQGOLD"
  u32    number of records
  records, each:
    u32 name_len, name bytes (ascii, no NUL),
    u32 dtype code (0 = float32, 1 = int32, 2 = uint8, 3 = float64),
    u32 ndim, ndim x i64 dims, raw data in C order.

Records per file:
  bits, group_size, sym, act_order, static_groups, block_size, mse  int32 [1]
  damp_percent float32 [1];  num_batches int32 [1]
  x{b} float32 [samples_b*seq, in] (token rows), samples{b} int32 [1]
      for each calibration batch b (passed to add_batch as [samples_b, seq, in])
  w      float32 [out, in]   original weights
  codes  uint8   [out, in]   integer codes, ORIGINAL column order
  scales float32 [G, out]    per-group scales
  zeros  float32 [G, out]    per-group zero points (float, as the reference keeps them)
  g_idx  int32   [in]        group of each original column
  perm   int32   [in]        act-order permutation (identity without act-order)
  q      float32 [out, in]   dequantized weights written by the reference
  loss   float64 [1]         sum of the reference's Losses (as printed by fasterquant)
  h      float32 [in, in]    H accumulated by add_batch (only when in <= 128)

Group numbering: without static groups, group g is the g-th group in
quantization order (i.e. columns perm[g*gs : (g+1)*gs]), and
g_idx[j] = (position of column j in perm) // gs.  With static groups (or
without act-order) g_idx[j] = j // gs and group g covers original columns
[g*gs, (g+1)*gs).  With group size -1 there is a single group (G = 1).

How to rerun
------------
  python3 -m venv /work/venv-golden
  /work/venv-golden/bin/pip install numpy torch
  # get the reference (IST-DASLab/gptq on GitHub) and put its gptq.py and
  # quant.py into a directory OUTSIDE this repository, e.g. /work/ref/gptq:
  #   git clone <IST-DASLab/gptq repository> /tmp/gptq-src
  #   mkdir -p /work/ref/gptq && cp /tmp/gptq-src/gptq.py /tmp/gptq-src/quant.py /work/ref/gptq/
  cd <libgptq checkout>
  /work/venv-golden/bin/python tests/golden/make_golden.py --ref /work/ref/gptq --out tests/golden/data

gptq.py imports `transformers` only for an isinstance check against
transformers.Conv1D; if transformers is not installed a tiny stand-in module
with an unrelated Conv1D class is registered instead.  torch.cuda.synchronize
is replaced by a no-op so the reference runs on CPU.  torch runs single
threaded so the results are reproducible.

The committed data was generated from reference commit 2d65066eeb06 with
torch 2.15.0 (CPU execution) and numpy 2.4.6.  A different torch version or
thread count changes float accumulation order: in a check with 2 threads the
codes stayed identical while scales / q / loss moved by ~1e-6 relative, so
compare floats with a relative tolerance (~1e-5) rather than bit-exactly.
"""

import argparse
import contextlib
import io
import os
import struct
import sys
import types

import numpy as np

MAGIC = b"GPTQGOLD"
DTYPES = {0: np.float32, 1: np.int32, 2: np.uint8, 3: np.float64}
DTYPE_CODES = {np.dtype(v): k for k, v in DTYPES.items()}


# --------------------------------------------------------------------------
# .gold writer / reader
# --------------------------------------------------------------------------

def write_gold(path, records):
    """records: list of (name, ndarray). Writes the .gold container."""
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(records)))
        for name, arr in records:
            arr = np.ascontiguousarray(arr)
            code = DTYPE_CODES[arr.dtype]
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<II", code, arr.ndim))
            for d in arr.shape:
                f.write(struct.pack("<q", d))
            f.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))


def read_gold(path):
    """Returns an ordered dict name -> ndarray."""
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise ValueError("%s: bad magic" % path)
    off = 8
    (count,) = struct.unpack_from("<I", data, off)
    off += 4
    for _ in range(count):
        (nl,) = struct.unpack_from("<I", data, off)
        off += 4
        name = data[off:off + nl].decode("ascii")
        off += nl
        code, ndim = struct.unpack_from("<II", data, off)
        off += 8
        dims = struct.unpack_from("<%dq" % ndim, data, off)
        off += 8 * ndim
        dt = np.dtype(DTYPES[code]).newbyteorder("<")
        n = int(np.prod(dims)) if ndim else 1
        arr = np.frombuffer(data, dtype=dt, count=n, offset=off).reshape(dims)
        off += n * dt.itemsize
        if name in out:
            raise ValueError("%s: duplicate record %s" % (path, name))
        out[name] = arr.astype(arr.dtype.newbyteorder("="))
    if off != len(data):
        raise ValueError("%s: %d trailing bytes" % (path, len(data) - off))
    return out


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

# fields: name, bits, groupsize, sym, actorder, static, blocksize, percdamp, mse,
#         in, out, seq, batch sample counts, dead input channels,
#         nonneg_row (make one weight row all >= 0), seed
CASES = [
    dict(name="a_4bit_g128_sym", bits=4, gs=128, sym=True, act=False, static=False,
         bs=128, damp=0.01, mse=False, inf=256, outf=32, seq=16, samples=[2, 3, 2],
         dead=[], nonneg_row=True, seed=1001),
    dict(name="b_4bit_g128_asym", bits=4, gs=128, sym=False, act=False, static=False,
         bs=128, damp=0.01, mse=False, inf=128, outf=32, seq=16, samples=[2, 2, 3],
         dead=[], nonneg_row=False, seed=1002),
    dict(name="c_4bit_g32_sym", bits=4, gs=32, sym=True, act=False, static=False,
         bs=128, damp=0.01, mse=False, inf=256, outf=32, seq=16, samples=[2, 3, 2],
         dead=[], nonneg_row=True, seed=1003),
    dict(name="d_3bit_g64_asym_act", bits=3, gs=64, sym=False, act=True, static=False,
         bs=128, damp=0.01, mse=False, inf=128, outf=32, seq=16, samples=[3, 2, 2],
         dead=[], nonneg_row=False, seed=1004),
    dict(name="e_4bit_g32_sym_act_static", bits=4, gs=32, sym=True, act=True, static=True,
         bs=128, damp=0.01, mse=False, inf=128, outf=32, seq=16, samples=[2, 3, 2],
         dead=[], nonneg_row=True, seed=1005),
    dict(name="f_8bit_gnone_sym", bits=8, gs=-1, sym=True, act=False, static=False,
         bs=128, damp=0.01, mse=False, inf=64, outf=32, seq=16, samples=[2, 3],
         dead=[], nonneg_row=True, seed=1006),
    dict(name="g_2bit_g64_asym_mse", bits=2, gs=64, sym=False, act=False, static=False,
         bs=128, damp=0.01, mse=True, inf=128, outf=32, seq=16, samples=[3, 2, 2],
         dead=[], nonneg_row=False, seed=1007),
    dict(name="h_4bit_g64_asym_in200_dead", bits=4, gs=64, sym=False, act=False, static=False,
         bs=128, damp=0.01, mse=False, inf=200, outf=32, seq=16, samples=[3, 2, 2],
         dead=[17, 150], nonneg_row=False, seed=1008),
    dict(name="i_4bit_g16_asym_act_b32", bits=4, gs=16, sym=False, act=True, static=False,
         bs=32, damp=0.05, mse=False, inf=96, outf=32, seq=16, samples=[2, 3, 2],
         dead=[], nonneg_row=False, seed=1009),
    # extra: group size -1 with dead input channels whose (original) weights are
    # large -- the reference computes the single set of params BEFORE zeroing
    # dead columns, so those weights still widen the range.
    dict(name="j_4bit_gnone_asym_dead", bits=4, gs=-1, sym=False, act=False, static=False,
         bs=128, damp=0.01, mse=False, inf=64, outf=32, seq=16, samples=[2, 3],
         dead=[5, 40], nonneg_row=False, seed=1010, dead_w_big=True),
    # extra: groups spanning two blocks (gs 64, blocksize 32): the group params
    # come from W as it stood at the start of the block in which the group starts.
    dict(name="k_4bit_g64_asym_b32", bits=4, gs=64, sym=False, act=False, static=False,
         bs=32, damp=0.01, mse=False, inf=96, outf=32, seq=16, samples=[2, 2, 3],
         dead=[], nonneg_row=False, seed=1011),
]

H_MAX_IN = 128


def make_inputs(c):
    rng = np.random.default_rng(c["seed"])
    n_in, n_out, seq = c["inf"], c["outf"], c["seq"]
    # correlated channels: X = (Z @ M) * channel_scale + channel_mean
    M = np.eye(n_in) + rng.normal(0.0, 0.8 / np.sqrt(n_in), size=(n_in, n_in))
    ch_scale = np.exp(rng.normal(0.0, 0.5, size=n_in))
    n_outl = max(2, n_in // 40)
    outl = rng.choice(n_in, size=n_outl, replace=False)
    ch_scale[outl] *= rng.uniform(10.0, 50.0, size=n_outl)
    ch_mean = rng.normal(0.0, 0.3, size=n_in)
    xs = []
    for s in c["samples"]:
        Z = rng.normal(0.0, 1.0, size=(s * seq, n_in))
        X = (Z @ M) * ch_scale + ch_mean * ch_scale
        X[:, c["dead"]] = 0.0
        xs.append(X.astype(np.float32))
    # weights: gaussian * 0.02 plus a few large outliers
    W = rng.normal(0.0, 0.02, size=(n_out, n_in))
    n_wo = max(3, (n_out * n_in) // 500)
    idx = rng.choice(n_out * n_in, size=n_wo, replace=False)
    W.flat[idx] = rng.choice([-1.0, 1.0], size=n_wo) * rng.uniform(0.1, 0.3, size=n_wo)
    if c.get("nonneg_row"):
        W[1, :] = np.abs(W[1, :])
    if c.get("dead_w_big"):
        for k, j in enumerate(c["dead"]):
            W[:, j] = (0.5 if k % 2 == 0 else -0.5) * (1.0 + rng.uniform(0, 0.2, size=n_out))
    return xs, W.astype(np.float32)


# --------------------------------------------------------------------------
# driving the reference
# --------------------------------------------------------------------------

def load_reference(ref_dir):
    import torch
    torch.set_num_threads(1)
    # the reference calls torch.cuda.synchronize() unconditionally
    torch.cuda.synchronize = lambda *a, **k: None
    try:
        import transformers  # noqa: F401
    except Exception:
        stub = types.ModuleType("transformers")

        class Conv1D(torch.nn.Module):  # stand-in, never instantiated
            pass

        stub.Conv1D = Conv1D
        sys.modules["transformers"] = stub
    sys.path.insert(0, os.path.abspath(ref_dir))
    with contextlib.redirect_stdout(io.StringIO()):
        import quant as ref_quant
        import gptq as ref_gptq
    return torch, ref_quant, ref_gptq


def run_case(c, torch, ref_quant, ref_gptq):
    xs, W = make_inputs(c)
    n_in, n_out, gs = c["inf"], c["outf"], c["gs"]
    maxq = 2 ** c["bits"] - 1

    layer = torch.nn.Linear(n_in, n_out, bias=False)
    layer.weight.data = torch.from_numpy(W.copy())
    g = ref_gptq.GPTQ(layer)
    g.quantizer = ref_quant.Quantizer()
    g.quantizer.configure(c["bits"], perchannel=True, sym=c["sym"], mse=c["mse"])
    for X, s in zip(xs, c["samples"]):
        g.add_batch(torch.from_numpy(X.reshape(s, c["seq"], n_in).copy()), None)
    H = g.H.clone().numpy()

    dead = np.diag(H) == 0
    if sorted(np.nonzero(dead)[0].tolist()) != sorted(c["dead"]):
        raise SystemExit("%s: unexpected dead channels %s" % (c["name"], np.nonzero(dead)[0]))
    live = np.diag(H)[~dead]
    if len(np.unique(live)) != len(live):
        raise SystemExit("%s: ties in diag(H)" % c["name"])

    # ---- wrap quantize (as seen from the gptq module) and find_params ----
    cols = []        # per quantized column: (codes[rows], scale[rows], zero[rows])
    fp_calls = []    # per find_params call: (ncols, scale, zero)
    orig_quantize = ref_gptq.quantize
    orig_find_params = ref_quant.Quantizer.find_params

    def quantize_wrap(x, scale, zero, mq):
        res = orig_quantize(x, scale, zero, mq)
        codes = torch.clamp(torch.round(x / scale) + zero, 0, mq)
        if not torch.equal(scale * (codes - zero), res):
            raise SystemExit("%s: code reconstruction differs from reference quantize" % c["name"])
        cols.append((codes.flatten().clone(), scale.flatten().clone(), zero.flatten().clone()))
        return res

    def find_params_wrap(self, x, weight=False):
        r = orig_find_params(self, x, weight=weight)
        fp_calls.append((x.shape[1], self.scale.flatten().clone(), self.zero.flatten().clone()))
        return r

    argsorts = []    # results of torch.argsort during fasterquant: [perm, invperm] with act-order
    orig_argsort = torch.argsort

    def argsort_wrap(*a, **k):
        r = orig_argsort(*a, **k)
        argsorts.append(r.clone())
        return r

    ref_gptq.quantize = quantize_wrap
    ref_quant.Quantizer.find_params = find_params_wrap
    torch.argsort = argsort_wrap
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            g.fasterquant(blocksize=c["bs"], percdamp=c["damp"], groupsize=gs,
                          actorder=c["act"], static_groups=c["static"])
    finally:
        ref_gptq.quantize = orig_quantize
        ref_quant.Quantizer.find_params = orig_find_params
        torch.argsort = orig_argsort

    loss = None
    for line in buf.getvalue().splitlines():
        if line.startswith("error "):
            loss = float(line.split()[1])
    if loss is None:
        raise SystemExit("%s: could not capture loss" % c["name"])

    Q = layer.weight.data.clone().numpy().astype(np.float32)
    if len(cols) != n_in:
        raise SystemExit("%s: expected %d quantize calls, got %d" % (c["name"], n_in, len(cols)))

    # ---- permutation: the reference's own argsort result (captured above);
    #      cross-checked against argsort of diag(H) (dead entries set to 1) ----
    if c["act"]:
        if len(argsorts) != 2:
            raise SystemExit("%s: expected 2 argsort calls, got %d" % (c["name"], len(argsorts)))
        perm = argsorts[0].numpy().astype(np.int32)
        dh = np.diag(H).astype(np.float64).copy()
        dh[dh == 0] = 1.0
        if not np.array_equal(perm, np.argsort(-dh, kind="stable").astype(np.int32)):
            raise SystemExit("%s: captured perm is not argsort(diag(H), descending)" % c["name"])
    else:
        if argsorts:
            raise SystemExit("%s: unexpected argsort calls" % c["name"])
        perm = np.arange(n_in, dtype=np.int32)
    invperm = np.argsort(perm).astype(np.int32)
    if c["act"] and not np.array_equal(invperm, argsorts[1].numpy()):
        raise SystemExit("%s: captured invperm mismatch" % c["name"])

    codes_q = np.stack([cc[0].numpy() for cc in cols], axis=1)   # [out, in] quant order
    sc_q = np.stack([cc[1].numpy() for cc in cols], axis=1)
    ze_q = np.stack([cc[2].numpy() for cc in cols], axis=1)
    if codes_q.min() < 0 or codes_q.max() > maxq:
        raise SystemExit("%s: code out of range" % c["name"])
    codes = np.empty((n_out, n_in), dtype=np.uint8)
    codes[:, perm] = codes_q.astype(np.uint8)

    # ---- groups ----
    if gs == -1:
        G = 1
        g_idx = np.zeros(n_in, dtype=np.int32)
        grp_of_pos = np.zeros(n_in, dtype=np.int64)
    elif c["static"] or not c["act"]:
        G = (n_in + gs - 1) // gs
        g_idx = (np.arange(n_in) // gs).astype(np.int32)
        grp_of_pos = g_idx[perm]
    else:
        G = (n_in + gs - 1) // gs
        g_idx = (invperm // gs).astype(np.int32)
        grp_of_pos = np.arange(n_in) // gs
    scales = np.zeros((G, n_out), dtype=np.float32)
    zeros = np.zeros((G, n_out), dtype=np.float32)
    seen = np.zeros(G, dtype=bool)
    for p in range(n_in):
        gg = grp_of_pos[p]
        if not seen[gg]:
            scales[gg], zeros[gg], seen[gg] = sc_q[:, p], ze_q[:, p], True
        elif not (np.array_equal(scales[gg], sc_q[:, p]) and np.array_equal(zeros[gg], ze_q[:, p])):
            raise SystemExit("%s: params differ within group %d" % (c["name"], gg))
    if not seen.all():
        raise SystemExit("%s: empty group" % c["name"])

    # ---- cross-check group params against the find_params calls ----
    # first call: whole W (quantizer not ready yet); then one per group
    # (non-static, in quantization order) or one per static group.
    if gs == -1:
        expect = [fp_calls[0]]
        if len(fp_calls) != 1:
            raise SystemExit("%s: %d find_params calls" % (c["name"], len(fp_calls)))
    else:
        if len(fp_calls) != 1 + G:
            raise SystemExit("%s: %d find_params calls, expected %d" % (c["name"], len(fp_calls), 1 + G))
        expect = fp_calls[1:]
    for gg, (ncols, s_, z_) in enumerate(expect):
        if not (np.array_equal(s_.numpy(), scales[gg]) and np.array_equal(z_.numpy(), zeros[gg])):
            raise SystemExit("%s: find_params result %d does not match group %d" % (c["name"], gg, gg))

    # ---- dequantization check ----
    deq = torch.from_numpy(scales[g_idx].T.copy()) * (
        torch.from_numpy(codes.astype(np.float32)) - torch.from_numpy(zeros[g_idx].T.copy()))
    deq = deq.numpy()
    if not np.array_equal(deq, Q):
        err = np.abs(deq - Q).max()
        tol = 1e-6 * max(1.0, float(np.abs(Q).max()))
        if err > tol:
            raise SystemExit("%s: dequant check failed, max err %g" % (c["name"], err))
        print("  note: dequant differs from Q by up to %g (float rounding)" % err)

    recs = [
        ("bits", np.array([c["bits"]], np.int32)),
        ("group_size", np.array([gs], np.int32)),
        ("sym", np.array([int(c["sym"])], np.int32)),
        ("act_order", np.array([int(c["act"])], np.int32)),
        ("static_groups", np.array([int(c["static"])], np.int32)),
        ("block_size", np.array([c["bs"]], np.int32)),
        ("mse", np.array([int(c["mse"])], np.int32)),
        ("damp_percent", np.array([c["damp"]], np.float32)),
        ("num_batches", np.array([len(xs)], np.int32)),
    ]
    for b, (X, s) in enumerate(zip(xs, c["samples"])):
        recs.append(("x%d" % b, X))
        recs.append(("samples%d" % b, np.array([s], np.int32)))
    recs += [
        ("w", W),
        ("codes", codes),
        ("scales", scales),
        ("zeros", zeros),
        ("g_idx", g_idx),
        ("perm", perm),
        ("q", Q),
        ("loss", np.array([loss], np.float64)),
    ]
    if n_in <= H_MAX_IN:
        recs.append(("h", H.astype(np.float32)))
    return recs, loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", required=True, help="directory holding the reference gptq.py and quant.py")
    ap.add_argument("--out", required=True, help="output directory for the .gold files")
    ap.add_argument("--only", default=None, help="comma separated case names (default: all)")
    args = ap.parse_args()

    torch, ref_quant, ref_gptq = load_reference(args.ref)
    import inspect
    if "static_groups" not in inspect.signature(ref_gptq.GPTQ.fasterquant).parameters:
        raise SystemExit("reference fasterquant has no static_groups parameter")
    print("torch", torch.__version__, "numpy", np.__version__)
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    total = 0
    for c in CASES:
        if only and c["name"] not in only:
            continue
        recs, loss = run_case(c, torch, ref_quant, ref_gptq)
        path = os.path.join(args.out, c["name"] + ".gold")
        write_gold(path, recs)
        back = read_gold(path)
        if list(back.keys()) != [n for n, _ in recs]:
            raise SystemExit("%s: record names do not round-trip" % path)
        for n, a in recs:
            if back[n].dtype != a.dtype or back[n].shape != a.shape or not np.array_equal(back[n], a):
                raise SystemExit("%s: record %s does not round-trip" % (path, n))
        size = os.path.getsize(path)
        total += size
        print("%-32s %8d bytes  loss %.9g" % (c["name"], size, loss))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
