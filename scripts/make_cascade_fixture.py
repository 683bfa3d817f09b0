#!/usr/bin/env python3
"""Writes the firmware-cascade fixture: consecutive official UCI-HAR test windows as int8.

Source: /work/shared/data/uci-har/UCI HAR Dataset/test/Inertial Signals/*_test.csv (the official
test split, 2,947 windows x 128 steps, in subject-and-time order) and y_test.txt.
Scaling: the seed's per-channel min-max over all 2,947 test windows,
u8 = trunc(255 * (x - min) / (max - min)) (as kinglet_data::seed_uint8_scaling), then
int8 = u8 - 128: the int8 form of the seed's uint8 input (scale 1, zero point 128 -> scale 1,
zero point 0), which is what the int8 seed-architecture models take.
Layout: [n, 128, 9] int8, time-major, channels body_acc xyz, body_gyro xyz, total_acc xyz.
Labels: one 0-based activity per line.

Usage: python3 scripts/make_cascade_fixture.py [--start 0] [--count 200] [--out DIR]
Regenerates crates/kinglet-adapt/tests/fixtures/uci_har_test_w0_n200.{i8,labels}.
Models with another int8 input quantisation need the fixture regenerated with it.
"""
import argparse
import os

import numpy as np

ROOT = "/work/shared/data/uci-har/UCI HAR Dataset/test"
CHANNELS = [f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=200)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "../crates/kinglet-adapt/tests/fixtures"))
    args = ap.parse_args()
    signals = [
        np.loadtxt(os.path.join(ROOT, "Inertial Signals", f"{c}_test.csv"), delimiter=",", dtype=np.float64)
        for c in CHANNELS
    ]
    x = np.stack(signals, axis=-1)  # [2947, 128, 9]
    lo = x.min(axis=(0, 1))
    hi = x.max(axis=(0, 1))
    u8 = np.clip(np.trunc((x - lo) / (hi - lo) * 255.0), 0, 255).astype(np.int32)
    i8 = (u8 - 128).astype(np.int8)
    labels = np.loadtxt(os.path.join(ROOT, "y_test.txt"), dtype=np.int64) - 1
    sel = slice(args.start, args.start + args.count)
    if i8[sel].shape[0] != args.count:
        raise SystemExit(f"only {i8[sel].shape[0]} windows from {args.start}")
    stem = os.path.join(args.out, f"uci_har_test_w{args.start}_n{args.count}")
    os.makedirs(args.out, exist_ok=True)
    i8[sel].tofile(stem + ".i8")
    with open(stem + ".labels", "w") as f:
        f.write("".join(f"{v}\n" for v in labels[sel]))
    print(f"wrote {stem}.i8 ({i8[sel].nbytes} bytes) and .labels; activities {sorted(set(labels[sel].tolist()))}")


if __name__ == "__main__":
    main()
