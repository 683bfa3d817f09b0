#!/usr/bin/env python3
"""Runs `kinglet quantize --scheme int8|dynamic|float16` outputs in ai_edge_litert next to the
float model they came from: every model must load and run, and the float-output schemes must
track the float model. Prints file sizes and max |difference| per scheme.

  kinglet export --model big3.kgl --out big3_f32.tflite
  kinglet quantize --model big3.kgl --data uci-har:../shared/data/uci-har:test --scheme dynamic --out big3_dynamic.tflite
  python3 scripts/schemes_check.py big3_f32.tflite big3_dynamic.tflite big3_float16.tflite ...

Inputs: 20 standard-normal tensors per input (numpy seed 0); integer-input models get them
quantised with their input parameters, integer outputs are dequantised.
"""
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def run(path, inputs, resolver):
    it = Interpreter(path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    outs = []
    for case in inputs:
        for d, x in zip(it.get_input_details(), case):
            if d["dtype"] != np.float32:
                s, z = d["quantization"]
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / s) + z, info.min, info.max).astype(d["dtype"])
            it.set_tensor(d["index"], x)
        it.invoke()
        o = it.get_output_details()[0]
        y = it.get_tensor(o["index"]).astype(np.float32)
        if o["dtype"] != np.float32:
            s, z = o["quantization"]
            y = (y - z) * s
        outs.append(y.ravel())
    return np.array(outs)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, rest = sys.argv[1], sys.argv[2:]
    it = Interpreter(base)
    rng = np.random.default_rng(0)
    inputs = [
        [rng.standard_normal(d["shape"]).astype(np.float32) for d in it.get_input_details()]
        for _ in range(20)
    ]
    ref = run(base, inputs, OpResolverType.BUILTIN_REF)
    print(f"{os.path.basename(base)}: {os.path.getsize(base)} bytes (float reference)")
    for path in rest:
        got = run(path, inputs, OpResolverType.BUILTIN_REF)
        default = run(path, inputs, OpResolverType.AUTO)
        agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
        print(
            f"{os.path.basename(path)}: {os.path.getsize(path)} bytes, max |diff| vs float "
            f"{np.abs(got - ref).max():.3g} (reference kernels), {np.abs(default - ref).max():.3g} "
            f"(default/XNNPACK), top-1 agreement {100 * agree:.0f} %"
        )


if __name__ == "__main__":
    main()
