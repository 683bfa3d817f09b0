//! The C99 output compiles warning-free for Cortex-M4 (DSP) and Cortex-M3 (no DSP) with
//! arm-none-eabi-gcc, and, built for the host, gives the TFLite outputs on the anchor models.
use std::path::{Path, PathBuf};
use std::process::Command;

use kinglet_compile::emit_c::c_prefix;
use kinglet_compile::firmware::{compile, write_c};
use kinglet_graph::Graph;

fn seed_model(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed-models/int8")
        .join(name);
    Graph::from_tflite_bytes(&std::fs::read(&path).expect("seed model")).expect("parse")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const STRICT: [&str; 5] = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"];

fn check(name: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let compiled = compile(&seed_model(name), name).unwrap();
    let (_, c) = write_c(&compiled, name, dir.path()).unwrap();
    let obj = |flags: &[&str], out: &Path| {
        run(Command::new("arm-none-eabi-gcc")
            .args(STRICT)
            .args(flags)
            .arg("-c")
            .arg(&c)
            .arg("-o")
            .arg(out));
    };
    obj(
        &[
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
        ],
        &dir.path().join("m4.o"),
    );
    obj(&["-mcpu=cortex-m3", "-mthumb"], &dir.path().join("m3.o"));

    let p = c_prefix(name);
    let up = p.to_uppercase();
    let main = format!(
        "#include <stdio.h>\n#include \"{p}.h\"\n\
         int main(void) {{\n  static int8_t in[{up}_INPUT_LEN];\n  int8_t out[{up}_OUTPUT_LEN];\n  uint32_t s = 12345u;\n  int i;\n\
         \x20 for (i = 0; i < {up}_INPUT_LEN; i++) {{ s = s * 1103515245u + 12345u; in[i] = (int8_t)(uint8_t)((s >> 16) & 0xffu); }}\n\
         \x20 if ({p}_infer(in, out) != 0) return 1;\n\
         \x20 for (i = 0; i < {up}_OUTPUT_LEN; i++) printf(i ? \" %d\" : \"%d\", out[i]);\n  printf(\"\\n\");\n  return 0;\n}}\n"
    );
    std::fs::write(dir.path().join("main.c"), main).unwrap();
    let exe = dir.path().join("model");
    run(Command::new("cc")
        .args(STRICT)
        .arg("-I")
        .arg(dir.path())
        .arg(dir.path().join("main.c"))
        .arg(&c)
        .arg("-o")
        .arg(&exe));
    assert_eq!(run(&mut Command::new(&exe)).trim(), expected);
}

#[test]
fn big_anchor_c_compiles_and_matches_tflite() {
    check("B_s123_1IN_int8.tflite", "-38 -22 -32 -7 -20 -22");
}

#[test]
fn little_anchor_c_compiles_and_matches_tflite() {
    check("S0_s3_int8.tflite", "-44 70");
}
