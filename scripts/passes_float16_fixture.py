#!/usr/bin/env python3
"""A real float16 `.tflite` (TensorFlow's converter: f16 weights behind DEQUANTIZE ops) and
the TFLite interpreter's outputs on it, for crates/kinglet-graph/tests/passes.rs.

  python3 scripts/passes_float16_fixture.py

Model: Keras Conv2D(4, 3x3, no bias) -> BatchNormalization (fixed random statistics) -> ReLU
-> MaxPool 2x2 -> Flatten -> Dense(3) on a [1, 12, 12, 1] input, seeds fixed; converted with
Optimize.DEFAULT and supported_types=[float16]. Input: LCG bytes (seed README generator, seed
12345) mapped to [-1, 1) as byte/128 - 1. Writes tests/fixtures/cnn_bn_f16.tflite and
tests/goldens/passes_cnn_f16.json ({"input": [...], "builtin": [...], "reference": [...]}).
"""
import json
import os

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "crates", "kinglet-graph", "tests", "fixtures", "cnn_bn_f16.tflite")
OUT = os.path.join(REPO, "crates", "kinglet-graph", "tests", "goldens", "passes_cnn_f16.json")


def lcg_inputs(n, seed=12345):
    s, out = seed, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) % 2**32
        out.append(((s >> 16) & 0xFF) / 128.0 - 1.0)
    return np.array(out, dtype=np.float32)


def build():
    tf.random.set_seed(3)
    rng = np.random.default_rng(3)
    x = tf.keras.Input((12, 12, 1), batch_size=1)
    y = tf.keras.layers.Conv2D(4, 3, use_bias=False)(x)
    bn = tf.keras.layers.BatchNormalization()
    y = bn(y)
    y = tf.keras.layers.ReLU()(y)
    y = tf.keras.layers.MaxPooling2D(2)(y)
    y = tf.keras.layers.Flatten()(y)
    y = tf.keras.layers.Dense(3)(y)
    m = tf.keras.Model(x, y)
    bn.set_weights([rng.uniform(0.5, 1.5, 4), rng.uniform(-0.2, 0.2, 4),
                    rng.uniform(-0.1, 0.1, 4), rng.uniform(0.5, 2.0, 4)])
    return m


def main():
    conv = tf.lite.TFLiteConverter.from_keras_model(build())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    with open(FIX, "wb") as f:
        f.write(conv.convert())
    x = lcg_inputs(144)
    golden = {"input": x.tolist()}
    for key, resolver in [("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                          ("reference", OpResolverType.BUILTIN_REF)]:
        it = Interpreter(model_path=FIX, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], x.reshape(d["shape"]))
        it.invoke()
        golden[key] = it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1).tolist()
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
