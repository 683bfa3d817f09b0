#!/usr/bin/env python3
"""TFLite-interpreter outputs of kinglet-written sparse models (pruned weights stored as
SPARSE_CSR constants behind DENSIFY ops), for crates/kinglet-graph/tests/sparse_tflite.rs.

  KINGLET_BLESS=1 cargo test -p kinglet-graph --test sparse_tflite   # rewrites the fixtures
  python3 scripts/tflite_sparse_goldens.py

For each model in crates/kinglet-graph/tests/fixtures/sparse_fc_{i8,f32}.tflite (and its
`_dense` twin, the same graph written without sparse storage) runs 20 windows of the LCG byte
stream (glibc constants, seed 12345, byte = (s >> 16) & 0xFF; int8 inputs take the byte as
int8, float inputs byte/128 - 1) through every interpreter configuration. Writes
crates/kinglet-graph/tests/goldens/sparse_tflite.json: per model "windows" (outputs of the
sparse file per configuration that runs it), "errors" (configurations that refuse it, with
the interpreter's message), and "sparse_equals_dense" (every configuration that ran both files
gave identical outputs).
"""
import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "crates", "kinglet-graph", "tests", "fixtures")
OUT = os.path.join(REPO, "crates", "kinglet-graph", "tests", "goldens", "sparse_tflite.json")
WINDOWS = 20
RESOLVERS = {
    "default": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "reference": OpResolverType.BUILTIN_REF,
}


def lcg_bytes(n, seed=12345):
    s, out = seed, bytearray()
    for _ in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out.append((s >> 16) & 0xFF)
    return np.frombuffer(bytes(out), dtype=np.uint8)


def run_windows(path, resolver):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    n = int(np.prod(d["shape"]))
    stream = lcg_bytes(n * WINDOWS)
    res = []
    for w in range(WINDOWS):
        raw = stream[w * n:(w + 1) * n]
        x = raw.view(np.int8) if d["dtype"] == np.int8 else raw.astype(np.float32) / 128.0 - 1.0
        it.set_tensor(d["index"], x.reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        res.append(it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1).tolist())
    return res


def main():
    goldens = {}
    for name in ("sparse_fc_i8", "sparse_fc_f32"):
        sparse = os.path.join(FIX, f"{name}.tflite")
        dense = os.path.join(FIX, f"{name}_dense.tflite")
        entry = {"windows": {}, "errors": {}, "sparse_equals_dense": True}
        for key, resolver in RESOLVERS.items():
            try:
                got = run_windows(sparse, resolver)
            except RuntimeError as e:
                entry["errors"][key] = str(e).strip()
                print(name, key, "refused:", str(e).strip().splitlines()[0])
                continue
            entry["windows"][key] = got
            same = got == run_windows(dense, resolver)
            entry["sparse_equals_dense"] &= same
            print(name, key, "sparse == dense" if same else "SPARSE DIFFERS FROM DENSE")
        goldens[name] = entry
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(goldens, f)
    os.replace(tmp, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
