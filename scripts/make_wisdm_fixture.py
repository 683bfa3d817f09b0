#!/usr/bin/env python3
"""Writes the WISDM 2019 test fixtures (crates/kinglet-data/tests/fixtures/wisdm/ and
wisdm-malformed/) from the shared data. Run from the repository root:

    python3 scripts/make_wisdm_fixture.py ../shared/data/wisdm-2019

Fixtures (published layout, published line bytes, standard library only):
- wisdm/wisdm-dataset/: activity_key.txt as published; raw/phone/{accel,gyro}/ for subjects
  1600 (test), 1609 (val, has no jogging), 1606 and 1607 (train; 1607 has no gyroscope file
  and its phone ran at 25 Hz). Per subject and activity among A-E plus F (typing, a class
  outside locomotion), 240 accelerometer lines starting 30 s into the block, and the
  gyroscope lines of that activity within 50 ms of their time span. Blocks stay in file order,
  so the device clock jumps between them as in the real files. gzip level 9 with mtime 0 (as
  `gzip -9 -n`), so regenerating gives identical bytes.
- wisdm-malformed/<case>/wisdm-dataset/: subject 1600 only, 30 walking + 10 jogging lines,
  plain .txt (the uncompressed path), one defect each at the line listed in CASES; the tests
  in crates/kinglet-data/tests/wisdm.rs expect exactly these files and lines.
"""
import gzip, os, shutil, sys

SRC = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/wisdm-2019", "wisdm-dataset")
OUT = "crates/kinglet-data/tests/fixtures"
SUBJECTS = [1600, 1609, 1606, 1607]
ACTIVITIES = "ABCDEF"
OFFSET, LINES = 600, 240          # 30 s into each block, 12 s at 20 Hz
MARGIN_NS = 50_000_000

# case -> (sensor, 1-based line, how the line is broken)
CASES = {
    "short-line": ("accel", 17, lambda f: f[:4]),
    "wrong-subject": ("gyro", 23, lambda f: ["1601"] + f[1:]),
    "backwards-timestamp": ("accel", 30, None),  # 1 ms before line 29
    "unknown-letter": ("accel", 12, lambda f: [f[0], "N"] + f[2:]),
    "nan": ("accel", 8, lambda f: f[:5] + ["NaN"]),
}


def read_lines(sensor, subject):
    path = os.path.join(SRC, "raw", "phone", sensor, f"data_{subject}_{sensor}_phone.txt.gz")
    if not os.path.exists(path):
        return None
    with gzip.open(path, "rt") as f:
        return [l for l in f.read().split("\n") if l.strip()]


def blocks(lines):
    """Activity letter -> its lines, in file order (each activity is one block)."""
    out = {}
    for l in lines:
        out.setdefault(l.split(",")[1], []).append(l)
    return out


def ts(line):
    return int(line.split(",")[2])


def cut(subject, acts, offset, n):
    accel = blocks(read_lines("accel", subject))
    gyro_lines = read_lines("gyro", subject)
    gyro = blocks(gyro_lines) if gyro_lines is not None else None
    a_out, g_out = [], []
    for act, lines in accel.items():
        if act not in acts:
            continue
        part = lines[offset:offset + n]
        a_out += part
        if gyro is not None:
            lo, hi = ts(part[0]) - MARGIN_NS, ts(part[-1]) + MARGIN_NS
            g_out += [l for l in gyro.get(act, []) if lo <= ts(l) <= hi]
    return a_out, (g_out if gyro is not None else None)


def write(path, lines, compress):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def good_fixture():
    root = os.path.join(OUT, "wisdm", "wisdm-dataset")
    shutil.rmtree(os.path.join(OUT, "wisdm"), ignore_errors=True)
    os.makedirs(root)
    shutil.copy(os.path.join(SRC, "activity_key.txt"), root)
    for s in SUBJECTS:
        a, g = cut(s, ACTIVITIES, OFFSET, LINES)
        write(os.path.join(root, "raw", "phone", "accel", f"data_{s}_accel_phone.txt.gz"), a, True)
        if g is not None:
            write(os.path.join(root, "raw", "phone", "gyro", f"data_{s}_gyro_phone.txt.gz"), g, True)


def malformed_fixtures():
    base = os.path.join(OUT, "wisdm-malformed")
    shutil.rmtree(base, ignore_errors=True)
    walk_a, walk_g = cut(1600, "A", OFFSET, 30)
    jog_a, jog_g = cut(1600, "B", OFFSET, 10)
    clean = {"accel": walk_a + jog_a, "gyro": walk_g + jog_g}
    for case, (sensor, line, breaker) in CASES.items():
        files = {k: list(v) for k, v in clean.items()}
        f = files[sensor][line - 1].rstrip(";").split(",")
        if breaker is None:
            f[2] = str(ts(files[sensor][line - 2]) - 1_000_000)
        else:
            f = breaker(f)
        files[sensor][line - 1] = ",".join(f) + ";"
        root = os.path.join(base, case, "wisdm-dataset")
        os.makedirs(root)
        shutil.copy(os.path.join(SRC, "activity_key.txt"), root)
        for k, lines in files.items():
            write(os.path.join(root, "raw", "phone", k, f"data_1600_{k}_phone.txt"), lines, False)


if __name__ == "__main__":
    good_fixture()
    malformed_fixtures()
