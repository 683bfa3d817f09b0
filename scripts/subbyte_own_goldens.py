#!/usr/bin/env python3
"""TFLite goldens for kinglet's own sub-byte and 16x8 models (crates/kinglet-compress/tests/fixtures/own).

The fixtures are kinglet-lite and big3 (trained on HAPT by the main job) quantised by kinglet:
  kinglet quantize --model out/models/kinglet-lite.kgl --data hapt:../shared/data/hapt.zip:train \
      --scheme w4a8 --out crates/kinglet-compress/tests/fixtures/own/kinglet-lite.w4a8.tflite
  (the same for big3.w4a8; --scheme mixed --bits 4,4,8,4,8 -> kinglet-lite.mixed-44848,
   --bits 8,4,4,8,2 -> kinglet-lite.mixed-84482; kinglet-lite.a16w8 is
   `bash scripts/subbyte_table.sh`'s out/subbyte/kinglet-lite.a16w8.tflite)

Runs each in ai_edge_litert on WINDOWS inputs of LCG bytes (the seed README generator, one
stream across windows) with the three kernel configurations kinglet reproduces (BUILTIN_REF,
BUILTIN_WITHOUT_DEFAULT_DELEGATES, AUTO = XNNPACK) and writes
tests/goldens/subbyte_own.json: {"header": {...}, "models": {file: {"reference": [[int8...]],
"builtin": [...], "default": [...]}}}, one output row per window. The inputs are not stored:
window w takes bytes [w·n, (w+1)·n) of the LCG stream (n = all graph inputs' elements,
filled in graph input order), which the Rust test regenerates.

Usage: python3 scripts/subbyte_own_goldens.py   (seconds; CI only reads the JSON)
"""
import json
import os

import numpy as np
import ai_edge_litert
from ai_edge_litert.interpreter import Interpreter, OpResolverType

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "crates", "kinglet-compress", "tests", "fixtures", "own")
OUT = os.path.join(ROOT, "crates", "kinglet-compress", "tests", "goldens", "subbyte_own.json")
WINDOWS = 24
RESOLVERS = {
    "reference": OpResolverType.BUILTIN_REF,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "default": OpResolverType.AUTO,
}


def lcg_bytes(n, seed=12345):
    s, out = seed, np.empty(n, dtype=np.uint8)
    for i in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out[i] = (s >> 16) & 0xFF
    return out


def main():
    models = {}
    for name in sorted(os.listdir(FIXTURES)):
        if not name.endswith(".tflite"):
            continue
        path = os.path.join(FIXTURES, name)
        entry = {}
        for label, resolver in RESOLVERS.items():
            it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
            it.allocate_tensors()
            ins, (out,) = it.get_input_details(), it.get_output_details()
            # Bytes per input (int16 inputs take two LCG bytes per value, little-endian).
            sizes = [int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in ins]
            n = sum(sizes)
            raw = lcg_bytes(n * WINDOWS)
            outputs = []
            for w in range(WINDOWS):
                x = raw[w * n:(w + 1) * n]
                at = 0
                for d, size in zip(ins, sizes):
                    it.set_tensor(d["index"], x[at:at + size].view(d["dtype"]).reshape(d["shape"]))
                    at += size
                it.invoke()
                outputs.append(it.get_tensor(out["index"]).reshape(-1).tolist())
            entry[label] = outputs
        models[name] = entry
    header = {"generator": "scripts/subbyte_own_goldens.py", "windows": WINDOWS, "lcg_seed": 12345,
              "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"), "numpy": np.__version__}
    with open(OUT, "w") as f:
        json.dump({"header": header, "models": models}, f, separators=(",", ":"))
    print(f"wrote {OUT}: {len(models)} models x {WINDOWS} windows x {len(RESOLVERS)} configurations")


if __name__ == "__main__":
    main()
