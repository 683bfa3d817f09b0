//! `kinglet report`: one self-contained HTML page with SVG plots (Pareto front, energy per
//! strategy and board, battery life, confusion matrices) and a Markdown summary, built from
//! the records `kinglet cascade --save` wrote.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use kinglet_adapt::report::{CascadeRecord, write_report};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Records written by `kinglet cascade --save`.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output folder for report.html and report.md.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
}

pub fn run(a: ReportArgs) -> Result<()> {
    if a.runs.is_empty() {
        bail!("give at least one record from `kinglet cascade --save`");
    }
    let records = a
        .runs
        .iter()
        .map(|p| CascadeRecord::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let files = write_report(&records, &a.out)?;
    println!(
        "wrote {}\nwrote {}",
        files.html.display(),
        files.markdown.display()
    );
    Ok(())
}
