//! Models run through kinglet-graph as window classifiers: the int8 seed Little on the fixed
//! LCG input of ../shared/seed-models/README.md must give the TFLite interpreter's outputs
//! (`-44 70`), fed from a window the way the cascade feeds it (total_acc = channels 6–8,
//! quantised with the input's own scale and zero point).

use std::path::PathBuf;
use std::rc::Rc;

use kinglet_adapt::WindowClassifier;
use kinglet_adapt::models::{GraphClassifier, WindowData, load_tflite};
use kinglet_data::Dataset;

/// The README's byte stream, taken as int8.
fn lcg(n: usize) -> Vec<i8> {
    let mut s: u32 = 12345;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((s >> 16) & 0xff) as u8 as i8
        })
        .collect()
}

#[test]
fn int8_little_on_the_lcg_window_matches_tflite() {
    let bytes = lcg(128 * 3);
    let mut data = vec![0f32; 128 * 9];
    for t in 0..128 {
        for c in 0..3 {
            data[t * 9 + 6 + c] = f32::from(bytes[t * 3 + c]);
        }
    }
    let ds = Dataset {
        sample_shape: vec![128, 9],
        // UCI-HAR's layout (total_acc at channels 6–8): the seed's models find their
        // sensors by these names.
        channel_names: kinglet_data::uci_har::HAR_CHANNELS
            .iter()
            .map(|c| c.to_string())
            .collect(),
        data,
        labels: vec![0],
        subjects: None,
        class_names: vec!["walking".into()],
        sample_rate_hz: None,
        stream: None,
    };
    let windows = Rc::new(WindowData::from_dataset(&ds).unwrap());
    let graph = load_tflite(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../kinglet-graph/tests/fixtures/S0_s3_int8.tflite"),
    )
    .unwrap();
    let mut little = GraphClassifier::new("S0_s3_int8", &graph, windows, None).unwrap();
    let scores = little.scores(0).unwrap();
    // Output quantisation of the model: scale 0.2025171, zero point −36.
    let q: Vec<i32> = scores
        .iter()
        .map(|v| (v / 0.202_517_1).round() as i32 - 36)
        .collect();
    assert_eq!(q, [-44, 70]);
    let e = little.scores(1).unwrap_err();
    assert!(e.to_string().contains("window 1"), "{e}");
}
