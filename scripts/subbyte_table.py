#!/usr/bin/env python3
"""Assembles the precision table of scripts/subbyte_table.sh from its JSON outputs.

Usage: python3 scripts/subbyte_table.py OUT_DIR   (writes OUT_DIR/table.md and prints it)
"""
import json
import os
import sys

BITS = {"i8": 8, "i4": 4, "i2": 2}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def weights_only(inspect):
    """Bytes of the packed weight tensors alone (no biases)."""
    total = 0
    for op in inspect["ops"]:
        for t in op["inputs"][1:2]:
            if t["constant"] and t["dtype"] in BITS:
                n = 1
                for d in t["shape"]:
                    n *= d
                total += (n * BITS[t["dtype"]] + 7) // 8
    return total


def main():
    out = sys.argv[1]
    rows = ["| model | variant | UCI-HAR test acc | HAPT val acc | weight bytes | .tflite bytes | flash (model+kernels) | RAM (arena+stack) | M4 instructions | × int8 instr |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    variants = [("float", "kgl"), ("int8", "int8.tflite"), ("a16w8", "a16w8.tflite"),
                ("w4a8 PTQ", "w4a8.tflite"), ("w4a8 QAT", "w4a8-qat.tflite"),
                ("w2a8 PTQ", "w2a8.tflite"), ("w2a8 QAT", "w2a8-qat.tflite"),
                ("mixed @40 % (QAT)", "mixed40.tflite")]
    for m in ["kinglet-lite", "big3"]:
        base = load(os.path.join(out, f"profile-{m}.int8.tflite.json"))
        for label, suffix in variants:
            name = f"{m}.{suffix}"
            ev = load(os.path.join(out, f"eval-{name}.json"))
            val = load(os.path.join(out, f"val-{name}.json"))
            prof = load(os.path.join(out, f"profile-{name}.json"))
            path = os.path.join(out, name)
            size = os.path.getsize(path) if os.path.exists(path) and suffix != "kgl" else None
            log = os.path.join(out, name.replace(".tflite", ".log"))
            wb = "–"
            if suffix != "kgl" and os.path.exists(log):
                for line in open(log):
                    if " weight bytes;" in line:
                        wb = line.split(" weight bytes;")[0].rsplit(" ", 1)[1]
            acc = f"{100 * ev['accuracy']:.2f} %" if ev else "–"
            vacc = f"{100 * val['accuracy']:.2f} %" if val else "–"
            if prof:
                flash = f"{prof['flash_bytes']:,}"
                ram = f"{prof['ram_bytes']:,} ({prof['arena_bytes']:,}+{prof['stack_bytes']:,})"
                instr = f"{prof['instructions']:,}"
                ratio = f"{prof['instructions'] / base['instructions']:.3f}" if base else "–"
                if prof.get("notes"):
                    ratio += " (notes: " + "; ".join(prof["notes"]) + ")"
            elif label == "a16w8":
                flash = ram = instr = ratio = "not compiled"
            else:
                flash = ram = instr = ratio = "–"
            rows.append(f"| {m} | {label} | {acc} | {vacc} | {wb} | {f'{size:,}' if size else '–'} | {flash} | {ram} | {instr} | {ratio} |")
    rows += ["", "| little | int8 acc | int8 weights (+biases) B | w2a8 PTQ acc | w2a8 QAT acc | w2a8 weights (+biases) B |",
             "|---|---|---|---|---|---|"]
    for i in range(6):
        e = {s: load(os.path.join(out, f"eval-little{i}.{s}.tflite.json")) for s in ["int8", "w2a8", "w2a8-qat"]}
        ins = {s: load(os.path.join(out, f"inspect-little{i}.{s}.tflite.json")) for s in ["int8", "w2a8-qat"]}
        if not all(e.values()) or not all(ins.values()):
            continue
        pct = lambda d: f"{100 * d['accuracy']:.2f} %"
        wb = lambda d: f"{weights_only(d)} ({d['weight_bytes']})"
        rows.append(f"| little{i} | {pct(e['int8'])} | {wb(ins['int8'])} | {pct(e['w2a8'])} | {pct(e['w2a8-qat'])} | {wb(ins['w2a8-qat'])} |")
    text = "\n".join(rows) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
