"""Cuts the committed MNIST fixture (crates/kinglet-train/tests/fixtures/mnist-tiny) from the
real MNIST IDX files: the first 96 training images (kinglet keeps the last twelfth, 8, for
validation) and the first 40 test images, gzip-compressed, same IDX layout.

    python3 scripts/make_mnist_fixture.py ../shared/data/mnist crates/kinglet-train/tests/fixtures/mnist-tiny
"""

import gzip
import os
import struct
import sys

COUNTS = {"train": 96, "t10k": 40}


def cut(src, dst, name, count):
    with gzip.open(os.path.join(src, name + ".gz"), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = list(struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim]))
    per = 1
    for d in dims[1:]:
        per *= d
    dims[0] = count
    header = raw[:4] + struct.pack(">" + "I" * ndim, *dims)
    body = raw[4 + 4 * ndim : 4 + 4 * ndim + count * per]
    # mtime=0: the same bytes on every run.
    with gzip.GzipFile(os.path.join(dst, name + ".gz"), "wb", mtime=0) as f:
        f.write(header + body)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    for prefix, count in COUNTS.items():
        cut(src, dst, f"{prefix}-images-idx3-ubyte", count)
        cut(src, dst, f"{prefix}-labels-idx1-ubyte", count)


if __name__ == "__main__":
    main()
