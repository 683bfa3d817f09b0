#!/usr/bin/env python3
"""Generate the random-model differential golden bundle for kinglet.

Builds >= 1,000 small Keras models (single-op and small multi-op), converts them with the
TensorFlow Lite converter (full-integer int8 with a random representative dataset, plus some
float32 and float-I/O int8 models), runs each in the TFLite interpreter (ai_edge_litert,
reference kernels) on deterministic inputs and stores models, inputs and outputs in one
gzip-compressed binary bundle that the Rust test
`crates/kinglet-compress/tests/random_models.rs` replays through kinglet-graph without Python.

Everything is seeded: the same TensorFlow / ai-edge-litert versions produce the same bundle.

Usage:
    python3 scripts/diff_generate.py                      # full run (~10 min), resumable
    python3 scripts/diff_generate.py --only conv2d --limit 5 --out /tmp/x.kgd.gz
Cases are cached one file each under --cache, so an interrupted run resumes; pass --fresh to
rebuild from scratch. The work runs in a child process that the script restarts when a draw
fails: a model the converter rejects, lowers to ops outside the suite, or that aborts the
interpreter is redrawn with the next seed (the attempt number is stored in the case info).
Numerics are deterministic; tensor names inside the .tflite files may differ between runs.

Bundle format (all integers little-endian), after gunzip:
    magic            8 bytes  b"KLTDIFF1"
    header_len       u32      then header_len bytes of UTF-8 JSON: generator, versions, counts
    n_cases          u32
    per case:
        name_len u32, name (UTF-8, "<family>/<index>")
        info_len u32, info (UTF-8 JSON: family, builder parameters, TFLite op names)
        model_len u32, model bytes (.tflite flatbuffer)
        n_samples u8
        per sample:
            n_inputs u8, then n_inputs tensors   (subgraph input order)
            n_outputs u8, then n_outputs tensors (subgraph output order)
    tensor: dtype u8 (0 f32, 1 i8, 2 u8, 3 i32, 4 i16), rank u8, rank x u32 dims,
            then prod(dims) x element-size raw little-endian bytes.
Expected outputs come from ai_edge_litert's BUILTIN_REF kernels (the reference kernels that
TFLite Micro mirrors); the header records how many cases the optimised builtin kernels
disagree on.
"""

import argparse
import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

BASE_SEED = 20261121
RESTART = 3  # worker exit code: a case failed and was marked, run again
DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "crates",
    "kinglet-compress",
    "tests",
    "goldens",
    "random_models.kgd.gz",
)

ALLOWED_OPS = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "MEAN",
    "CONCATENATION",
    "ADD",
    "RESHAPE",
    "PAD",
    "SOFTMAX",
    "QUANTIZE",
    "DEQUANTIZE",
}

# (family, number of int8 cases). Float32 cases are drawn from the single-op families.
FAMILIES = [
    ("conv2d", 140),
    ("conv1d", 70),
    ("depthwise", 130),
    ("fully_connected", 90),
    ("max_pool", 60),
    ("avg_pool", 60),
    ("mean", 45),
    ("concat", 55),
    ("add", 55),
    ("reshape", 25),
    ("pad", 35),
    ("softmax", 45),
    ("float_io", 50),
    ("multi", 160),
    ("float32", 110),
    ("requantize", 25),
]

ACTIVATIONS = [None, "relu", "relu6"]


def case_seed(family, index):
    return (BASE_SEED + zlib.crc32(family.encode()) * 7919 + index) % (2**32)


# ----------------------------------------------------------------------------------------
# Random specs


class Dist:
    """The float distribution of one model input: drives both the representative dataset
    and the in-distribution test sample, so zero points land all over [-128, 127]."""

    def __init__(self, rng):
        self.kind = str(rng.choice(["normal", "uniform", "positive"]))
        self.center = float(rng.uniform(-1.5, 1.5))
        self.spread = float(np.exp(rng.uniform(-2.5, 1.5)))

    def draw(self, rng, shape, widen=1.0):
        s = self.spread * widen
        if self.kind == "normal":
            x = rng.normal(self.center, s, size=shape)
        elif self.kind == "uniform":
            x = rng.uniform(self.center - s, self.center + s, size=shape)
        else:
            x = rng.uniform(0.0, 2.0 * s, size=shape)
        return x.astype(np.float32)

    def info(self):
        return {"kind": self.kind, "center": round(self.center, 4), "spread": round(self.spread, 4)}


def pick(rng, seq):
    return seq[int(rng.integers(0, len(seq)))]


def act_layer(L, act):
    if act == "relu":
        return L.ReLU()
    if act == "relu6":
        return L.ReLU(max_value=6.0)
    return None


def spatial(rng, lo=3, hi=12, one_d=False):
    if one_d:
        return 1, int(rng.integers(lo + 2, 3 * hi))
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def conv_geometry(rng, h, w, one_d=False, allow_dilation=True):
    """Kernel, stride, dilation and padding that Keras accepts for an h x w input."""
    for _ in range(100):
        kh = 1 if one_d else int(rng.integers(1, 5))
        kw = int(rng.integers(1, 6 if one_d else 5))
        stride = (1, int(rng.integers(1, 4))) if one_d else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        if rng.random() < 0.35:
            stride = (1, 1) if one_d else (int(rng.integers(1, 3)),) * 2
        dil = (1, 1)
        if allow_dilation and stride == (1, 1) and rng.random() < 0.35:
            dil = (1, int(rng.integers(2, 4))) if one_d else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = pick(rng, ["same", "valid"])
        eff_h = (kh - 1) * dil[0] + 1
        eff_w = (kw - 1) * dil[1] + 1
        if padding == "valid" and (eff_h > h or eff_w > w):
            continue
        return {"kernel": (kh, kw), "strides": stride, "dilation": dil, "padding": padding}
    return {"kernel": (1, 1), "strides": (1, 1), "dilation": (1, 1), "padding": "same"}


# ----------------------------------------------------------------------------------------
# Weight initialisation: random magnitudes per output channel so per-channel scales differ.


def set_random_weights(model, rng):
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for i, w in enumerate(ws):
            if i == 0:
                base = float(np.exp(rng.uniform(-3.0, 0.5)))
                per_out = np.exp(rng.uniform(-1.5, 1.5, size=w.shape[-1])).astype(np.float32)
                if rng.random() < 0.08 and w.shape[-1] > 1:
                    per_out[int(rng.integers(0, w.shape[-1]))] = 0.0  # an all-zero channel
                v = rng.normal(0.0, base, size=w.shape).astype(np.float32) * per_out
            else:
                v = rng.normal(0.0, float(np.exp(rng.uniform(-3.0, 0.0))), size=w.shape).astype(np.float32)
            new.append(v)
        layer.set_weights(new)


# ----------------------------------------------------------------------------------------
# Model builders: each returns (inputs: list of (name, shape, Dist), output tensor, info)


def build_conv(keras, rng, one_d):
    L = keras.layers
    h, w = spatial(rng, 3, 12, one_d)
    cin = int(rng.integers(1, 9))
    cout = int(rng.integers(1, 13))
    g = conv_geometry(rng, h, w, one_d)
    act = pick(rng, ACTIVATIONS)
    use_bias = bool(rng.random() < 0.85)
    info = {"h": h, "w": w, "cin": cin, "cout": cout, **g, "act": act, "bias": use_bias}
    if one_d and rng.random() < 0.6:
        # A real Keras Conv1D: the converter emits RESHAPE, CONV_2D (1 x N), RESHAPE.
        inp = keras.Input((w, cin), batch_size=1, name="in0")
        x = L.Conv1D(cout, g["kernel"][1], strides=g["strides"][1], dilation_rate=g["dilation"][1],
                     padding=g["padding"], use_bias=use_bias)(inp)
        info["keras"] = "Conv1D"
        shape = (1, w, cin)
    else:
        inp = keras.Input((h, w, cin), batch_size=1, name="in0")
        x = L.Conv2D(cout, g["kernel"], strides=g["strides"], dilation_rate=g["dilation"],
                     padding=g["padding"], use_bias=use_bias)(inp)
        shape = (1, h, w, cin)
    a = act_layer(L, act)
    if a is not None:
        x = a(x)
    return [("in0", shape, Dist(rng))], [inp], x, info


def build_depthwise(keras, rng):
    L = keras.layers
    one_d = rng.random() < 0.25
    h, w = spatial(rng, 3, 12, one_d)
    cin = int(rng.integers(1, 9))
    mult = int(pick(rng, [1, 1, 1, 2, 3]))
    g = conv_geometry(rng, h, w, one_d)
    act = pick(rng, ACTIVATIONS)
    use_bias = bool(rng.random() < 0.85)
    inp = keras.Input((h, w, cin), batch_size=1, name="in0")
    x = L.DepthwiseConv2D(g["kernel"], strides=g["strides"], dilation_rate=g["dilation"],
                          padding=g["padding"], depth_multiplier=mult, use_bias=use_bias)(inp)
    a = act_layer(L, act)
    if a is not None:
        x = a(x)
    info = {"h": h, "w": w, "cin": cin, "mult": mult, **g, "act": act, "bias": use_bias}
    return [("in0", (1, h, w, cin), Dist(rng))], [inp], x, info


def build_fc(keras, rng):
    L = keras.layers
    n = int(rng.integers(1, 65))
    units = int(rng.integers(1, 33))
    act = pick(rng, ACTIVATIONS)
    use_bias = bool(rng.random() < 0.85)
    three_d = rng.random() < 0.2
    if three_d:
        t = int(rng.integers(2, 6))
        shape = (1, t, n)
        inp = keras.Input((t, n), batch_size=1, name="in0")
    else:
        shape = (1, n)
        inp = keras.Input((n,), batch_size=1, name="in0")
    x = L.Dense(units, use_bias=use_bias)(inp)
    a = act_layer(L, act)
    if a is not None:
        x = a(x)
    info = {"shape": list(shape), "units": units, "act": act, "bias": use_bias}
    return [("in0", shape, Dist(rng))], [inp], x, info


def build_pool(keras, rng, kind):
    L = keras.layers
    one_d = rng.random() < 0.3
    h, w = spatial(rng, 2, 12, one_d)
    c = int(rng.integers(1, 9))
    for _ in range(100):
        ph = 1 if one_d else int(rng.integers(1, 5))
        pw = int(rng.integers(1, 5))
        sh = 1 if one_d else int(rng.integers(1, 4))
        sw = int(rng.integers(1, 4))
        padding = pick(rng, ["same", "valid"])
        if padding == "valid" and (ph > h or pw > w):
            continue
        break
    inp = keras.Input((h, w, c), batch_size=1, name="in0")
    layer = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    x = layer((ph, pw), strides=(sh, sw), padding=padding)(inp)
    info = {"h": h, "w": w, "c": c, "pool": (ph, pw), "strides": (sh, sw), "padding": padding}
    return [("in0", (1, h, w, c), Dist(rng))], [inp], x, info


def build_mean(keras, rng):
    L = keras.layers
    keep = bool(rng.random() < 0.4)
    if rng.random() < 0.5:
        h, w = spatial(rng, 1, 10)
        c = int(rng.integers(1, 17))
        shape = (1, h, w, c)
        inp = keras.Input(shape[1:], batch_size=1, name="in0")
        x = L.GlobalAveragePooling2D(keepdims=keep)(inp)
    else:
        t = int(rng.integers(2, 40))
        c = int(rng.integers(1, 17))
        shape = (1, t, c)
        inp = keras.Input(shape[1:], batch_size=1, name="in0")
        x = L.GlobalAveragePooling1D(keepdims=keep)(inp)
    return [("in0", shape, Dist(rng))], [inp], x, {"shape": list(shape), "keepdims": keep}


def build_concat(keras, rng):
    L = keras.layers
    rank = int(rng.integers(2, 5))
    n_in = int(rng.integers(2, 4))
    base = [1] + [int(rng.integers(1, 7)) for _ in range(rank - 1)]
    axis = int(rng.integers(1, rank))
    shapes = []
    for _ in range(n_in):
        s = list(base)
        s[axis] = int(rng.integers(1, 7))
        shapes.append(tuple(s))
    inputs = [keras.Input(s[1:], batch_size=1, name=f"in{i}") for i, s in enumerate(shapes)]
    x = L.Concatenate(axis=axis)(inputs)
    specs = [(f"in{i}", s, Dist(rng)) for i, s in enumerate(shapes)]
    return specs, inputs, x, {"shapes": [list(s) for s in shapes], "axis": axis}


def build_add(keras, rng):
    L = keras.layers
    rank = int(rng.integers(2, 5))
    shape = [1] + [int(rng.integers(1, 8)) for _ in range(rank - 1)]
    other = list(shape)
    broadcast = rank > 2 and rng.random() < 0.25
    if broadcast:
        for d in range(1, rank - 1):
            other[d] = 1
    a = keras.Input(tuple(shape[1:]), batch_size=1, name="in0")
    b = keras.Input(tuple(other[1:]), batch_size=1, name="in1")
    x = L.Add()([a, b])
    act = pick(rng, ACTIVATIONS)
    al = act_layer(L, act)
    if al is not None:
        x = al(x)
    specs = [("in0", tuple(shape), Dist(rng)), ("in1", tuple(other), Dist(rng))]
    return specs, [a, b], x, {"shape": shape, "other": other, "act": act}


def build_reshape(keras, rng):
    L = keras.layers
    rank = int(rng.integers(2, 5))
    shape = [1] + [int(rng.integers(1, 7)) for _ in range(rank - 1)]
    total = int(np.prod(shape))
    # split the element count into a random new shape of rank 1..3 (after batch)
    dims = []
    rem = total
    for _ in range(int(rng.integers(0, 3))):
        divs = [d for d in range(1, rem + 1) if rem % d == 0]
        d = int(pick(rng, divs))
        dims.append(d)
        rem //= d
    dims.append(rem)
    inp = keras.Input(tuple(shape[1:]), batch_size=1, name="in0")
    x = L.Reshape(tuple(dims))(inp)
    return [("in0", tuple(shape), Dist(rng))], [inp], x, {"shape": shape, "target": dims}


def build_pad(keras, rng):
    L = keras.layers
    if rng.random() < 0.3:
        t = int(rng.integers(2, 20))
        c = int(rng.integers(1, 9))
        p = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        if p == (0, 0):
            p = (1, 0)
        inp = keras.Input((t, c), batch_size=1, name="in0")
        x = L.ZeroPadding1D(p)(inp)
        return [("in0", (1, t, c), Dist(rng))], [inp], x, {"shape": [1, t, c], "pad": p}
    h, w = spatial(rng, 1, 9)
    c = int(rng.integers(1, 9))
    p = ((int(rng.integers(0, 3)), int(rng.integers(0, 3))), (int(rng.integers(0, 3)), int(rng.integers(0, 3))))
    if p == ((0, 0), (0, 0)):
        p = ((0, 1), (1, 0))
    inp = keras.Input((h, w, c), batch_size=1, name="in0")
    x = L.ZeroPadding2D(p)(inp)
    return [("in0", (1, h, w, c), Dist(rng))], [inp], x, {"shape": [1, h, w, c], "pad": p}


def build_softmax(keras, rng):
    L = keras.layers
    if rng.random() < 0.6:
        shape = (1, int(rng.integers(2, 40)))
    else:
        shape = (1, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(2, 12)))
    inp = keras.Input(shape[1:], batch_size=1, name="in0")
    x = L.Softmax()(inp)
    d = Dist(rng)
    d.spread *= 3.0  # logits: wider than activations
    return [("in0", shape, d)], [inp], x, {"shape": list(shape)}


def build_multi(keras, rng):
    """A small random network: HAR-like 1D stacks, 2D stacks, residual adds, concat branches."""
    L = keras.layers
    kind = pick(rng, ["har", "har", "cnn2d", "residual", "branches", "mlp"])
    info = {"kind": kind}
    if kind == "har":
        t = int(pick(rng, [16, 24, 32, 48, 64]))
        c = int(rng.integers(1, 10))
        inp = keras.Input((t, c), batch_size=1, name="in0")
        x = L.Reshape((1, t, c))(inp)
        ch = c
        for _ in range(int(rng.integers(1, 4))):
            ch = int(rng.integers(2, 13))
            x = L.Conv2D(ch, (1, int(rng.integers(2, 6))), padding=pick(rng, ["same", "valid"]),
                         activation=pick(rng, ACTIVATIONS))(x)
            if x.shape[2] >= 4:
                x = L.MaxPooling2D((1, 2))(x)
        if rng.random() < 0.5:
            x = L.Flatten()(x)
        else:
            x = L.GlobalAveragePooling2D()(x)
        x = L.Dense(int(rng.integers(2, 8)))(x)
        if rng.random() < 0.7:
            x = L.Softmax()(x)
        return [("in0", (1, t, c), Dist(rng))], [inp], x, info
    if kind == "cnn2d":
        h, w = spatial(rng, 6, 14)
        c = int(rng.integers(1, 5))
        inp = keras.Input((h, w, c), batch_size=1, name="in0")
        x = inp
        if rng.random() < 0.4:
            x = L.ZeroPadding2D(1)(x)
        x = L.Conv2D(int(rng.integers(2, 9)), 3, strides=int(rng.integers(1, 3)), padding="same",
                     activation=pick(rng, ACTIVATIONS))(x)
        x = L.DepthwiseConv2D(3, padding="same", activation=pick(rng, ACTIVATIONS))(x)
        x = (L.AveragePooling2D if rng.random() < 0.5 else L.MaxPooling2D)(2, padding="same")(x)
        x = L.Conv2D(int(rng.integers(2, 9)), 1, activation=pick(rng, ACTIVATIONS))(x)
        x = L.GlobalAveragePooling2D()(x)
        x = L.Dense(int(rng.integers(2, 8)))(x)
        if rng.random() < 0.6:
            x = L.Softmax()(x)
        return [("in0", (1, h, w, c), Dist(rng))], [inp], x, info
    if kind == "residual":
        h, w = spatial(rng, 3, 10)
        c = int(rng.integers(1, 9))
        inp = keras.Input((h, w, c), batch_size=1, name="in0")
        y = L.Conv2D(c, 3, padding="same", activation=pick(rng, ACTIVATIONS))(inp)
        y = L.DepthwiseConv2D(3, padding="same")(y)
        x = L.Add()([inp, y])
        if rng.random() < 0.5:
            x = L.ReLU()(x)
        if rng.random() < 0.5:
            x = L.GlobalAveragePooling2D()(x)
        return [("in0", (1, h, w, c), Dist(rng))], [inp], x, info
    if kind == "branches":
        t = int(pick(rng, [8, 12, 16, 32]))
        n_in = int(rng.integers(1, 4))
        inputs, specs, outs = [], [], []
        for i in range(n_in):
            c = int(rng.integers(1, 4))
            inp = keras.Input((t, c), batch_size=1, name=f"in{i}")
            inputs.append(inp)
            specs.append((f"in{i}", (1, t, c), Dist(rng)))
        for j in range(max(2, n_in)):
            src = inputs[j % n_in]
            x = L.Reshape((1, t, src.shape[-1]))(src)
            x = L.Conv2D(int(rng.integers(2, 7)), (1, 3), padding="same", activation=pick(rng, ACTIVATIONS))(x)
            x = L.MaxPooling2D((1, 2))(x)
            outs.append(x)
        x = L.Concatenate(axis=-1)(outs)
        x = L.Flatten()(x)
        x = L.Dense(int(rng.integers(2, 8)))(x)
        if rng.random() < 0.5:
            x = L.Softmax()(x)
        return specs, inputs, x, {**info, "inputs": n_in}
    # mlp
    n = int(rng.integers(2, 48))
    inp = keras.Input((n,), batch_size=1, name="in0")
    x = inp
    for _ in range(int(rng.integers(2, 4))):
        x = L.Dense(int(rng.integers(2, 24)), activation=pick(rng, ACTIVATIONS))(x)
    if rng.random() < 0.5:
        x = L.Softmax()(x)
    return [("in0", (1, n), Dist(rng))], [inp], x, info


def build_requantize(keras, rng):
    """Softmax (fixed output range) concatenated with another tensor: the converter inserts a
    requantising QUANTIZE (int8 → int8) op."""
    L = keras.layers
    n = int(rng.integers(2, 24))
    inp = keras.Input((n,), batch_size=1, name="in0")
    a = L.Softmax()(inp)
    b = inp
    if rng.random() < 0.5:
        b = L.Dense(int(rng.integers(1, 12)), activation=pick(rng, ACTIVATIONS))(inp)
    x = L.Concatenate()([a, b] if rng.random() < 0.5 else [b, a])
    d = Dist(rng)
    d.spread *= 3.0
    return [("in0", (1, n), d)], [inp], x, {"n": n}


SINGLE_OP = ["conv2d", "conv1d", "depthwise", "fully_connected", "max_pool", "avg_pool", "mean",
             "concat", "add", "reshape", "pad", "softmax"]


def build(keras, family, rng):
    if family == "conv2d":
        return build_conv(keras, rng, one_d=False)
    if family == "conv1d":
        return build_conv(keras, rng, one_d=True)
    if family == "depthwise":
        return build_depthwise(keras, rng)
    if family == "fully_connected":
        return build_fc(keras, rng)
    if family == "max_pool":
        return build_pool(keras, rng, "max")
    if family == "avg_pool":
        return build_pool(keras, rng, "avg")
    if family == "mean":
        return build_mean(keras, rng)
    if family == "concat":
        return build_concat(keras, rng)
    if family == "add":
        return build_add(keras, rng)
    if family == "reshape":
        return build_reshape(keras, rng)
    if family == "pad":
        return build_pad(keras, rng)
    if family == "softmax":
        return build_softmax(keras, rng)
    if family == "multi":
        return build_multi(keras, rng)
    if family == "requantize":
        return build_requantize(keras, rng)
    raise ValueError(family)


# ----------------------------------------------------------------------------------------
# Conversion and reference run


def convert(tf, model, specs, rng, mode):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float32":
        n_rep = int(rng.integers(8, 33))
        rep_rng = np.random.default_rng(int(rng.integers(0, 2**31)))
        batches = [[d.draw(rep_rng, s) for (_, s, d) in specs] for _ in range(n_rep)]

        def rep():
            for b in batches:
                yield b

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


def input_name_of(detail_name):
    # "serving_default_in1:0" -> "in1"
    base = detail_name.split(":")[0]
    return base[len("serving_default_"):] if base.startswith("serving_default_") else base


def run_reference(Interpreter, resolver, model_bytes, feeds_by_name):
    it = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    ins = it.get_input_details()
    for d in ins:
        it.set_tensor(d["index"], feeds_by_name[input_name_of(d["name"])])
    it.invoke()
    outs = [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]
    ops = [o["op_name"] for o in it._get_ops_details()]
    return [feeds_by_name[input_name_of(d["name"])] for d in ins], outs, ops, ins


def make_samples(specs, in_details, rng, mode):
    """Two samples per model: one drawn from the calibration distribution and one stressing
    the edges (full int8 range, or a float distribution twice as wide)."""
    by_name = {d["name"]: d for d in in_details}
    samples = []
    for variant in range(2):
        feeds = {}
        for name, shape, dist in specs:
            det = next(d for d in in_details if input_name_of(d["name"]) == name)
            if det["dtype"] == np.int8:
                scale, zp = det["quantization"]
                if variant == 0:
                    x = dist.draw(rng, shape)
                    q = np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)
                else:
                    q = rng.integers(-128, 128, size=shape).astype(np.int8)
                feeds[name] = q
            else:
                feeds[name] = dist.draw(rng, shape, widen=1.0 if variant == 0 else 2.0)
        samples.append(feeds)
    del by_name
    return samples


class OutsideSuite(RuntimeError):
    """The converter lowered a model to an op the suite does not cover (e.g. a 1-input
    Dense on a 3D tensor becomes MUL); the case is redrawn with another seed."""


def generate_case(tf, keras, Interpreter, OpResolverType, family, index, attempt=0):
    seed = case_seed(family, index + 100_000 * attempt)
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed % (2**31))
    if family == "float32":
        sub = pick(rng, SINGLE_OP + ["multi", "multi"])
        mode = "float32"
    elif family == "float_io":
        sub = pick(rng, ["conv2d", "conv1d", "depthwise", "fully_connected", "max_pool", "avg_pool",
                         "softmax", "multi"])
        mode = "float_io"
    else:
        sub = family
        mode = "int8"
    specs, inputs, out, info = build(keras, sub, rng)
    model = keras.Model(inputs, out)
    set_random_weights(model, rng)
    tfl = convert(tf, model, specs, rng, mode)
    ref = OpResolverType.BUILTIN_REF
    opt = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=tfl, experimental_op_resolver_type=ref)
    it.allocate_tensors()
    in_details = it.get_input_details()
    feeds_list = make_samples(specs, in_details, rng, mode)
    samples = []
    ops = None
    optimised_disagrees = False
    for feeds in feeds_list:
        ins, outs, ops, _ = run_reference(Interpreter, ref, tfl, feeds)
        _, outs_opt, _, _ = run_reference(Interpreter, opt, tfl, feeds)
        for a, b in zip(outs, outs_opt):
            if a.dtype == np.float32:
                if not np.allclose(a, b, rtol=1e-5, atol=1e-6):
                    optimised_disagrees = True
            elif not np.array_equal(a, b):
                optimised_disagrees = True
        samples.append((ins, outs))
    bad = [o for o in ops if o not in ALLOWED_OPS]
    if bad:
        raise OutsideSuite(f"{family}/{index}: converter emitted ops outside the suite: {bad}")
    info = {"family": family, "mode": mode, "builder": sub, "seed": seed, "attempt": attempt, "ops": ops,
            "params": info, "inputs": [{"name": n, **d.info()} for (n, _, d) in specs],
            "optimised_kernels_disagree": optimised_disagrees}
    return {"name": f"{family}/{index:04d}", "info": info, "model": tfl, "samples": samples}


# ----------------------------------------------------------------------------------------
# Bundle writing

DTYPES = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int32): 3,
          np.dtype(np.int16): 4}


def write_tensor(buf, a):
    a = np.ascontiguousarray(a)
    buf.write(struct.pack("<BB", DTYPES[a.dtype], a.ndim))
    buf.write(struct.pack(f"<{a.ndim}I", *a.shape))
    buf.write(a.astype(a.dtype.newbyteorder("<")).tobytes())


def write_bundle(path, cases, header):
    buf = io.BytesIO()
    buf.write(b"KLTDIFF1")
    h = json.dumps(header, sort_keys=True).encode()
    buf.write(struct.pack("<I", len(h)))
    buf.write(h)
    buf.write(struct.pack("<I", len(cases)))
    for c in cases:
        for blob in (c["name"].encode(), json.dumps(c["info"], sort_keys=True, default=list).encode(), c["model"]):
            buf.write(struct.pack("<I", len(blob)))
            buf.write(blob)
        buf.write(struct.pack("<B", len(c["samples"])))
        for ins, outs in c["samples"]:
            buf.write(struct.pack("<B", len(ins)))
            for a in ins:
                write_tensor(buf, a)
            buf.write(struct.pack("<B", len(outs)))
            for a in outs:
                write_tensor(buf, a)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        # mtime=0 keeps the gzip bytes reproducible
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
            gz.write(buf.getvalue())
    os.replace(tmp, path)
    return len(buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--cache", default="/tmp/kinglet-diff-cache")
    ap.add_argument("--fresh", action="store_true", help="empty the cache first")
    ap.add_argument("--only", help="comma-separated families")
    ap.add_argument("--limit", type=int, help="at most this many cases per family")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cached-only", action="store_true",
                    help="bundle only the cases already in the cache (for a quick partial run)")
    args = ap.parse_args()

    import tensorflow as tf
    import keras
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    tf.get_logger().setLevel("ERROR")
    if args.fresh and os.path.isdir(args.cache):
        for name in os.listdir(args.cache):
            if name.endswith((".pkl", ".attempt", ".tmp")):
                os.remove(os.path.join(args.cache, name))
    os.makedirs(args.cache, exist_ok=True)
    if not args.worker:
        # Supervise: run the generator in a child process, restarting it after a failed or
        # crashed case (TensorFlow and the interpreter can abort the whole process).
        argv = [a for a in sys.argv[1:] if a != "--fresh"]
        for _ in range(200):
            rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--worker"] + argv)
            if rc == 0:
                return
            print(f"worker exited with {rc}; restarting", flush=True)
        raise SystemExit("too many restarts")
    only = set(args.only.split(",")) if args.only else None
    plan = [(f, i) for f, n in FAMILIES if only is None or f in only
            for i in range(min(n, args.limit) if args.limit else n)]
    cases = []
    t0 = time.time()
    for k, (family, index) in enumerate(plan):
        cache_file = os.path.join(args.cache, f"{family}-{index:04d}.pkl")
        if os.path.exists(cache_file):
            with open(cache_file, "rb") as f:
                case = pickle.load(f)
        elif args.cached_only:
            continue
        else:
            # A model the converter rejects, lowers to ops outside the suite, or that makes
            # the interpreter abort the process (it happens) is redrawn with the next seed:
            # the attempt in progress is recorded first, so a crashed attempt is skipped when
            # the supervising process restarts this worker.
            marker = os.path.join(args.cache, f"{family}-{index:04d}.attempt")
            attempt = int(open(marker).read()) + 1 if os.path.exists(marker) else 0
            if attempt >= 5:
                raise RuntimeError(f"{family}/{index}: no in-suite model after 5 draws")
            with open(marker, "w") as f:
                f.write(str(attempt))
            try:
                case = generate_case(tf, keras, Interpreter, OpResolverType, family, index, attempt)
            except Exception as e:  # OutsideSuite, or a model the converter rejects
                print(f"redrawing {family}/{index} (attempt {attempt}): {str(e).splitlines()[0][:300]}", flush=True)
                sys.exit(RESTART)
            os.remove(marker)
            with open(cache_file + ".tmp", "wb") as f:
                pickle.dump(case, f)
            os.replace(cache_file + ".tmp", cache_file)
            keras.backend.clear_session()
        cases.append(case)
        if k % 25 == 0 or k == len(plan) - 1:
            print(f"[{time.time() - t0:7.1f}s] {k + 1}/{len(plan)} {case['name']} {case['info']['ops']}",
                  flush=True)

    per_family = {}
    per_op = {}
    for c in cases:
        per_family[c["info"]["family"]] = per_family.get(c["info"]["family"], 0) + 1
        for op in set(c["info"]["ops"]):
            per_op[op] = per_op.get(op, 0) + 1
    header = {
        "generator": "scripts/diff_generate.py",
        "base_seed": BASE_SEED,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "expected_from": "ai_edge_litert BUILTIN_REF kernels",
        "cases": len(cases),
        "cases_per_family": per_family,
        "cases_per_op": per_op,
        "cases_where_optimised_kernels_disagree": sum(c["info"]["optimised_kernels_disagree"] for c in cases),
    }
    raw = write_bundle(args.out, cases, header)
    print(json.dumps(header, indent=1, sort_keys=True))
    print(f"wrote {args.out}: {len(cases)} cases, {raw} bytes raw, {os.path.getsize(args.out)} bytes gzipped")


if __name__ == "__main__":
    main()
