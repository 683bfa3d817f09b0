#!/usr/bin/env python3
"""Per-kernel golden files for kinglet-micro, produced by the TFLite interpreter.

Builds tiny single-op .tflite models directly with the flatbuffer object API (so every
quantisation parameter, including legacy uint8 ones the TF2 converter no longer emits, is under
our control), runs them in `ai_edge_litert` with its default (optimized builtin) kernels, and
writes inputs, parameters and outputs to a plain text file that the Rust test
`crates/kinglet-micro/tests/tflite_goldens.rs` reads without any dependency.

Usage: python3 scripts/gen_micro_goldens.py [--out PATH] [--seed N]
Regenerate after changing the case mix; CI only reads the committed file.
"""

import argparse
import math
import sys

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S
from ai_edge_litert.interpreter import Interpreter, OpResolverType
import ai_edge_litert

TYPES = {
    "f32": (S.TensorType.FLOAT32, np.float32),
    "i8": (S.TensorType.INT8, np.int8),
    "u8": (S.TensorType.UINT8, np.uint8),
    "i32": (S.TensorType.INT32, np.int32),
}
ACTS = {
    "none": S.ActivationFunctionType.NONE,
    "relu": S.ActivationFunctionType.RELU,
    "relu6": S.ActivationFunctionType.RELU6,
    "relu_n1_to_1": S.ActivationFunctionType.RELU_N1_TO_1,
}
PADS = {"same": S.Padding.SAME, "valid": S.Padding.VALID}


class Model:
    """Accumulates tensors/buffers for a one-op subgraph."""

    def __init__(self):
        self.tensors = []
        self.buffers = [S.BufferT()]

    def tensor(self, shape, dtype, scale=None, zp=None, data=None, qdim=0):
        t = S.TensorT()
        t.shape = list(shape)
        t.type = TYPES[dtype][0]
        t.name = f"t{len(self.tensors)}"
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
            q.quantizedDimension = qdim
            t.quantization = q
        if data is not None:
            b = S.BufferT()
            b.data = np.ascontiguousarray(data, dtype=TYPES[dtype][1]).tobytes()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def build(self, opcode, opt_type, opts, op_inputs, op_outputs, graph_inputs):
        oc = S.OperatorCodeT()
        oc.builtinCode = opcode
        oc.deprecatedBuiltinCode = min(opcode, 127)
        oc.version = 1
        op = S.OperatorT()
        op.opcodeIndex = 0
        op.inputs = list(op_inputs)
        op.outputs = list(op_outputs)
        if opt_type is not None:
            op.builtinOptionsType = opt_type
            op.builtinOptions = opts
        sg = S.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = list(graph_inputs)
        sg.outputs = list(op_outputs)
        sg.operators = [op]
        m = S.ModelT()
        m.version = 3
        m.operatorCodes = [oc]
        m.subgraphs = [sg]
        m.buffers = self.buffers
        m.description = "kinglet-micro golden"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def run_with(resolver, model_bytes, inputs):
    it = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


class Both:
    """Outputs of the reference kernels (`BUILTIN_REF`, what TFLite Micro mirrors), of the
    optimized builtin kernels (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`) and of the interpreter's
    default configuration (`AUTO`: builtin kernels plus the XNNPACK delegate)."""

    def __init__(self, ref, opt, default):
        self.ref, self.opt, self.default = ref, opt, default


def run(model_bytes, inputs):
    return Both(run_with(OpResolverType.BUILTIN_REF, model_bytes, inputs),
                run_with(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, model_bytes, inputs),
                run_with(OpResolverType.AUTO, model_bytes, inputs))


def f32s(x):
    return [float(np.float32(v)) for v in np.atleast_1d(x)]


def out_size(kind, n, k, s, d):
    dk = (k - 1) * d + 1
    if kind == "same":
        o = (n + s - 1) // s
    else:
        o = (n - dk) // s + 1
    return o


def rand_scale(rng, lo, hi):
    return np.float32(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def rand_q(rng, dtype, shape, lo=None, hi=None):
    info = np.iinfo(TYPES[dtype][1])
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return rng.integers(lo, hi + 1, size=shape).astype(TYPES[dtype][1])


def rand_zp(rng, dtype):
    return int(rng.integers(-40, 41)) if dtype == "i8" else int(rng.integers(90, 170))


class Writer:
    def __init__(self):
        self.lines = []
        self.count = 0

    def case(self, name, fields):
        self.count += 1
        self.lines.append(f"case {name}")
        fields = dict(fields)
        y = fields.pop("expected")
        fmt = fields.pop("expected_fmt", None)
        fields["expected"] = fmt(y.ref) if fmt else y.ref
        # "=" means "same as expected" (keeps the file small; most ops agree).
        for key, val in (("expected_opt", y.opt), ("expected_default", y.default)):
            same = np.array_equal(np.asarray(val), np.asarray(y.ref))
            fields[key] = "=" if same else (fmt(val) if fmt else val)
        for k, v in fields.items():
            if isinstance(v, (list, tuple, np.ndarray)):
                vals = np.asarray(v).ravel().tolist()
            else:
                vals = [v]
            out = []
            for x in vals:
                if isinstance(x, float):
                    out.append(repr(float(np.float32(x))) if k.endswith("_f32") or "scale" in k
                               else repr(x))
                else:
                    out.append(str(x))
            self.lines.append(f"{k} " + " ".join(out))
        self.lines.append("end")


def geometry(rng, one_d):
    n = int(rng.integers(1, 3))
    h = 1 if one_d else int(rng.integers(1, 6))
    w = int(rng.integers(1, 12))
    kh = 1 if one_d else int(rng.integers(1, 4))
    kw = int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dh = 1 if one_d else int(rng.integers(1, 3))
    dw = int(rng.integers(1, 3))
    pad = "same" if rng.random() < 0.5 else "valid"
    if pad == "valid":
        h = max(h, (kh - 1) * dh + 1)
        w = max(w, (kw - 1) * dw + 1)
    oh, ow = out_size(pad, h, kh, sh, dh), out_size(pad, w, kw, sw, dw)
    return dict(n=n, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad=pad, oh=oh, ow=ow)


def gen_conv(rng, wr, dtype, depthwise, idx):
    g = geometry(rng, one_d=rng.random() < 0.4)
    ic = int(rng.integers(1, 7))
    dm = int(rng.integers(1, 3)) if depthwise else 1
    oc = ic * dm if depthwise else int(rng.integers(1, 7))
    act = rng.choice(list(ACTS))
    in_s, in_zp = rand_scale(rng, 0.005, 0.2), rand_zp(rng, dtype)
    if dtype == "i8":
        f_s = np.array([rand_scale(rng, 0.002, 0.05) for _ in range(oc)], np.float32)
        if rng.random() < 0.2:
            f_s = f_s[:1]
        f_zp = [0] * len(f_s)
    else:
        f_s = np.array([rand_scale(rng, 0.002, 0.05)], np.float32)
        f_zp = [int(rng.integers(80, 180))]
    fshape = (1, g["kh"], g["kw"], oc) if depthwise else (oc, g["kh"], g["kw"], ic)
    filt = rand_q(rng, dtype, fshape, -127 if dtype == "i8" else 0, 127 if dtype == "i8" else 255)
    taps = g["kh"] * g["kw"] * (1 if depthwise else ic)
    typical = float(in_s) * float(np.mean(f_s)) * math.sqrt(taps) * 60.0 * 60.0
    out_s = np.float32(typical / 50.0 * rng.uniform(0.5, 2.0))
    out_zp = rand_zp(rng, dtype)
    bias_s = (in_s.astype(np.float64) * f_s.astype(np.float64)).astype(np.float32)
    bias = rng.integers(-3000, 3001, size=oc).astype(np.int32)
    # TFLite's quantised conv requires a bias tensor; some cases use an all-zero one.
    if rng.random() < 0.15:
        bias[:] = 0
    has_bias = True
    m = Model()
    t_in = m.tensor((g["n"], g["h"], g["w"], ic), dtype, in_s, in_zp)
    t_f = m.tensor(fshape, dtype, f_s, f_zp, filt, qdim=3 if depthwise else 0)
    ins = [t_in, t_f]
    if has_bias:
        # A single bias scale when the filter has one: TFLite only fills the per-tensor
        # `params.scale` (checked by the legacy uint8 path) from single-scale quantisation.
        ins.append(m.tensor((oc,), "i32", bias_s, [0] * len(bias_s), bias, qdim=0))
    else:
        ins.append(-1)
    t_out = m.tensor((g["n"], g["oh"], g["ow"], oc), dtype, out_s, out_zp)
    if depthwise:
        o = S.DepthwiseConv2DOptionsT()
        o.depthMultiplier = dm
        opcode, ot = S.BuiltinOperator.DEPTHWISE_CONV_2D, S.BuiltinOptions.DepthwiseConv2DOptions
    else:
        o = S.Conv2DOptionsT()
        opcode, ot = S.BuiltinOperator.CONV_2D, S.BuiltinOptions.Conv2DOptions
    o.padding = PADS[g["pad"]]
    o.strideH, o.strideW = g["sh"], g["sw"]
    o.dilationHFactor, o.dilationWFactor = g["dh"], g["dw"]
    o.fusedActivationFunction = ACTS[act]
    x = rand_q(rng, dtype, (g["n"], g["h"], g["w"], ic))
    y = run(m.build(opcode, ot, o, ins, [t_out], [t_in]), [x])
    wr.case(f"{'depthwise_conv2d' if depthwise else 'conv2d'}_{dtype}_{idx}", {
        "op": "depthwise_conv2d" if depthwise else "conv2d", "dtype": dtype,
        "in_shape": [g["n"], g["h"], g["w"], ic], "filter_shape": list(fshape),
        "out_shape": [g["n"], g["oh"], g["ow"], oc],
        "stride": [g["sh"], g["sw"]], "dilation": [g["dh"], g["dw"]], "padding": g["pad"],
        "depth_multiplier": dm, "act": act,
        "in_scale": f32s(in_s), "in_zp": in_zp, "filter_scale": f32s(f_s), "filter_zp": f_zp,
        "out_scale": f32s(out_s), "out_zp": out_zp,
        "bias": bias.tolist() if has_bias else [], "filter": filt, "input": x, "expected": y,
    })


def gen_fc(rng, wr, dtype, idx):
    batches, inf, outf = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 10))
    act = rng.choice(list(ACTS))
    in_s, in_zp = rand_scale(rng, 0.005, 0.2), rand_zp(rng, dtype)
    per_channel = dtype == "i8" and rng.random() < 0.3
    if dtype == "i8":
        f_s = np.array([rand_scale(rng, 0.002, 0.05) for _ in range(outf if per_channel else 1)],
                       np.float32)
        f_zp = [0] * len(f_s)
        filt = rand_q(rng, "i8", (outf, inf), -127, 127)
    else:
        f_s = np.array([rand_scale(rng, 0.002, 0.05)], np.float32)
        f_zp = [int(rng.integers(80, 180))]
        filt = rand_q(rng, "u8", (outf, inf))
    typical = float(in_s) * float(np.mean(f_s)) * math.sqrt(inf) * 60.0 * 60.0
    out_s = np.float32(typical / 50.0 * rng.uniform(0.5, 2.0))
    out_zp = rand_zp(rng, dtype)
    bias = rng.integers(-3000, 3001, size=outf).astype(np.int32)
    bias_s = (in_s.astype(np.float64) * f_s.astype(np.float64)).astype(np.float32)
    m = Model()
    t_in = m.tensor((batches, inf), dtype, in_s, in_zp)
    t_f = m.tensor((outf, inf), dtype, f_s, f_zp, filt, qdim=0)
    t_b = m.tensor((outf,), "i32", bias_s, [0] * len(bias_s), bias)
    t_out = m.tensor((batches, outf), dtype, out_s, out_zp)
    o = S.FullyConnectedOptionsT()
    o.fusedActivationFunction = ACTS[act]
    x = rand_q(rng, dtype, (batches, inf))
    y = run(m.build(S.BuiltinOperator.FULLY_CONNECTED, S.BuiltinOptions.FullyConnectedOptions, o,
                    [t_in, t_f, t_b], [t_out], [t_in]), [x])
    wr.case(f"fully_connected_{dtype}_{idx}", {
        "op": "fully_connected", "dtype": dtype, "fc_shape": [batches, inf, outf], "act": act,
        "in_scale": f32s(in_s), "in_zp": in_zp, "filter_scale": f32s(f_s), "filter_zp": f_zp,
        "out_scale": f32s(out_s), "out_zp": out_zp, "bias": bias, "filter": filt,
        "input": x, "expected": y,
    })


def gen_pool(rng, wr, dtype, kind, idx):
    n, h, w, c = int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 12)), int(rng.integers(1, 6))
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = "same" if rng.random() < 0.5 else "valid"
    if pad == "valid":
        h, w = max(h, fh), max(w, fw)
    oh, ow = out_size(pad, h, fh, sh, 1), out_size(pad, w, fw, sw, 1)
    act = rng.choice(list(ACTS))
    s, zp = rand_scale(rng, 0.01, 0.1), rand_zp(rng, dtype)
    m = Model()
    t_in = m.tensor((n, h, w, c), dtype, s, zp)
    t_out = m.tensor((n, oh, ow, c), dtype, s, zp)
    o = S.Pool2DOptionsT()
    o.padding = PADS[pad]
    o.strideH, o.strideW, o.filterHeight, o.filterWidth = sh, sw, fh, fw
    o.fusedActivationFunction = ACTS[act]
    opcode = S.BuiltinOperator.MAX_POOL_2D if kind == "max_pool2d" else S.BuiltinOperator.AVERAGE_POOL_2D
    x = rand_q(rng, dtype, (n, h, w, c))
    y = run(m.build(opcode, S.BuiltinOptions.Pool2DOptions, o, [t_in], [t_out], [t_in]), [x])
    wr.case(f"{kind}_{dtype}_{idx}", {
        "op": kind, "dtype": dtype, "in_shape": [n, h, w, c], "out_shape": [n, oh, ow, c],
        "filter": [fh, fw], "stride": [sh, sw], "padding": pad, "act": act,
        "in_scale": f32s(s), "in_zp": zp, "input": x, "expected": y,
    })


def gen_mean(rng, wr, dtype, idx):
    n, h, w, c = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 40)), int(rng.integers(1, 9))
    keep = bool(rng.random() < 0.5)
    same = rng.random() < 0.3
    in_s, in_zp = rand_scale(rng, 0.01, 0.1), rand_zp(rng, dtype)
    if same:
        out_s, out_zp = in_s, in_zp
    else:
        out_s, out_zp = np.float32(in_s * rng.uniform(0.3, 1.5)), rand_zp(rng, dtype)
    m = Model()
    t_in = m.tensor((n, h, w, c), dtype, in_s, in_zp)
    t_ax = m.tensor((2,), "i32", data=np.array([1, 2], np.int32))
    t_out = m.tensor((n, 1, 1, c) if keep else (n, c), dtype, out_s, out_zp)
    o = S.ReducerOptionsT()
    o.keepDims = keep
    x = rand_q(rng, dtype, (n, h, w, c))
    y = run(m.build(S.BuiltinOperator.MEAN, S.BuiltinOptions.ReducerOptions, o, [t_in, t_ax], [t_out], [t_in]), [x])
    wr.case(f"mean_{dtype}_{idx}", {
        "op": "mean", "dtype": dtype, "in_shape": [n, h, w, c], "keep_dims": int(keep),
        "in_scale": f32s(in_s), "in_zp": in_zp, "out_scale": f32s(out_s), "out_zp": out_zp,
        "input": x, "expected": y,
    })


def gen_concat(rng, wr, dtype, idx):
    rank_shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 5))]
    axis = int(rng.integers(0, 4))
    k = int(rng.integers(2, 4))
    out_s, out_zp = rand_scale(rng, 0.01, 0.1), rand_zp(rng, dtype)
    m = Model()
    ins, xs, scales, zps, axis_lens = [], [], [], [], []
    for _ in range(k):
        shp = list(rank_shape)
        shp[axis] = int(rng.integers(1, 4))
        if dtype == "u8" and rng.random() < 0.7:
            s, zp = rand_scale(rng, 0.01, 0.1), rand_zp(rng, dtype)
        else:
            s, zp = out_s, out_zp
        ins.append(m.tensor(shp, dtype, s, zp))
        xs.append(rand_q(rng, dtype, shp))
        scales.append(float(s)); zps.append(zp); axis_lens.append(shp[axis])
    oshape = list(rank_shape)
    oshape[axis] = sum(axis_lens)
    t_out = m.tensor(oshape, dtype, out_s, out_zp)
    o = S.ConcatenationOptionsT()
    o.axis = axis
    y = run(m.build(S.BuiltinOperator.CONCATENATION, S.BuiltinOptions.ConcatenationOptions, o, ins, [t_out], ins), xs)
    wr.case(f"concatenation_{dtype}_{idx}", {
        "op": "concatenation", "dtype": dtype, "base_shape": rank_shape, "axis": axis,
        "axis_lens": axis_lens, "in_scale": f32s(scales), "in_zp": zps,
        "out_scale": f32s(out_s), "out_zp": out_zp,
        "input": np.concatenate([x.ravel() for x in xs]), "expected": y,
    })


def gen_add(rng, wr, dtype, idx):
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6))]
    s1 = list(shape)
    s2 = list(shape)
    if rng.random() < 0.4:
        for d in range(4):
            if rng.random() < 0.4:
                (s1 if rng.random() < 0.5 else s2)[d] = 1
    act = rng.choice(list(ACTS))
    q = [(rand_scale(rng, 0.01, 0.1), rand_zp(rng, dtype)) for _ in range(3)]
    m = Model()
    a = m.tensor(s1, dtype, *q[0])
    b = m.tensor(s2, dtype, *q[1])
    t_out = m.tensor(shape, dtype, *q[2])
    o = S.AddOptionsT()
    o.fusedActivationFunction = ACTS[act]
    xa, xb = rand_q(rng, dtype, s1), rand_q(rng, dtype, s2)
    y = run(m.build(S.BuiltinOperator.ADD, S.BuiltinOptions.AddOptions, o, [a, b], [t_out], [a, b]), [xa, xb])
    wr.case(f"add_{dtype}_{idx}", {
        "op": "add", "dtype": dtype, "shape1": s1, "shape2": s2, "out_shape": shape, "act": act,
        "in_scale": f32s([q[0][0], q[1][0]]), "in_zp": [q[0][1], q[1][1]],
        "out_scale": f32s(q[2][0]), "out_zp": q[2][1],
        "input": np.concatenate([xa.ravel(), xb.ravel()]), "expected": y,
    })


def gen_pad(rng, wr, dtype, idx):
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 4))]
    pads = rng.integers(0, 3, size=(4, 2)).astype(np.int32)
    s, zp = rand_scale(rng, 0.01, 0.1), rand_zp(rng, dtype)
    oshape = [shape[d] + int(pads[d, 0]) + int(pads[d, 1]) for d in range(4)]
    m = Model()
    t_in = m.tensor(shape, dtype, s, zp)
    t_p = m.tensor((4, 2), "i32", data=pads)
    t_out = m.tensor(oshape, dtype, s, zp)
    x = rand_q(rng, dtype, shape)
    y = run(m.build(S.BuiltinOperator.PAD, S.BuiltinOptions.PadOptions, S.PadOptionsT(), [t_in, t_p], [t_out], [t_in]), [x])
    wr.case(f"pad_{dtype}_{idx}", {
        "op": "pad", "dtype": dtype, "in_shape": shape, "out_shape": oshape,
        "pads": pads, "in_zp": zp, "input": x, "expected": y,
    })


def gen_softmax(rng, wr, dtype, idx):
    rows, depth = int(rng.integers(1, 4)), int(rng.integers(1, 20))
    in_s, in_zp = rand_scale(rng, 0.01, 0.5), rand_zp(rng, dtype)
    beta = float(np.float32(rng.choice([1.0, 1.0, 0.5, 2.0])))
    out_s = np.float32(1.0 / 256.0)
    out_zp = -128 if dtype == "i8" else 0
    m = Model()
    t_in = m.tensor((rows, depth), dtype, in_s, in_zp)
    t_out = m.tensor((rows, depth), dtype, out_s, out_zp)
    o = S.SoftmaxOptionsT()
    o.beta = beta
    x = rand_q(rng, dtype, (rows, depth))
    y = run(m.build(S.BuiltinOperator.SOFTMAX, S.BuiltinOptions.SoftmaxOptions, o, [t_in], [t_out], [t_in]), [x])
    wr.case(f"softmax_{dtype}_{idx}", {
        "op": "softmax", "dtype": dtype, "rows": rows, "depth": depth, "beta": [beta],
        "in_scale": f32s(in_s), "in_zp": in_zp, "out_scale": f32s(out_s), "out_zp": out_zp,
        "input": x, "expected": y,
    })


def gen_quantize(rng, wr, src, dst, idx):
    n = int(rng.integers(1, 40))
    out_s, out_zp = rand_scale(rng, 0.01, 0.2), rand_zp(rng, dst)
    m = Model()
    if src == "f32":
        t_in = m.tensor((n,), "f32")
        x = (rng.standard_normal(n) * 3.0).astype(np.float32)
        # Exact ties of x/scale are where rounding modes differ: include some.
        x[: n // 4] = ((rng.integers(-100, 100, n // 4) + 0.5) * out_s).astype(np.float32)
        in_s, in_zp = 0.0, 0
    else:
        in_s, in_zp = rand_scale(rng, 0.01, 0.2), rand_zp(rng, src)
        if rng.random() < 0.3:
            out_s = in_s
        t_in = m.tensor((n,), src, in_s, in_zp)
        x = rand_q(rng, src, (n,))
    t_out = m.tensor((n,), dst, out_s, out_zp)
    y = run(m.build(S.BuiltinOperator.QUANTIZE, None, None, [t_in], [t_out], [t_in]), [x])
    wr.case(f"quantize_{src}_{dst}_{idx}", {
        "op": "quantize", "dtype": src, "out_dtype": dst,
        "in_scale": f32s(in_s), "in_zp": in_zp, "out_scale": f32s(out_s), "out_zp": out_zp,
        "input": [repr(float(v)) for v in x] if src == "f32" else x, "expected": y,
    })


def gen_dequantize(rng, wr, dtype, idx):
    n = int(rng.integers(1, 40))
    s, zp = rand_scale(rng, 0.001, 0.5), rand_zp(rng, dtype)
    m = Model()
    t_in = m.tensor((n,), dtype, s, zp)
    t_out = m.tensor((n,), "f32")
    x = rand_q(rng, dtype, (n,))
    y = run(m.build(S.BuiltinOperator.DEQUANTIZE, None, None, [t_in], [t_out], [t_in]), [x])
    wr.case(f"dequantize_{dtype}_{idx}", {
        "op": "dequantize", "dtype": dtype, "in_scale": f32s(s), "in_zp": zp,
        "input": x, "expected": y, "expected_fmt": lambda a: [repr(float(v)) for v in a],
    })


def gen_float(rng, wr, op, idx):
    """Float32 single-op models (compared with a tolerance: summation order may differ)."""
    m = Model()
    act = rng.choice(list(ACTS))
    fields = {"op": op, "dtype": "f32"}
    if op in ("conv2d", "depthwise_conv2d"):
        g = geometry(rng, one_d=rng.random() < 0.4)
        ic = int(rng.integers(1, 6))
        dm = int(rng.integers(1, 3)) if op == "depthwise_conv2d" else 1
        oc = ic * dm if op == "depthwise_conv2d" else int(rng.integers(1, 6))
        fshape = (1, g["kh"], g["kw"], oc) if op == "depthwise_conv2d" else (oc, g["kh"], g["kw"], ic)
        filt = rng.standard_normal(fshape).astype(np.float32)
        bias = rng.standard_normal(oc).astype(np.float32)
        t_in = m.tensor((g["n"], g["h"], g["w"], ic), "f32")
        ins = [t_in, m.tensor(fshape, "f32", data=filt), m.tensor((oc,), "f32", data=bias)]
        t_out = m.tensor((g["n"], g["oh"], g["ow"], oc), "f32")
        if op == "depthwise_conv2d":
            o = S.DepthwiseConv2DOptionsT()
            o.depthMultiplier = dm
            code, ot = S.BuiltinOperator.DEPTHWISE_CONV_2D, S.BuiltinOptions.DepthwiseConv2DOptions
        else:
            o = S.Conv2DOptionsT()
            code, ot = S.BuiltinOperator.CONV_2D, S.BuiltinOptions.Conv2DOptions
        o.padding = PADS[g["pad"]]
        o.strideH, o.strideW = g["sh"], g["sw"]
        o.dilationHFactor, o.dilationWFactor = g["dh"], g["dw"]
        o.fusedActivationFunction = ACTS[act]
        x = rng.standard_normal((g["n"], g["h"], g["w"], ic)).astype(np.float32)
        y = run(m.build(code, ot, o, ins, [t_out], [t_in]), [x])
        fields.update({"in_shape": [g["n"], g["h"], g["w"], ic], "filter_shape": list(fshape),
                       "out_shape": [g["n"], g["oh"], g["ow"], oc], "stride": [g["sh"], g["sw"]],
                       "dilation": [g["dh"], g["dw"]], "padding": g["pad"], "depth_multiplier": dm,
                       "act": act, "bias_f32": bias, "filter_f32": filt})
    elif op == "fully_connected":
        b, inf, outf = int(rng.integers(1, 4)), int(rng.integers(1, 30)), int(rng.integers(1, 8))
        w = rng.standard_normal((outf, inf)).astype(np.float32)
        bias = rng.standard_normal(outf).astype(np.float32)
        t_in = m.tensor((b, inf), "f32")
        ins = [t_in, m.tensor((outf, inf), "f32", data=w), m.tensor((outf,), "f32", data=bias)]
        t_out = m.tensor((b, outf), "f32")
        o = S.FullyConnectedOptionsT()
        o.fusedActivationFunction = ACTS[act]
        x = rng.standard_normal((b, inf)).astype(np.float32)
        y = run(m.build(S.BuiltinOperator.FULLY_CONNECTED, S.BuiltinOptions.FullyConnectedOptions, o, ins, [t_out], [t_in]), [x])
        fields.update({"fc_shape": [b, inf, outf], "act": act, "bias_f32": bias, "filter_f32": w})
    elif op in ("max_pool2d", "average_pool2d"):
        n, h, w, c = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 10)), int(rng.integers(1, 5))
        fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        pad = "same" if rng.random() < 0.5 else "valid"
        if pad == "valid":
            h, w = max(h, fh), max(w, fw)
        oh, ow = out_size(pad, h, fh, sh, 1), out_size(pad, w, fw, sw, 1)
        t_in = m.tensor((n, h, w, c), "f32")
        t_out = m.tensor((n, oh, ow, c), "f32")
        o = S.Pool2DOptionsT()
        o.padding = PADS[pad]
        o.strideH, o.strideW, o.filterHeight, o.filterWidth = sh, sw, fh, fw
        o.fusedActivationFunction = ACTS[act]
        code = S.BuiltinOperator.MAX_POOL_2D if op == "max_pool2d" else S.BuiltinOperator.AVERAGE_POOL_2D
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        y = run(m.build(code, S.BuiltinOptions.Pool2DOptions, o, [t_in], [t_out], [t_in]), [x])
        fields.update({"in_shape": [n, h, w, c], "out_shape": [n, oh, ow, c], "filter": [fh, fw],
                       "stride": [sh, sw], "padding": pad, "act": act})
    elif op == "mean":
        n, h, w, c = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 20)), int(rng.integers(1, 6))
        keep = bool(rng.random() < 0.5)
        t_in = m.tensor((n, h, w, c), "f32")
        t_ax = m.tensor((2,), "i32", data=np.array([1, 2], np.int32))
        t_out = m.tensor((n, 1, 1, c) if keep else (n, c), "f32")
        o = S.ReducerOptionsT()
        o.keepDims = keep
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        y = run(m.build(S.BuiltinOperator.MEAN, S.BuiltinOptions.ReducerOptions, o, [t_in, t_ax], [t_out], [t_in]), [x])
        fields.update({"in_shape": [n, h, w, c], "keep_dims": int(keep)})
    elif op == "softmax":
        rows, depth = int(rng.integers(1, 4)), int(rng.integers(1, 12))
        beta = float(np.float32(rng.choice([1.0, 0.5, 2.0])))
        t_in = m.tensor((rows, depth), "f32")
        t_out = m.tensor((rows, depth), "f32")
        o = S.SoftmaxOptionsT()
        o.beta = beta
        x = (rng.standard_normal((rows, depth)) * 3).astype(np.float32)
        y = run(m.build(S.BuiltinOperator.SOFTMAX, S.BuiltinOptions.SoftmaxOptions, o, [t_in], [t_out], [t_in]), [x])
        fields.update({"rows": rows, "depth": depth, "beta": [beta]})
    elif op == "add":
        shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 5))]
        s2 = [d if rng.random() < 0.6 else 1 for d in shape]
        a, b = m.tensor(shape, "f32"), m.tensor(s2, "f32")
        t_out = m.tensor(shape, "f32")
        o = S.AddOptionsT()
        o.fusedActivationFunction = ACTS[act]
        xa = rng.standard_normal(shape).astype(np.float32)
        xb = rng.standard_normal(s2).astype(np.float32)
        y = run(m.build(S.BuiltinOperator.ADD, S.BuiltinOptions.AddOptions, o, [a, b], [t_out], [a, b]), [xa, xb])
        x = np.concatenate([xa.ravel(), xb.ravel()])
        fields.update({"shape1": shape, "shape2": s2, "out_shape": shape, "act": act})
    fields["input"] = [repr(float(v)) for v in np.asarray(x).ravel()]
    fields["expected"] = y
    fields["expected_fmt"] = lambda a: [repr(float(v)) for v in np.asarray(a).ravel()]
    for k in ("bias_f32", "filter_f32"):
        if k in fields:
            fields[k] = [repr(float(v)) for v in np.asarray(fields[k]).ravel()]
    wr.case(f"{op}_f32_{idx}", fields)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/kinglet-micro/tests/fixtures/tflite_goldens.txt")
    ap.add_argument("--seed", type=int, default=20261121)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    wr = Writer()
    for i in range(70):
        gen_conv(rng, wr, "i8", False, i)
    for i in range(50):
        gen_conv(rng, wr, "u8", False, i)
    for i in range(40):
        gen_conv(rng, wr, "i8", True, i)
    for i in range(30):
        gen_conv(rng, wr, "u8", True, i)
    for i in range(40):
        gen_fc(rng, wr, "i8", i)
    for i in range(30):
        gen_fc(rng, wr, "u8", i)
    for kind in ("max_pool2d", "average_pool2d"):
        for dt in ("i8", "u8"):
            for i in range(20):
                gen_pool(rng, wr, dt, kind, i)
    for i in range(30):
        gen_mean(rng, wr, "i8", i)
    for i in range(20):
        gen_mean(rng, wr, "u8", i)
    for i in range(20):
        gen_concat(rng, wr, "u8", i)
    for i in range(10):
        gen_concat(rng, wr, "i8", i)
    for i in range(30):
        gen_add(rng, wr, "i8", i)
    for i in range(20):
        gen_add(rng, wr, "u8", i)
    for dt in ("i8", "u8"):
        for i in range(10):
            gen_pad(rng, wr, dt, i)
    for i in range(25):
        gen_softmax(rng, wr, "i8", i)
    for i in range(15):
        gen_softmax(rng, wr, "u8", i)
    for src, dst, k in (("f32", "i8", 15), ("f32", "u8", 10), ("i8", "u8", 10), ("u8", "i8", 10), ("i8", "i8", 10)):
        for i in range(k):
            gen_quantize(rng, wr, src, dst, i)
    for dt in ("i8", "u8"):
        for i in range(10):
            gen_dequantize(rng, wr, dt, i)
    for op in ("conv2d", "depthwise_conv2d", "fully_connected", "max_pool2d", "average_pool2d",
               "mean", "softmax", "add"):
        for i in range(12):
            gen_float(rng, wr, op, i)
    header = [
        "# kinglet-micro per-kernel goldens from the TFLite interpreter. Generated by",
        "# scripts/gen_micro_goldens.py; do not edit.",
        f"# ai-edge-litert {getattr(ai_edge_litert, '__version__', 'unknown')}, numpy {np.__version__}, seed {args.seed}, cases {wr.count}",
    ]
    with open(args.out + ".tmp", "w") as f:
        f.write("\n".join(header + wr.lines) + "\n")
    import os
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {wr.count} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
