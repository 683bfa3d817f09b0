#!/usr/bin/env python3
"""Reference models for kinglet's post-training quantisation (PTQ) tests.

For a fixed set of small random Keras models (built by the same builders as
`diff_generate.py`), writes one gzip bundle holding, per case: the float32 .tflite, the
full-int8 .tflite the TensorFlow Lite converter makes from it, and the representative
(calibration) samples the converter was given. `crates/kinglet-compress/tests/ptq_reference.rs`
quantises each float model with kinglet on the same samples and requires the same
quantisation parameters as the converter (within float rounding).

Usage: python3 scripts/diff_ptq_reference.py [--out PATH]

Bundle format (little-endian), after gunzip:
    magic b"KLTPTQ01", header_len u32 + header JSON (versions, counts), n_cases u32
    per case: name (u32 len + UTF-8), info (u32 len + JSON), float model (u32 len + bytes),
              converter int8 model (u32 len + bytes), n_calibration u32,
              then per calibration sample: n_inputs u8 + tensors (graph input order of the
              float model), each tensor as in diff_generate.py (dtype u8, rank u8, dims u32…,
              raw bytes).
"""

import argparse
import gzip
import io
import json
import os
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diff_generate as gen  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "kinglet-compress",
                           "tests", "goldens", "ptq_reference.kgd.gz")

# (builder family, how many cases)
PLAN = [("conv2d", 4), ("conv1d", 3), ("depthwise", 4), ("fully_connected", 4), ("max_pool", 2),
        ("avg_pool", 2), ("mean", 2), ("concat", 2), ("add", 3), ("pad", 2), ("reshape", 1),
        ("softmax", 2), ("multi", 12), ("requantize", 2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    import tensorflow as tf
    import keras
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter

    tf.get_logger().setLevel("ERROR")
    cases = []
    for family, n in PLAN:
        for index in range(n):
            seed = gen.case_seed("ptq-" + family, index)
            rng = np.random.default_rng(seed)
            keras.utils.set_random_seed(seed % (2**31))
            specs, inputs, out, params = gen.build(keras, family, rng)
            model = keras.Model(inputs, out)
            gen.set_random_weights(model, rng)
            n_cal = int(rng.integers(8, 33))
            cal_rng = np.random.default_rng(int(rng.integers(0, 2**31)))
            calib = [[d.draw(cal_rng, s) for (_, s, d) in specs] for _ in range(n_cal)]

            float_conv = tf.lite.TFLiteConverter.from_keras_model(model)
            float_model = float_conv.convert()
            q = tf.lite.TFLiteConverter.from_keras_model(model)
            q.optimizations = [tf.lite.Optimize.DEFAULT]
            q.representative_dataset = lambda: iter(calib)
            q.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            q.inference_input_type = tf.int8
            q.inference_output_type = tf.int8
            int8_model = q.convert()

            it = Interpreter(model_content=float_model)
            order = [gen.input_name_of(d["name"]) for d in it.get_input_details()]
            keras_names = [name for (name, _, _) in specs]
            samples = [[s[keras_names.index(nm)] for nm in order] for s in calib]
            ops = [o["op_name"] for o in Interpreter(model_content=int8_model)._get_ops_details()]
            info = {"family": family, "seed": seed, "params": params, "int8_ops": ops,
                    "inputs": [{"name": nm, **d.info()} for (nm, _, d) in specs]}
            cases.append((f"{family}/{index:02d}", info, float_model, int8_model, samples))
            print(cases[-1][0], ops, flush=True)
            keras.backend.clear_session()

    header = {"generator": "scripts/diff_ptq_reference.py", "tensorflow": tf.__version__,
              "keras": keras.__version__, "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
              "numpy": np.__version__, "cases": len(cases)}
    buf = io.BytesIO()
    buf.write(b"KLTPTQ01")
    h = json.dumps(header, sort_keys=True).encode()
    buf.write(struct.pack("<I", len(h)) + h)
    buf.write(struct.pack("<I", len(cases)))
    for name, info, fm, qm, samples in cases:
        for blob in (name.encode(), json.dumps(info, sort_keys=True, default=list).encode(), fm, qm):
            buf.write(struct.pack("<I", len(blob)) + blob)
        buf.write(struct.pack("<I", len(samples)))
        for s in samples:
            buf.write(struct.pack("<B", len(s)))
            for a in s:
                gen.write_tensor(buf, a)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
            gz.write(buf.getvalue())
    os.replace(tmp, args.out)
    print(json.dumps(header), f"-> {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
