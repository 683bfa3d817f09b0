//! Command-line plumbing shared by several commands: the training progress bar and the data
//! arguments of the commands that train or fine-tune.

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kinglet::jobs::train::{DataChoice, TrainFeedback};
use kinglet_train::Progress;
use kinglet_train::train::EpochReport;

/// The data arguments of `train` and of the commands that fine-tune with its loop.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Training data, e.g. `hapt:../shared/data/hapt.zip` (split `train` unless given).
    #[arg(long)]
    pub data: String,
    /// Validation data for best-epoch selection (default: the same source's `val` split).
    #[arg(long)]
    pub val: Option<String>,
    /// Train without a validation split (keeps the last epoch).
    #[arg(long, conflicts_with = "val")]
    pub no_val: bool,
    /// Train on the `val` split as well (no epoch selection then): with a weight-averaging
    /// schedule (`average_last`) there is nothing to select, so the held-out subjects are
    /// better spent as training data.
    #[arg(long, conflicts_with_all = ["val", "no_val"])]
    pub merge_val: bool,
}

impl DataArgs {
    pub(crate) fn choice(&self) -> DataChoice {
        DataChoice {
            data: self.data.clone(),
            val: self.val.clone(),
            no_val: self.no_val,
            merge_val: self.merge_val,
        }
    }
}

/// The training progress bar (drawn by every command that trains or fine-tunes). It appears
/// at the first epoch, so a command that fails while loading leaves no empty bar behind.
pub(crate) struct Bar {
    quiet: bool,
    bar: Option<ProgressBar>,
    /// When the first epoch of this invocation started (the run ETA counts from there).
    started: Option<std::time::Instant>,
    epochs_done: usize,
}

impl Bar {
    pub(crate) fn new(quiet: bool) -> Bar {
        Bar {
            quiet,
            bar: None,
            started: None,
            epochs_done: 0,
        }
    }

    /// Removes the bar once the run is over.
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        if self.bar.is_none() && !self.quiet {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_length(batches as u64);
            bar.set_position(0);
            // Whole-run ETA from the epochs finished in this invocation.
            let remaining = epochs + 1 - epoch;
            let eta = (self.epochs_done > 0).then(|| {
                let per = started.elapsed().as_secs_f64() / self.epochs_done as f64;
                let secs = (per * remaining as f64) as u64;
                format!(" (run ETA {}:{:02})", secs / 60, secs % 60)
            });
            bar.set_prefix(format!("epoch {epoch}/{epochs}{}", eta.unwrap_or_default()));
        }
    }

    fn batch_done(&mut self, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4} acc {accuracy:.3}"));
        }
    }

    fn epoch_done(&mut self, r: &EpochReport, is_best: bool) {
        self.epochs_done += 1;
        let val = match (r.validation_accuracy, r.validation_macro_f1) {
            (Some(a), Some(f)) => format!("  val acc {a:.4} F1 {f:.4}"),
            _ => String::new(),
        };
        let line = format!(
            "epoch {:3}  lr {:.5}  loss {:.4}  acc {:.4}{val}  {:.2}s{}",
            r.epoch,
            r.learning_rate,
            r.train_loss,
            r.train_accuracy,
            r.train_seconds,
            if is_best { "  *" } else { "" }
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

/// Notes go to standard error as plain lines; the bar comes down before the closing ones.
impl TrainFeedback for Bar {
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn training_done(&mut self) {
        self.clear();
    }
}

/// This `kinglet` executable, which the `pipeline` and `optimize` jobs run for every step.
pub(crate) fn this_executable() -> Result<std::path::PathBuf> {
    std::env::current_exe().context("locating the kinglet executable")
}
