//! `kinglet search` and `kinglet search worker` as library calls: start (or resume) a study,
//! run a pool of workers on it until it is finished, then write its front.
//!
//! A study is created by `search` with the settings it is given and resumed by a later
//! `search` with the same settings: finished trials are kept, queued ones and those of a
//! stopped run are claimed again. Settings that differ from the stored ones are refused
//! rather than silently mixed into one study.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use kinglet_data::spec::Split;

use crate::error::SearchError;
use crate::evaluate::{Evaluator, load_split};
use crate::front::{self, FrontReport};
use crate::space::SearchSpace;
use crate::storage::{self, Storage, TrialState};
use crate::study::{self, Limits, Objective, StudySettings};
use crate::worker::{self, Held, Observer, WorkerOptions, WorkerSummary};

/// Everything `kinglet search` is told.
#[derive(Debug, Clone)]
pub struct SearchJob {
    /// Training data spec (split `train` unless given).
    pub data: String,
    /// Validation data spec (default: the `val` split of `data`).
    pub validation: Option<String>,
    /// Test data spec the front is scored on once (default: the `test` split of `data`).
    pub test: Option<String>,
    pub space: PathBuf,
    pub out: PathBuf,
    /// Study location (default: `out/study.sqlite`).
    pub study: Option<String>,
    pub objectives: Vec<Objective>,
    pub limits: Limits,
    pub board: String,
    /// Candidates in all (`--trials`).
    pub candidates: usize,
    /// Stop claiming trials after this long (`--hours`).
    pub hours: Option<f64>,
    pub population: usize,
    pub min_epochs: usize,
    pub eta: usize,
    pub seed: u64,
    pub pool: PoolOptions,
    /// Retrain every front model on training + validation windows before scoring it on the
    /// test split (`--refit`, `--refit-schedule`), beside the models as searched.
    pub refit: Option<front::Refit>,
}

/// How this process's workers run.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Worker threads (each trains and measures one trial at a time).
    pub workers: usize,
    pub lease: Duration,
    /// Where firmware is built (shared by the workers, under a lock).
    pub work_dir: PathBuf,
}

/// The state of a study, for a progress display.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub finished_trials: usize,
    pub failed_trials: usize,
    pub running_trials: usize,
    pub queued_trials: usize,
    /// Candidates whose first (shortest) trial finished, of `budget`.
    pub candidates_done: usize,
    pub budget: usize,
    pub front_size: usize,
    pub elapsed: Duration,
    /// Time left, from the rate of candidates so far and the time budget.
    pub left: Option<Duration>,
}

/// What a running search reports.
pub trait SearchProgress {
    fn update(&mut self, _status: &Status) {}
    fn note(&mut self, _line: &str) {}
}

/// The study location `job` uses.
pub fn study_location(job: &SearchJob) -> String {
    job.study
        .clone()
        .unwrap_or_else(|| job.out.join("study.sqlite").display().to_string())
}

/// Checks the limits against lower bounds that hold for every candidate of the space, so a
/// limit nothing can meet is refused before anything is trained or stored.
pub fn check_limits(
    space: &SearchSpace,
    origin: &str,
    limits: &Limits,
    classes: usize,
) -> Result<(), SearchError> {
    let bits = space.min_weight_bits() as usize;
    let parameters = space.min_parameters(classes);
    let weight_bytes = (parameters * bits).div_ceil(8) as u64;
    let input_bytes = space
        .inputs
        .iter()
        .map(|i| i.branches.iter().map(|b| b.channels.len()).sum::<usize>() * space.window)
        .min()
        .unwrap_or(0) as u64;
    let macs = space.min_macs(classes) as u64;
    let refuse = |flag: &str, limit: u64, what: String| {
        Err(SearchError::Infeasible(format!(
            "{flag} {limit}: no candidate of {origin} can meet it — {what}; nothing was trained or stored"
        )))
    };
    if let Some(l) = limits.max_weight_bytes.filter(|&l| l < weight_bytes) {
        return refuse(
            "--max-weight-bytes",
            l,
            format!(
                "its smallest network has {parameters} parameters, at least {weight_bytes} weight bytes"
            ),
        );
    }
    if let Some(l) = limits.max_flash.filter(|&l| l < weight_bytes) {
        return refuse(
            "--max-flash",
            l,
            format!("its smallest network's weights alone take {weight_bytes} bytes of flash"),
        );
    }
    if let Some(l) = limits.max_ram.filter(|&l| l < input_bytes) {
        return refuse(
            "--max-ram",
            l,
            format!("the smallest input window alone takes {input_bytes} bytes of RAM"),
        );
    }
    if let Some(l) = limits.max_instructions.filter(|&l| l < macs / 2) {
        return refuse(
            "--max-instructions",
            l,
            format!(
                "its smallest network has {macs} MACs, at least {} instructions at two MACs per instruction (SMLAD)",
                macs / 2
            ),
        );
    }
    Ok(())
}

/// Creates the study, or resumes it when it holds the same settings. Nothing is stored when
/// the space is malformed, a limit cannot be met or the study is another search's.
pub fn start(job: &SearchJob) -> Result<(Box<dyn Storage>, StudySettings), SearchError> {
    let text = std::fs::read_to_string(&job.space).map_err(|e| SearchError::io(&job.space, e))?;
    let origin = job.space.display().to_string();
    let space = SearchSpace::parse(&text, &origin)?;
    if job.population == 0 || job.candidates == 0 {
        return Err(SearchError::Invalid(
            "--population and --trials must be at least 1".into(),
        ));
    }
    if job.eta < 2 {
        return Err(SearchError::Invalid("--eta must be at least 2".into()));
    }
    let (_, train) = load_split(&job.data, Split::Train)?;
    check_limits(&space, &origin, &job.limits, train.class_names.len())?;
    let board = crate::evaluate::board(&job.board, None)?;
    if job.objectives.contains(&Objective::Energy) && board.active_ua_per_mhz.is_none() {
        return Err(SearchError::Invalid(format!(
            "objective energy: board `{}` has no cited active current",
            job.board
        )));
    }
    let settings = StudySettings {
        space: text,
        space_origin: origin,
        data: job.data.clone(),
        validation: job.validation.clone(),
        objectives: job.objectives.clone(),
        limits: job.limits.clone(),
        board: job.board.clone(),
        population: job.population,
        candidates: job.candidates,
        min_epochs: job.min_epochs,
        eta: job.eta,
        seed: job.seed,
    };
    let mut storage = storage::open(&study_location(job))?;
    let stored = storage
        .settings(Some(&settings.to_json()))?
        .unwrap_or_default();
    let stored = StudySettings::from_json(&stored, storage.location())?;
    if same_search(&stored, &settings) {
        // The stored text stays the study's (comments may differ, the space may not).
        return Ok((storage, stored));
    }
    if stored != settings {
        return Err(SearchError::Study {
            location: storage.location().to_string(),
            message: format!(
                "holds another search ({}); rerun with the same arguments to resume it, or give another --study / --out",
                differences(&stored, &settings).join(", ")
            ),
        });
    }
    Ok((storage, settings))
}

/// Whether `given` continues the study `stored`: the same settings, where the space counts as
/// the same when it parses to the same space. Why not the text alone: editing a space file's
/// comments (as the default space's were when per-block widths arrived) must not orphan the
/// studies started from it, while any change to a choice list still does.
pub fn same_search(stored: &StudySettings, given: &StudySettings) -> bool {
    if stored == given {
        return true;
    }
    let spaces_equal = match (stored.space(), given.space()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    spaces_equal
        && StudySettings {
            space: given.space.clone(),
            ..stored.clone()
        } == *given
}

fn differences(a: &StudySettings, b: &StudySettings) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            out.push(format!("{name} differs"));
        }
    };
    check("the space", a.space == b.space);
    check("--data", a.data == b.data);
    check("--validation", a.validation == b.validation);
    check("--objectives", a.objectives == b.objectives);
    check("the limits", a.limits == b.limits);
    check("--board", a.board == b.board);
    check("--population", a.population == b.population);
    check("--trials", a.candidates == b.candidates);
    check("--min-epochs", a.min_epochs == b.min_epochs);
    check("--eta", a.eta == b.eta);
    check("--seed", a.seed == b.seed);
    check("the space file's name", a.space_origin == b.space_origin);
    out
}

/// The study's progress.
pub fn status(
    storage: &mut dyn Storage,
    settings: &StudySettings,
    started: Instant,
    deadline: Option<Instant>,
    done_at_start: usize,
) -> Result<Status, SearchError> {
    let trials = storage.trials()?;
    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let candidates_done = trials
        .iter()
        .filter(|t| t.rung == 0 && t.state.finished())
        .count();
    let elapsed = started.elapsed();
    let here = candidates_done.saturating_sub(done_at_start);
    let remaining = settings.candidates.saturating_sub(candidates_done);
    let mut left = (here > 0).then(|| elapsed.mul_f64(remaining as f64 / here as f64));
    if let Some(d) = deadline {
        let until = d.saturating_duration_since(Instant::now());
        left = Some(left.map_or(until, |l| l.min(until)));
    }
    Ok(Status {
        finished_trials: count(TrialState::Done),
        failed_trials: count(TrialState::Failed),
        running_trials: count(TrialState::Running),
        queued_trials: count(TrialState::Queued),
        candidates_done,
        budget: settings.candidates,
        front_size: study::front(settings, &trials).len(),
        elapsed,
        left,
    })
}

/// Forwards worker notes to the progress display through a channel.
struct Notes(mpsc::Sender<String>);

impl Observer for Notes {
    fn finished(&mut self, trial: &storage::Trial, result: &Result<study::Measured, String>) {
        if let Err(e) = result {
            let _ = self.0.send(format!("trial {} failed: {e}", trial.id));
        }
    }
    fn note(&mut self, line: &str) {
        let _ = self.0.send(line.to_string());
    }
}

/// Runs `pool.workers` workers on the study at `study` until it is finished, the deadline
/// passes or `stop` is set, reporting progress about once a second.
pub fn run_workers(
    study: &str,
    pool: &PoolOptions,
    deadline: Option<Instant>,
    stop: &Arc<AtomicBool>,
    held: &Held,
    progress: &mut dyn SearchProgress,
) -> Result<WorkerSummary, SearchError> {
    let mut storage = storage::open(study)?;
    let settings = worker::settings(storage.as_mut())?;
    settings.space()?;
    let evaluator = Evaluator::new(&settings, pool.work_dir.clone())?;
    let started = Instant::now();
    let done_at_start = storage
        .trials()?
        .iter()
        .filter(|t| t.rung == 0 && t.state.finished())
        .count();
    let (notes, received) = mpsc::channel::<String>();
    let results: Vec<Result<WorkerSummary, SearchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..pool.workers.max(1))
            .map(|k| {
                let options = WorkerOptions {
                    study: study.to_string(),
                    name: worker::worker_name(k),
                    lease: pool.lease,
                    deadline,
                    stop: stop.clone(),
                };
                let evaluator = &evaluator;
                let mut observer = Notes(notes.clone());
                scope.spawn(move || worker::run(&options, evaluator, held, &mut observer))
            })
            .collect();
        drop(notes);
        while handles.iter().any(|h| !h.is_finished()) {
            while let Ok(line) = received.try_recv() {
                progress.note(&line);
            }
            if let Ok(s) = status(
                storage.as_mut(),
                &settings,
                started,
                deadline,
                done_at_start,
            ) {
                progress.update(&s);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        while let Ok(line) = received.try_recv() {
            progress.note(&line);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SearchError::Invalid("a worker thread panicked".into()))
                })
            })
            .collect()
    });
    let mut total = WorkerSummary::default();
    for r in results {
        let s = r?;
        total.evaluated += s.evaluated;
        total.failed += s.failed;
        total.dropped += s.dropped;
    }
    if let Ok(s) = status(
        storage.as_mut(),
        &settings,
        started,
        deadline,
        done_at_start,
    ) {
        progress.update(&s);
    }
    Ok(total)
}

/// Runs `kinglet search`: start or resume the study, work on it, write the front into
/// `job.out` (when the study is finished or the time budget spent).
pub fn run(
    job: &SearchJob,
    stop: &Arc<AtomicBool>,
    held: &Held,
    progress: &mut dyn SearchProgress,
) -> Result<FrontReport, SearchError> {
    std::fs::create_dir_all(&job.out).map_err(|e| SearchError::io(&job.out, e))?;
    let (mut storage, settings) = start(job)?;
    let location = study_location(job);
    let deadline = job
        .hours
        .map(|h| Instant::now() + Duration::from_secs_f64(h.max(0.0) * 3600.0));
    run_workers(&location, &job.pool, deadline, stop, held, progress)?;
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(SearchError::Invalid(format!(
            "stopped; rerun the same command to resume study {}",
            storage.location()
        )));
    }
    let evaluator = Evaluator::new(&settings, job.pool.work_dir.clone())?;
    let test_text = match &job.test {
        Some(t) => t.clone(),
        None => kinglet_data::spec::DataSpec::parse(&job.data)
            .map_err(|e| SearchError::Invalid(e.to_string()))?
            .with_split(Split::Test)
            .to_string(),
    };
    let test = load_split(&test_text, Split::Test).ok();
    if test.is_none() {
        progress.note(&format!(
            "no test windows in {test_text}: the front is not scored on a test split"
        ));
    }
    let report = front::write(
        storage.as_mut(),
        &settings,
        &evaluator,
        test.as_ref().map(|(_, d)| (test_text.as_str(), d)),
        job.refit.as_ref(),
        &job.out,
        &mut |line| progress.note(line),
    )?;
    let trials = storage.trials()?;
    if report.front.is_empty() && trials.iter().any(|t| t.state == TrialState::Done) {
        return Err(SearchError::Infeasible(format!(
            "no measured candidate met the limits ({} done trials); the study {} is kept, see {}",
            report.done,
            storage.location(),
            job.out.join("front.md").display()
        )));
    }
    Ok(report)
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
count = [1, 2]
filters = [4, 8]
kernel = [3]
pool = [2]
[training]
learning_rate = 0.005
epochs = 4
"#;

    fn settings(space: &str) -> StudySettings {
        StudySettings {
            space: space.into(),
            space_origin: "t.toml".into(),
            data: "x".into(),
            validation: None,
            objectives: vec![Objective::Accuracy],
            limits: Limits::default(),
            board: "apollo3".into(),
            population: 4,
            candidates: 8,
            min_epochs: 1,
            eta: 2,
            seed: 1,
        }
    }

    #[test]
    fn a_space_whose_comments_changed_continues_its_study_and_one_whose_choices_changed_does_not() {
        let stored = settings(SPACE);
        let commented = settings(&format!("# widths per block: see docs/search.md\n{SPACE}"));
        assert!(same_search(&stored, &commented));
        let wider = settings(&SPACE.replace("filters = [4, 8]", "filters = [4, 8, 16]"));
        assert!(!same_search(&stored, &wider));
        let mut seeded = commented.clone();
        seeded.seed = 2;
        assert!(!same_search(&stored, &seeded));
    }
}
