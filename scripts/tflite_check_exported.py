#!/usr/bin/env python3
"""Re-exports .tflite models with `kinglet export` and checks that the TFLite interpreter gives
the same outputs for the original and the kinglet-written file (builtin kernels and the default
XNNPACK resolver), on N windows of LCG bytes (seed README generator) in each input's type.

Usage: python3 scripts/tflite_check_exported.py [--kinglet target/release/kinglet]
                                                [--windows 500] model.tflite ...
(default models: every seed model in /work/shared/seed-models and its int8/ folder)
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def lcg_stream(n, seed=12345):
    s, out = seed, np.empty(n, dtype=np.uint8)
    for i in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out[i] = (s >> 16) & 0xFF
    return out


def run(path, windows, resolver):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    ins = it.get_input_details()
    sizes = [int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in ins]
    stream = lcg_stream(sum(sizes) * windows)
    outs, at = [], 0
    for _ in range(windows):
        for d, n in zip(ins, sizes):
            it.set_tensor(d["index"], stream[at : at + n].view(d["dtype"]).reshape(d["shape"]))
            at += n
        it.invoke()
        outs.append(np.concatenate([it.get_tensor(o["index"]).reshape(-1).astype(np.float64) for o in it.get_output_details()]))
    return np.stack(outs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinglet", default="target/release/kinglet")
    ap.add_argument("--windows", type=int, default=500)
    ap.add_argument("models", nargs="*")
    args = ap.parse_args()
    models = args.models or sorted(glob.glob("/work/shared/seed-models/*.tflite") + glob.glob("/work/shared/seed-models/int8/*.tflite"))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            out = os.path.join(tmp, os.path.basename(m))
            subprocess.run([args.kinglet, "export", "--model", m, "--format", "tflite", "--out", out], check=True, capture_output=True)
            line = f"{os.path.basename(m)}:"
            for name, r in (("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), ("default", OpResolverType.AUTO)):
                a, b = run(m, args.windows, r), run(out, args.windows, r)
                # Random bytes as float32 include NaNs: compare NaN-aware.
                differ = int(((a != b) & ~(np.isnan(a) & np.isnan(b))).any(axis=1).sum())
                failures += differ
                line += f" {name}: {differ}/{args.windows} windows differ;"
            print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
