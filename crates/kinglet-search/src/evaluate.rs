//! One trial, measured the way a user's own commands would measure it: train the candidate
//! (`kinglet train`), quantise it with post-training quantisation (`kinglet quantize`), score
//! the quantised model on the validation windows, then compile it and run it on the emulated
//! Cortex-M4F (`kinglet profile`), which counts its instructions, its flash and its RAM and
//! fails unless the firmware's outputs equal the host interpreter's. Energy prices the
//! measured instructions on the study's board. Nothing is estimated from MACs or parameters.
//!
//! The test split is never read here: the search selects on validation data only, and the
//! front is scored on the test split once, after the search.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kinglet_adapt::BoardProfile;
use kinglet_compile::firmware;
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_compile::testinput::lcg_input;
use kinglet_compress::{CalibrationSample, PtqConfig, quantize_int8};
use kinglet_data::Dataset;
use kinglet_data::spec::{DataSpec, LoadOptions, Split};
use kinglet_graph::{Graph, Interpreter};
use kinglet_train::{Architecture, Silent, TrainOptions, TrainedModel};

use crate::error::SearchError;
use crate::space::Candidate;
use crate::study::{Measured, StudySettings};

/// Windows post-training quantisation calibrates on (spread over the training split): `kinglet
/// quantize`'s default, so the printed commands rebuild the same file.
pub const CALIBRATION_WINDOWS: usize = 300;

/// The data, board and firmware folder a worker evaluates its trials with.
pub struct Evaluator {
    pub train: Dataset,
    pub validation: Dataset,
    pub board: BoardProfile,
    /// Where firmware is built (shared by the workers of one machine, under a file lock).
    pub work_dir: PathBuf,
}

/// A trial's measurements and the models they were taken on.
pub struct Evaluated {
    pub measured: Measured,
    pub model: TrainedModel,
    /// The quantised graph that was profiled.
    pub quantised: Graph,
}

/// Loads a labelled split, `default` unless the spec names one.
pub fn load_split(text: &str, default: Split) -> Result<(DataSpec, Dataset), SearchError> {
    let mut spec = DataSpec::parse(text).map_err(|e| SearchError::Invalid(e.to_string()))?;
    if !spec.split_given {
        spec = spec.with_split(default);
    }
    let data = kinglet_data::spec::load_labelled(&spec, &LoadOptions::default())
        .map_err(|e| SearchError::Invalid(format!("loading {spec}: {e}")))?;
    if data.is_empty() {
        return Err(SearchError::Invalid(format!("{spec}: no windows")));
    }
    Ok((spec, data))
}

/// The board profile `id` from `boards_dir`, else from kinglet's built-in profiles.
pub fn board(id: &str, boards_dir: Option<&Path>) -> Result<BoardProfile, SearchError> {
    let all = match boards_dir {
        Some(dir) => BoardProfile::load_dir(dir),
        None => BoardProfile::built_in(),
    }
    .map_err(|e| SearchError::Invalid(e.to_string()))?;
    let ids: Vec<String> = all.iter().map(|b| b.id.clone()).collect();
    all.into_iter().find(|b| b.id == id).ok_or_else(|| {
        SearchError::Invalid(format!("unknown board `{id}` (known: {})", ids.join(", ")))
    })
}

/// Energy of one inference of `instructions` on `board`, µJ: cycles at the board's clock
/// drawing its run-mode current (the clock cancels out). None without a cited active current.
pub fn inference_energy_uj(board: &BoardProfile, instructions: u64) -> Option<f64> {
    let ua_per_mhz = board.active_ua_per_mhz?;
    Some(instructions as f64 * board.cycles_per_instruction * ua_per_mhz * board.supply_v * 1e-6)
}

impl Evaluator {
    /// Loads the study's training and validation data and its board.
    pub fn new(settings: &StudySettings, work_dir: PathBuf) -> Result<Evaluator, SearchError> {
        // Every trial is profiled on the emulated Cortex-M4: without its Rust target or QEMU
        // each would fail alike, so say so once, before any trial is claimed.
        kinglet_compile::qemu::check_toolchain(&kinglet_compile::target::CortexM4)
            .map_err(|e| SearchError::Invalid(format!("cannot profile trials: {e}")))?;
        let (spec, train) = load_split(&settings.data, Split::Train)?;
        let validation_text = settings
            .validation
            .clone()
            .unwrap_or_else(|| spec.with_split(Split::Val).to_string());
        let (_, validation) = load_split(&validation_text, Split::Val)?;
        let board = board(&settings.board, None)?;
        Ok(Evaluator {
            train,
            validation,
            board,
            work_dir,
        })
    }

    /// Trains `candidate` for `epochs`, quantises, scores and profiles it.
    pub fn evaluate(
        &self,
        candidate: &Candidate,
        epochs: usize,
        seed: u64,
    ) -> Result<Evaluated, SearchError> {
        self.train_and_measure(
            &candidate.architecture,
            &candidate.precision,
            epochs,
            seed,
            &self.train,
            &self.validation,
        )
    }

    /// The training and validation windows together: what a front model is refitted on.
    pub fn training_and_validation(&self) -> Result<Dataset, SearchError> {
        let mut all = self.train.clone();
        all.append(self.validation.clone())
            .map_err(|e| SearchError::Invalid(format!("joining training and validation: {e}")))?;
        Ok(all)
    }

    /// Retrains a front model's architecture on `training` (the search chose it on
    /// validation; a user deploying it would now let it learn from all the labelled subjects,
    /// [`Evaluator::training_and_validation`], as `kinglet train --merge-val` does), then
    /// quantises and profiles it like a trial. `accuracy` is then measured on `test`.
    pub fn refit(
        &self,
        training: &Dataset,
        architecture: &Architecture,
        precision: &str,
        epochs: usize,
        seed: u64,
        test: &Dataset,
    ) -> Result<Evaluated, SearchError> {
        self.train_and_measure(architecture, precision, epochs, seed, training, test)
    }

    fn train_and_measure(
        &self,
        arch: &Architecture,
        precision: &str,
        epochs: usize,
        seed: u64,
        train: &Dataset,
        score_on: &Dataset,
    ) -> Result<Evaluated, SearchError> {
        let started = Instant::now();
        let options = TrainOptions {
            seed,
            epochs: Some(epochs),
            data_description: format!("kinglet search trial of {}", arch.name),
            ..Default::default()
        };
        // No validation split in training: the last epoch (or the schedule's weight average)
        // is the model, so the validation accuracy below is not the one epoch selection chose.
        let outcome = kinglet_train::train(arch, train, None, &options, &mut Silent)
            .map_err(|e| SearchError::Trial(format!("training {}: {e}", arch.name)))?;
        let model = outcome.model;
        let train_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let (graph, quantised) = self.quantise(&model, precision)?;
        let (accuracy, float_accuracy) = Self::score(&model, &graph, &quantised, score_on)?;
        let profile = profile(&quantised, &arch.name, &self.work_dir)?;
        let energy_uj = inference_energy_uj(&self.board, profile.instructions).unwrap_or(f64::NAN);
        let measured = Measured {
            architecture: arch.name.clone(),
            precision: precision.to_string(),
            epochs,
            parameters: arch.parameter_count(train.class_names.len()),
            accuracy,
            float_accuracy,
            weight_bytes: quantised.weight_bytes() as u64,
            flash_bytes: profile.flash_bytes,
            ram_bytes: profile.ram_bytes,
            instructions: profile.instructions,
            energy_uj,
            train_seconds,
            measure_seconds: started.elapsed().as_secs_f64(),
        };
        Ok(Evaluated {
            measured,
            model,
            quantised,
        })
    }
}

impl Evaluator {
    /// The lowered float graph of `model` and its post-training quantisation at `precision`
    /// (int8 activations; int8, 4-bit or 2-bit weights, or `mixed:B,…` one width per weighted
    /// layer), calibrated on the training split.
    pub fn quantise(
        &self,
        model: &TrainedModel,
        precision: &str,
    ) -> Result<(Graph, Graph), SearchError> {
        let name = &model.architecture.name;
        let graph = kinglet_train::lower(model)
            .map_err(|e| SearchError::Trial(format!("lowering {name}: {e}")))?;
        let (samples, _) = kinglet_train::graph_inputs(model, &self.train)
            .map_err(|e| SearchError::Trial(format!("calibration windows: {e}")))?;
        let calibration: Vec<CalibrationSample> = spread(samples.len(), CALIBRATION_WINDOWS)
            .into_iter()
            .map(|i| samples[i].clone())
            .collect();
        let layers = kinglet_compress::subbyte::weighted_layers(&graph).len();
        let weight_bits = match (precision, crate::space::mixed_bits(precision)) {
            (_, Some(bits)) => {
                let bits = bits.map_err(SearchError::Trial)?;
                // The list was derived from the architecture; a lowering that emits another
                // layer count would quantise the wrong layers, so it is an error, not a guess.
                if bits.len() != layers {
                    return Err(SearchError::Trial(format!(
                        "{name}: precision {precision} names {} layers, the graph has {layers}",
                        bits.len()
                    )));
                }
                bits
            }
            ("w4a8", None) => vec![4; layers],
            ("w2a8", None) => vec![2; layers],
            _ => Vec::new(),
        };
        // `kinglet quantize`'s defaults (min/max calibration, logits clipped to ±16).
        let config = PtqConfig {
            weight_bits,
            logit_clip: Some(kinglet_compress::DEFAULT_LOGIT_CLIP),
            ..PtqConfig::default()
        };
        let quantised = quantize_int8(&graph, &calibration, &config)
            .map_err(|e| SearchError::Trial(format!("quantising {name}: {e}")))?
            .graph;
        Ok((graph, quantised))
    }

    /// Top-1 accuracy of the quantised and the float graph of `model` on `data`.
    pub fn score(
        model: &TrainedModel,
        float: &Graph,
        quantised: &Graph,
        data: &Dataset,
    ) -> Result<(f64, f64), SearchError> {
        let (samples, targets) = kinglet_train::graph_inputs(model, data)
            .map_err(|e| SearchError::Trial(format!("preparing windows: {e}")))?;
        Ok((
            accuracy_of(quantised, &samples, &targets)?,
            accuracy_of(float, &samples, &targets)?,
        ))
    }
}

/// `count` indices spread evenly over `0..n` (all of them when `n <= count`).
fn spread(n: usize, count: usize) -> Vec<usize> {
    if count >= n {
        return (0..n).collect();
    }
    (0..count).map(|k| k * n / count).collect()
}

/// Top-1 accuracy of `graph` run by the host interpreter (float inputs are quantised for an
/// integer graph, as on the device).
fn accuracy_of(
    graph: &Graph,
    samples: &[Vec<Vec<f32>>],
    targets: &[usize],
) -> Result<f64, SearchError> {
    let fail = |e: kinglet_graph::GraphError| SearchError::Trial(format!("interpreter: {e}"));
    let mut interpreter = Interpreter::new(graph).map_err(fail)?;
    let mut correct = 0usize;
    for (sample, &target) in samples.iter().zip(targets) {
        for (i, values) in sample.iter().enumerate() {
            interpreter.set_input_real(i, values).map_err(fail)?;
        }
        interpreter.invoke().map_err(fail)?;
        let out = interpreter.output_f32(0).map_err(fail)?;
        let best = out
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &x)| if x > b.1 { (i, x) } else { b },
            )
            .0;
        correct += (best == target) as usize;
    }
    Ok(correct as f64 / samples.len().max(1) as f64)
}

/// `kinglet profile` of `graph`: compiled, run in QEMU on the fixed LCG input, its outputs
/// checked against the host interpreter's. Firmware builds of one work folder share one
/// output path, so workers of one machine take turns through a lock file.
pub fn profile(
    graph: &Graph,
    name: &str,
    work_dir: &Path,
) -> Result<firmware::Profile, SearchError> {
    std::fs::create_dir_all(work_dir).map_err(|e| SearchError::io(work_dir, e))?;
    let lock_path = work_dir.join("search.lock");
    let lock = File::create(&lock_path).map_err(|e| SearchError::io(&lock_path, e))?;
    lock.lock().map_err(|e| SearchError::io(&lock_path, e))?;
    let input_len = graph
        .inputs
        .iter()
        .map(|&id| graph.tensor(id).elements())
        .sum();
    let input = lcg_input(input_len);
    let p = firmware::profile(
        graph,
        name,
        &input,
        FirmwareKernels::Dsp,
        firmware::Lang::Rust,
        work_dir,
    )
    .map_err(|e| SearchError::Trial(format!("profiling {name} in QEMU: {e}")))?;
    drop(lock);
    if p.outputs != p.host_outputs {
        return Err(SearchError::Trial(format!(
            "{name}: QEMU outputs {:?} differ from the host interpreter's {:?}",
            p.outputs, p.host_outputs
        )));
    }
    if p.known_loop_instructions != 3001 {
        return Err(SearchError::Trial(
            "instruction counter self-check failed".into(),
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_instructions_times_charge_per_cycle() {
        let apollo3 = board("apollo3", None).unwrap();
        // 1 M instructions at 1 cycle each, 6 µA/MHz, 3.3 V: 1e6 · 6 · 3.3 · 1e-6 = 19.8 µJ.
        let e = inference_energy_uj(&apollo3, 1_000_000).unwrap();
        assert!((e - 19.8).abs() < 1e-9, "{e}");
        assert!(
            board("no-such-board", None)
                .unwrap_err()
                .to_string()
                .contains("apollo3")
        );
    }

    #[test]
    fn spread_covers_the_split() {
        assert_eq!(spread(10, 3), vec![0, 3, 6]);
        assert_eq!(spread(2, 5), vec![0, 1]);
    }
}
