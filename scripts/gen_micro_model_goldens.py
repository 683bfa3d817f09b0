#!/usr/bin/env python3
"""Whole-model goldens for kinglet-micro's kernels: the seed .tflite models flattened to text.

For each model in ../shared/seed-models (legacy uint8 and the int8 rebuilds) this writes every
tensor (dtype, shape, quantisation, constant data) and every operator (builtin name, inputs,
outputs, options) in execution order, plus the fixed LCG input from the seed-models README
(`s = 12345; s = s*1103515245 + 12345 mod 2^32; byte = (s >> 16) & 0xff`, filling the inputs in
order) and the outputs of the TFLite interpreter in its three configurations (reference
kernels, optimized kernels, default with XNNPACK). The Rust test
`crates/kinglet-micro/tests/seed_models.rs` replays the models operator by operator with this
crate's kernels; it needs no Python and no flatbuffer parser.

Usage: python3 scripts/gen_micro_model_goldens.py [--models DIR] [--out PATH]
"""

import argparse
import os
import sys

import numpy as np
import ai_edge_litert
from ai_edge_litert import schema_py_generated as S
from ai_edge_litert.interpreter import Interpreter, OpResolverType

DTYPES = {S.TensorType.FLOAT32: ("f32", np.float32), S.TensorType.INT8: ("i8", np.int8),
          S.TensorType.UINT8: ("u8", np.uint8), S.TensorType.INT32: ("i32", np.int32)}
OPNAMES = {v: k for k, v in S.BuiltinOperator.__dict__.items() if not k.startswith("_")}
ACT = {S.ActivationFunctionType.NONE: "none", S.ActivationFunctionType.RELU: "relu",
       S.ActivationFunctionType.RELU6: "relu6", S.ActivationFunctionType.RELU_N1_TO_1: "relu_n1_to_1"}
PAD = {S.Padding.SAME: "same", S.Padding.VALID: "valid"}
MODELS = ["int8/S0_s3_int8.tflite", "int8/B_s123_1IN_int8.tflite", "S0_s3.tflite",
          "B_s123_1IN_91.tflite", "B_s123_3IN_91.tflite"]


def lcg_bytes(n):
    s = 12345
    out = np.empty(n, np.uint8)
    for i in range(n):
        s = (s * 1103515245 + 12345) % (1 << 32)
        out[i] = (s >> 16) & 0xFF
    return out


def options(op):
    o = op.builtinOptions
    if o is None:
        return {}
    d = {}
    for key, name in (("padding", "padding"), ("strideH", "stride_h"), ("strideW", "stride_w"),
                      ("dilationHFactor", "dilation_h"), ("dilationWFactor", "dilation_w"),
                      ("filterHeight", "filter_h"), ("filterWidth", "filter_w"),
                      ("depthMultiplier", "depth_multiplier"), ("axis", "axis"),
                      ("beta", "beta"), ("keepDims", "keep_dims"),
                      ("fusedActivationFunction", "act")):
        if hasattr(o, key):
            v = getattr(o, key)
            if key == "padding":
                v = PAD[v]
            elif key == "fusedActivationFunction":
                v = ACT[v]
            elif isinstance(v, bool):
                v = int(v)
            d[name] = v
    return d


def run(path, resolver, feeds):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]


def dump(path, name, lines):
    buf = open(path, "rb").read()
    m = S.ModelT.InitFromPackedBuf(buf, 0)
    sg = m.subgraphs[0]
    lines.append(f"model {name}")
    for i, t in enumerate(sg.tensors):
        dt, npt = DTYPES[t.type]
        shape = ",".join(str(int(v)) for v in (t.shape if t.shape is not None else []))
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            sc = ",".join(repr(float(np.float32(v))) for v in q.scale)
            zp = ",".join(str(int(v)) for v in q.zeroPoint)
        else:
            sc, zp = "-", "-"
        lines.append(f"tensor {i} {dt} {shape or '-'} {sc} {zp}")
        b = m.buffers[t.buffer]
        if b.data is not None and len(b.data):
            vals = np.frombuffer(bytes(bytearray(b.data)), dtype=npt)
            lines.append(f"data {i} " + " ".join(str(v) for v in vals.tolist()))
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        bc = max(code.builtinCode, code.deprecatedBuiltinCode)
        opts = " ".join(f"{k}={v}" for k, v in options(op).items())
        ins = ",".join(str(int(v)) for v in op.inputs)
        outs = ",".join(str(int(v)) for v in op.outputs)
        lines.append(f"op {OPNAMES[bc]} in={ins} out={outs} {opts}".rstrip())
    lines.append("graph_inputs " + " ".join(str(int(v)) for v in sg.inputs))
    lines.append("graph_outputs " + " ".join(str(int(v)) for v in sg.outputs))
    it = Interpreter(model_path=path)
    total = sum(int(np.prod(d["shape"])) for d in it.get_input_details())
    stream = lcg_bytes(total)
    feeds, at = [], 0
    for d in it.get_input_details():
        n = int(np.prod(d["shape"]))
        feeds.append(stream[at:at + n].view(d["dtype"]).reshape(d["shape"]))
        at += n
    for d, x in zip(it.get_input_details(), feeds):
        lines.append(f"input {d['index']} " + " ".join(str(v) for v in x.ravel().tolist()))
    for label, res in (("ref", OpResolverType.BUILTIN_REF),
                       ("opt", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                       ("default", OpResolverType.AUTO)):
        outs = run(path, res, feeds)
        for d, y in zip(it.get_output_details(), outs):
            lines.append(f"expected_{label} {d['index']} " + " ".join(str(v) for v in y.ravel().tolist()))
    lines.append("end")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(here, "..", "..", "shared", "seed-models"))
    ap.add_argument("--out", default=os.path.join(here, "..", "crates", "kinglet-micro", "tests",
                                                  "fixtures", "seed_models.txt"))
    args = ap.parse_args()
    lines = ["# Seed models flattened for kinglet-micro kernel replay. Generated by",
             "# scripts/gen_micro_model_goldens.py; do not edit.",
             f"# ai-edge-litert {getattr(ai_edge_litert, '__version__', 'unknown')}, numpy {np.__version__}"]
    for rel in MODELS:
        dump(os.path.join(args.models, rel), os.path.basename(rel).removesuffix(".tflite"), lines)
    with open(args.out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {len(MODELS)} models to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
