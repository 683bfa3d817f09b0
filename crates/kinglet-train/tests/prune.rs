//! Pruning while fine-tuning, on the committed MNIST fixture (96 + 40 real images): masks hold
//! through every optimiser step, small kernels stay dense by default, and structured pruning
//! gives a smaller model that lowers to a smaller graph.

mod common;
use common::mnist_fixture;

use kinglet_data::{Dataset, Split};
use kinglet_train::prune::{PruneOptions, prune, sparsity_report};
use kinglet_train::{Architecture, Silent, TrainOptions, lower, train};

fn trained(data: &Dataset) -> kinglet_train::TrainedModel {
    let arch = Architecture::preset("mnist-cnn").unwrap();
    let options = TrainOptions {
        seed: 3,
        epochs: Some(2),
        ..Default::default()
    };
    train(&arch, data, None, &options, &mut Silent)
        .unwrap()
        .model
}

#[test]
fn fine_tuning_keeps_the_masked_weights_at_zero() {
    let data = mnist_fixture(Split::Train);
    let model = trained(&data);
    let options = PruneOptions {
        seed: 1,
        epochs: 3,
        final_sparsity: 0.6,
        // The fixture gives 2 steps per epoch: a mask update every step.
        frequency: 1,
        ..PruneOptions::default()
    };
    let outcome = prune(
        &model,
        &data,
        Some(&mnist_fixture(Split::Test)),
        &options,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(outcome.history.len(), 3);
    let layers = sparsity_report(&outcome.model);
    assert_eq!(outcome.layers, layers);
    // The 108-weight convolution is below the default size limit and stays dense.
    assert_eq!(layers[0].name, "branch0.block0.conv.weight");
    assert_eq!(layers[0].zeros, 0);
    assert_eq!(layers[1].name, "output.weight");
    assert!(layers[1].zeros >= 12_168, "{:?}", layers[1]);
    assert!(outcome.model.provenance.validation_accuracy.is_some());
    // Weights that were not pruned moved during fine-tuning (the loop really ran).
    let before = &model.tensor("output.weight").unwrap().values;
    let after = &outcome.model.tensor("output.weight").unwrap().values;
    assert!(before.iter().zip(after).any(|(a, b)| *b != 0.0 && a != b));
    // The pruned model lowers like any other; its float graph holds the zeros.
    let graph = lower(&outcome.model).unwrap();
    let zeros: usize = graph
        .tensors
        .iter()
        .filter_map(|t| t.data_f32())
        .map(|v| v.iter().filter(|x| **x == 0.0).count())
        .sum();
    assert!(zeros >= 12_168, "{zeros}");
}

#[test]
fn structured_pruning_fine_tunes_a_smaller_model() {
    let data = mnist_fixture(Split::Train);
    let model = trained(&data);
    let options = PruneOptions {
        epochs: 1,
        final_sparsity: 0.0,
        structured: Some(0.5),
        ..PruneOptions::default()
    };
    let outcome = prune(&model, &data, None, &options, &mut Silent).unwrap();
    assert_eq!(outcome.model.architecture.blocks[0].filters, 6);
    assert_eq!(outcome.parameters_before, 20_410);
    assert_eq!(outcome.parameters_after, 60 + 6 * 169 * 10 + 10);
    let small = lower(&outcome.model).unwrap();
    let big = lower(&model).unwrap();
    let bytes = |g: &kinglet_graph::Graph| -> usize {
        g.tensors
            .iter()
            .filter(|t| t.is_constant())
            .map(|t| t.byte_size())
            .sum()
    };
    assert!(bytes(&small) < bytes(&big) / 2 + 400);
    // Nonsense options are refused by name.
    let bad = PruneOptions {
        final_sparsity: f64::NAN,
        ..PruneOptions::default()
    };
    let err = prune(&model, &data, None, &bad, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sparsity"), "{err}");
}
