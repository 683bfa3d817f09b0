//! Knowledge distillation: a tiny network learns from a larger trained one's class
//! probabilities as well as from the labels.
//!
//! One-vs-rest Little networks see a hard 0/1 target even for windows that sit between two
//! postures (standing still vs sitting upright); a teacher that has learnt all six activities
//! says how ambiguous each window is, which a 184-parameter network can use better than a
//! label it cannot fit. The target of every training window becomes the mixture
//! `(1 − weight) · label + weight · teacher`, scored with cross-entropy (temperature 1).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kinglet_data::Dataset;

use crate::Error;
use crate::arch::{Architecture, Task};
use crate::inputs::{Prepared, prepare};
use crate::model_file::TrainedModel;
use crate::network::Network;

/// A trained model whose probabilities join the labels as training targets.
#[derive(Debug, Clone)]
pub struct Teacher {
    pub model: TrainedModel,
    /// Share of the target taken from the teacher, in [0, 1].
    pub weight: f32,
}

/// The teacher's probabilities for every prepared training sample, in the student's output
/// classes, flattened sample-major (`len · classes`).
pub(crate) fn soft_targets(
    teacher: &Teacher,
    student: &Architecture,
    data: &Dataset,
    prepared: &Prepared,
) -> Result<Vec<f32>, Error> {
    if !(0.0..=1.0).contains(&teacher.weight) {
        return Err(Error::Data(format!(
            "the teacher's weight must lie in [0, 1], not {}",
            teacher.weight
        )));
    }
    let model = &teacher.model;
    if !matches!(model.architecture.task, Task::Activity | Task::Image { .. }) {
        return Err(Error::Data(format!(
            "the teacher `{}` must classify the dataset's classes (it is a {:?} model)",
            model.architecture.name, model.architecture.task
        )));
    }
    if model.dataset_classes != data.class_names {
        return Err(Error::Data(format!(
            "the teacher was trained on classes {:?}, the data has {:?}",
            model.dataset_classes, data.class_names
        )));
    }
    if student.training.balance_classes {
        return Err(Error::Data(
            "distillation replaces the class-weighted loss; turn balance_classes off".into(),
        ));
    }
    if matches!(student.task, Task::Change) {
        return Err(Error::Data(
            "distillation needs a student that classifies single windows".into(),
        ));
    }
    let device = Device::flex();
    let net = Network::from_model(model, &device)?;
    let seen = prepare(&model.architecture, data, &model.normalisation)?;
    if seen.len() != prepared.len() {
        return Err(Error::Data(format!(
            "the teacher sees {} samples, the student {}",
            seen.len(),
            prepared.len()
        )));
    }
    let classes = prepared.class_names.len();
    let mut out = Vec::with_capacity(prepared.len() * classes);
    let all: Vec<usize> = (0..seen.len()).collect();
    for chunk in all.chunks(512) {
        let logits = net.forward(crate::train::batch_inputs(&seen, chunk, None, &device));
        let probs = burn::tensor::activation::softmax(logits, 1).into_data();
        let probs: Vec<f32> = probs
            .try_to_vec::<f32>()
            .map_err(|e| Error::Model(format!("teacher output: {e:?}")))?;
        let teacher_classes = model.dataset_classes.len();
        for row in probs.chunks_exact(teacher_classes) {
            match student.task {
                Task::OneVsRest { class } => {
                    let p = row.get(class as usize).copied().ok_or_else(|| {
                        Error::Data(format!("one-vs-rest class {class} is not a teacher class"))
                    })?;
                    out.extend([1.0 - p, p]);
                }
                _ => out.extend_from_slice(row),
            }
        }
    }
    if out.len() != prepared.len() * classes {
        return Err(Error::Data(format!(
            "the teacher has {} outputs per sample, the student {classes}",
            out.len() / prepared.len().max(1)
        )));
    }
    Ok(out)
}

/// Cross-entropy of `logits` against the mixture of the (smoothed) labels and the teacher's
/// probabilities for samples `idx`, the loss as a number and the batch's correct
/// predictions; `Err(loss)` when it is not finite.
pub(crate) fn distilled_loss(
    logits: Tensor<2>,
    prepared: &Prepared,
    idx: &[usize],
    soft: &[f32],
    teacher_weight: f32,
    label_smoothing: f32,
    device: &Device,
) -> Result<(Tensor<1>, f64, usize), f64> {
    let classes = prepared.class_names.len();
    let mut mixed = Vec::with_capacity(idx.len() * classes);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        let label = prepared.targets[i] as usize;
        labels.push(label as i64);
        for c in 0..classes {
            let hard = if c == label { 1.0 } else { 0.0 };
            let smoothed = hard * (1.0 - label_smoothing) + label_smoothing / classes as f32;
            let taught = soft[i * classes + c];
            mixed.push((1.0 - teacher_weight) * smoothed + teacher_weight * taught);
        }
    }
    let targets = Tensor::<2>::from_data(TensorData::new(mixed, [idx.len(), classes]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [idx.len()]), device);
    let hits = logits
        .clone()
        .argmax(1)
        .reshape([idx.len()])
        .equal(labels)
        .int()
        .sum();
    let loss = (log_softmax(logits, 1) * targets)
        .sum_dim(1)
        .mean()
        .neg()
        .reshape([1]);
    let loss_value = loss.clone().into_scalar::<f32>() as f64;
    if !loss_value.is_finite() {
        return Err(loss_value);
    }
    Ok((loss, loss_value, hits.into_scalar::<i64>() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(targets: Vec<u32>) -> Prepared {
        Prepared {
            branches: Vec::new(),
            targets,
            class_names: vec!["not a".into(), "a".into()],
        }
    }

    #[test]
    fn weight_zero_is_plain_cross_entropy() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, -1.0, 0.5, 0.25], [2, 2]),
            &device,
        );
        let p = prepared(vec![0, 1]);
        let soft = [0.1, 0.9, 0.8, 0.2];
        let (_, loss, hits) =
            distilled_loss(logits, &p, &[0, 1], &soft, 0.0, 0.0, &device).expect("finite loss");
        let ce = |z: [f64; 2], k: usize| {
            let lse = (z[0].exp() + z[1].exp()).ln();
            lse - z[k]
        };
        let expected = (ce([2.0, -1.0], 0) + ce([0.5, 0.25], 1)) / 2.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
        assert_eq!(hits, 1);
    }

    #[test]
    fn full_weight_follows_the_teacher() {
        let device = Device::flex();
        // Logits whose softmax equals the teacher's probabilities minimise the loss.
        let q: f32 = 0.7;
        let z = (q / (1.0 - q)).ln();
        let at = |z1: f32| {
            let logits = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, z1], [1, 2]), &device);
            distilled_loss(
                logits,
                &prepared(vec![0]),
                &[0],
                &[1.0 - q, q],
                1.0,
                0.0,
                &device,
            )
            .expect("finite loss")
            .1
        };
        assert!(at(z) < at(z + 0.1));
        assert!(at(z) < at(z - 0.1));
    }
}
