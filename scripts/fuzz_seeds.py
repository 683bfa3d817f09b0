#!/usr/bin/env python3
"""Writes the fuzz seed corpora (issue 17) into fuzz/corpus/<target>/ from the committed
fixtures, ../shared/seed-models and any .kgl files given on the command line; the fuzz
targets' input formats are described in fuzz/src/targets/*.rs. Text files are cut to their
first lines so that seeds stay small. Run from the repository root, then `cargo fuzz cmin`.
"""
import glob
import gzip
import hashlib
import os
import sys

SEP = b"\n--8<--\n"


def read(path):
    data = open(path, "rb").read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def head(data, lines):
    return b"\n".join(data.split(b"\n")[:lines]) + b"\n"


def put(target, data):
    d = os.path.join("fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    open(os.path.join(d, name), "wb").write(data)


models = sorted(set(glob.glob("crates/*/tests/fixtures/**/*.tflite", recursive=True))
                | set(glob.glob("../shared/seed-models/*.tflite")))
for m in models:
    put("tflite", read(m))
    put("compile", read(m))

for kgl in sys.argv[1:]:
    put("kgl", read(kgl))

fx = "crates/kinglet-data/tests/fixtures"
mnist = "crates/kinglet-train/tests/fixtures/mnist-tiny"
for prefix in ["train", "t10k"]:
    images = read(f"{mnist}/{prefix}-images-idx3-ubyte.gz")
    labels = read(f"{mnist}/{prefix}-labels-idx1-ubyte.gz")
    put("data", b"\x00" + images + SEP + labels)
for t in sorted(glob.glob(f"{fx}/uci-har/**/*.*", recursive=True)
                + glob.glob(f"{fx}/malformed/**/*.*", recursive=True)):
    if t.endswith((".txt", ".csv", ".txt.gz", ".csv.gz")):
        put("data", b"\x01" + head(read(t), 4))
put("data", b"\x02" + read(f"{fx}/hapt.zip"))
for case in sorted(glob.glob(f"{fx}/wisdm-malformed/*")) + [f"{fx}/wisdm"]:
    root = f"{case}/wisdm-dataset"
    key = read(f"{root}/activity_key.txt")
    acc = sorted(glob.glob(f"{root}/raw/phone/accel/data_1600_*"))[0]
    gyr = sorted(glob.glob(f"{root}/raw/phone/gyro/data_1600_*"))[0]
    a, g = head(read(acc), 40), head(read(gyr), 40)
    put("data", b"\x03" + key + SEP + a + SEP + g)
    put("data", b"\x03" + key + SEP + a)
