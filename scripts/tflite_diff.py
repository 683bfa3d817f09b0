#!/usr/bin/env python3
"""Differential check of kinglet's interpreter against the TFLite interpreter on any .tflite
model: N windows of LCG bytes (seed README generator; float inputs get LCG bytes mapped to
[-1, 1)), run by TFLite (builtin kernels without delegate, or --resolver ref) and by
`cargo run --release -p kinglet-graph --example tflite_run`. Integer outputs must match bit
for bit; float outputs are compared with a relative tolerance.

Usage: python3 scripts/tflite_diff.py [--windows 200] [--runner target-graph/release/examples/tflite_run] model.tflite ...
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def lcg_bytes(n, seed=12345):
    s, out = seed, np.empty(n, dtype=np.uint8)
    for i in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out[i] = (s >> 16) & 0xFF
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--runner", default="target-graph/release/examples/tflite_run")
    ap.add_argument(
        "--resolver",
        choices=["builtin", "ref", "default"],
        default="builtin",
        help="TFLite kernels to compare with: builtin (optimized, no delegate), ref (reference) or "
        "default (XNNPACK delegate); the runner reproduces the same configuration",
    )
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    bad = 0
    for path in args.models:
        resolver = {
            "ref": OpResolverType.BUILTIN_REF,
            "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            "default": OpResolverType.AUTO,
        }[args.resolver]
        it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        ins, outs = it.get_input_details(), it.get_output_details()
        # Bytes per input: int16 inputs (a16w8) take two LCG bytes per value.
        counts = [int(np.prod(d["shape"])) * (1 if d["dtype"] == np.float32 else np.dtype(d["dtype"]).itemsize) for d in ins]
        raw = lcg_bytes(sum(counts) * args.windows)
        feeds, at = [], 0
        for _ in range(args.windows):
            f = []
            for d, n in zip(ins, counts):
                b = raw[at : at + n]
                at += n
                f.append(b.astype(np.float32) / 128.0 - 1.0 if d["dtype"] == np.float32 else b.view(d["dtype"]))
            feeds.append(f)
        want = []
        for f in feeds:
            for d, x in zip(ins, f):
                it.set_tensor(d["index"], x.reshape(d["shape"]))
            it.invoke()
            want.append([it.get_tensor(o["index"]).reshape(-1).copy() for o in outs])
        with tempfile.TemporaryDirectory() as tmp:
            fin, fout = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
            with open(fin, "wb") as fh:
                for f in feeds:
                    for x in f:
                        fh.write(np.ascontiguousarray(x).tobytes())
            kernels = {"ref": "reference"}.get(args.resolver, args.resolver)
            env = dict(os.environ, KINGLET_TFLITE_KERNELS=kernels)
            subprocess.run([args.runner, path, fin, fout], check=True, env=env)
            got_raw = open(fout, "rb").read()
        at, differ, max_rel = 0, 0, 0.0
        for w in want:
            row_bad = False
            for o, t in zip(outs, w):
                n = t.nbytes
                g = np.frombuffer(got_raw[at : at + n], dtype=t.dtype)
                at += n
                if t.dtype == np.float32:
                    rel = np.abs(g.astype(np.float64) - t) / np.maximum(np.abs(t), 1.0)
                    max_rel = max(max_rel, float(rel.max()))
                    row_bad |= bool((rel > 1e-4).any())
                else:
                    row_bad |= bool((g != t).any())
            differ += row_bad
        bad += differ
        print(f"{path}: {differ}/{args.windows} windows differ (max float relative error {max_rel:.2e})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
