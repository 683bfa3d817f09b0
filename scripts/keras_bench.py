#!/usr/bin/env python3
"""Keras side of the Big-3IN training-speed benchmark (never run in CI).

Trains the seed's Big-3IN architecture (three branches of 5 x [Conv1D k=3 'same' + ReLU +
MaxPool 2] with 4-8-16-32-8 filters, flatten, concatenate, Dense 6) on exactly the windows
kinglet trains on, with the same batch size and schedule, and reports seconds per epoch.

The windows come from kinglet itself, so both sides see identical data:

    kinglet train --arch big3 --data hapt:../shared/data/hapt.zip:train \
        --out /tmp/unused.kgl --export-inputs /tmp/big3-inputs
    python3 scripts/keras_bench.py /tmp/big3-inputs --epochs 5

Requires tensorflow-cpu (tested with the version pip installed on the benchmark machine;
printed in the output).
"""

import argparse
import json
import math
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", help="folder with x_body_acc.npy, x_body_gyro.npy, x_total_acc.npy, y.npy")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    branches = ["body_acc", "body_gyro", "total_acc"]
    xs = [np.load(os.path.join(args.inputs, f"x_{b}.npy")) for b in branches]
    y = np.load(os.path.join(args.inputs, "y.npy"))
    n_classes = int(y.max()) + 1

    inputs, flats = [], []
    for b, x in zip(branches, xs):
        inp = tf.keras.Input(shape=x.shape[1:], name=b)
        h = inp
        for filters in (4, 8, 16, 32, 8):
            h = tf.keras.layers.Conv1D(filters, 3, padding="same", activation="relu")(h)
            h = tf.keras.layers.MaxPooling1D(2)(h)
        inputs.append(inp)
        flats.append(tf.keras.layers.Flatten()(h))
    out = tf.keras.layers.Dense(n_classes)(tf.keras.layers.Concatenate()(flats))
    model = tf.keras.Model(inputs, out)

    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * math.exp(-50.0 * lr)

    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=args.lr),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    class Timer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = Timer()
    history = model.fit(
        xs,
        y,
        batch_size=args.batch,
        epochs=args.epochs,
        shuffle=True,
        verbose=2,
        callbacks=[timer, tf.keras.callbacks.LearningRateScheduler(schedule)],
    )
    # The first epoch includes graph tracing; report it separately.
    steady = timer.seconds[1:] or timer.seconds
    print(
        json.dumps(
            {
                "framework": "keras",
                "tensorflow": tf.__version__,
                "params": int(model.count_params()),
                "windows": int(len(y)),
                "batch": args.batch,
                "epoch_seconds": [round(s, 3) for s in timer.seconds],
                "mean_seconds_per_epoch_excluding_first": round(sum(steady) / len(steady), 3),
                "final_train_accuracy": float(history.history["accuracy"][-1]),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
