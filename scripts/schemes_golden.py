#!/usr/bin/env python3
"""Goldens for kinglet's float16 and dynamic-range schemes (crates/kinglet-compress/tests/schemes.rs).

  cargo run --release -p kinglet-compress --example schemes_export -- \
      crates/kinglet-compress/tests/fixtures/zoo_f16.tflite \
      crates/kinglet-compress/tests/fixtures/zoo_dynamic.tflite
  python3 scripts/schemes_golden.py

Checks that every FLOAT16 constant of kinglet's zoo_f16.tflite equals numpy's
float32 -> float16 rounding of the matching float32 constant of zoo_f32.tflite, then runs both
models in ai_edge_litert on 4 LCG inputs in [-4, 4) (seed README generator) and writes
tests/goldens/schemes_zoo_f16.json ({"inputs": [[...]], "outputs": [[[...], ...]]}, default
interpreter) and tests/goldens/schemes_zoo_dynamic.json ({"inputs", "reference" (BUILTIN_REF:
TFLite's hybrid reference kernels), "builtin" (optimized builtin kernels), "default"
(XNNPACK, which runs hybrid ops with its own input quantisation)}).
"""
import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F32 = os.path.join(REPO, "crates/kinglet-graph/tests/fixtures/zoo_f32.tflite")
F16 = os.path.join(REPO, "crates/kinglet-compress/tests/fixtures/zoo_f16.tflite")
OUT = os.path.join(REPO, "crates/kinglet-compress/tests/goldens/schemes_zoo_f16.json")
DYN = os.path.join(REPO, "crates/kinglet-compress/tests/fixtures/zoo_dynamic.tflite")
DYN_OUT = os.path.join(REPO, "crates/kinglet-compress/tests/goldens/schemes_zoo_dynamic.json")


def run(path, resolver, inputs):
    it = Interpreter(path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = []
    for x in inputs:
        it.set_tensor(inp["index"], np.array(x, dtype=np.float32).reshape(inp["shape"]))
        it.invoke()
        outs.append([it.get_tensor(o["index"]).ravel().tolist() for o in it.get_output_details()])
    return outs


def lcg(n, seed):
    s, out = seed, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out.append(((s >> 16) & 0xFF) / 32.0 - 4.0)
    return np.array(out, dtype=np.float32)


def constants(path):
    it = Interpreter(path)
    out = {}
    for t in it.get_tensor_details():
        try:
            out[t["name"]] = it.get_tensor(t["index"]).copy()
        except ValueError:
            pass
    return out


def main():
    f32, f16 = constants(F32), constants(F16)
    checked = 0
    for name, v in f16.items():
        if v.dtype == np.float16:
            src = f32[name[: -len("_f16")]]
            assert np.array_equal(src.astype(np.float16).view(np.uint16), v.view(np.uint16)), name
            checked += 1
    assert checked > 0
    it = Interpreter(F16)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    inputs, outputs = [], []
    for k in range(4):
        x = lcg(int(np.prod(inp["shape"])), 1000 + k).reshape(inp["shape"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        inputs.append(x.ravel().tolist())
        outputs.append([it.get_tensor(o["index"]).ravel().tolist() for o in it.get_output_details()])
    with open(OUT, "w") as f:
        json.dump({"f16_constants_checked": checked, "inputs": inputs, "outputs": outputs}, f)
    print(f"{checked} float16 constants match numpy; wrote {OUT}")
    golden = {"inputs": inputs}
    for key, resolver in [
        ("reference", OpResolverType.BUILTIN_REF),
        ("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
        ("default", OpResolverType.AUTO),
    ]:
        golden[key] = run(DYN, resolver, inputs)
    with open(DYN_OUT, "w") as f:
        json.dump(golden, f)
    print(f"wrote {DYN_OUT}")


if __name__ == "__main__":
    main()
