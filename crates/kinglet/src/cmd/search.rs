//! `kinglet search`: multi-objective architecture search over a space file (NSGA-II with
//! successive halving), every trial trained, quantised and profiled in QEMU, the study
//! journaled in SQLite (default) or PostgreSQL. `kinglet search worker --study URL` joins a
//! study from any machine. See docs/search.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kinglet_search::search::{PoolOptions, SearchJob, SearchProgress, Status};
use kinglet_search::study::{Limits, Objective, parse_quantity};
use kinglet_search::worker::{Held, release_held};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SearchArgs {
    #[command(subcommand)]
    pub command: Option<SearchCommand>,
    /// Training data, e.g. `hapt:../shared/data/hapt.zip` (split `train` unless given).
    #[arg(long, required = true)]
    pub data: Option<String>,
    /// Validation data the search selects on (default: the `val` split of --data).
    #[arg(long)]
    pub validation: Option<String>,
    /// Test data the final front is scored on, once (default: the `test` split of --data).
    #[arg(long)]
    pub test: Option<String>,
    /// The search space (see spaces/har.toml and docs/search.md).
    #[arg(long, required = true)]
    pub space: Option<PathBuf>,
    /// Where front.md, front.json, the plots, the front's models and (by default) the study go.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Study database: an SQLite file (default DIR/study.sqlite) or a postgres:// URL that
    /// any number of `kinglet search worker` processes can share.
    #[arg(long)]
    pub study: Option<String>,
    /// Objectives, any subset of accuracy, weight-bytes, flash, ram, instructions, energy.
    #[arg(long, default_value = "accuracy,weight-bytes,instructions")]
    pub objectives: String,
    /// Hard limit on the flash the model adds (e.g. 16kB; k = 1000, Ki = 1024).
    #[arg(long)]
    pub max_flash: Option<String>,
    /// Hard limit on RAM (arena and stack), e.g. 4kB.
    #[arg(long)]
    pub max_ram: Option<String>,
    /// Hard limit on instructions per inference, e.g. 200k.
    #[arg(long)]
    pub max_instructions: Option<String>,
    /// Hard limit on the quantised weights' bytes.
    #[arg(long)]
    pub max_weight_bytes: Option<String>,
    /// Board profile that prices energy (`boards/<id>.toml`).
    #[arg(long, default_value = "apollo3")]
    pub board: String,
    /// Candidates to evaluate in all.
    #[arg(long, default_value_t = 64)]
    pub trials: usize,
    /// Stop claiming trials after this many hours (the front is written from what finished).
    #[arg(long)]
    pub hours: Option<f64>,
    /// Candidates per generation.
    #[arg(long, default_value_t = 16)]
    pub population: usize,
    /// Epochs of the shortest rung of successive halving.
    #[arg(long, default_value_t = 2)]
    pub min_epochs: usize,
    /// Successive halving's factor: each rung keeps 1/eta of the candidates for eta times the epochs.
    #[arg(long, default_value_t = 3)]
    pub eta: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Retrain every front model on the training and validation windows together (the choice
    /// was made on validation), measure it again and score it once on the test split, beside
    /// the models as searched (front.md's "Refitted" table).
    #[arg(long)]
    pub refit: bool,
    /// Refit on the `[training]` schedule of this space or architecture file instead of each
    /// trial's own (e.g. `spaces/har.toml`'s full 40 epochs after a search on
    /// `spaces/har-quick.toml`'s 20); implies `--refit`.
    #[arg(long, value_name = "FILE")]
    pub refit_schedule: Option<PathBuf>,
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// How this process's workers run.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Worker threads in this process (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seconds a claimed trial stays claimed without a heartbeat (a killed worker's trial is
    /// claimed again after this).
    #[arg(long, default_value_t = 60.0)]
    pub lease: f64,
    /// Where firmware builds go (default: kinglet's work folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum SearchCommand {
    /// Work on a study started by `kinglet search` (from this or another machine).
    Worker(WorkerArgs),
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The study: an SQLite file or a postgres:// URL.
    #[arg(long)]
    pub study: String,
    /// Stop claiming trials after this many hours.
    #[arg(long)]
    pub hours: Option<f64>,
    #[command(flatten)]
    pub pool: PoolArgs,
}

impl PoolArgs {
    fn options(&self) -> Result<PoolOptions> {
        anyhow::ensure!(
            self.lease.is_finite() && self.lease >= 1.0,
            "--lease must be at least 1 second"
        );
        Ok(PoolOptions {
            workers: self
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            lease: Duration::from_secs_f64(self.lease),
            work_dir: self
                .work_dir
                .clone()
                .unwrap_or_else(kinglet_compile::firmware::default_work_dir),
        })
    }
}

/// The progress bar: candidates done of the budget, front size, trials running, time left.
struct Bar(ProgressBar);

impl SearchProgress for Bar {
    fn update(&mut self, s: &Status) {
        self.0.set_length(s.budget as u64);
        self.0.set_position(s.candidates_done as u64);
        self.0.set_message(format!(
            "trials done {} (failed {}), running {}, front {}, left {}",
            s.finished_trials,
            s.failed_trials,
            s.running_trials,
            s.front_size,
            s.left.map_or("?".to_string(), |d| {
                let m = d.as_secs() / 60;
                format!("{}h{:02}m", m / 60, m % 60)
            })
        ));
    }
    fn note(&mut self, line: &str) {
        self.0.println(line);
    }
}

fn bar() -> Bar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("search [{bar:30}] {pos}/{len} candidates, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    Bar(bar)
}

/// Ctrl-C: stop, give the trials in hand back to the study (so a rerun takes them at once)
/// and exit with the conventional status 130.
fn on_ctrl_c(study: String, held: Held, stop: Arc<AtomicBool>) -> Result<()> {
    ctrlc::set_handler(move || {
        stop.store(true, Ordering::SeqCst);
        match release_held(&study, &held) {
            Ok(n) => eprintln!(
                "\ninterrupted: {n} trial(s) in hand returned to study {study}; rerun the same command to resume"
            ),
            Err(e) => eprintln!("\ninterrupted: {e} (the trials in hand are claimed again when their lease runs out)"),
        }
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")
}

fn limit(text: &Option<String>, flag: &str) -> Result<Option<u64>> {
    text.as_deref()
        .map(parse_quantity)
        .transpose()
        .with_context(|| format!("--{flag}"))
}

/// `--refit` and `--refit-schedule` as the library's refit plan.
fn refit_plan(
    refit: bool,
    schedule: Option<&std::path::Path>,
) -> Result<Option<kinglet_search::front::Refit>> {
    let schedule = schedule
        .map(kinglet_search::space::SearchSpace::load_schedule)
        .transpose()
        .context("--refit-schedule")?;
    Ok((refit || schedule.is_some()).then_some(kinglet_search::front::Refit { schedule }))
}

pub fn run(args: SearchArgs) -> Result<()> {
    let held: Held = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(SearchCommand::Worker(w)) = args.command {
        on_ctrl_c(w.study.clone(), held.clone(), stop.clone())?;
        let deadline = w
            .hours
            .map(|h| std::time::Instant::now() + Duration::from_secs_f64(h.max(0.0) * 3600.0));
        let mut progress = bar();
        let summary = kinglet_search::search::run_workers(
            &w.study,
            &w.pool.options()?,
            deadline,
            &stop,
            &held,
            &mut progress,
        )?;
        progress.0.finish_and_clear();
        eprintln!(
            "worker done: {} trials evaluated, {} failed, {} results dropped (taken over)",
            summary.evaluated, summary.failed, summary.dropped
        );
        return Ok(());
    }
    let (Some(data), Some(space), Some(out)) = (args.data, args.space, args.out) else {
        anyhow::bail!("--data, --space and --out are required");
    };
    let job = SearchJob {
        data,
        validation: args.validation,
        test: args.test,
        space,
        out,
        study: args.study,
        objectives: Objective::parse_list(&args.objectives).context("--objectives")?,
        limits: Limits {
            max_flash: limit(&args.max_flash, "max-flash")?,
            max_ram: limit(&args.max_ram, "max-ram")?,
            max_instructions: limit(&args.max_instructions, "max-instructions")?,
            max_weight_bytes: limit(&args.max_weight_bytes, "max-weight-bytes")?,
        },
        board: args.board,
        candidates: args.trials,
        hours: args.hours,
        population: args.population,
        min_epochs: args.min_epochs,
        eta: args.eta,
        seed: args.seed,
        pool: args.pool.options()?,
        refit: refit_plan(args.refit, args.refit_schedule.as_deref())?,
    };
    on_ctrl_c(
        kinglet_search::search::study_location(&job),
        held.clone(),
        stop.clone(),
    )?;
    let mut progress = bar();
    let report = kinglet_search::search::run(&job, &stop, &held, &mut progress);
    progress.0.finish_and_clear();
    let report = report?;
    println!(
        "{} trials ({} done, {} failed) over {} candidates; front of {}:",
        report.trials,
        report.done,
        report.failed,
        report.candidates,
        report.front.len()
    );
    for m in &report.front {
        println!(
            "  {}  val {:.2} %{}  {} weight B  {} flash B  {} RAM B  {} instructions  {:.3} µJ",
            m.measured.architecture,
            m.measured.accuracy * 100.0,
            m.test_accuracy
                .map_or(String::new(), |a| format!("  test {:.2} %", a * 100.0)),
            m.measured.weight_bytes,
            m.measured.flash_bytes,
            m.measured.ram_bytes,
            m.measured.instructions,
            m.measured.energy_uj
        );
    }
    println!("wrote {}", job.out.join("front.md").display());
    Ok(())
}
