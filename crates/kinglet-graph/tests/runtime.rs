//! Host execution against the TFLite interpreter's published outputs, and the arena contract.

use std::path::PathBuf;

use kinglet_graph::{DType, Graph, Interpreter, TfliteKernels};

fn model(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Graph::from_tflite_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The seed README's fixed input: `s = s*1103515245 + 12345 (mod 2^32)`, byte `(s >> 16) & 0xff`.
fn lcg_bytes(n: usize) -> Vec<i8> {
    let mut s: u32 = 12345;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((s >> 16) & 0xff) as u8 as i8
        })
        .collect()
}

fn run_lcg(name: &str) -> Vec<i8> {
    let g = model(name);
    let n = g.tensor(g.inputs[0]).elements();
    let mut it = Interpreter::with_kernels(&g, TfliteKernels::Builtin).unwrap();
    it.set_input(0, &lcg_bytes(n)).unwrap();
    it.invoke().unwrap();
    it.output::<i8>(0).unwrap()
}

#[test]
fn int8_big_matches_tflite_on_the_lcg_input() {
    assert_eq!(
        run_lcg("B_s123_1IN_int8.tflite"),
        vec![-38, -22, -32, -7, -20, -22]
    );
}

#[test]
fn int8_little_matches_tflite_on_the_lcg_input() {
    assert_eq!(run_lcg("S0_s3_int8.tflite"), vec![-44, 70]);
}

#[test]
fn lcg_goldens_from_the_script_agree_with_the_readme_and_kinglet() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/int8_lcg.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for name in ["B_s123_1IN_int8", "S0_s3_int8"] {
        let want: Vec<i8> = v[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as i8)
            .collect();
        assert_eq!(run_lcg(&format!("{name}.tflite")), want, "{name}");
    }
}

#[test]
fn int8_models_match_every_tflite_configuration_on_200_lcg_windows() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/int8_lcg.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for name in ["B_s123_1IN_int8", "S0_s3_int8"] {
        let g = model(&format!("{name}.tflite"));
        let n = g.tensor(g.inputs[0]).elements();
        for kernels in TfliteKernels::ALL {
            let want = v["windows"][name][kernels.name()].as_array().unwrap();
            assert_eq!(want.len(), 200);
            let xs = lcg_bytes(n * want.len());
            let mut it = Interpreter::with_kernels(&g, kernels).unwrap();
            let mut differ = Vec::new();
            for (w, (x, expect)) in xs.chunks_exact(n).zip(want).enumerate() {
                it.set_input(0, x).unwrap();
                it.invoke().unwrap();
                let expect: Vec<i8> = expect
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap() as i8)
                    .collect();
                if it.output::<i8>(0).unwrap() != expect {
                    differ.push(w);
                }
            }
            assert!(
                differ.is_empty(),
                "{name} {kernels}: windows {differ:?} differ"
            );
        }
    }
}

#[test]
fn re_exported_int8_models_give_the_same_outputs() {
    for (name, want) in [
        (
            "B_s123_1IN_int8.tflite",
            vec![-38i8, -22, -32, -7, -20, -22],
        ),
        ("S0_s3_int8.tflite", vec![-44, 70]),
    ] {
        let g = Graph::from_tflite_bytes(&model(name).to_tflite_bytes().unwrap()).unwrap();
        let mut it = Interpreter::new(&g).unwrap();
        it.set_input(0, &lcg_bytes(g.tensor(g.inputs[0]).elements()))
            .unwrap();
        it.invoke().unwrap();
        assert_eq!(it.output::<i8>(0).unwrap(), want, "{name}");
    }
}

#[test]
fn executor_uses_exactly_the_planned_arena() {
    for name in [
        "B_s123_3IN_91.tflite",
        "B_s123_1IN_int8.tflite",
        "S0_s3.tflite",
    ] {
        let g = model(name);
        let it = Interpreter::new(&g).unwrap();
        let planned = it.plan().arena_bytes();
        assert!(planned > 0);
        assert_eq!(it.arena_len(), planned, "{name}");
        // One aligned block smaller than planned must be refused.
        let mut words = vec![0u128; planned / 16];
        let bytes: &mut [u8] = byte_view(&mut words);
        it.invoke_in(bytes).unwrap();
        let short = planned - 16;
        let err = it.invoke_in(&mut bytes[..short]).unwrap_err();
        assert!(
            err.to_string().contains("smaller than the planned"),
            "{err}"
        );
    }
}

/// Byte view of a u128 buffer (16-byte aligned, as the executor requires).
fn byte_view(words: &mut [u128]) -> &mut [u8] {
    let (head, body, tail) = unsafe { words.align_to_mut::<u8>() };
    assert!(head.is_empty() && tail.is_empty());
    body
}

#[test]
fn inspect_reports_the_arena_the_runtime_allocates() {
    for name in [
        "B_s123_3IN_91.tflite",
        "B_s123_1IN_int8.tflite",
        "zoo_f32.tflite",
        "zoo_i8.tflite",
    ] {
        let g = model(name);
        let summary = kinglet_graph::ModelSummary::new(&g).unwrap();
        assert_eq!(
            summary.arena_bytes,
            Interpreter::new(&g).unwrap().arena_len(),
            "{name}"
        );
        assert!(
            summary.arena_bytes < summary.unshared_activation_bytes,
            "{name}: reuse happens"
        );
    }
}

#[test]
fn wrong_input_type_or_length_is_an_error() {
    let g = model("S0_s3.tflite");
    let mut it = Interpreter::new(&g).unwrap();
    assert!(it.set_input(0, &[0i8; 384]).is_err());
    assert!(it.set_input(0, &[0u8; 383]).is_err());
    assert!(it.set_input(1, &[0u8; 384]).is_err());
    assert_eq!(g.tensor(g.inputs[0]).dtype, DType::U8);
    it.set_input(0, &[128u8; 384]).unwrap();
    it.invoke().unwrap();
    assert_eq!(it.output::<u8>(0).unwrap().len(), 2);
}

#[test]
fn batched_and_threaded_runs_equal_single_invokes() {
    for (name, kernels) in [
        ("B_s123_1IN_int8.tflite", TfliteKernels::Default),
        ("B_s123_3IN_91.tflite", TfliteKernels::Builtin),
        ("S0_s3.tflite", TfliteKernels::Reference),
    ] {
        let g = model(name);
        let mut it = Interpreter::with_kernels(&g, kernels).unwrap();
        let (win_in, win_out) = it.batch_window_bytes().unwrap();
        let windows = 37;
        let inputs: Vec<u8> = lcg_bytes(win_in * windows)
            .into_iter()
            .map(|b| b as u8)
            .collect();
        let mut single = Vec::new();
        for w in inputs.chunks_exact(win_in) {
            let mut at = 0;
            for i in 0..g.inputs.len() {
                let n = g.tensor(g.inputs[i]).byte_size();
                it.set_input_bytes(i, &w[at..at + n]).unwrap();
                at += n;
            }
            it.invoke().unwrap();
            single.extend_from_slice(it.output_bytes(0).unwrap());
        }
        assert_eq!(single.len(), windows * win_out);
        for threads in [1, 2, 3] {
            let mut out = Vec::new();
            it.invoke_batch(&inputs, threads, &mut out).unwrap();
            assert_eq!(out, single, "{name} with {threads} threads");
        }
        let mut out = Vec::new();
        assert!(it.invoke_batch(&inputs[1..], 2, &mut out).is_err());
    }
}
