//! `kinglet data …`: fetch the published HAR archives, summarise a data spec, and measure
//! how close HAPT-rebuilt windows come to the official UCI-HAR ones.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kinglet_data::fetch::{self, Archive, Fetched};
use kinglet_data::hapt::Processing;
use kinglet_data::spec::{Activities, DataSpec, LoadOptions};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a published archive (uci-har or hapt), verify its SHA-256 and unpack it into DIR.
    Fetch(FetchArgs),
    /// Count windows per class and per subject in a data spec (e.g. `hapt:../shared/data/hapt.zip:train`).
    Info(InfoArgs),
    /// Rebuild the UCI-HAR test windows from HAPT raw data and report per-channel differences.
    CompareOfficial(CompareArgs),
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// `uci-har` or `hapt`.
    pub dataset: String,
    /// Destination folder; the archive unpacks into `DIR/UCI HAR Dataset` or `DIR/hapt`.
    #[arg(long)]
    pub dir: PathBuf,
    /// Use this local file or URL instead of the official address (still checksum-verified).
    #[arg(long)]
    pub from: Option<String>,
    /// Expected SHA-256 (hex) instead of the pinned one.
    #[arg(long)]
    pub sha256: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Data spec, `KIND:PATH[:train|val|test][:OPTION…]`, e.g. `hapt:hapt.zip:test:classes=12`,
    /// `wisdm:DIR:train:activities=18`, `hapt:hapt.zip:val:stream`.
    pub spec: String,
    /// HAPT: include the six postural transitions (12 classes; same as `:classes=12`).
    #[arg(long)]
    pub all_activities: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Folder holding (or being) `UCI HAR Dataset/` with the official test windows.
    #[arg(long)]
    pub uci: PathBuf,
    /// HAPT zip or unpacked folder.
    #[arg(long)]
    pub hapt: PathBuf,
    /// Keep the gyroscope's slow drift (UCI-HAR's documented processing only).
    #[arg(long)]
    pub no_gyro_drift_removal: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Fetch(a) => run_fetch(a),
        DataCommand::Info(a) => run_info(a),
        DataCommand::CompareOfficial(a) => run_compare(a),
    }
}

fn run_fetch(a: FetchArgs) -> Result<()> {
    let Some(archive) = Archive::parse(&a.dataset) else {
        bail!("unknown dataset `{}` (uci-har or hapt)", a.dataset);
    };
    if a.from.is_none() {
        eprintln!("downloading {}", archive.url());
    }
    match fetch::fetch(archive, &a.dir, a.from.as_deref(), a.sha256.as_deref())? {
        Fetched::Unpacked(p) => println!("unpacked {}", p.display()),
        Fetched::AlreadyPresent(p) => {
            println!("{} already present; remove it to fetch again", p.display())
        }
    }
    Ok(())
}

fn run_info(a: InfoArgs) -> Result<()> {
    let spec = DataSpec::parse(&a.spec)?;
    let activities = if a.all_activities {
        Activities::AllTwelve
    } else {
        Activities::BasicSix
    };
    let data = kinglet_data::load(&spec, &LoadOptions { activities })
        .with_context(|| format!("loading {spec}"))?;
    let per_class = data.class_counts();
    let mut per_subject: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
    for &s in data.subjects.iter().flatten() {
        *per_subject.entry(s).or_default() += 1;
    }
    if a.json {
        let classes: serde_json::Map<String, serde_json::Value> = data
            .class_names
            .iter()
            .zip(&per_class)
            .map(|(n, c)| (n.clone(), (*c).into()))
            .collect();
        let subjects: serde_json::Map<String, serde_json::Value> = per_subject
            .iter()
            .map(|(s, c)| (s.to_string(), (*c).into()))
            .collect();
        let out = serde_json::json!({
            "spec": spec.to_string(),
            "n": data.len(),
            "sample_shape": data.sample_shape,
            "channels": data.channel_names,
            "classes": classes,
            "subjects": subjects,
            "sample_rate_hz": data.sample_rate_hz,
            "stream": data.stream.as_ref().map(|s| serde_json::json!({
                "window": s.window,
                "step": s.step,
                "unknown": s.known.iter().filter(|k| !**k).count(),
                "straddling": s.straddles.iter().filter(|k| **k).count(),
                "recordings": s.recording.iter().collect::<std::collections::BTreeSet<_>>().len(),
            })),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{spec}: {} samples of shape {:?}",
        data.len(),
        data.sample_shape
    );
    println!("channels: {}", data.channel_names.join(" "));
    if let Some(rate) = data.sample_rate_hz {
        println!("sample rate: {rate} Hz");
    }
    if let Some(s) = &data.stream {
        let recordings: std::collections::BTreeSet<_> = s.recording.iter().collect();
        println!(
            "stream: {} recordings on a {}/{} grid; {} windows unknown (not scored), {} straddle a change",
            recordings.len(),
            s.window,
            s.step,
            s.known.iter().filter(|k| !**k).count(),
            s.straddles.iter().filter(|k| **k).count()
        );
    }
    println!(
        "per class{}:",
        if data.stream.is_some() {
            " (labelled windows)"
        } else {
            ""
        }
    );
    for (name, count) in data.class_names.iter().zip(&per_class) {
        println!("  {name:20} {count:6}");
    }
    if !per_subject.is_empty() {
        let cells: Vec<String> = per_subject
            .iter()
            .map(|(s, c)| format!("{s}:{c}"))
            .collect();
        println!("per subject: {}", cells.join(" "));
    }
    Ok(())
}

fn run_compare(a: CompareArgs) -> Result<()> {
    let processing = Processing {
        gyro_drift_removal: !a.no_gyro_drift_removal,
    };
    let started = std::time::Instant::now();
    let c = kinglet_data::official::compare(&a.uci, &a.hapt, &processing)?;
    if a.json {
        println!("{}", serde_json::to_string(&c)?);
        return Ok(());
    }
    println!(
        "official test windows {}; located in HAPT raw recordings {}; at the same position as a kinglet window {} \
         (same label {}); kinglet test windows {}; gyro drift removal {}",
        c.official_windows,
        c.located,
        c.same_position_as_rebuilt,
        c.label_agreement,
        c.rebuilt_windows,
        if processing.gyro_drift_removal {
            "on"
        } else {
            "off"
        },
    );
    println!(
        "{:12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "channel", "max|Δ|", "mean|Δ|", "walking", "posture", "p99 wmax", "window 0"
    );
    for ch in &c.channels {
        println!(
            "{:12} {:8.4} {:8.5} {:8.5} {:8.5} {:9.4} {:9.4}",
            ch.channel,
            ch.max_abs,
            ch.mean_abs,
            ch.mean_abs_dynamic,
            ch.mean_abs_static,
            ch.p99_window_max,
            ch.first_window_max_abs
        );
    }
    println!(
        "(walking / posture: mean |Δ| over windows of activities 1–3 / 4–6; \
         p99 wmax: 99th percentile of per-window max |Δ|; units g and rad/s)"
    );
    eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}
