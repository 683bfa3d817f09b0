//! Training loop, checkpoint/resume, determinism and lowering, on a small synthetic but
//! learnable dataset built here (three classes of noisy sinusoids with different frequencies
//! per channel), so each test trains for well under a second.

use kinglet_data::Dataset;
use kinglet_graph::Interpreter;
use kinglet_train::arch::{Architecture, Block, Padding};
use kinglet_train::inputs::prepare;
use kinglet_train::network::Network;
use kinglet_train::{Silent, TrainOptions, TrainedModel, lower, train};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WINDOW: usize = 32;
const CHANNELS: [&str; 3] = ["total_acc_x", "total_acc_y", "total_acc_z"];

fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * WINDOW * 3);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 3) as u32;
        let freq = [1.0f32, 2.5, 4.0][class as usize];
        let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        for t in 0..WINDOW {
            for c in 0..3 {
                let x = (freq * (c as f32 + 1.0) * t as f32 / WINDOW as f32
                    * std::f32::consts::TAU
                    + phase)
                    .sin();
                data.push(x + 0.3 * rng.random_range(-1.0f32..1.0) + 1.0);
            }
        }
        labels.push(class);
    }
    Dataset {
        sample_shape: vec![WINDOW, 3],
        channel_names: CHANNELS.iter().map(|s| s.to_string()).collect(),
        data,
        labels,
        subjects: Some((0..n as u32).map(|i| i / 20).collect()),
        class_names: vec!["slow".into(), "medium".into(), "fast".into()],
        sample_rate_hz: None,
        stream: None,
    }
}

fn tiny_arch(batch_norm: bool, separable: bool, gap: bool) -> Architecture {
    let mut arch = Architecture::preset("little0").unwrap();
    arch.name = "tiny".into();
    arch.task = kinglet_train::Task::Activity;
    arch.window = WINDOW;
    arch.blocks = vec![
        Block {
            filters: 6,
            kernel: 5,
            pool: 2,
            padding: Padding::Same,
            batch_norm,
            separable: false,
        },
        Block {
            filters: 8,
            kernel: 3,
            pool: 2,
            padding: Padding::Valid,
            batch_norm,
            separable,
        },
        Block {
            filters: 6,
            kernel: 4,
            pool: 1,
            padding: Padding::Same,
            batch_norm,
            separable,
        },
    ];
    arch.head.global_average_pool = gap;
    arch.head.hidden = vec![5];
    arch.training.learning_rate = 0.01;
    arch.training.epochs = 6;
    arch
}

fn options(seed: u64) -> TrainOptions {
    TrainOptions {
        seed,
        ..Default::default()
    }
}

#[test]
fn training_learns_a_separable_problem() {
    let (tr, va) = (synthetic(300, 1), synthetic(90, 2));
    let arch = tiny_arch(false, false, false);
    let out = train(&arch, &tr, Some(&va), &options(3), &mut Silent).unwrap();
    let result = kinglet_train::evaluate(&out.model, &va).unwrap();
    assert!(result.accuracy() > 0.9, "accuracy {}", result.accuracy());
    assert_eq!(out.history.len(), 6);
    // The kept epoch is the one with the best validation accuracy.
    let best = out
        .history
        .iter()
        .map(|r| r.validation_accuracy.unwrap())
        .fold(0.0, f64::max);
    let kept = &out.history[out.model.provenance.best_epoch - 1];
    assert_eq!(kept.validation_accuracy, Some(best));
    assert!((result.accuracy() - best).abs() < 1e-12);
}

/// Largest gap between the top logit and the runner-up over the prepared samples of `data`.
fn largest_margin(model: &TrainedModel, data: &Dataset) -> f32 {
    let device = burn::tensor::Device::flex();
    let net = Network::from_model(model, &device).unwrap();
    let prepared = prepare(&model.architecture, data, &model.normalisation).unwrap();
    let b = &prepared.branches[0];
    let input = burn::tensor::Tensor::<3>::from_data(
        burn::tensor::TensorData::new(b.data.clone(), [prepared.len(), b.channels, b.length]),
        &device,
    );
    let logits: Vec<f32> = net.forward(vec![input]).into_data().try_to_vec().unwrap();
    let classes = model.class_names.len();
    logits
        .chunks_exact(classes)
        .map(|row| {
            let mut sorted = row.to_vec();
            sorted.sort_by(|x, y| y.total_cmp(x));
            sorted[0] - sorted[1]
        })
        .fold(0.0, f32::max)
}

#[test]
fn label_smoothing_bounds_logits_and_class_balancing_trains() {
    let (tr, va) = (synthetic(300, 1), synthetic(90, 2));
    let mut arch = tiny_arch(false, false, false);
    arch.training.epochs = 12;
    let plain = train(&arch, &tr, None, &options(3), &mut Silent).unwrap();
    arch.training.label_smoothing = 0.3;
    let smooth = train(&arch, &tr, None, &options(3), &mut Silent).unwrap();
    let accuracy = |m: &TrainedModel| kinglet_train::evaluate(m, &va).unwrap().accuracy();
    assert!(accuracy(&smooth.model) > 0.9, "{}", accuracy(&smooth.model));
    // Targets 0.8 / 0.1 / 0.1 are met exactly at a gap of ln 8 ≈ 2.1; unsmoothed targets keep
    // pushing the gap up.
    let (m_plain, m_smooth) = (
        largest_margin(&plain.model, &tr),
        largest_margin(&smooth.model, &tr),
    );
    assert!(
        m_smooth < 4.0 && m_smooth < m_plain,
        "smoothed {m_smooth}, plain {m_plain}"
    );

    // One class made rare (a tenth of its windows): balanced weights still train.
    let keep: Vec<usize> = (0..tr.len())
        .filter(|&i| tr.labels[i] != 2 || i % 30 == 2)
        .collect();
    let rare = tr.select(&keep);
    arch.training.label_smoothing = 0.0;
    arch.training.balance_classes = true;
    let balanced = train(&arch, &rare, None, &options(3), &mut Silent).unwrap();
    let recall = kinglet_train::evaluate(&balanced.model, &va).unwrap();
    assert!(recall.accuracy() > 0.8, "{}", recall.accuracy());
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let tr = synthetic(120, 1);
    let arch = tiny_arch(true, true, true);
    let mut opts = options(5);
    opts.epochs = Some(2);
    let a = train(&arch, &tr, None, &opts, &mut Silent).unwrap();
    let b = train(&arch, &tr, None, &opts, &mut Silent).unwrap();
    assert_eq!(a.model.tensors, b.model.tensors);
    opts.seed = 6;
    let c = train(&arch, &tr, None, &opts, &mut Silent).unwrap();
    assert_ne!(a.model.tensors, c.model.tensors);
}

#[test]
fn weight_averaging_keeps_the_mean_of_the_last_epochs_and_resumes() {
    let (tr, va) = (synthetic(120, 1), synthetic(30, 2));
    let mut arch = tiny_arch(true, false, true);
    arch.training.constant_epochs = 1;
    arch.training.average_last = 1;
    let last_of = |epochs: usize| {
        let mut opts = options(4);
        opts.epochs = Some(epochs);
        train(&arch, &tr, None, &opts, &mut Silent)
            .unwrap()
            .model
            .tensors
    };
    let (third, fourth) = (last_of(3), last_of(4));
    assert_ne!(third, fourth);

    // Averaging the last two of four epochs gives the mean of epochs 3 and 4, whatever the
    // validation data says.
    arch.training.average_last = 2;
    arch.training.epochs = 4;
    let straight = train(&arch, &tr, Some(&va), &options(4), &mut Silent).unwrap();
    assert_eq!(straight.model.provenance.best_epoch, 4);
    let averaged = kinglet_train::evaluate(&straight.model, &va).unwrap();
    assert_eq!(
        straight.model.provenance.validation_accuracy,
        Some(averaged.accuracy())
    );
    for ((m, a), b) in straight.model.tensors.iter().zip(&third).zip(&fourth) {
        for ((&m, &a), &b) in m.values.iter().zip(&a.values).zip(&b.values) {
            assert!((m - (a + b) / 2.0).abs() <= 1e-5 * (1.0 + m.abs()), "{}", m);
        }
    }

    // Interrupted inside the averaging window, the run resumes to the same average.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(4);
    opts.checkpoint = Some(dir.path().join("avg.ckpt"));
    opts.stop_after = Some(3);
    assert!(
        !train(&arch, &tr, Some(&va), &opts, &mut Silent)
            .unwrap()
            .complete
    );
    opts.stop_after = None;
    opts.resume = true;
    let resumed = train(&arch, &tr, Some(&va), &opts, &mut Silent).unwrap();
    assert_eq!(resumed.model.tensors, straight.model.tensors);
}

#[test]
fn interrupted_run_resumes_to_the_same_result() {
    let (tr, va) = (synthetic(120, 1), synthetic(30, 2));
    let mut arch = tiny_arch(true, true, false);
    arch.training.augment.scale = 0.1;
    arch.training.augment.noise = 0.05;
    arch.training.augment.shift = 2;
    arch.training.augment.rotate = 10.0;
    arch.training.epochs = 4;
    arch.training.constant_epochs = 1;
    let dir = tempfile::tempdir().unwrap();
    let straight = train(&arch, &tr, Some(&va), &options(9), &mut Silent).unwrap();

    let mut opts = options(9);
    opts.checkpoint = Some(dir.path().join("run.ckpt"));
    opts.stop_after = Some(2);
    let first = train(&arch, &tr, Some(&va), &opts, &mut Silent).unwrap();
    assert!(!first.complete);
    assert_eq!(first.history.len(), 2);
    opts.stop_after = None;
    opts.resume = true;
    let resumed = train(&arch, &tr, Some(&va), &opts, &mut Silent).unwrap();
    assert!(resumed.complete);
    // Same steps: identical accuracies and (up to JSON float round-trip) losses.
    for (r, s) in resumed.history.iter().zip(&straight.history) {
        assert_eq!(
            (r.epoch, r.train_accuracy, r.validation_accuracy),
            (s.epoch, s.train_accuracy, s.validation_accuracy)
        );
        assert!((r.train_loss - s.train_loss).abs() < 1e-12);
    }
    assert_eq!(resumed.history.len(), straight.history.len());
    assert_eq!(resumed.model.tensors, straight.model.tensors);

    // A checkpoint from another seed is refused, naming the file.
    let mut other = options(10);
    other.checkpoint = opts.checkpoint.clone();
    other.resume = true;
    let err = train(&arch, &tr, None, &other, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("run.ckpt") && err.contains("seed"), "{err}");

    // A corrupt checkpoint is an error, not a fresh start.
    let path = dir.path().join("run.ckpt");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let err = train(&arch, &tr, None, &opts, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum"), "{err}");
}

/// Runs the lowered graph on every prepared sample and compares with burn's logits.
fn assert_graph_matches_burn(model: &TrainedModel, data: &Dataset) {
    let graph = lower(model).unwrap();
    let device = burn::tensor::Device::flex();
    let net = Network::from_model(model, &device).unwrap();
    let prepared = prepare(&model.architecture, data, &model.normalisation).unwrap();
    let mut interp = Interpreter::new(&graph).unwrap();
    for i in 0..prepared.len().min(40) {
        let mut inputs = Vec::new();
        for (b, branch) in prepared.branches.iter().enumerate() {
            let s = branch.sample(i);
            // Channels-first → the graph's channels-last [1, time, channels].
            let mut cl = vec![0f32; s.len()];
            for c in 0..branch.channels {
                for t in 0..branch.length {
                    cl[t * branch.channels + c] = s[c * branch.length + t];
                }
            }
            interp.set_input(b, &cl).unwrap();
            inputs.push(burn::tensor::Tensor::<3>::from_data(
                burn::tensor::TensorData::new(s.to_vec(), [1, branch.channels, branch.length]),
                &device,
            ));
        }
        interp.invoke().unwrap();
        let graph_out = interp.output_f32(0).unwrap();
        let burn_out: Vec<f32> = net.forward(inputs).into_data().try_to_vec().unwrap();
        assert_eq!(graph_out.len(), burn_out.len());
        for (g, b) in graph_out.iter().zip(&burn_out) {
            assert!(
                (g - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "sample {i}: graph {graph_out:?} burn {burn_out:?}"
            );
        }
    }
}

#[test]
fn lowered_graph_matches_burn_inference() {
    let tr = synthetic(120, 1);
    for (bn, sep, gap) in [
        (false, false, false),
        (true, true, true),
        (true, false, false),
    ] {
        let mut opts = options(2);
        opts.epochs = Some(2);
        let arch = tiny_arch(bn, sep, gap);
        let out = train(&arch, &tr, None, &opts, &mut Silent).unwrap();
        assert_graph_matches_burn(&out.model, &tr);
    }
}

#[test]
fn lowered_multi_branch_and_change_models_match_burn() {
    // Three branches, one channel each, concatenated before the dense head.
    let tr = synthetic(90, 4);
    let mut arch = tiny_arch(false, false, false);
    arch.branches = CHANNELS
        .iter()
        .map(|c| kinglet_train::arch::Branch {
            name: c.to_string(),
            channels: vec![c.to_string()],
        })
        .collect();
    let mut opts = options(1);
    opts.epochs = Some(1);
    let out = train(&arch, &tr, None, &opts, &mut Silent).unwrap();
    assert_graph_matches_burn(&out.model, &tr);

    // The Dual network's pair input.
    let mut dual = Architecture::preset("dual").unwrap();
    dual.window = WINDOW;
    let out = train(&dual, &tr, None, &opts, &mut Silent).unwrap();
    assert_eq!(out.model.input_groups()[0].shape, vec![3 * WINDOW, 2]);
    assert_graph_matches_burn(&out.model, &tr);
}

#[test]
fn trained_model_file_round_trips() {
    let tr = synthetic(60, 1);
    let mut opts = options(1);
    opts.epochs = Some(1);
    let out = train(&tiny_arch(true, true, true), &tr, None, &opts, &mut Silent).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.kgl");
    out.model.save(&path).unwrap();
    let back = TrainedModel::load(&path).unwrap();
    assert_eq!(back, out.model);
    let a = kinglet_train::evaluate(&out.model, &tr).unwrap();
    let b = kinglet_train::evaluate(&back, &tr).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bundled_architecture_files_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../archs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let arch = Architecture::resolve(path.to_str().unwrap()).unwrap();
            assert!(arch.parameter_count(6) > 0);
            seen += 1;
        }
    }
    assert!(seen >= 3);
    let big3 = Architecture::resolve(dir.join("big3.toml").to_str().unwrap()).unwrap();
    assert_eq!(big3, Architecture::preset("big3").unwrap());
    let little1 = Architecture::resolve(dir.join("little-upstairs.toml").to_str().unwrap());
    assert_eq!(little1.unwrap(), Architecture::preset("little1").unwrap());
    let lite = Architecture::resolve(dir.join("kinglet-lite.toml").to_str().unwrap());
    assert_eq!(lite.unwrap(), Architecture::preset("kinglet-lite").unwrap());
}
