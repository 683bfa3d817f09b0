//! Quantisation-aware training on the committed fixtures: fine-tuning the seed CNN on the tiny
//! MNIST set, QAT from scratch of a three-branch Conv1D network (Big-3IN's shape) and of a
//! separable, batch-normalised, globally pooled one on the tiny UCI-HAR set. Each trains for
//! one or two epochs on at most a hundred samples.

use std::collections::BTreeSet;
use std::path::Path;

use kinglet_data::spec::{DataSpec, LoadOptions, load};
use kinglet_data::{Dataset, Split};
use kinglet_graph::meta;
use kinglet_train::arch::{Architecture, Block, Padding};
use kinglet_train::qat::{QatOptions, QatState, RANGE_PREFIX, train_qat};
use kinglet_train::{Silent, TrainOptions, TrainedModel, lower, train};

fn dataset(spec: &str, split: Split) -> Dataset {
    let spec = DataSpec::parse(spec).unwrap().with_split(split);
    load(&spec, &LoadOptions::default()).unwrap()
}

fn mnist(split: Split) -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-tiny");
    dataset(&format!("mnist:{}", dir.display()), split)
}

fn uci_har(split: Split) -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kinglet-data/tests/fixtures/uci-har");
    dataset(&format!("uci-har:{}", dir.display()), split)
}

fn qat_options(epochs: usize) -> QatOptions {
    QatOptions {
        seed: 5,
        epochs,
        ..Default::default()
    }
}

fn range_names(model: &TrainedModel) -> BTreeSet<String> {
    QatState::ranges_of(model).unwrap().into_keys().collect()
}

/// The lowered graph records every range under the name of an existing activation tensor.
fn assert_ranges_lowered(model: &TrainedModel) {
    let graph = lower(model).unwrap();
    let text = &graph.metadata[meta::ACTIVATION_RANGES];
    let names: BTreeSet<String> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(names, range_names(model));
    for name in &names {
        assert!(
            graph
                .tensors
                .iter()
                .any(|t| &t.name == name && !t.is_constant()),
            "{name}"
        );
    }
}

#[test]
fn fine_tuning_the_seed_cnn_records_ranges_that_travel_with_the_model() {
    let (tr, va) = (mnist(Split::Train), mnist(Split::Test));
    let arch = Architecture::preset("mnist-cnn").unwrap();
    let options = TrainOptions {
        seed: 1,
        epochs: Some(3),
        ..Default::default()
    };
    let float = train(&arch, &tr, None, &options, &mut Silent)
        .unwrap()
        .model;
    assert!(range_names(&float).is_empty());
    let out = train_qat(
        &arch,
        Some(&float),
        &tr,
        Some(&va),
        &qat_options(2),
        &mut Silent,
    )
    .unwrap();
    let model = out.model;
    assert_eq!(out.history.len(), 2);
    assert_eq!(model.provenance.epochs_trained, 5);
    let names = range_names(&model);
    let expected: BTreeSet<String> = ["image", "conv0", "output"].map(String::from).into();
    assert_eq!(names, expected);
    let ranges = QatState::ranges_of(&model).unwrap();
    // Pixels are in [0, 1]; the conv output is post-ReLU.
    let (lo, hi) = ranges["image"];
    assert!(lo >= 0.0 && hi <= 1.0 && hi > 0.5, "image range {lo}..{hi}");
    assert!(ranges["conv0"].0 >= 0.0, "{:?}", ranges["conv0"]);
    // The weights changed, the file holds weights and ranges.
    assert_ne!(model.tensors[0], float.tensors[0]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qat.kgl");
    model.save(&path).unwrap();
    let back = TrainedModel::load(&path).unwrap();
    assert_eq!(back, model);
    assert_ranges_lowered(&back);
    // Float and fake-quantised evaluation both run; they mostly agree after QAT.
    let f = kinglet_train::evaluate(&back, &va).unwrap().accuracy();
    let q = kinglet_train::qat::evaluate(&back, &va).unwrap().accuracy();
    assert!((f - q).abs() <= 0.1, "float {f}, fake-quantised {q}");
    assert!(kinglet_train::qat::evaluate(&float, &va).is_err());
}

#[test]
fn qat_from_scratch_on_three_conv1d_branches() {
    // Big-3IN's topology (three branches, flattened and concatenated), two blocks.
    let mut arch = Architecture::preset("big3").unwrap();
    arch.blocks.truncate(2);
    arch.training.augment = Default::default();
    let (tr, va) = (uci_har(Split::Train), uci_har(Split::Val));
    let out = train_qat(&arch, None, &tr, Some(&va), &qat_options(2), &mut Silent).unwrap();
    let names = range_names(&out.model);
    let mut expected: BTreeSet<String> = ["body_acc", "body_gyro", "total_acc", "concat", "output"]
        .map(String::from)
        .into();
    // The last block of each branch is quantised with the concatenation's range.
    expected.extend((0..3).map(|b| format!("branch{b}.block0/conv")));
    assert_eq!(names, expected);
    assert!(
        out.model
            .tensors
            .iter()
            .filter(|t| t.name.starts_with(RANGE_PREFIX))
            .all(|t| t.shape == [2] && t.values[0] <= t.values[1])
    );
    assert_ranges_lowered(&out.model);
    assert!(out.history.iter().all(|r| r.train_loss.is_finite()));
}

#[test]
fn qat_covers_depthwise_batch_norm_pooling_and_hidden_layers() {
    let mut arch = Architecture::preset("kinglet-lite").unwrap();
    arch.blocks = vec![
        Block {
            filters: 6,
            kernel: 5,
            pool: 4,
            padding: Padding::Same,
            batch_norm: true,
            separable: false,
        },
        Block {
            filters: 8,
            kernel: 3,
            pool: 2,
            padding: Padding::Same,
            batch_norm: true,
            separable: true,
        },
    ];
    arch.head.hidden = vec![5];
    let tr = uci_har(Split::Train);
    let out = train_qat(&arch, None, &tr, None, &qat_options(1), &mut Silent).unwrap();
    let names = range_names(&out.model);
    let expected: BTreeSet<String> = [
        "merged",
        "branch0.block0/conv",
        "branch0.block1/depthwise",
        "branch0.block1/conv",
        "branch0/gap",
        "hidden0",
        "output",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
    assert_ranges_lowered(&out.model);
    // Fine-tuning continues from the stored ranges and keeps the architecture.
    let again = train_qat(
        &arch,
        Some(&out.model),
        &tr,
        None,
        &qat_options(1),
        &mut Silent,
    )
    .unwrap()
    .model;
    assert_eq!(range_names(&again), expected);
    assert_eq!(again.architecture, out.model.architecture);
}

#[test]
fn qat_covers_separable_2d_blocks_and_global_pooling() {
    let mut arch = Architecture::preset("mnist-cnn").unwrap();
    arch.blocks[0].separable = true;
    arch.blocks[0].batch_norm = true;
    arch.head.global_average_pool = true;
    let out = train_qat(
        &arch,
        None,
        &mnist(Split::Train),
        None,
        &qat_options(1),
        &mut Silent,
    )
    .unwrap();
    let expected: BTreeSet<String> = ["image", "dw0", "conv0", "gap", "output"]
        .map(String::from)
        .into();
    assert_eq!(range_names(&out.model), expected);
    assert_ranges_lowered(&out.model);
}

#[test]
fn bad_qat_options_are_errors() {
    let arch = Architecture::preset("mnist-cnn").unwrap();
    let tr = mnist(Split::Train);
    for (options, expected) in [
        (qat_options(0), "epoch"),
        (
            QatOptions {
                ema_decay: 1.5,
                ..qat_options(1)
            },
            "decay",
        ),
        (
            QatOptions {
                learning_rate: Some(-1.0),
                ..qat_options(1)
            },
            "learning rate",
        ),
    ] {
        let err = train_qat(&arch, None, &tr, None, &options, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

/// A small nested kinglet-lite (widths 0.5 and 1) trained for one float epoch.
fn nested_lite(norm: kinglet_train::arch::WidthNorm) -> (Architecture, TrainedModel) {
    let mut arch = Architecture::preset("kinglet-lite").unwrap();
    arch.blocks.truncate(2);
    arch.blocks[1].separable = true;
    arch.widths = vec![0.5, 1.0];
    arch.width_norm = norm;
    let options = TrainOptions {
        seed: 2,
        epochs: Some(1),
        ..Default::default()
    };
    let float = train(&arch, &uci_har(Split::Train), None, &options, &mut Silent)
        .unwrap()
        .model;
    (arch, float)
}

/// QAT of a nested network with a batch norm per width: every narrower width fake-quantises
/// as the int8 model it deploys as, tracking activation ranges of its own under
/// `width<w>/`; slicing a width gives it those ranges under its graph's names, and the
/// nested model itself lowers with the full width's only.
#[test]
fn qat_of_a_nested_network_keeps_ranges_per_width() {
    use kinglet_train::arch::WidthNorm;
    use kinglet_train::slim::slice_model;
    let (arch, float) = nested_lite(WidthNorm::Own);
    let (tr, va) = (uci_har(Split::Train), uci_har(Split::Test));
    let out = train_qat(
        &arch,
        Some(&float),
        &tr,
        Some(&va),
        &qat_options(1),
        &mut Silent,
    )
    .unwrap();
    let model = out.model;
    assert_eq!(model.architecture.widths, vec![0.5, 1.0]);
    // Epoch selection scores both widths.
    assert!(out.history[0].validation_accuracy.is_some());
    let names = range_names(&model);
    let full: BTreeSet<String> = names
        .iter()
        .filter(|n| !n.starts_with("width"))
        .cloned()
        .collect();
    let own: BTreeSet<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("width0.5/"))
        .map(String::from)
        .collect();
    assert!(full.contains("branch0.block1/depthwise") && full.contains("output"));
    assert_eq!(
        own, full,
        "every quantised activation has a range at width 0.5"
    );
    // The nested model lowers as its full width, with the full width's ranges.
    let lowered = lower(&model).unwrap();
    let recorded: BTreeSet<String> = lowered.metadata[meta::ACTIVATION_RANGES]
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(recorded, full);
    // Width 0.5 alone: its own ranges, renamed, and they lower onto its graph.
    let narrow = slice_model(&model, 0.5).unwrap();
    assert_eq!(range_names(&narrow), own);
    let ranges = QatState::ranges_of(&narrow).unwrap();
    let stored = QatState::ranges_of(&model).unwrap();
    assert_eq!(ranges["output"], stored["width0.5/output"]);
    assert_ne!(
        ranges["output"], stored["output"],
        "the width's own, not the full width's"
    );
    assert_ranges_lowered(&narrow);
    assert_eq!(range_names(&slice_model(&model, 1.0).unwrap()), full);
}

/// With shared normalisation scales a narrower width runs on the full width's int8 weights
/// and ranges (times its factors) on the device, so QAT keeps no ranges of its own for it;
/// 4-bit QAT of a nested network is refused, naming what to do instead.
#[test]
fn qat_of_a_shared_scale_network_uses_the_full_widths_ranges() {
    use kinglet_train::arch::WidthNorm;
    use kinglet_train::slim::slice_model;
    let (arch, float) = nested_lite(WidthNorm::SharedScale);
    let tr = uci_har(Split::Train);
    let model = train_qat(&arch, Some(&float), &tr, None, &qat_options(1), &mut Silent)
        .unwrap()
        .model;
    let names = range_names(&model);
    assert!(names.contains("branch0.block0/conv"));
    assert!(names.iter().all(|n| !n.starts_with("width")), "{names:?}");
    assert!(range_names(&slice_model(&model, 0.5).unwrap()).is_empty());
    assert_ranges_lowered(&slice_model(&model, 1.0).unwrap());
    let err = train_qat(
        &arch,
        Some(&float),
        &tr,
        None,
        &QatOptions {
            weight_bits: vec![4],
            ..qat_options(1)
        },
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("modes --scheme w4a8"), "{err}");
}

/// `train --qat --widths …` from scratch: no float model first, every width trained under fake
/// quantisation from the start, with ranges per width.
#[test]
fn qat_of_a_nested_network_trains_from_scratch() {
    let mut arch = Architecture::preset("kinglet-lite").unwrap();
    arch.blocks.truncate(2);
    arch.widths = vec![0.5, 1.0];
    let out = train_qat(
        &arch,
        None,
        &uci_har(Split::Train),
        None,
        &qat_options(1),
        &mut Silent,
    )
    .unwrap();
    let names = range_names(&out.model);
    assert!(
        names.contains("output") && names.contains("width0.5/output"),
        "{names:?}"
    );
    let narrow = kinglet_train::slim::slice_model(&out.model, 0.5).unwrap();
    assert_ranges_lowered(&narrow);
}
