//! `kinglet report`: one self-contained HTML page with SVG plots (Pareto front, energy per
//! strategy and board, battery life, confusion matrices) and a Markdown summary, built from
//! the records `kinglet cascade --save` wrote, with a section per architecture search given
//! (its front table and plots). The work is [`kinglet::jobs::report::run`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use kinglet::jobs::report::{ReportJob, run as run_job};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Records written by `kinglet cascade --save`, and `kinglet search` output folders (or
    /// their front.json), in any mix.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output folder for report.html and report.md.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let files = run_job(&ReportJob {
        inputs: a.runs,
        out: a.out,
    })?;
    println!(
        "wrote {}\nwrote {}",
        files.html.display(),
        files.markdown.display()
    );
    Ok(())
}
