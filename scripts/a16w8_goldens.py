#!/usr/bin/env python3
"""Goldens for TFLite's 16x8 scheme (`a16w8`), produced by the TFLite interpreter.

Two bundles in kinglet-compress's KLTDIFF1 format (see scripts/diff_generate.py):

* `a16w8_ops.kgd.gz` — random single-op int16 models (int8 weights, int64 biases) built
  directly as flatbuffers with the schema's object API (no converter), for every op kinglet's
  16x8 path runs: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (per tensor and per channel),
  MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, ADD (with broadcasting), SOFTMAX, RESHAPE,
  CONCATENATION, PAD, QUANTIZE (f32 -> int16 and int16 -> int16) and DEQUANTIZE;
* `a16w8_models.kgd.gz` — kinglet's own a16w8 models (`.tflite` files written by
  `kinglet quantize --scheme a16w8`, passed on the command line) on random inputs.

Expected outputs are those of the reference kernels (`BUILTIN_REF`); each case's info records
whether the optimized builtin kernels and the default configuration (XNNPACK delegate) agree,
and the header counts the cases where they do not.

Usage:
    python3 scripts/a16w8_goldens.py [--seed N] [--per-op N] [--out-dir DIR] [MODEL.tflite ...]
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_micro_goldens as gm  # noqa: E402
from diff_generate import write_bundle  # noqa: E402
from gen_micro_goldens import S, Model, out_size, rand_scale  # noqa: E402
import ai_edge_litert  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

gm.TYPES["i16"] = (S.TensorType.INT16, np.int16)
gm.TYPES["i64"] = (S.TensorType.INT64, np.int64)
ACTS = ["none", "relu", "relu6"]
RESOLVERS = {
    "ref": OpResolverType.BUILTIN_REF,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "default": OpResolverType.AUTO,
}


def run_all(model_bytes, inputs):
    """Outputs (every graph output) per kernel set."""
    res = {}
    for name, r in RESOLVERS.items():
        it = Interpreter(model_content=model_bytes, experimental_op_resolver_type=r)
        it.allocate_tensors()
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], x)
        it.invoke()
        res[name] = [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]
    return res


def build_multi(m, ops, graph_inputs, graph_outputs, codes):
    """Like Model.build but with several operator codes (QUANTIZE chains)."""
    oc = []
    for code in codes:
        c = S.OperatorCodeT()
        c.builtinCode = code
        c.deprecatedBuiltinCode = min(code, 127)
        c.version = 1
        oc.append(c)
    sg = S.SubGraphT()
    sg.tensors = m.tensors
    sg.inputs = list(graph_inputs)
    sg.outputs = list(graph_outputs)
    sg.operators = ops
    model = S.ModelT()
    model.version = 3
    model.operatorCodes = oc
    model.subgraphs = [sg]
    model.buffers = m.buffers
    model.description = "kinglet a16w8 golden"
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


class Cases:
    def __init__(self, rng, samples):
        self.rng, self.samples, self.cases, self.disagree = rng, samples, [], 0

    def add(self, family, info, model_bytes, make_inputs):
        samples, agree = [], True
        for _ in range(self.samples):
            ins = make_inputs()
            res = run_all(model_bytes, ins)
            agree &= all(np.array_equal(a, b) for k in ("builtin", "default")
                         for a, b in zip(res[k], res["ref"]))
            samples.append((ins, res["ref"]))
        self.disagree += not agree
        info = dict(info, family=family, builtin_and_default_agree=bool(agree))
        self.cases.append({"name": f"{family}/{len(self.cases)}", "info": info,
                           "model": model_bytes, "samples": samples})

    def x16(self, shape, spread=None):
        spread = spread or int(self.rng.integers(2000, 32768))
        return self.rng.integers(-spread, spread, size=shape).astype(np.int16)


def act_code(a):
    return gm.ACTS[a]


def weighted(c, kind):
    rng = c.rng
    act = str(rng.choice(ACTS))
    in_s = rand_scale(rng, 1e-4, 2e-3)
    m = Model()
    if kind == "fc":
        batches, inf, outf = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 10))
        per_channel = rng.random() < 0.6
        nscale = outf if per_channel else 1
        fshape, ishape, oshape, taps = (outf, inf), (batches, inf), (batches, outf), inf
    else:
        g = gm.geometry(rng, one_d=rng.random() < 0.5)
        ic = int(rng.integers(1, 7))
        dm = int(rng.integers(1, 3)) if kind == "dw" else 1
        oc = ic * dm if kind == "dw" else int(rng.integers(1, 9))
        outf = oc
        nscale = oc
        fshape = (1, g["kh"], g["kw"], oc) if kind == "dw" else (oc, g["kh"], g["kw"], ic)
        ishape, oshape = (g["n"], g["h"], g["w"], ic), (g["n"], g["oh"], g["ow"], oc)
        taps = g["kh"] * g["kw"] * (1 if kind == "dw" else ic)
    f_s = np.array([rand_scale(rng, 0.002, 0.05) for _ in range(nscale)], np.float32)
    filt = rng.integers(-127, 128, size=fshape).astype(np.int8)
    typical = float(in_s) * float(np.mean(f_s)) * math.sqrt(taps) * 10000.0 * 60.0
    out_s = np.float32(typical / 8000.0 * rng.uniform(0.5, 2.0))
    bias_s = (in_s.astype(np.float64) * f_s.astype(np.float64)).astype(np.float32)
    bias = rng.integers(-3_000_000, 3_000_001, size=outf).astype(np.int64)
    if kind == "fc" and nscale == 1:
        bias_q = (bias_s, [0])
    else:
        bias_q = (bias_s, [0] * len(bias_s))
    t_in = m.tensor(ishape, "i16", in_s, 0)
    t_f = m.tensor(fshape, "i8", f_s, [0] * len(f_s), filt, qdim=3 if kind == "dw" else 0)
    t_b = m.tensor((outf,), "i64", bias_q[0], bias_q[1], bias)
    t_out = m.tensor(oshape, "i16", out_s, 0)
    if kind == "fc":
        o = S.FullyConnectedOptionsT()
        opcode, ot = S.BuiltinOperator.FULLY_CONNECTED, S.BuiltinOptions.FullyConnectedOptions
    else:
        if kind == "dw":
            o = S.DepthwiseConv2DOptionsT()
            o.depthMultiplier = dm
            opcode, ot = S.BuiltinOperator.DEPTHWISE_CONV_2D, S.BuiltinOptions.DepthwiseConv2DOptions
        else:
            o = S.Conv2DOptionsT()
            opcode, ot = S.BuiltinOperator.CONV_2D, S.BuiltinOptions.Conv2DOptions
        o.padding = gm.PADS[g["pad"]]
        o.strideH, o.strideW = g["sh"], g["sw"]
        o.dilationHFactor, o.dilationWFactor = g["dh"], g["dw"]
    o.fusedActivationFunction = act_code(act)
    model = m.build(opcode, ot, o, [t_in, t_f, t_b], [t_out], [t_in])
    c.add({"fc": "fully_connected", "dw": "depthwise_conv2d", "conv": "conv2d"}[kind],
          {"act": act, "per_channel": nscale > 1}, model, lambda: [c.x16(ishape)])


def pool(c, kind):
    rng = c.rng
    n, h, w, ch = int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 12)), int(rng.integers(1, 6))
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = "same" if rng.random() < 0.5 else "valid"
    if pad == "valid":
        h, w = max(h, fh), max(w, fw)
    oh, ow = out_size(pad, h, fh, sh, 1), out_size(pad, w, fw, sw, 1)
    act = str(rng.choice(ACTS))
    s = rand_scale(rng, 1e-4, 1e-3)
    m = Model()
    t_in = m.tensor((n, h, w, ch), "i16", s, 0)
    t_out = m.tensor((n, oh, ow, ch), "i16", s, 0)
    o = S.Pool2DOptionsT()
    o.padding = gm.PADS[pad]
    o.strideH, o.strideW, o.filterHeight, o.filterWidth = sh, sw, fh, fw
    o.fusedActivationFunction = act_code(act)
    opcode = S.BuiltinOperator.MAX_POOL_2D if kind == "max_pool2d" else S.BuiltinOperator.AVERAGE_POOL_2D
    model = m.build(opcode, S.BuiltinOptions.Pool2DOptions, o, [t_in], [t_out], [t_in])
    c.add(kind, {"act": act, "padding": pad}, model, lambda: [c.x16((n, h, w, ch))])


def mean(c):
    rng = c.rng
    n, h, w, ch = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 40)), int(rng.integers(1, 9))
    keep = bool(rng.random() < 0.5)
    in_s = rand_scale(rng, 1e-4, 1e-3)
    out_s = in_s if rng.random() < 0.3 else np.float32(in_s * rng.uniform(0.3, 1.5))
    m = Model()
    t_in = m.tensor((n, h, w, ch), "i16", in_s, 0)
    t_axes = m.tensor((2,), "i32", data=np.array([1, 2], np.int32))
    t_out = m.tensor((n, 1, 1, ch) if keep else (n, ch), "i16", out_s, 0)
    o = S.ReducerOptionsT()
    o.keepDims = keep
    model = m.build(S.BuiltinOperator.MEAN, S.BuiltinOptions.ReducerOptions, o, [t_in, t_axes], [t_out], [t_in])
    c.add("mean", {"keep_dims": keep}, model, lambda: [c.x16((n, h, w, ch))])


def add(c):
    rng = c.rng
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 5))]
    other = list(shape)
    if rng.random() < 0.4:
        for i in range(4):
            if rng.random() < 0.5:
                other[i] = 1
    act = str(rng.choice(ACTS))
    s1, s2 = rand_scale(rng, 1e-4, 1e-3), rand_scale(rng, 1e-4, 1e-3)
    so = np.float32(max(s1, s2) * rng.uniform(1.0, 2.5))
    m = Model()
    t1 = m.tensor(shape, "i16", s1, 0)
    t2 = m.tensor(other, "i16", s2, 0)
    t_out = m.tensor(shape, "i16", so, 0)
    o = S.AddOptionsT()
    o.fusedActivationFunction = act_code(act)
    model = m.build(S.BuiltinOperator.ADD, S.BuiltinOptions.AddOptions, o, [t1, t2], [t_out], [t1, t2])
    c.add("add", {"act": act, "broadcast": other != shape}, model,
          lambda: [c.x16(shape), c.x16(other)])


def softmax(c):
    rng = c.rng
    rows, depth = int(rng.integers(1, 4)), int(rng.integers(1, 20))
    beta = float(np.float32(rng.uniform(0.5, 2.0))) if rng.random() < 0.5 else 1.0
    in_s = rand_scale(rng, 1e-4, 2e-3)
    m = Model()
    t_in = m.tensor((rows, depth), "i16", in_s, 0)
    t_out = m.tensor((rows, depth), "i16", np.float32(1.0 / 32768.0), 0)
    o = S.SoftmaxOptionsT()
    o.beta = beta
    model = m.build(S.BuiltinOperator.SOFTMAX, S.BuiltinOptions.SoftmaxOptions, o, [t_in], [t_out], [t_in])
    c.add("softmax", {"beta": beta}, model, lambda: [c.x16((rows, depth))])


def reshape(c):
    rng = c.rng
    a, b = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    s = rand_scale(rng, 1e-4, 1e-3)
    m = Model()
    t_in = m.tensor((1, a, b, 2), "i16", s, 0)
    t_shape = m.tensor((2,), "i32", data=np.array([1, a * b * 2], np.int32))
    t_out = m.tensor((1, a * b * 2), "i16", s, 0)
    o = S.ReshapeOptionsT()
    o.newShape = [1, a * b * 2]
    model = m.build(S.BuiltinOperator.RESHAPE, S.BuiltinOptions.ReshapeOptions, o, [t_in, t_shape], [t_out], [t_in])
    c.add("reshape", {}, model, lambda: [c.x16((1, a, b, 2))])


def concat(c):
    rng = c.rng
    axis = int(rng.integers(1, 4))
    base = [1, int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 4))]
    shapes = []
    for _ in range(int(rng.integers(2, 4))):
        sh = list(base)
        sh[axis] = int(rng.integers(1, 4))
        shapes.append(sh)
    out = list(base)
    out[axis] = sum(sh[axis] for sh in shapes)
    s = rand_scale(rng, 1e-4, 1e-3)
    m = Model()
    ts = [m.tensor(sh, "i16", s, 0) for sh in shapes]
    t_out = m.tensor(out, "i16", s, 0)
    o = S.ConcatenationOptionsT()
    o.axis = axis
    model = m.build(S.BuiltinOperator.CONCATENATION, S.BuiltinOptions.ConcatenationOptions, o, ts, [t_out], ts)
    c.add("concatenation", {"axis": axis}, model, lambda: [c.x16(sh) for sh in shapes])


def pad(c):
    rng = c.rng
    shape = [1, int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 4))]
    widths = np.array([[0, 0]] + [[int(rng.integers(0, 3)), int(rng.integers(0, 3))] for _ in range(3)], np.int32)
    out = [d + int(w.sum()) for d, w in zip(shape, widths)]
    s = rand_scale(rng, 1e-4, 1e-3)
    m = Model()
    t_in = m.tensor(shape, "i16", s, 0)
    t_p = m.tensor((4, 2), "i32", data=widths)
    t_out = m.tensor(out, "i16", s, 0)
    model = m.build(S.BuiltinOperator.PAD, S.BuiltinOptions.PadOptions, S.PadOptionsT(), [t_in, t_p], [t_out], [t_in])
    c.add("pad", {}, model, lambda: [c.x16(shape)])


def quantize_chain(c):
    """f32 -> QUANTIZE (int16) -> QUANTIZE (int16, other scale) -> DEQUANTIZE -> f32, every
    intermediate a graph output."""
    rng = c.rng
    shape = (1, int(rng.integers(1, 40)))
    s1 = rand_scale(rng, 1e-4, 1e-3)
    s2 = np.float32(s1 * rng.uniform(0.3, 3.0))
    m = Model()
    t_f = m.tensor(shape, "f32")
    t_q1 = m.tensor(shape, "i16", s1, 0)
    t_q2 = m.tensor(shape, "i16", s2, 0)
    t_d = m.tensor(shape, "f32")
    ops = []
    for code, i, o in ((0, t_f, t_q1), (0, t_q1, t_q2), (1, t_q2, t_d)):
        op = S.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, [i], [o]
        ops.append(op)
    model = build_multi(m, ops, [t_f], [t_q1, t_q2, t_d],
                        [S.BuiltinOperator.QUANTIZE, S.BuiltinOperator.DEQUANTIZE])
    lim = float(s1) * 40000.0

    def inputs():
        x = rng.uniform(-lim, lim, size=shape).astype(np.float32)
        # Exact half-steps exercise the rounding convention.
        x[0, 0] = np.float32(s1) * np.float32(2.5)
        return [x]
    c.add("quantize", {}, model, inputs)


def own_model(c, path):
    model = open(path, "rb").read()
    it = Interpreter(model_content=model)
    details = it.get_input_details()

    def inputs():
        out = []
        for d in details:
            if d["dtype"] == np.int16:
                out.append(c.rng.integers(-12000, 12000, size=d["shape"]).astype(np.int16))
            else:
                out.append(c.rng.normal(0.0, 1.5, size=d["shape"]).astype(np.float32))
        return out
    c.add("model", {"file": os.path.basename(path)}, model, inputs)


def header(c, seed, kind):
    return {"generator": "scripts/a16w8_goldens.py", "kind": kind, "seed": seed,
            "ai_edge_litert": ai_edge_litert.__version__ if hasattr(ai_edge_litert, "__version__") else "2.3.0",
            "numpy": np.__version__, "cases": len(c.cases),
            "cases_where_builtin_or_default_differ_from_reference": c.disagree}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20260516)
    ap.add_argument("--per-op", type=int, default=12)
    ap.add_argument("--out-dir", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "crates", "kinglet-compress", "tests", "goldens"))
    ap.add_argument("models", nargs="*", help="kinglet a16w8 .tflite files for a16w8_models.kgd.gz")
    args = ap.parse_args()
    ops = Cases(np.random.default_rng(args.seed), samples=2)
    families = [lambda c: weighted(c, "conv"), lambda c: weighted(c, "dw"), lambda c: weighted(c, "fc"),
                lambda c: pool(c, "max_pool2d"), lambda c: pool(c, "average_pool2d"), mean, add, softmax,
                reshape, concat, pad, quantize_chain]
    for f in families:
        for _ in range(args.per_op):
            f(ops)
    path = os.path.join(args.out_dir, "a16w8_ops.kgd.gz")
    n = write_bundle(path, ops.cases, header(ops, args.seed, "ops"))
    print(f"{path}: {len(ops.cases)} cases, {n} bytes raw, {ops.disagree} where builtin/default differ")
    if args.models:
        own = Cases(np.random.default_rng(args.seed + 1), samples=4)
        for p in args.models:
            own_model(own, p)
        path = os.path.join(args.out_dir, "a16w8_models.kgd.gz")
        n = write_bundle(path, own.cases, header(own, args.seed + 1, "models"))
        print(f"{path}: {len(own.cases)} cases, {n} bytes raw, {own.disagree} where builtin/default differ")


if __name__ == "__main__":
    main()
