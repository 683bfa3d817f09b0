#!/usr/bin/env python3
"""Writes the kinglet-data test fixtures (crates/kinglet-data/tests/fixtures/) from the
shared datasets. Run from the repository root:

    python3 scripts/make_data_fixtures.py ../shared/data

Fixtures:
- uci-har/UCI HAR Dataset/: official layout, values rounded to 4 significant digits.
  test = 300 official test windows: first the 24 that open subject 2's runs (4 per class;
  some lie in the HAPT slice below), then 276 spread evenly over subjects 4, 9, 10 and 12
  (single windows, so none of them forms a run that `compare` could misplace),
  whitespace-separated and gzip-compressed (.txt.gz, about 0.9 MB instead of 2.7 MB);
  train = 48 official test windows of subjects 13, 18, 20 and 24 (spread evenly), plain
  comma-separated .csv, with subject ids reassigned to 1 (a training subject; 32 windows)
  and 6 (a validation subject; 16 windows) so that train and val splits are non-empty.
- hapt.zip: the published HAPT zip layout, four experiments cut to short sample ranges
  (labels rebased, only segments wholly inside kept), values rounded to 6 decimals:
  exp 1 and 2 (user 1, train), exp 11 (user 6, val), exp 3 (user 2, test; starts at
  sample 1, so it yields the same windows as the full recording).
- malformed/: small variants with one defect each (2 windows of constant values).
"""
import gzip, io, os, sys, shutil, zipfile
import numpy as np

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
OUT = "crates/kinglet-data/tests/fixtures"
CH = ["body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y", "body_gyro_z",
      "total_acc_x", "total_acc_y", "total_acc_z"]
UCI = os.path.join(SHARED, "uci-har", "UCI HAR Dataset")

def read_csv_rows(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f]

def write_split(root, split, rows, labels, subjects, sep, ext):
    d = os.path.join(root, split, "Inertial Signals")
    os.makedirs(d, exist_ok=True)
    for c in CH:
        src = read_csv_rows(os.path.join(UCI, "test", "Inertial Signals", f"{c}_test.csv"))
        text = "".join(sep.join(f"{float(v):.4g}" for v in src[r].split(",")) + "\n" for r in rows)
        path = os.path.join(d, f"{c}_{split}.{ext}")
        if ext.endswith(".gz"):
            # mtime 0 keeps the bytes identical from one regeneration to the next.
            with open(path, "wb") as f:
                f.write(gzip.compress(text.encode(), compresslevel=9, mtime=0))
        else:
            with open(path, "w") as f:
                f.write(text)
    with open(os.path.join(root, split, f"y_{split}.txt"), "w") as f:
        f.writelines(f"{l}\n" for l in labels)
    with open(os.path.join(root, split, f"subject_{split}.txt"), "w") as f:
        f.writelines(f"{s}\n" for s in subjects)

def uci_fixture():
    root = os.path.join(OUT, "uci-har", "UCI HAR Dataset")
    shutil.rmtree(os.path.join(OUT, "uci-har"), ignore_errors=True)
    os.makedirs(root)
    shutil.copy(os.path.join(UCI, "activity_labels.txt"), root)
    y = [int(v) for v in read_csv_rows(os.path.join(UCI, "test", "y_test.txt"))]
    s = [int(v) for v in read_csv_rows(os.path.join(UCI, "test", "subject_test.txt"))]
    # Starts of official runs of subject 2 (standing, sitting, laying, walking, down, up).
    first = [r for start in (0, 31, 55, 79, 109, 133) for r in range(start, start + 4)]
    spread = lambda pool, n: [pool[k * len(pool) // n] for k in range(n)]
    pool = [r for r in range(len(y)) if s[r] in (4, 9, 10, 12)]
    test_rows = first + spread(pool, 300 - len(first))
    write_split(root, "test", test_rows, [y[r] for r in test_rows], [s[r] for r in test_rows], " ", "txt.gz")
    train_rows = spread([r for r in range(len(y)) if s[r] in (13, 18, 20, 24)], 48)
    write_split(root, "train", train_rows, [y[r] for r in train_rows],
                [6 if i % 3 == 2 else 1 for i in range(len(train_rows))], ",", "csv")

def hapt_fixture():
    src = zipfile.ZipFile(os.path.join(SHARED, "hapt.zip"))
    labels = np.loadtxt(src.open("RawData/labels.txt"), dtype=int)
    cuts = {(1, 1): (7400, 9300), (2, 1): (13000, 14800), (11, 6): (0, 2500), (3, 2): (0, 2800)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", "Short slice of HAPT (Reyes-Ortiz et al. 2015) for kinglet tests; "
                   "see scripts/make_data_fixtures.py.\n")
        z.writestr("activity_labels.txt", src.read("activity_labels.txt"))
        out_labels = []
        for (exp, user), (a, b) in cuts.items():
            for kind in ("acc", "gyro"):
                name = f"RawData/{kind}_exp{exp:02d}_user{user:02d}.txt"
                x = np.loadtxt(src.open(name))[a:b]
                z.writestr(name, "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in x))
            for e, u, act, s0, e0 in labels:
                # labels count from 1; keep segments wholly inside samples a+1 ..= b.
                if e == exp and s0 - 1 >= a and e0 <= b:
                    out_labels.append(f"{e} {u} {act} {s0 - a} {e0 - a}\n")
        z.writestr("RawData/labels.txt", "".join(out_labels))
    with open(os.path.join(OUT, "hapt.zip"), "wb") as f:
        f.write(buf.getvalue())

def malformed_fixture():
    base = os.path.join(OUT, "malformed")
    shutil.rmtree(base, ignore_errors=True)
    row = " ".join(["0.5"] * 128)
    def layout(name, edit=None, signals=True, y_rows=2):
        root = os.path.join(base, name, "UCI HAR Dataset")
        os.makedirs(os.path.join(root, "test"), exist_ok=True)
        shutil.copy(os.path.join(UCI, "activity_labels.txt"), root)
        with open(os.path.join(root, "test", "y_test.txt"), "w") as f:
            f.write("1\n2\n"[: 2 * y_rows])
        with open(os.path.join(root, "test", "subject_test.txt"), "w") as f:
            f.write("2\n2\n"[: 2 * y_rows])
        if not signals:
            return
        d = os.path.join(root, "test", "Inertial Signals")
        os.makedirs(d)
        for c in CH:
            lines = [row, row]
            if edit and edit[0] == c:
                lines = edit[1](lines)
            with open(os.path.join(d, f"{c}_test.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
    layout("short-row", ("body_gyro_y", lambda l: [l[0], " ".join(["0.5"] * 127)]))
    layout("non-numeric", ("total_acc_x", lambda l: [l[0], l[1].replace("0.5", "abc", 5).replace("abc", "0.5", 4)]))
    layout("nan", ("body_acc_z", lambda l: [l[0].replace("0.5", "NaN", 3).replace("NaN", "0.5", 2), l[1]]))
    layout("mismatched-counts", ("total_acc_z", lambda l: [l[0]]))
    layout("missing-signals", signals=False)
    # HAPT raw: a short row and an acc/gyro length mismatch.
    def hapt(name, acc_lines, gyro_lines):
        d = os.path.join(base, name, "RawData")
        os.makedirs(d)
        with open(os.path.join(d, "labels.txt"), "w") as f:
            f.write("1 1 5 3 200\n")
        with open(os.path.join(d, "acc_exp01_user01.txt"), "w") as f:
            f.write("".join(acc_lines))
        with open(os.path.join(d, "gyro_exp01_user01.txt"), "w") as f:
            f.write("".join(gyro_lines))
    good = ["1.0 0.1 0.2\n"] * 300
    bad = list(good); bad[56] = "1.0 0.1\n"
    hapt("hapt-short-row", bad, good)
    hapt("hapt-mismatched-counts", good, good[:299])

os.makedirs(OUT, exist_ok=True)
uci_fixture()
hapt_fixture()
malformed_fixture()
