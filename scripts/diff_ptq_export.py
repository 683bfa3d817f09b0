#!/usr/bin/env python3
"""Golden outputs of kinglet-quantised models in the TFLite interpreter.

1. Builds and runs `examples/ptq_export.rs`, which quantises every float model of
   `tests/goldens/ptq_reference.kgd.gz` with kinglet (several PTQ configurations) and writes
   the int8 .tflite files;
2. runs each file in ai_edge_litert (BUILTIN_REF kernels) on deterministic inputs;
3. writes `crates/kinglet-compress/tests/goldens/ptq_exported.kgd.gz` in the bundle format of
   `diff_generate.py` (the info JSON of each case names the reference case and the config).

`tests/ptq_exported.rs` then checks that kinglet still produces these models and that
kinglet's interpreter gives the same outputs as TFLite on them.

Usage: python3 scripts/diff_ptq_export.py [--target-dir DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diff_generate as gen  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
GOLDENS = os.path.join(ROOT, "crates", "kinglet-compress", "tests", "goldens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
    ap.add_argument("--out", default=os.path.join(GOLDENS, "ptq_exported.kgd.gz"))
    args = ap.parse_args()
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    work = tempfile.mkdtemp(prefix="kinglet-ptq-export-")
    env = dict(os.environ, CARGO_TARGET_DIR=args.target_dir)
    subprocess.run(["cargo", "run", "--release", "-p", "kinglet-compress", "--example", "ptq_export", "--",
                    os.path.join(GOLDENS, "ptq_reference.kgd.gz"), work], cwd=ROOT, env=env, check=True)
    manifest = json.load(open(os.path.join(work, "manifest.json")))
    cases = []
    for k, entry in enumerate(manifest):
        model = open(os.path.join(work, entry["file"]), "rb").read()
        rng = np.random.default_rng(gen.BASE_SEED + k)
        it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        samples = []
        for variant in range(2):
            ins = []
            for d in it.get_input_details():
                shape = tuple(d["shape"])
                if d["dtype"] == np.int8:
                    ins.append(rng.integers(-128, 128, size=shape).astype(np.int8))
                else:
                    ins.append((rng.normal(0.0, 1.0 + variant, size=shape)).astype(np.float32))
            for d, a in zip(it.get_input_details(), ins):
                it.set_tensor(d["index"], a)
            it.invoke()
            outs = [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]
            samples.append((ins, outs))
        ops = [o["op_name"] for o in it._get_ops_details()]
        cases.append({"name": f"{entry['case']}@{entry['config']}", "model": model, "samples": samples,
                      "info": {"case": entry["case"], "config": entry["config"], "ops": ops,
                               "family": entry["config"]}})
    header = {"generator": "scripts/diff_ptq_export.py", "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
              "numpy": np.__version__, "cases": len(cases), "expected_from": "ai_edge_litert BUILTIN_REF kernels"}
    try:
        import tensorflow as tf
        header["tensorflow"] = tf.__version__
    except ImportError:
        header["tensorflow"] = "not installed"
    gen.write_bundle(args.out, cases, header)
    print(f"wrote {args.out}: {len(cases)} kinglet-quantised models")


if __name__ == "__main__":
    main()
