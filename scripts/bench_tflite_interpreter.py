#!/usr/bin/env python3
"""CPU time per inference of a .tflite model in the TFLite interpreter (ai-edge-litert), for
comparison with `cargo bench -p kinglet-micro --bench big_int8_kernels`.

Measures process CPU time (robust on a shared machine) for `invoke()` alone and for the full
set_tensor/invoke/get_tensor loop, single-threaded, in the three interpreter configurations.

Usage: python3 scripts/bench_tflite_interpreter.py [MODEL] [N]
"""

import os
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

here = os.path.dirname(os.path.abspath(__file__))
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "..", "..", "shared", "seed-models", "int8", "B_s123_1IN_int8.tflite")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
for label, res in (("default (XNNPACK)", OpResolverType.AUTO),
                   ("optimized builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                   ("reference builtin", OpResolverType.BUILTIN_REF)):
    it = Interpreter(model_path=model, experimental_op_resolver_type=res, num_threads=1)
    it.allocate_tensors()
    ins = it.get_input_details()
    out = it.get_output_details()[0]["index"]
    xs = [np.zeros(d["shape"], d["dtype"]) for d in ins]
    t0 = time.process_time()
    for _ in range(n):
        for d, x in zip(ins, xs):
            it.set_tensor(d["index"], x)
        it.invoke()
        it.get_tensor(out)
    t1 = time.process_time()
    for _ in range(n):
        it.invoke()
    t2 = time.process_time()
    print(f"{label:18} full loop {(t1 - t0) / n * 1e6:7.1f} us CPU, invoke only "
          f"{(t2 - t1) / n * 1e6:7.1f} us CPU ({n} runs, {os.path.basename(model)})")
