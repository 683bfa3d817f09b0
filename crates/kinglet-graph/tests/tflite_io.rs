//! Reading the seed models, round-tripping through the writer, and rejecting corrupt files.

use std::path::PathBuf;

use kinglet_graph::{DType, Graph, GraphError, OpKind};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

const SEEDS: [&str; 11] = [
    "B_s123_3IN_91.tflite",
    "B_s123_1IN_91.tflite",
    "S0_s3.tflite",
    "S1_s3.tflite",
    "S2_s3.tflite",
    "S3_s3.tflite",
    "S4_s3.tflite",
    "S5_s3.tflite",
    "dual_motions.tflite",
    "B_s123_1IN_int8.tflite",
    "S0_s3_int8.tflite",
];

#[test]
fn reads_every_seed_model() {
    for name in SEEDS {
        let g = Graph::from_tflite_bytes(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!g.ops.is_empty(), "{name}");
    }
    let big3 = Graph::from_tflite_bytes(&fixture("B_s123_3IN_91.tflite")).unwrap();
    assert_eq!(big3.inputs.len(), 3);
    for id in &big3.inputs {
        let t = big3.tensor(*id);
        assert_eq!((t.shape.as_slice(), t.dtype), (&[1, 128, 3][..], DType::U8));
        let q = t.quant.as_ref().unwrap();
        assert_eq!((q.scale[0], q.zero_point[0]), (1.0, 128));
    }
    assert!(
        big3.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::Concatenation { axis: 1, .. }))
    );
}

#[test]
fn int8_seed_macs_match_the_published_counts() {
    let big = Graph::from_tflite_bytes(&fixture("B_s123_1IN_int8.tflite")).unwrap();
    assert_eq!(big.total_macs(), 63_168);
    let little = Graph::from_tflite_bytes(&fixture("S0_s3_int8.tflite")).unwrap();
    assert_eq!(little.total_macs(), 8_512);
    let conv = big
        .ops
        .iter()
        .find(|o| matches!(o.kind, OpKind::Conv2D { .. }))
        .unwrap();
    let w = big.tensor(conv.inputs[1]);
    assert_eq!(
        w.quant.as_ref().unwrap().scale.len(),
        4,
        "per-channel weights"
    );
}

#[test]
fn written_models_read_back_identically() {
    for name in SEEDS {
        let g = Graph::from_tflite_bytes(&fixture(name)).unwrap();
        let bytes = g.to_tflite_bytes().unwrap();
        let back = Graph::from_tflite_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Metadata: binary entries are dropped on read, so compare after one round trip.
        assert_eq!(back.ops, g.ops, "{name}");
        assert_eq!(back.tensors, g.tensors, "{name}");
        assert_eq!(
            (back.inputs.clone(), back.outputs.clone()),
            (g.inputs.clone(), g.outputs.clone()),
            "{name}"
        );
        assert_eq!(back.metadata, g.metadata, "{name}");
    }
}

#[test]
fn metadata_survives_a_round_trip() {
    let mut g = Graph::from_tflite_bytes(&fixture("S0_s3_int8.tflite")).unwrap();
    g.set_metadata_list(kinglet_graph::meta::CLASS_NAMES, &["changed", "same"]);
    let back = Graph::from_tflite_bytes(&g.to_tflite_bytes().unwrap()).unwrap();
    assert_eq!(
        back.metadata_list(kinglet_graph::meta::CLASS_NAMES)
            .unwrap(),
        vec!["changed", "same"]
    );
}

#[test]
fn truncated_and_bit_flipped_files_are_errors_not_panics() {
    let mut rejected = 0;
    let mut executed = 0;
    for name in [
        "S0_s3_int8.tflite",
        "S0_s3.tflite",
        "zoo_i8.tflite",
        "zoo_f32.tflite",
    ] {
        let bytes = fixture(name);
        for len in (0..bytes.len()).step_by(61) {
            assert!(
                Graph::from_tflite_bytes(&bytes[..len]).is_err(),
                "{name} truncated to {len} bytes accepted"
            );
            rejected += 1;
        }
        // Deterministic bit flips (1 to 3 per file): reading, planning and running a
        // corrupt model must give Ok or Err, never panic.
        // KINGLET_FUZZ_ITERS raises the count for a longer local run.
        let iters: usize = std::env::var("KINGLET_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500);
        let mut s: u32 = 12345;
        for _ in 0..iters {
            let mut corrupt = bytes.clone();
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            for _ in 0..=(s % 3) {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let pos = (s >> 8) as usize % corrupt.len();
                corrupt[pos] ^= 1 << (s & 7);
            }
            match Graph::from_tflite_bytes(&corrupt) {
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
                Ok(g) => {
                    if let Ok(mut it) = kinglet_graph::Interpreter::new(&g) {
                        for i in 0..g.inputs.len() {
                            let n = g.tensor(g.inputs[i]).byte_size();
                            let _ = it.set_input_bytes(i, &vec![0x5a; n]);
                        }
                        let _ = it.invoke();
                        executed += 1;
                    }
                }
            }
        }
    }
    assert!(
        rejected > 1000 && executed > 100,
        "rejected {rejected}, executed {executed}"
    );
}

/// Builds a minimal one-op `.tflite` (input → op → output, f32 [1, 4]) with raw flatbuffers,
/// so the reader can be shown ops and versions the writer never produces.
fn one_op_model(code: i32, version: i32) -> Vec<u8> {
    use flatbuffers::FlatBufferBuilder;
    let slot = |id: u16| 4 + 2 * id;
    let mut b = FlatBufferBuilder::new();
    let empty = b.start_table();
    let buffer0 = b.end_table(empty);
    let mut tensors = Vec::new();
    for name in ["in", "out"] {
        let shape = b.create_vector(&[1i32, 4]);
        let name = b.create_string(name);
        let t = b.start_table();
        b.push_slot_always(slot(0), shape);
        b.push_slot_always(slot(3), name);
        tensors.push(b.end_table(t));
    }
    let tensors = b.create_vector(&tensors);
    let ins = b.create_vector(&[0i32]);
    let outs = b.create_vector(&[1i32]);
    let o = b.start_table();
    b.push_slot_always(slot(1), ins);
    b.push_slot_always(slot(2), outs);
    let op = b.end_table(o);
    let ops = b.create_vector(&[op]);
    let sg_in = b.create_vector(&[0i32]);
    let sg_out = b.create_vector(&[1i32]);
    let s = b.start_table();
    b.push_slot_always(slot(0), tensors);
    b.push_slot_always(slot(1), sg_in);
    b.push_slot_always(slot(2), sg_out);
    b.push_slot_always(slot(3), ops);
    let sg = b.end_table(s);
    let c = b.start_table();
    b.push_slot_always::<i8>(slot(0), code.min(127) as i8);
    b.push_slot_always::<i32>(slot(2), version);
    b.push_slot_always::<i32>(slot(3), code);
    let opcode = b.end_table(c);
    let codes = b.create_vector(&[opcode]);
    let sgs = b.create_vector(&[sg]);
    let buffers = b.create_vector(&[buffer0]);
    let m = b.start_table();
    b.push_slot_always::<u32>(slot(0), 3);
    b.push_slot_always(slot(1), codes);
    b.push_slot_always(slot(2), sgs);
    b.push_slot_always(slot(4), buffers);
    let model = b.end_table(m);
    b.finish(model, Some("TFL3"));
    b.finished_data().to_vec()
}

#[test]
fn unsupported_op_and_version_are_named_with_the_op_index() {
    let softmax = 25;
    let g = Graph::from_tflite_bytes(&one_op_model(softmax, 1)).unwrap();
    assert!(matches!(g.ops[0].kind, OpKind::Softmax { .. }));

    let tanh = 28;
    match Graph::from_tflite_bytes(&one_op_model(tanh, 1)) {
        Err(GraphError::Unsupported(m)) => assert!(m.contains("op 0") && m.contains("28"), "{m}"),
        other => panic!("expected unsupported-op error, got {other:?}"),
    }
    match Graph::from_tflite_bytes(&one_op_model(softmax, 9)) {
        Err(GraphError::Unsupported(m)) => assert!(m.contains("op 0 (SOFTMAX): version 9"), "{m}"),
        other => panic!("expected unsupported-version error, got {other:?}"),
    }
}
