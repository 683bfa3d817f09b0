#!/usr/bin/env python3
"""Checks that models optimised by kinglet's graph passes compute the same outputs as the
originals in the TFLite interpreter (all three kernel configurations, 20 random inputs each).

  for f in B_s123_1IN_91 B_s123_3IN_91 S0_s3_int8 B_s123_1IN_int8 dual_motions zoo_f32 zoo_i8 cnn_bn_f16; do
    target/release/kinglet inspect crates/kinglet-graph/tests/fixtures/$f.tflite --optimize \
      --write /tmp/$f.opt.tflite > /dev/null
  done
  python3 scripts/passes_tflite_check.py /tmp B_s123_1IN_91 B_s123_3IN_91 ...

Prints, per model, op counts before -> after and how many runs were bit-identical.
"""
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "crates", "kinglet-graph", "tests", "fixtures")


def run(path, seed, resolver):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        if d["dtype"] == np.float32:
            x = rng.uniform(-2, 2, d["shape"]).astype(np.float32)
        elif d["dtype"] == np.int8:
            x = rng.integers(-128, 128, d["shape"]).astype(np.int8)
        else:
            x = rng.integers(0, 256, d["shape"]).astype(np.uint8)
        it.set_tensor(d["index"], x)
    it.invoke()
    outs = [it.get_tensor(o["index"]).copy() for o in it.get_output_details()]
    return outs, len(it._get_ops_details())


def main():
    opt_dir, names = sys.argv[1], sys.argv[2:]
    for name in names:
        same, total = 0, 0
        for resolver in [OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                         OpResolverType.BUILTIN_REF]:
            for seed in range(20):
                a, n_before = run(os.path.join(FIX, name + ".tflite"), seed, resolver)
                b, n_after = run(os.path.join(opt_dir, name + ".opt.tflite"), seed, resolver)
                same += all(np.array_equal(x, y) for x, y in zip(a, b))
                total += 1
        print(f"{name}: ops {n_before} -> {n_after}, bit-identical in {same} of {total} runs")


if __name__ == "__main__":
    main()
