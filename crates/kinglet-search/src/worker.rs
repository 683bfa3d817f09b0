//! A worker: claim a trial, evaluate it, record it, repeat; when nothing is queued, plan the
//! study's next step; stop when the study is finished. `kinglet search` runs a pool of them
//! in one process; `kinglet search worker` runs one more anywhere the study is reachable.
//!
//! While it evaluates, a worker renews its trial's lease from a second connection every third
//! of the lease, so a trial is taken over only when its worker really stopped (killed, lost
//! its machine or its connection), never because training is slow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::SearchError;
use crate::evaluate::Evaluator;
use crate::space::{SearchSpace, fnv1a};
use crate::storage::{self, Outcome, Storage, Trial};
use crate::study::{self, Measured, Plan, StudySettings};

/// How one worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The study's location (SQLite path or `postgres://` URL).
    pub study: String,
    /// This worker's name in the study (unique among live workers: host, process, thread).
    pub name: String,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// Stop claiming new trials after this instant (the `--hours` budget).
    pub deadline: Option<Instant>,
    /// Set to stop claiming trials (the one in hand is finished and recorded). A process
    /// that must stop at once gives its trials back with [`release_held`] instead.
    pub stop: Arc<AtomicBool>,
}

/// A stable default name for a worker: host, process id and an index within the process.
pub fn worker_name(index: usize) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{index}", std::process::id())
}

/// What a worker tells the one watching (a progress bar, a log).
pub trait Observer: Send {
    fn started(&mut self, _trial: &Trial, _architecture: &str) {}
    fn finished(&mut self, _trial: &Trial, _result: &Result<Measured, String>) {}
    /// A note (a result dropped because the trial was taken over, a stop).
    fn note(&mut self, _line: &str) {}
}

/// Observes nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Trials this process holds, so that a Ctrl-C handler can give them back at once.
pub type Held = Arc<Mutex<Vec<(i64, String)>>>;

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSummary {
    pub evaluated: usize,
    pub failed: usize,
    /// Results refused because another worker had taken the trial over.
    pub dropped: usize,
}

/// The study's settings, or an error saying the study was never started.
pub fn settings(storage: &mut dyn Storage) -> Result<StudySettings, SearchError> {
    let location = storage.location().to_string();
    let text = storage.settings(None)?.ok_or_else(|| SearchError::Study {
        location: location.clone(),
        message: "has no settings: start it with `kinglet search` (a worker joins a study, it does not create one)".into(),
    })?;
    StudySettings::from_json(&text, &location)
}

/// The training seed of a candidate: the study's seed and the network, so a rerun of the
/// same trial on any worker trains the same way.
pub fn trial_seed(settings: &StudySettings, architecture: &str) -> u64 {
    settings.seed ^ fnv1a(architecture.as_bytes())
}

/// Runs one worker until the study is finished, the deadline passes or `stop` is set.
pub fn run(
    options: &WorkerOptions,
    evaluator: &Evaluator,
    held: &Held,
    observer: &mut dyn Observer,
) -> Result<WorkerSummary, SearchError> {
    let mut storage = storage::open(&options.study)?;
    let settings = settings(storage.as_mut())?;
    let space = settings.space()?;
    let mut summary = WorkerSummary::default();
    let poll = (options.lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        if options.stop.load(Ordering::SeqCst) {
            break;
        }
        if options.deadline.is_some_and(|d| Instant::now() >= d) {
            observer.note("the time budget is spent: this worker stops claiming trials");
            break;
        }
        if let Some(trial) = storage.claim(&options.name, options.lease)? {
            run_trial(
                options,
                storage.as_mut(),
                &settings,
                &space,
                evaluator,
                held,
                trial,
                &mut summary,
                observer,
            )?;
            continue;
        }
        let trials = storage.trials()?;
        match study::plan(&settings, &space, &trials) {
            Plan::Enqueue(new) => {
                storage.enqueue(&new)?;
            }
            Plan::Wait => std::thread::sleep(poll),
            Plan::Finished => break,
        }
    }
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn run_trial(
    options: &WorkerOptions,
    storage: &mut dyn Storage,
    settings: &StudySettings,
    space: &SearchSpace,
    evaluator: &Evaluator,
    held: &Held,
    trial: Trial,
    summary: &mut WorkerSummary,
    observer: &mut dyn Observer,
) -> Result<(), SearchError> {
    let candidate = space.candidate(&trial.genome);
    let name = candidate.as_ref().map_or_else(
        |e| format!("invalid genome: {e}"),
        |c| c.architecture.name.clone(),
    );
    observer.started(&trial, &name);
    if let Ok(mut h) = held.lock() {
        h.push((trial.id, options.name.clone()));
    }
    let heartbeat = Heartbeat::start(options, trial.id)?;
    let evaluated = candidate.map_err(SearchError::Trial).and_then(|c| {
        evaluator.evaluate(
            &c,
            trial.epochs as usize,
            trial_seed(settings, &c.architecture.name),
        )
    });
    heartbeat.stop();
    if let Ok(mut h) = held.lock() {
        h.retain(|(id, _)| *id != trial.id);
    }
    let (outcome, reported) = match evaluated {
        Ok(e) => {
            let result = serde_json::to_string(&e.measured)
                .map_err(|err| SearchError::Trial(err.to_string()))?;
            let model = model_bytes(&e.model)?;
            (Outcome::Done { result, model }, Ok(e.measured))
        }
        Err(e) => (Outcome::Failed(e.to_string()), Err(e.to_string())),
    };
    if storage.finish(trial.id, &options.name, &outcome)? {
        match &reported {
            Ok(_) => summary.evaluated += 1,
            Err(_) => summary.failed += 1,
        }
        observer.finished(&trial, &reported);
    } else {
        summary.dropped += 1;
        observer.note(&format!(
            "trial {} was taken over by another worker (this one's lease ran out): result dropped",
            trial.id
        ));
    }
    Ok(())
}

/// A `.kgl` file's bytes (through a temporary file: the model format writes files).
fn model_bytes(model: &kinglet_train::TrainedModel) -> Result<Vec<u8>, SearchError> {
    let dir = tempfile::tempdir().map_err(|e| SearchError::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("model.kgl");
    model
        .save(&path)
        .map_err(|e| SearchError::Trial(e.to_string()))?;
    std::fs::read(&path).map_err(|e| SearchError::io(&path, e))
}

/// Renews a trial's lease from its own connection until stopped.
struct Heartbeat {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Heartbeat {
    fn start(options: &WorkerOptions, id: i64) -> Result<Heartbeat, SearchError> {
        let mut storage = storage::open(&options.study)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let (name, lease) = (options.name.clone(), options.lease);
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 3) {
                // A failed renewal (database briefly unreachable) is retried at the next beat;
                // a lost trial shows when the result is refused.
                if let Ok(false) = storage.renew(id, &name, lease) {
                    break;
                }
            }
        });
        Ok(Heartbeat { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Gives every held trial back to the queue (from a Ctrl-C handler).
pub fn release_held(study: &str, held: &Held) -> Result<usize, SearchError> {
    let trials: Vec<(i64, String)> = held.lock().map(|h| h.clone()).unwrap_or_default();
    if trials.is_empty() {
        return Ok(0);
    }
    let mut storage = storage::open(study)?;
    let mut released = 0;
    for (id, worker) in trials {
        released += storage.release(id, &worker)? as usize;
    }
    Ok(released)
}
