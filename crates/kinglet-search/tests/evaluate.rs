//! One trial on the UCI-HAR fixture: trained, quantised, scored and profiled in QEMU. The
//! costs must be the measured ones (a wider network costs more instructions, flash and weight
//! bytes than a narrower one of the same shape), and energy the board's price of them.

use std::path::Path;

use kinglet_data::spec::Split;
use kinglet_search::SearchSpace;
use kinglet_search::evaluate::{Evaluator, board, inference_energy_uj, load_split};

const SPACE: &str = r#"name = "fixture"
[[inputs]]
name = "total-acc"
[[inputs.branch]]
name = "total_acc"
channels = ["total_acc_x", "total_acc_y", "total_acc_z"]
[blocks]
count = [1]
filters = [4, 16]
kernel = [3]
pool = [4]
[training]
learning_rate = 0.005
epochs = 1
"#;

#[test]
fn a_trial_is_measured_in_qemu_and_priced_on_the_board() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-data/tests/fixtures/uci-har")
        .display()
        .to_string();
    let data = format!("uci-har:{fixture}");
    let (_, train) = load_split(&data, Split::Train).unwrap();
    let (_, validation) = load_split(&data, Split::Val).unwrap();
    let evaluator = Evaluator {
        train,
        validation,
        board: board("apollo3", None).unwrap(),
        work_dir: kinglet_compile::firmware::default_work_dir(),
    };
    let space = SearchSpace::parse(SPACE, "fixture.toml").unwrap();
    let genes = space.gene_sizes().len();
    let narrow = space.candidate(&vec![0; genes]).unwrap();
    let mut wide_genome = vec![0; genes];
    // Gene 5 is the first block's filter choice (after the five global genes).
    wide_genome[5] = 1;
    let wide = space.candidate(&wide_genome).unwrap();
    assert_eq!(wide.architecture.blocks[0].filters, 16);

    let a = evaluator.evaluate(&narrow, 1, 7).unwrap();
    let b = evaluator.evaluate(&wide, 1, 7).unwrap();
    for e in [&a, &b] {
        let m = &e.measured;
        assert!((0.0..=1.0).contains(&m.accuracy));
        assert_eq!(m.weight_bytes, e.quantised.weight_bytes() as u64);
        assert!(m.flash_bytes >= m.weight_bytes, "{m:?}");
        assert!(m.ram_bytes >= 128 * 3, "{m:?}");
        let energy = inference_energy_uj(&evaluator.board, m.instructions).unwrap();
        assert_eq!(m.energy_uj, energy);
        assert_eq!(m.epochs, 1);
    }
    assert!(b.measured.instructions > a.measured.instructions);
    assert!(b.measured.flash_bytes > a.measured.flash_bytes);
    assert!(b.measured.weight_bytes > a.measured.weight_bytes);
    // Training is seeded: the same trial measures the same.
    let again = evaluator.evaluate(&narrow, 1, 7).unwrap();
    assert_eq!(again.measured.accuracy, a.measured.accuracy);
    assert_eq!(again.measured.instructions, a.measured.instructions);
}

/// A space whose blocks and head choose their own weight widths (`precision = ["mixed"]`).
const MIXED: &str = r#"name = "mixed"
precision = ["mixed"]
[[inputs]]
name = "total-acc"
[[inputs.branch]]
name = "total_acc"
channels = ["total_acc_x", "total_acc_y", "total_acc_z"]
[blocks]
count = [2]
filters = [8]
kernel = [3]
pool = [2]
separable = [true, false]
weight_bits = [8, 4, 2]
[head]
weight_bits = [8, 4]
[training]
learning_rate = 0.005
epochs = 1
"#;

#[test]
fn a_mixed_candidate_is_quantised_layer_by_layer_and_measured() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-data/tests/fixtures/uci-har")
        .display()
        .to_string();
    let data = format!("uci-har:{fixture}");
    let (_, train) = load_split(&data, Split::Train).unwrap();
    let (_, validation) = load_split(&data, Split::Val).unwrap();
    let evaluator = Evaluator {
        train,
        validation,
        board: board("apollo3", None).unwrap(),
        work_dir: kinglet_compile::firmware::default_work_dir(),
    };
    let space = SearchSpace::parse(MIXED, "mixed.toml").unwrap();
    let sizes = space.gene_sizes();
    // Genes: five global, six per block (separable is the fourth), then each block's width
    // and the head's. An 8-bit separable first block, a 4-bit plain second one, a 4-bit head.
    let mut genome = vec![0; sizes.len()];
    genome[5 + 6 + 3] = 1;
    let bits_at = 5 + 2 * 6;
    genome[bits_at + 1] = 1;
    genome[bits_at + 2] = 1;
    let candidate = space.candidate(&genome).unwrap();
    assert_eq!(candidate.precision, "mixed:8,8,4,4");
    let e = evaluator.evaluate(&candidate, 1, 7).unwrap();
    assert_eq!(e.measured.precision, "mixed:8,8,4,4");
    // Each weighted layer of the profiled graph carries its block's width.
    let widths: Vec<usize> = kinglet_compress::subbyte::weighted_layers(&e.quantised)
        .iter()
        .map(|l| e.quantised.tensor(l.weights).dtype.bits())
        .collect();
    assert_eq!(widths, vec![8, 8, 4, 4]);
    assert!(e.measured.instructions > 1000);
    assert!((0.0..=1.0).contains(&e.measured.accuracy));
    // The all-8-bit twin stores more weight bytes and is another candidate.
    let mut eight = genome.clone();
    eight[bits_at + 1] = 0;
    eight[bits_at + 2] = 0;
    let twin = space.candidate(&eight).unwrap();
    assert_eq!(twin.precision, "mixed:8,8,8,8");
    assert_ne!(twin.architecture.name, candidate.architecture.name);
    let (_, quantised) = evaluator.quantise(&e.model, &twin.precision).unwrap();
    assert!(quantised.weight_bytes() > e.quantised.weight_bytes());
}
