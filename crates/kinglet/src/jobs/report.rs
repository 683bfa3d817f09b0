//! `kinglet report` as a library call: cascade records (`kinglet cascade --save`) and search
//! results (`kinglet search`'s output folder or its `front.json`), in any mix, into one
//! `report.html` and `report.md`.
//!
//! Why the search's section is assembled here: the report page lives in kinglet-adapt, which
//! the search crate depends on, so only this crate sees both; the search renders its own
//! table and plots ([`kinglet_search::front::report_section`]) and the page places them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kinglet_adapt::report::{CascadeRecord, ReportFiles, Section, write_report_with};

/// Everything `kinglet report` is told.
#[derive(Debug, Clone)]
pub struct ReportJob {
    /// Cascade records, search output folders and search `front.json` files.
    pub inputs: Vec<PathBuf>,
    /// Where `report.html`, `report.md` and the sections' plots go.
    pub out: PathBuf,
}

/// What an input is.
enum Input {
    Cascade(Box<CascadeRecord>),
    Search(Section),
}

/// A search's front is recognised by its content (a folder holding `front.json`, or JSON with
/// the front's `front` and `objectives`), whatever the file is called.
fn is_front(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("front").is_some() && v.get("objectives").is_some())
}

/// A file-name-safe label for a search: its folder's name, made unique among the inputs.
fn label(front_json: &Path, taken: &mut BTreeSet<String>) -> String {
    let folder = front_json
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut base: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if base.is_empty() {
        base = "search".into();
    }
    let mut name = base.clone();
    let mut k = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{k}");
        k += 1;
    }
    name
}

fn load(path: &Path, labels: &mut BTreeSet<String>) -> Result<Input> {
    if is_front(path) {
        let (front, file) = kinglet_search::front::load(path)?;
        let label = label(&file, labels);
        let section = kinglet_search::front::report_section(&front, &file, &label)
            .with_context(|| format!("reporting {}", file.display()))?;
        return Ok(Input::Search(section));
    }
    Ok(Input::Cascade(Box::new(CascadeRecord::load(path)?)))
}

/// Runs `kinglet report`: cascade records first (their tables and plots), then one section per
/// search, in the order given.
pub fn run(job: &ReportJob) -> Result<ReportFiles> {
    if job.inputs.is_empty() {
        bail!(
            "give at least one record from `kinglet cascade --save` or one `kinglet search` output folder"
        );
    }
    let mut records = Vec::new();
    let mut sections = Vec::new();
    let mut labels = BTreeSet::new();
    for path in &job.inputs {
        match load(path, &mut labels)? {
            Input::Cascade(r) => records.push(*r),
            Input::Search(s) => sections.push(s),
        }
    }
    Ok(write_report_with(&records, &sections, &job.out)?)
}
