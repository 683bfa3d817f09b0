#!/usr/bin/env python3
"""TFLite-interpreter throughput (windows/s) on one model, the counterpart of
`cargo run --release -p kinglet-graph --example bench_interpreter -- <model> [windows] [reps]`:
the same windows (LCG bytes, seed README generator, window w = bytes [w*n, (w+1)*n) over all
graph inputs), every kernel configuration (default = XNNPACK delegate, builtin, reference),
num_threads 1 and 2.

The seed models have a batch dimension of 1 baked into their RESHAPE ops, so windows cannot be
batched; each window is one invoke(). Two numbers per run: "invoke only" sums the time spent
inside invoke() (set_tensor outside the clock: the least Python overhead possible), "loop"
times the whole set_tensor/invoke/get_tensor loop.

With --kinglet BIN the kinglet benchmark binary runs right after on the same model and
windows (one benchmark run, back to back).

Usage: python3 scripts/tflite_bench.py <model.tflite> [windows] [reps] [--kinglet BIN]
"""
import argparse
import subprocess
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

RESOLVERS = (
    ("default", OpResolverType.AUTO),
    ("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
    ("reference", OpResolverType.BUILTIN_REF),
)


def lcg(n):
    out = np.empty(n, dtype=np.uint8)
    s = 12345
    for i in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out[i] = (s >> 16) & 0xFF
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("windows", nargs="?", type=int, default=2947)
    ap.add_argument("reps", nargs="?", type=int, default=3)
    ap.add_argument("--kinglet", help="bench_interpreter binary to run afterwards")
    args = ap.parse_args()
    probe = Interpreter(model_path=args.model)
    ins = probe.get_input_details()
    sizes = [int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in ins]
    per = sum(sizes)
    stream = lcg(per * args.windows)
    feeds = []
    for w in range(args.windows):
        at, f = w * per, []
        for d, n in zip(ins, sizes):
            f.append(stream[at : at + n].view(d["dtype"]).reshape(d["shape"]))
            at += n
        feeds.append(f)
    total = args.windows * args.reps
    for name, resolver in RESOLVERS:
        for threads in (1, 2):
            it = Interpreter(model_path=args.model, experimental_op_resolver_type=resolver, num_threads=threads)
            it.allocate_tensors()
            idx = [d["index"] for d in it.get_input_details()]
            out = it.get_output_details()[0]["index"]
            for f in feeds[:50]:  # warm-up
                for i, x in zip(idx, f):
                    it.set_tensor(i, x)
                it.invoke()
            inside = 0.0
            checksum = 0
            start = time.perf_counter()
            for _ in range(args.reps):
                for f in feeds:
                    for i, x in zip(idx, f):
                        it.set_tensor(i, x)
                    t0 = time.perf_counter()
                    it.invoke()
                    inside += time.perf_counter() - t0
                    checksum += int(it.get_tensor(out).astype(np.uint8).sum())
            loop = time.perf_counter() - start
            print(f"TFLite {args.model} [{name}] num_threads={threads}: invoke only {total / inside:.0f} windows/s "
                  f"({1e6 * inside / total:.2f} µs each), loop {total / loop:.0f} windows/s "
                  f"({1e6 * loop / total:.2f} µs each; checksum {checksum})", flush=True)
    if args.kinglet:
        subprocess.run([args.kinglet, args.model, str(args.windows), str(args.reps)], check=True)


if __name__ == "__main__":
    main()
