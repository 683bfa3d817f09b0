//! `kinglet optimize` as a library call: compression steps alone and in sequence on one trained model, each
//! variant measured the same way — file size, accuracy and host time from `kinglet eval`,
//! flash and instructions on the target core (Cortex-M4 by default, or Cortex-M3 / RISC-V)
//! from `kinglet profile` (which runs the variant in QEMU and fails unless its outputs equal
//! the host's) — into a table and a plot.
//!
//! A variant is a `+`-separated sequence of steps applied left to right: first the steps that
//! retrain the `.kgl` model — `separable` (convert convolutions to depthwise-separable ones and
//! fine-tune), `prune-filters` (structured pruning: drop whole filters), `prune` (magnitude
//! pruning to exact zeros), `qat` (quantisation-aware fine-tuning) —, then `graph-opt` (the
//! graph passes, a float `.tflite`), then at most one final format: `float`, `int8`, `dynamic`
//! or `float16`. Every step is this binary run with printed arguments (as in `kinglet
//! pipeline`); shared prefixes run once, and a step whose output exists is skipped unless
//! `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::prelude::*;

use super::steps::{self, Runner, which, write_atomic};

/// Everything `kinglet optimize` is told.
#[derive(Debug, Clone)]
pub struct OptimizeJob {
    /// The `kinglet` executable every step runs.
    pub kinglet: PathBuf,
    /// The trained model (`.kgl`).
    pub model: PathBuf,
    /// Training data (calibration, QAT fine-tuning).
    pub data: String,
    /// Evaluation data (default: the `test` split of `data`).
    pub eval: Option<String>,
    /// Variants; steps within one joined by `+`.
    pub pipeline: Vec<String>,
    /// Final sparsity of the `prune` step (default: `kinglet prune`'s).
    pub sparsity: Option<f64>,
    /// Fraction of each convolution's filters `prune-filters` removes.
    pub filters: Option<f64>,
    /// Where the variants, `optimize.md`, `optimize.json` and `optimize.svg` go.
    pub out: PathBuf,
    /// Calibration windows or images for the quantisation steps.
    pub windows: usize,
    /// Skip the firmware columns (QEMU) even when QEMU is installed.
    pub no_firmware: bool,
    /// The core the firmware columns measure on.
    pub target: &'static dyn kinglet_compile::target::Target,
    /// Rerun steps whose outputs already exist.
    pub force: bool,
}

/// The share of each convolution's filters `prune-filters` removes unless `--filters` says.
const DEFAULT_FILTER_FRACTION: f64 = 0.5;

/// One step of a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Separable,
    PruneFilters,
    Prune,
    Qat,
    GraphOpt,
    Float,
    Int8,
    W4a8,
    W2a8,
    A16w8,
    Dynamic,
    Float16,
}

impl Step {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "separable" => Self::Separable,
            "prune-filters" => Self::PruneFilters,
            "prune" => Self::Prune,
            "qat" => Self::Qat,
            "graph-opt" => Self::GraphOpt,
            "float" => Self::Float,
            "int8" => Self::Int8,
            "w4a8" => Self::W4a8,
            "w2a8" => Self::W2a8,
            "a16w8" => Self::A16w8,
            "dynamic" => Self::Dynamic,
            "float16" => Self::Float16,
            other => bail!(
                "unknown step `{other}` (separable, prune-filters, prune, qat, graph-opt, float, \
                 int8, w4a8, w2a8, a16w8, dynamic, float16; join with +)"
            ),
        })
    }

    fn is_format(self) -> bool {
        !matches!(self, Self::GraphOpt) && !self.retrains()
    }

    /// Steps that read and write a `.kgl` model.
    fn retrains(self) -> bool {
        matches!(
            self,
            Self::Separable | Self::PruneFilters | Self::Prune | Self::Qat
        )
    }

    /// The step's name on the command line and in file names.
    fn name(self) -> &'static str {
        match self {
            Self::Separable => "separable",
            Self::PruneFilters => "prune-filters",
            Self::Prune => "prune",
            Self::Qat => "qat",
            Self::GraphOpt => "graph-opt",
            Self::Float => "float",
            Self::Int8 => "int8",
            Self::W4a8 => "w4a8",
            Self::W2a8 => "w2a8",
            Self::A16w8 => "a16w8",
            Self::Dynamic => "dynamic",
            Self::Float16 => "float16",
        }
    }
}

/// Parses `a+b+c`: transformations first, at most one final format, no repeats.
fn parse_variant(text: &str) -> Result<Vec<Step>> {
    let steps = text
        .split('+')
        .map(|s| Step::parse(s.trim()))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("variant `{text}`"))?;
    for (i, s) in steps.iter().enumerate() {
        if s.is_format() && i + 1 != steps.len() {
            bail!("variant `{text}`: {s:?} is a final format and must come last");
        }
        if steps[..i].contains(s) {
            bail!("variant `{text}`: {s:?} twice");
        }
        if s.retrains() && steps[..i].iter().any(|p| !p.retrains()) {
            bail!(
                "variant `{text}`: {} retrains the .kgl model, so it must come before graph-opt \
                 and the format",
                s.name()
            );
        }
        if *s == Step::Qat && steps[..i].contains(&Step::Prune) {
            bail!(
                "variant `{text}`: qat after prune would train the pruned weights back to \
                 non-zero values; prune after qat instead"
            );
        }
    }
    Ok(steps)
}

/// One measured variant.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    variant: String,
    file: PathBuf,
    size_bytes: u64,
    accuracy: f64,
    host_us_per_window: f64,
    /// The core the firmware columns were measured on (`--target`).
    target: String,
    /// Instructions per inference on that core, from `kinglet profile`.
    instructions: Option<u64>,
    /// Flash of the model in that core's image (code and constants), from `kinglet profile`.
    flash_bytes: Option<u64>,
    note: String,
}

/// Runs `kinglet optimize`: builds and measures every variant, writes `optimize.md`,
/// `optimize.json`, `optimize.svg` and `commands.txt` into `out`, and the table to `table_out`.
pub fn run(args: &OptimizeJob, table_out: &mut dyn Write) -> Result<()> {
    if !args.model.exists() {
        bail!("{}: no such model", args.model.display());
    }
    if kinglet_train::ModelKind::of(&args.model)? != kinglet_train::ModelKind::Kgl {
        bail!(
            "{}: `optimize` starts from a trained .kgl model",
            args.model.display()
        );
    }
    let variants = args
        .pipeline
        .iter()
        .map(|v| Ok((v.trim().to_string(), parse_variant(v.trim())?)))
        .collect::<Result<Vec<_>>>()?;
    if variants.is_empty() {
        bail!("--pipeline names no variant");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let train = with_split(&args.data, "train");
    let eval = args
        .eval
        .clone()
        .unwrap_or_else(|| with_split(&args.data, "test"));
    let firmware = !args.no_firmware && which(args.target.qemu_system());
    let mut runner = Runner::new(args.kinglet.clone(), args.force);
    let os = steps::args;
    let path = |p: &Path| p.display().to_string();
    let windows = args.windows.to_string();
    // `separable` and `prune` fine-tune on the train split with its `val` split merged in.
    let fine_tune = |command: &str, model: &Path, out: &Path| {
        os(&[
            command,
            "--model",
            &path(model),
            "--data",
            &train,
            "--merge-val",
            "--out",
            &path(out),
            "--quiet",
        ])
    };

    let mut rows = Vec::new();
    for (name, steps) in &variants {
        // Build the variant step by step; each prefix is a file of its own (reused).
        let mut current = args.model.clone();
        let mut prefix = String::new();
        for &step in steps {
            prefix = if prefix.is_empty() {
                step.name().to_string()
            } else {
                format!("{prefix}+{}", step.name())
            };
            let stem = prefix.replace(['+', '-'], "_");
            let (out, argv, title) = match step {
                Step::Separable => {
                    let out = args.out.join(format!("{stem}.kgl"));
                    let argv = fine_tune("separable", &current, &out);
                    (out, argv, "depthwise-separable conversion and fine-tuning")
                }
                Step::PruneFilters | Step::Prune => {
                    let out = args.out.join(format!("{stem}.kgl"));
                    let mut argv = fine_tune("prune", &current, &out);
                    if step == Step::Prune {
                        if let Some(s) = args.sparsity {
                            argv.extend(os(&["--sparsity", &s.to_string()]));
                        }
                        (out, argv, "magnitude pruning")
                    } else {
                        argv.extend(os(&[
                            "--structured",
                            &args.filters.unwrap_or(DEFAULT_FILTER_FRACTION).to_string(),
                        ]));
                        (out, argv, "structured pruning")
                    }
                }
                Step::Qat => {
                    let out = args.out.join(format!("{stem}.kgl"));
                    let mut argv = os(&[
                        "train",
                        "--init",
                        &path(&current),
                        "--qat",
                        "--data",
                        &train,
                        "--no-val",
                        "--out",
                        &path(&out),
                        "--quiet",
                    ]);
                    // QAT trains at the widths the variant's format stores.
                    match steps.last() {
                        Some(Step::W4a8) => argv.extend(os(&["--bits", "4"])),
                        Some(Step::W2a8) => argv.extend(os(&["--bits", "2"])),
                        _ => {}
                    }
                    (out, argv, "quantisation-aware fine-tuning")
                }
                Step::GraphOpt => {
                    let out = args.out.join(format!("{stem}.tflite"));
                    let argv = os(&[
                        "inspect",
                        &path(&current),
                        "--optimize",
                        "--write",
                        &path(&out),
                    ]);
                    (out, argv, "graph passes")
                }
                Step::Float => {
                    let out = args.out.join(format!("{stem}.tflite"));
                    if current.extension().and_then(|e| e.to_str()) == Some("tflite") {
                        // Already a float .tflite (after graph-opt).
                        continue;
                    }
                    let argv = os(&["export", "--model", &path(&current), "--out", &path(&out)]);
                    (out, argv, "float .tflite")
                }
                Step::Int8
                | Step::W4a8
                | Step::W2a8
                | Step::A16w8
                | Step::Dynamic
                | Step::Float16 => {
                    let scheme = step.name();
                    let out = args.out.join(format!("{stem}.tflite"));
                    let argv = os(&[
                        "quantize",
                        "--model",
                        &path(&current),
                        "--data",
                        &train,
                        "--scheme",
                        scheme,
                        "--windows",
                        &windows,
                        "--out",
                        &path(&out),
                    ]);
                    (out, argv, "post-training quantisation")
                }
            };
            runner.run(&format!("{title} → {prefix}"), &out, &argv, None)?;
            current = out;
        }
        // A variant ending in a .kgl (e.g. `qat` alone) is measured as its float export.
        if current.extension().and_then(|e| e.to_str()) == Some("kgl") {
            let out = args
                .out
                .join(format!("{}.tflite", name.replace(['+', '-'], "_")));
            runner.run(
                &format!("float .tflite → {name}"),
                &out,
                &os(&["export", "--model", &path(&current), "--out", &path(&out)]),
                None,
            )?;
            current = out;
        }
        rows.push(measure(
            &mut runner,
            name,
            &current,
            &eval,
            firmware.then_some(args.target),
        )?);
    }

    let table = markdown(&rows, &args.model, &eval, args.target.core());
    write_atomic(&args.out.join("optimize.md"), table.as_bytes())?;
    write_atomic(
        &args.out.join("optimize.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    write_atomic(&args.out.join("optimize.svg"), plot(&rows)?.as_bytes())?;
    write_atomic(
        &args.out.join("commands.txt"),
        (runner.log.join("\n") + "\n").as_bytes(),
    )?;
    write!(table_out, "{table}")?;
    eprintln!(
        "table, plot and commands in {} (optimize.md, optimize.svg, commands.txt)",
        args.out.display()
    );
    Ok(())
}

/// `spec` with its split replaced by (or set to) `split`.
fn with_split(spec: &str, split: &str) -> String {
    match spec.rsplit_once(':') {
        Some((head, last)) if ["train", "val", "test"].contains(&last) => format!("{head}:{split}"),
        _ => format!("{spec}:{split}"),
    }
}

fn measure(
    runner: &mut Runner,
    name: &str,
    file: &Path,
    eval: &str,
    firmware: Option<&dyn kinglet_compile::target::Target>,
) -> Result<Row> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let stem = name.replace(['+', '-'], "_");
    let eval_json = dir.join(format!("{stem}.eval.json"));
    runner.run(
        &format!("evaluate {name}"),
        &eval_json,
        &[
            "eval".into(),
            "--model".into(),
            file.into(),
            "--data".into(),
            eval.into(),
            "--json".into(),
        ],
        Some(&eval_json),
    )?;
    let e = read_json(&eval_json)?;
    let size_bytes = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let (instructions, flash_bytes, note) = if let Some(core) = firmware {
        // The M4's file keeps its old name, so an earlier run's profiles are reused.
        let profile_json = if core.name() == "cortex-m4" {
            dir.join(format!("{stem}.profile.json"))
        } else {
            dir.join(format!("{stem}.{}.profile.json", core.name()))
        };
        runner.run(
            &format!("{} profile of {name}", core.core()),
            &profile_json,
            &[
                "profile".into(),
                file.into(),
                "--target".into(),
                core.name().into(),
                "--json".into(),
            ],
            Some(&profile_json),
        )?;
        let p = read_json(&profile_json)?;
        (
            p["instructions"].as_u64(),
            p["flash_bytes"].as_u64(),
            String::new(),
        )
    } else {
        (None, None, "QEMU not run".to_string())
    };
    Ok(Row {
        variant: name.to_string(),
        file: file.to_path_buf(),
        size_bytes,
        accuracy: e["accuracy"]
            .as_f64()
            .with_context(|| format!("{}: no accuracy", eval_json.display()))?,
        host_us_per_window: e["host_us_per_window"].as_f64().unwrap_or(f64::NAN),
        target: firmware.map_or_else(String::new, |t| t.name().to_owned()),
        instructions,
        flash_bytes,
        note,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn markdown(rows: &[Row], model: &Path, eval: &str, core: &str) -> String {
    let mut s = format!(
        "Variants of `{}`, scored on `{eval}`.\n\n\
         | variant | size `.tflite` (bytes) | {core} flash (bytes) | accuracy | host µs / window | {core} instructions |\n\
         |---|---:|---:|---:|---:|---:|\n",
        model.display()
    );
    for r in rows {
        let (flash, m4) = match (r.flash_bytes, r.instructions) {
            (Some(f), Some(n)) => (f.to_string(), n.to_string()),
            _ => ("—".to_string(), format!("— ({})", r.note)),
        };
        s += &format!(
            "| {} | {} | {} | {:.4} | {:.1} | {} |\n",
            r.variant, r.size_bytes, flash, r.accuracy, r.host_us_per_window, m4
        );
    }
    s
}

/// Accuracy against size, one labelled point per variant.
fn plot(rows: &[Row]) -> Result<String> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing the plot: {e}");
    let x_max = rows.iter().map(|r| r.size_bytes as f64).fold(0.0, f64::max) * 1.15 + 1.0;
    let y_min = rows
        .iter()
        .map(|r| r.accuracy)
        .fold(f64::INFINITY, f64::min);
    let y_max = rows
        .iter()
        .map(|r| r.accuracy)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y_max - y_min) * 0.15).max(0.002);
    let (y_lo, y_hi) = ((y_min - pad) * 100.0, (y_max + pad).min(1.0) * 100.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .caption("accuracy against size", ("sans-serif", 16))
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max / 1000.0, y_lo..y_hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("size (kB)")
            .y_desc("accuracy (%)")
            .draw()
            .map_err(|e| err(&e))?;
        for r in rows {
            let p = (r.size_bytes as f64 / 1000.0, r.accuracy * 100.0);
            chart
                .draw_series(std::iter::once(Circle::new(p, 5, BLUE.filled())))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    r.variant.clone(),
                    p,
                    ("sans-serif", 12).into_font(),
                )))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_put_transformations_first_and_one_format_last() {
        assert_eq!(
            parse_variant("qat+graph-opt+int8").unwrap(),
            [Step::Qat, Step::GraphOpt, Step::Int8]
        );
        assert_eq!(parse_variant("float16").unwrap(), [Step::Float16]);
        assert_eq!(parse_variant("qat+w4a8").unwrap(), [Step::Qat, Step::W4a8]);
        assert!(parse_variant("w2a8+a16w8").is_err());
        assert!(parse_variant("int8+dynamic").is_err());
        assert!(parse_variant("graph-opt+qat").is_err());
        assert_eq!(
            parse_variant("separable+prune-filters+qat+prune+int8").unwrap(),
            [
                Step::Separable,
                Step::PruneFilters,
                Step::Qat,
                Step::Prune,
                Step::Int8
            ]
        );
        assert!(parse_variant("prune+qat+int8").is_err());
        assert!(parse_variant("graph-opt+prune").is_err());
        assert!(parse_variant("int8+int8").is_err());
        assert!(parse_variant("pruned").is_err());
    }

    #[test]
    fn splits_are_replaced_or_added() {
        assert_eq!(with_split("mnist:/d", "test"), "mnist:/d:test");
        assert_eq!(with_split("mnist:/d:train", "test"), "mnist:/d:test");
        assert_eq!(with_split("hapt:/x.zip:val", "train"), "hapt:/x.zip:train");
    }
}
