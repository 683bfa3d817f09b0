//! 2D image networks on the committed MNIST fixture (96 + 40 real images): training learns,
//! the `.kgl` file holds them, and the lowered graph computes what burn computes.

mod common;
use common::mnist_fixture;

use kinglet_data::{Dataset, Split};
use kinglet_graph::{Interpreter, OpKind};
use kinglet_train::arch::{Architecture, Block, Padding};
use kinglet_train::inputs::prepare;
use kinglet_train::network::Network;
use kinglet_train::{Silent, TrainOptions, TrainedModel, lower, train};

fn options(seed: u64, epochs: usize) -> TrainOptions {
    TrainOptions {
        seed,
        epochs: Some(epochs),
        ..Default::default()
    }
}

/// The lowered graph's logits equal burn's for every image (float rounding aside).
fn assert_graph_matches_burn(model: &TrainedModel, data: &Dataset) {
    let graph = lower(model).unwrap();
    let device = burn::tensor::Device::flex();
    let net = Network::from_model(model, &device).unwrap();
    let prepared = prepare(&model.architecture, data, &model.normalisation).unwrap();
    let mut interp = Interpreter::new(&graph).unwrap();
    let input = &prepared.branches[0];
    for i in 0..prepared.len() {
        // One channel: channels-first and channels-last layouts coincide.
        interp.set_input(0, input.sample(i)).unwrap();
        interp.invoke().unwrap();
        let ours = interp.output::<f32>(0).unwrap();
        let x = burn::tensor::Tensor::<3>::from_data(
            burn::tensor::TensorData::new(input.sample(i).to_vec(), [1, 1, input.length]),
            &device,
        );
        let theirs: Vec<f32> = net.forward(vec![x]).into_data().try_to_vec().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "image {i}: {ours:?} vs {theirs:?}"
            );
        }
    }
}

#[test]
fn mnist_cnn_learns_the_fixture_and_lowers_exactly() {
    let (train_set, test_set) = (mnist_fixture(Split::Train), mnist_fixture(Split::Test));
    assert_eq!((train_set.len(), test_set.len()), (88, 40));
    let mut arch = Architecture::preset("mnist-cnn").unwrap();
    // 88 images: smaller batches give the optimiser enough steps in a few epochs.
    arch.training.batch_size = 8;
    let out = train(&arch, &train_set, None, &options(1, 6), &mut Silent).unwrap();
    assert_eq!(out.model.parameter_count(), 20_410);
    let first = out.history.first().unwrap().train_loss;
    let last = out.history.last().unwrap().train_loss;
    assert!(last < 0.5 * first, "loss {first} → {last}");
    // 88 training images are few, but far above the 10 % of guessing.
    let acc = kinglet_train::evaluate(&out.model, &test_set)
        .unwrap()
        .accuracy();
    assert!(acc > 0.5, "test accuracy {acc}");
    assert_graph_matches_burn(&out.model, &test_set);

    let graph = lower(&out.model).unwrap();
    let kinds: Vec<&str> = graph
        .ops
        .iter()
        .map(|op| match op.kind {
            OpKind::Conv2D { .. } => "conv",
            OpKind::MaxPool2D { .. } => "pool",
            OpKind::FullyConnected { .. } => "dense",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["conv", "pool", "dense"]);
    assert_eq!(graph.tensor(graph.inputs[0]).shape, vec![1, 28, 28, 1]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.kgl");
    out.model.save(&path).unwrap();
    let back = TrainedModel::load(&path).unwrap();
    assert_eq!(back, out.model);
}

#[test]
fn separable_batch_norm_same_padding_images_lower_exactly() {
    let train_set = mnist_fixture(Split::Train);
    let mut arch = Architecture::preset("mnist-cnn").unwrap();
    arch.blocks = vec![
        Block {
            filters: 4,
            kernel: 3,
            pool: 2,
            padding: Padding::Same,
            batch_norm: true,
            separable: false,
        },
        Block {
            filters: 6,
            kernel: 3,
            pool: 2,
            padding: Padding::Valid,
            batch_norm: true,
            separable: true,
        },
    ];
    arch.head.hidden = vec![8];
    let out = train(&arch, &train_set, None, &options(2, 2), &mut Silent).unwrap();
    assert_graph_matches_burn(&out.model, &train_set);
    let graph = lower(&out.model).unwrap();
    assert!(
        graph
            .ops
            .iter()
            .any(|op| matches!(op.kind, OpKind::DepthwiseConv2D { .. }))
    );
}

#[test]
fn wrong_image_size_is_a_clear_error() {
    let mut arch = Architecture::preset("mnist-cnn").unwrap();
    arch.task = kinglet_train::Task::Image {
        height: 32,
        width: 32,
    };
    let err = train(
        &arch,
        &mnist_fixture(Split::Train),
        None,
        &options(1, 1),
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("32×32") && err.contains("[28, 28, 1]"),
        "{err}"
    );
}

#[test]
fn interrupted_image_run_resumes_to_the_same_weights() {
    // Adam state maps back onto the 2D parameters by id: a resumed run takes the same steps.
    let train_set = mnist_fixture(Split::Train);
    let mut arch = Architecture::preset("mnist-cnn").unwrap();
    arch.blocks[0].batch_norm = true;
    arch.training.batch_size = 16;
    let straight = train(&arch, &train_set, None, &options(4, 3), &mut Silent).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(4, 3);
    opts.checkpoint = Some(dir.path().join("cnn.ckpt"));
    opts.stop_after = Some(1);
    let first = train(&arch, &train_set, None, &opts, &mut Silent).unwrap();
    assert!(!first.complete);
    opts.stop_after = None;
    opts.resume = true;
    let resumed = train(&arch, &train_set, None, &opts, &mut Silent).unwrap();
    assert!(resumed.complete);
    assert_eq!(resumed.model.tensors, straight.model.tensors);
}
