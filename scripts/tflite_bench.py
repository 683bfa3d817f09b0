#!/usr/bin/env python3
"""TFLite-interpreter throughput (windows/s) on one model, the counterpart of
`cargo run --release -p kinglet-graph --example bench_interpreter -- <model> [windows]`.
Same input stream (LCG bytes, a new window per invocation). Includes Python call overhead
(set_tensor/invoke/get_tensor), which is part of what a Python user of TFLite pays.

Usage: python3 scripts/tflite_bench.py <model.tflite> [windows]
"""
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main():
    path = sys.argv[1]
    windows = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    for name, resolver in (("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), ("default/XNNPACK", OpResolverType.AUTO)):
        it = Interpreter(model_path=path, experimental_op_resolver_type=resolver, num_threads=1)
        it.allocate_tensors()
        ins = it.get_input_details()
        out = it.get_output_details()[0]["index"]
        total = sum(int(np.prod(d["shape"])) for d in ins)
        s, stream = 12345, []
        for _ in range(total * 64):
            s = (s * 1103515245 + 12345) % 2**32
            stream.append((s >> 16) & 0xFF)
        stream = np.array(stream, dtype=np.uint8)
        feeds = []
        for w in range(64):
            at, f = w * total, []
            for d in ins:
                n = int(np.prod(d["shape"]))
                f.append(stream[at : at + n].view(d["dtype"]).reshape(d["shape"]))
                at += n
            feeds.append(f)
        start = time.perf_counter()
        for w in range(windows):
            for d, x in zip(ins, feeds[w % 64]):
                it.set_tensor(d["index"], x)
            it.invoke()
            it.get_tensor(out)
        secs = time.perf_counter() - start
        print(f"{path} [{name}]: {windows / secs:.0f} windows/s ({1e6 * secs / windows:.2f} µs each)")


if __name__ == "__main__":
    main()
