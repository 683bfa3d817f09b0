#!/usr/bin/env python3
"""TFLite-interpreter outputs of kinglet-written op-zoo models (every supported op, float and
full int8), for tests/op_zoo.rs.

  cargo run --release -p kinglet-graph --example tflite_op_zoo -- crates/kinglet-graph/tests/fixtures
  python3 scripts/tflite_op_zoo_goldens.py

Input: x = LCG bytes (seed README generator, seed 12345) mapped to [-1, 1) as byte/128 - 1,
float32, filling [1, 8, 8, 3]. Writes crates/kinglet-graph/tests/goldens/op_zoo.json:
per model "outputs" (builtin kernels, first window) and "windows": for each kernel
configuration ("default" = XNNPACK delegate, "builtin", "reference") the outputs of 200
consecutive windows of the same LCG stream (window w = values [w*192, (w+1)*192)).
"""
import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "crates", "kinglet-graph", "tests", "fixtures")
OUT = os.path.join(REPO, "crates", "kinglet-graph", "tests", "goldens", "op_zoo.json")


def lcg_inputs(n, seed=12345):
    s, out = seed, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out.append(((s >> 16) & 0xFF) / 128.0 - 1.0)
    return np.array(out, dtype=np.float32)


def run(path, x, resolver):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], x.reshape(d["shape"]))
    it.invoke()
    return [it.get_tensor(o["index"]).reshape(-1) for o in it.get_output_details()]


WINDOWS = 200
RESOLVERS = {
    "default": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "reference": OpResolverType.BUILTIN_REF,
}


def run_windows(path, xs, resolver):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    res = []
    for x in xs:
        it.set_tensor(d["index"], x.reshape(d["shape"]))
        it.invoke()
        res.append([it.get_tensor(o["index"]).reshape(-1).tolist() for o in it.get_output_details()])
    return res


def main():
    x = lcg_inputs(8 * 8 * 3)
    xs = lcg_inputs(8 * 8 * 3 * WINDOWS).reshape(WINDOWS, -1)
    goldens = {}
    for name in ("zoo_f32", "zoo_i8"):
        path = os.path.join(FIX, f"{name}.tflite")
        outs = run(path, x, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        ref = run(path, x, OpResolverType.BUILTIN_REF)
        goldens[name] = {
            "outputs": [o.tolist() for o in outs],
            "dtypes": [str(o.dtype) for o in outs],
            "max_abs_diff_vs_reference_kernels": [float(np.abs(a.astype(np.float64) - b).max()) for a, b in zip(outs, ref)],
        }
        goldens[name]["windows"] = {k: run_windows(path, xs, r) for k, r in RESOLVERS.items()}
        for k, v in goldens[name]["windows"].items():
            differ = sum(a != b for a, b in zip(v, goldens[name]["windows"]["builtin"]))
            print(name, k, differ, "windows differ from builtin")
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(goldens, f)
        f.write("\n")
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
