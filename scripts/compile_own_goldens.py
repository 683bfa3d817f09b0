#!/usr/bin/env python3
"""TFLite goldens for kinglet-compile's own-model fixtures (crates/kinglet-compile/tests/fixtures).

Runs each kinglet-trained int8 model in ai_edge_litert on the fixed LCG input of
shared/seed-models/README.md. Multi-input models take one LCG byte stream that fills input 0,
then input 1, ... (graph input order), as the compiled firmware does. The golden is the
reference-kernel output (OpResolverType.BUILTIN_REF: the integer maths firmware follows); the
optimised builtin kernels (with and without XNNPACK) are recorded too so a disagreement shows.

Usage: python3 scripts/compile_own_goldens.py  (writes tests/fixtures/own_goldens.json)
Not needed by CI: the JSON is committed.
"""
import json
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "crates", "kinglet-compile", "tests", "fixtures")
MODELS = ["big3.int8.tflite", "little0.int8.tflite", "kinglet.int8.tflite", "little4_fc_tie.int8.tflite"]


def lcg_bytes(n):
    s = 12345
    out = []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % (1 << 32)
        v = (s >> 16) & 0xFF
        out.append(v - 256 if v >= 128 else v)
    return out


def run(path, resolver, **kw):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver, **kw)
    it.allocate_tensors()
    inputs = it.get_input_details()
    total = sum(int(np.prod(d["shape"])) for d in inputs)
    stream = lcg_bytes(total)
    pos = 0
    for d in inputs:
        n = int(np.prod(d["shape"]))
        it.set_tensor(d["index"], np.array(stream[pos:pos + n], dtype=np.int8).reshape(d["shape"]))
        pos += n
    it.invoke()
    out = it.get_output_details()
    assert len(out) == 1, path
    lens = [int(np.prod(d["shape"])) for d in inputs]
    return lens, it.get_tensor(out[0]["index"]).astype(int).flatten().tolist()


def main():
    goldens = {}
    for name in MODELS:
        path = os.path.join(FIXTURES, name)
        if not os.path.exists(path):
            print(f"skip {name}: not in fixtures", file=sys.stderr)
            continue
        lens, ref = run(path, OpResolverType.BUILTIN_REF)
        _, builtin = run(path, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        _, xnnpack = run(path, OpResolverType.BUILTIN)
        goldens[name] = {
            "input_lens": lens,
            "reference": ref,
            "builtin": builtin,
            "builtin_xnnpack": xnnpack,
        }
        print(name, lens, "ref", ref, "builtin", builtin, "xnnpack", xnnpack)
    target = os.path.join(FIXTURES, "own_goldens.json")
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")
    os.replace(tmp, target)


if __name__ == "__main__":
    main()
