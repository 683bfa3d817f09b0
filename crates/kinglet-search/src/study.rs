//! A study: the settings every worker shares (stored in the study database, so a worker needs
//! only its location) and the planner that decides, from the study's trials alone, what to
//! queue next — the first random generation, a rung's promotions, or NSGA-II's offspring.
//!
//! Why planning is a pure function of finished trials: any worker whose queue runs dry plans,
//! and two that plan at once must queue the same trials (queueing is idempotent on
//! (generation, rung, slot)), so no coordinator process is needed and none can be lost.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::SearchError;
use crate::fidelity;
use crate::nsga2::{self, Point};
use crate::space::SearchSpace;
use crate::storage::{NewTrial, Trial, TrialState};

/// What a search may optimise. Accuracy is maximised, every cost minimised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Of the int8 model on the validation split.
    Accuracy,
    /// Bytes of the quantised weights and biases.
    WeightBytes,
    /// Flash the model adds to the firmware image (code and constants), measured.
    Flash,
    /// Arena plus stack, measured in QEMU.
    Ram,
    /// Instructions per inference, counted in QEMU.
    Instructions,
    /// Energy per inference on the study's board, from the measured instructions.
    Energy,
}

pub const OBJECTIVE_NAMES: [&str; 6] = [
    "accuracy",
    "weight-bytes",
    "flash",
    "ram",
    "instructions",
    "energy",
];

impl Objective {
    pub fn parse(name: &str) -> Result<Objective, SearchError> {
        Ok(match name.trim() {
            "accuracy" => Self::Accuracy,
            "weight-bytes" => Self::WeightBytes,
            "flash" => Self::Flash,
            "ram" => Self::Ram,
            "instructions" => Self::Instructions,
            "energy" => Self::Energy,
            other => {
                return Err(SearchError::Invalid(format!(
                    "unknown objective `{other}` (expected any of {})",
                    OBJECTIVE_NAMES.join(", ")
                )));
            }
        })
    }

    /// A comma-separated list, each at most once.
    pub fn parse_list(text: &str) -> Result<Vec<Objective>, SearchError> {
        let mut out = Vec::new();
        for name in text.split(',').filter(|s| !s.trim().is_empty()) {
            let o = Self::parse(name)?;
            if out.contains(&o) {
                return Err(SearchError::Invalid(format!(
                    "objective `{}` twice",
                    name.trim()
                )));
            }
            out.push(o);
        }
        if out.is_empty() {
            return Err(SearchError::Invalid("no objective given".into()));
        }
        Ok(out)
    }

    pub fn name(self) -> &'static str {
        OBJECTIVE_NAMES[self as usize]
    }

    /// The value of this objective in `m`, as minimised (accuracy negated).
    pub fn minimised(self, m: &Measured) -> f64 {
        match self {
            Self::Accuracy => -m.accuracy,
            Self::WeightBytes => m.weight_bytes as f64,
            Self::Flash => m.flash_bytes as f64,
            Self::Ram => m.ram_bytes as f64,
            Self::Instructions => m.instructions as f64,
            Self::Energy => m.energy_uj,
        }
    }
}

/// Hard limits: a candidate over any of them is outside the front whatever its accuracy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_flash: Option<u64>,
    pub max_ram: Option<u64>,
    pub max_instructions: Option<u64>,
    pub max_weight_bytes: Option<u64>,
}

impl Limits {
    /// By how much `m` breaks the limits: the sum of relative excesses (0 within them).
    pub fn violation(&self, m: &Measured) -> f64 {
        let over = |value: u64, limit: Option<u64>| match limit {
            Some(l) if value > l => (value - l) as f64 / l.max(1) as f64,
            _ => 0.0,
        };
        over(m.flash_bytes, self.max_flash)
            + over(m.ram_bytes, self.max_ram)
            + over(m.instructions, self.max_instructions)
            + over(m.weight_bytes, self.max_weight_bytes)
    }
}

/// A size or count such as `16kB`, `4KiB`, `200k`, `1.5M` or `4096`: k and M are 1000 and
/// 1000², Ki and Mi 1024 and 1024²; a trailing `B` is optional.
pub fn parse_quantity(text: &str) -> Result<u64, SearchError> {
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (number, factor) = if let Some(n) = t.strip_suffix("Ki") {
        (n, 1024.0)
    } else if let Some(n) = t.strip_suffix("Mi") {
        (n, 1024.0 * 1024.0)
    } else if let Some(n) = t.strip_suffix(['k', 'K']) {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('M') {
        (n, 1e6)
    } else {
        (t, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok((v * factor).round() as u64),
        _ => Err(SearchError::Invalid(format!(
            "`{text}`: expected a number with an optional k, M, Ki or Mi (e.g. 16kB, 200k)"
        ))),
    }
}

/// Everything a worker needs to work on a study, stored in the study itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySettings {
    /// The space file's text and where it came from (every worker searches the same space).
    pub space: String,
    pub space_origin: String,
    /// Training data spec (split `train` unless given), as `kinglet train --data` takes it.
    pub data: String,
    /// Validation data spec (default: the `val` split of `data`).
    pub validation: Option<String>,
    pub objectives: Vec<Objective>,
    pub limits: Limits,
    /// Board profile id (`boards/<id>.toml`) that prices energy.
    pub board: String,
    /// Candidates per generation.
    pub population: usize,
    /// Candidates in all (the budget): the search stops planning generations past it.
    pub candidates: usize,
    /// Epochs of the lowest rung, and the factor between rungs (successive halving).
    pub min_epochs: usize,
    pub eta: usize,
    pub seed: u64,
}

impl StudySettings {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str, location: &str) -> Result<StudySettings, SearchError> {
        serde_json::from_str(text).map_err(|e| SearchError::Study {
            location: location.into(),
            message: format!("its settings are not a kinglet study's: {e}"),
        })
    }

    pub fn space(&self) -> Result<SearchSpace, SearchError> {
        SearchSpace::parse(&self.space, &self.space_origin)
    }

    /// Epochs of every rung.
    pub fn rungs(&self, space: &SearchSpace) -> Vec<usize> {
        fidelity::rungs(self.min_epochs, space.training.epochs, self.eta)
    }

    /// The point NSGA-II compares for a measured trial.
    pub fn point(&self, m: &Measured) -> Point {
        Point {
            objectives: self.objectives.iter().map(|o| o.minimised(m)).collect(),
            violation: self.limits.violation(m),
        }
    }
}

/// What a trial measured; stored as JSON in the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Architecture name (the space's name and a hash of the network).
    pub architecture: String,
    pub precision: String,
    pub epochs: usize,
    pub parameters: usize,
    /// Top-1 accuracy of the quantised model on the validation windows.
    pub accuracy: f64,
    /// Of the float model on the same windows.
    pub float_accuracy: f64,
    pub weight_bytes: u64,
    pub flash_bytes: u64,
    pub ram_bytes: u64,
    pub instructions: u64,
    /// NaN on a board without a cited active current, which JSON writes as `null`.
    #[serde(deserialize_with = "nan_if_null")]
    pub energy_uj: f64,
    /// Wall time of training and of measuring.
    pub train_seconds: f64,
    pub measure_seconds: f64,
}

/// A number, or NaN for the `null` serde_json writes for NaN: without it, a result whose energy
/// is unknown would not read back (and its trial would count as failed).
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What the study should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Queue these trials.
    Enqueue(Vec<NewTrial>),
    /// Trials of the current step are still running elsewhere.
    Wait,
    /// The budget is spent (or the space exhausted) and every trial finished.
    Finished,
}

/// A trial and what it measured.
#[derive(Debug, Clone)]
pub struct Scored {
    pub trial: Trial,
    pub measured: Measured,
}

/// Finished trials' results, parsed; trials whose result does not parse count as failed.
pub fn results(trials: &[Trial]) -> Vec<Scored> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Done)
        .filter_map(|t| {
            let measured = serde_json::from_str(t.result.as_deref()?).ok()?;
            Some(Scored {
                trial: t.clone(),
                measured,
            })
        })
        .collect()
}

/// Decides the next step from the study's trials.
pub fn plan(settings: &StudySettings, space: &SearchSpace, trials: &[Trial]) -> Plan {
    let rungs = settings.rungs(space);
    let Some(last) = trials.iter().map(|t| (t.generation, t.rung)).max() else {
        return match generation(settings, space, trials, 0) {
            Some(new) => Plan::Enqueue(new),
            None => Plan::Finished,
        };
    };
    let (g, r) = last;
    let stage: Vec<&Trial> = trials
        .iter()
        .filter(|t| (t.generation, t.rung) == (g, r))
        .collect();
    if stage.iter().any(|t| !t.state.finished()) {
        return Plan::Wait;
    }
    let next_rung = r as usize + 1;
    if next_rung < rungs.len() {
        let done: Vec<Scored> = results(&stage.iter().map(|t| (*t).clone()).collect::<Vec<_>>());
        let points: Vec<Point> = done.iter().map(|d| settings.point(&d.measured)).collect();
        let promoted = fidelity::promote(&points, settings.eta);
        if !promoted.is_empty() {
            return Plan::Enqueue(
                promoted
                    .iter()
                    .enumerate()
                    .map(|(slot, &i)| NewTrial {
                        generation: g,
                        rung: next_rung as i64,
                        slot: slot as i64,
                        genome: done[i].trial.genome.clone(),
                        epochs: rungs[next_rung] as i64,
                    })
                    .collect(),
            );
        }
    }
    match generation(settings, space, trials, g + 1) {
        Some(new) => Plan::Enqueue(new),
        None => Plan::Finished,
    }
}

/// Candidates sampled so far (rung-0 trials).
pub fn sampled(trials: &[Trial]) -> usize {
    trials.iter().filter(|t| t.rung == 0).count()
}

/// The rung-0 trials of generation `g`: random for the first, NSGA-II offspring of the best
/// candidates so far after; never a network already tried. None when the budget is spent or
/// the space has nothing new.
fn generation(
    settings: &StudySettings,
    space: &SearchSpace,
    trials: &[Trial],
    g: i64,
) -> Option<Vec<NewTrial>> {
    let budget = settings.candidates.saturating_sub(sampled(trials));
    let count = settings.population.min(budget);
    if count == 0 {
        return None;
    }
    let sizes = space.gene_sizes();
    // One stream per generation: the same in every worker, whatever order they ran in.
    let mut rng =
        ChaCha8Rng::seed_from_u64(settings.seed ^ (g as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut seen: BTreeSet<String> = trials
        .iter()
        .filter_map(|t| space.candidate(&t.genome).ok())
        .map(|c| c.architecture.name)
        .collect();
    let parents = survivors(settings, trials);
    let first = settings.rungs(space)[0] as i64;
    let mut out = Vec::new();
    // Invalid networks (pooling past the window) and repeats are redrawn; a space with
    // fewer new networks than asked for ends the search early rather than looping.
    for _ in 0..count.saturating_mul(200) {
        if out.len() == count {
            break;
        }
        let genome = if parents.is_empty() {
            nsga2::random_genome(&mut rng, &sizes)
        } else {
            nsga2::child(&mut rng, &parents, &sizes)
        };
        let Ok(candidate) = space.candidate(&genome) else {
            continue;
        };
        if seen.insert(candidate.architecture.name) {
            out.push(NewTrial {
                generation: g,
                rung: 0,
                slot: out.len() as i64,
                genome,
                epochs: first,
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Each candidate's most trained result: the trial at the highest rung it reached.
pub fn best_fidelity(trials: &[Trial]) -> Vec<Scored> {
    let mut by_genome: BTreeMap<Vec<usize>, Scored> = BTreeMap::new();
    for r in results(trials) {
        match by_genome.get(&r.trial.genome) {
            Some(old) if old.trial.rung >= r.trial.rung => {}
            _ => {
                by_genome.insert(r.trial.genome.clone(), r);
            }
        }
    }
    let mut out: Vec<Scored> = by_genome.into_values().collect();
    out.sort_by_key(|r| r.trial.id);
    out
}

/// The parents of the next generation, best first: candidates that reached a higher rung
/// rank above those stopped earlier (their accuracy is the better estimate, and they won
/// their promotions); within a rung, NSGA-II's order.
pub fn survivors(settings: &StudySettings, trials: &[Trial]) -> Vec<Vec<usize>> {
    let best = best_fidelity(trials);
    let mut by_rung: BTreeMap<i64, Vec<&Scored>> = BTreeMap::new();
    for r in &best {
        by_rung.entry(r.trial.rung).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, group) in by_rung.iter().rev() {
        let points: Vec<Point> = group.iter().map(|r| settings.point(&r.measured)).collect();
        for i in nsga2::ranked(&points) {
            if out.len() < settings.population {
                out.push(group[i].trial.genome.clone());
            }
        }
    }
    out
}

/// The Pareto front: among the candidates at the highest rung any reached (the full
/// schedule once a generation got there), those within the limits that no other dominates.
pub fn front(settings: &StudySettings, trials: &[Trial]) -> Vec<Scored> {
    let best = best_fidelity(trials);
    let Some(top) = best.iter().map(|r| r.trial.rung).max() else {
        return Vec::new();
    };
    let group: Vec<&Scored> = best.iter().filter(|r| r.trial.rung == top).collect();
    let points: Vec<Point> = group.iter().map(|r| settings.point(&r.measured)).collect();
    let fronts = nsga2::non_dominated_sort(&points);
    let mut out: Vec<Scored> = fronts
        .first()
        .map(|f| {
            f.iter()
                .filter(|&&i| points[i].feasible())
                .map(|&i| group[i].clone())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| b.measured.accuracy.total_cmp(&a.measured.accuracy));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = r#"name = "t"
[[inputs]]
name = "acc"
[[inputs.branch]]
name = "total_acc"
channels = ["total_acc_x", "total_acc_y", "total_acc_z"]
[blocks]
count = [1, 2, 3]
filters = [4, 8, 16]
kernel = [3, 5]
pool = [2, 4]
[training]
learning_rate = 0.005
epochs = 4
"#;

    fn settings(candidates: usize) -> StudySettings {
        StudySettings {
            space: SPACE.into(),
            space_origin: "t.toml".into(),
            data: "x".into(),
            validation: None,
            objectives: vec![Objective::Accuracy, Objective::WeightBytes],
            limits: Limits::default(),
            board: "apollo3".into(),
            population: 4,
            candidates,
            min_epochs: 1,
            eta: 2,
            seed: 1,
        }
    }

    /// A stand-in measurement that depends on the genome only (accuracy grows with width,
    /// so does size): the planner sees a real trade-off.
    fn measure(space: &SearchSpace, genome: &[usize], epochs: usize) -> Measured {
        let c = space.candidate(genome).unwrap();
        let params = c.architecture.parameter_count(6);
        Measured {
            architecture: c.architecture.name,
            precision: c.precision,
            epochs,
            parameters: params,
            accuracy: 1.0 - 1.0 / (params as f64).sqrt() + epochs as f64 * 0.001,
            float_accuracy: 0.0,
            weight_bytes: params as u64,
            flash_bytes: params as u64 + 1000,
            ram_bytes: 100,
            instructions: params as u64 * 10,
            energy_uj: 0.0,
            train_seconds: 0.0,
            measure_seconds: 0.0,
        }
    }

    /// Runs the planner to the end as workers would, finishing trials in id order.
    fn run(settings: &StudySettings) -> Vec<Trial> {
        let space = settings.space().unwrap();
        let mut trials: Vec<Trial> = Vec::new();
        for _ in 0..100 {
            match plan(settings, &space, &trials) {
                Plan::Finished => return trials,
                Plan::Wait => panic!("nothing runs in this test"),
                Plan::Enqueue(new) => {
                    for n in new {
                        let m = measure(&space, &n.genome, n.epochs as usize);
                        trials.push(Trial {
                            id: trials.len() as i64 + 1,
                            generation: n.generation,
                            rung: n.rung,
                            slot: n.slot,
                            genome: n.genome,
                            epochs: n.epochs,
                            state: TrialState::Done,
                            worker: Some("t".into()),
                            attempts: 1,
                            result: Some(serde_json::to_string(&m).unwrap()),
                            error: None,
                        });
                    }
                }
            }
        }
        panic!("the planner never finished");
    }

    #[test]
    fn a_study_samples_its_budget_promotes_by_halving_and_finishes() {
        let s = settings(10);
        let trials = run(&s);
        // 10 candidates: generations of 4, 4 and 2.
        assert_eq!(sampled(&trials), 10);
        // Rungs 1, 2, 4 epochs: 4 → 2 → 1 per full generation, 2 → 1 → 1 for the last.
        let at = |r| trials.iter().filter(|t| t.rung == r).count();
        assert_eq!((at(0), at(1), at(2)), (10, 5, 3));
        assert!(trials.iter().filter(|t| t.rung == 2).all(|t| t.epochs == 4));
        // No network is tried twice at the same rung.
        let space = s.space().unwrap();
        let names: BTreeSet<(i64, String)> = trials
            .iter()
            .map(|t| {
                (
                    t.rung,
                    space.candidate(&t.genome).unwrap().architecture.name,
                )
            })
            .collect();
        assert_eq!(names.len(), trials.len());
        assert!(!front(&s, &trials).is_empty());
    }

    #[test]
    fn planning_is_the_same_in_every_process() {
        let s = settings(12);
        assert_eq!(run(&s), run(&s));
        let mut other = settings(12);
        other.seed = 2;
        assert_ne!(run(&s), run(&other));
    }

    #[test]
    fn a_running_trial_makes_others_wait_and_a_failed_one_is_not_promoted() {
        let s = settings(4);
        let space = s.space().unwrap();
        let Plan::Enqueue(first) = plan(&s, &space, &[]) else {
            panic!()
        };
        let mut trials: Vec<Trial> = first
            .iter()
            .enumerate()
            .map(|(i, n)| Trial {
                id: i as i64 + 1,
                generation: n.generation,
                rung: n.rung,
                slot: n.slot,
                genome: n.genome.clone(),
                epochs: n.epochs,
                state: TrialState::Running,
                worker: None,
                attempts: 1,
                result: None,
                error: None,
            })
            .collect();
        assert_eq!(plan(&s, &space, &trials), Plan::Wait);
        for t in &mut trials {
            t.state = TrialState::Failed;
        }
        // Nothing to promote and the budget spent: finished.
        assert_eq!(plan(&s, &space, &trials), Plan::Finished);
    }

    #[test]
    fn quantities_and_objectives_parse() {
        assert_eq!(parse_quantity("16kB").unwrap(), 16_000);
        assert_eq!(parse_quantity("4KiB").unwrap(), 4096);
        assert_eq!(parse_quantity("200k").unwrap(), 200_000);
        assert_eq!(parse_quantity("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_quantity("512").unwrap(), 512);
        assert!(parse_quantity("lots").is_err());
        assert_eq!(
            Objective::parse_list("accuracy,flash").unwrap(),
            vec![Objective::Accuracy, Objective::Flash]
        );
        assert!(Objective::parse_list("accuracy,accuracy").is_err());
        assert!(
            Objective::parse_list("speed")
                .unwrap_err()
                .to_string()
                .contains("speed")
        );
        for name in OBJECTIVE_NAMES {
            assert_eq!(Objective::parse(name).unwrap().name(), name);
        }
    }

    #[test]
    fn an_unknown_energy_reads_back_as_nan() {
        let space = SearchSpace::parse(SPACE, "t").unwrap();
        let mut m = measure(&space, &vec![0; space.gene_sizes().len()], 1);
        m.energy_uj = f64::NAN;
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"energy_uj\":null"), "{text}");
        let back: Measured = serde_json::from_str(&text).unwrap();
        assert!(back.energy_uj.is_nan());
        assert_eq!(back.instructions, m.instructions);
    }

    #[test]
    fn limits_measure_relative_excess() {
        let space = SearchSpace::parse(SPACE, "t").unwrap();
        let mut m = measure(&space, &vec![0; space.gene_sizes().len()], 1);
        m.flash_bytes = 1500;
        m.ram_bytes = 100;
        let limits = Limits {
            max_flash: Some(1000),
            max_ram: Some(200),
            ..Limits::default()
        };
        assert!((limits.violation(&m) - 0.5).abs() < 1e-12);
        m.flash_bytes = 1000;
        assert_eq!(limits.violation(&m), 0.0);
    }
}
