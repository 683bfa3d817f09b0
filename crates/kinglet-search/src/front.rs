//! The results of a study: the Pareto front as `front.md` and `front.json`, plots of accuracy
//! against weight bytes, instructions and energy (every measured candidate faded, the front
//! drawn over it), and each front model as its architecture file, `.kgl` and int8 `.tflite`,
//! with the commands that rebuild it.
//!
//! Only here is the test split read: the front, chosen on validation data, is scored on it
//! once, so the test accuracy is an unbiased estimate for the models that were picked.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kinglet_data::Dataset;
use kinglet_train::arch::Schedule;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::SearchError;
use crate::evaluate::Evaluator;
use crate::storage::Storage;
use crate::study::{self, Measured, Scored, StudySettings};
use crate::worker::trial_seed;

/// One model of the front, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrontModel {
    pub trial: i64,
    pub measured: Measured,
    /// Accuracy of the int8 model on the test split (scored once, after the search).
    pub test_accuracy: Option<f64>,
    pub architecture_file: PathBuf,
    pub model_file: PathBuf,
    pub tflite_file: PathBuf,
    /// The `kinglet` commands that retrain, quantise and profile it.
    pub commands: Vec<String>,
    /// The same architecture retrained on the training and validation windows (`--refit`):
    /// what a user would deploy once the search has chosen.
    #[serde(default)]
    pub refit: Option<RefitModel>,
}

/// A front model retrained on training + validation windows, measured again (its weights, so
/// its flash and instructions, differ a little) and scored once on the test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefitModel {
    /// `accuracy` and `float_accuracy` are on the test split here.
    pub measured: Measured,
    pub model_file: PathBuf,
    pub tflite_file: PathBuf,
    pub commands: Vec<String>,
}

/// What `front.json` holds (read back by `kinglet report`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrontReport {
    pub study: String,
    pub objectives: Vec<String>,
    pub limits: study::Limits,
    pub board: String,
    pub trials: usize,
    pub done: usize,
    pub failed: usize,
    pub candidates: usize,
    pub test_data: Option<String>,
    pub front: Vec<FrontModel>,
    /// Every candidate's most trained measurement (the plots' faded points).
    pub measured: Vec<Measured>,
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// How a front is refitted (`--refit`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refit {
    /// The schedule to retrain on (`--refit-schedule`); `None` = each trial's own, for its
    /// epochs. A search run on a shortened schedule refits on the full one.
    pub schedule: Option<Schedule>,
}

/// Writes the study's front into `out`; `test` (spec and windows) scores the front once.
/// With `refit`, every front model is also retrained on the training and validation windows
/// together and measured and scored again ([`Evaluator::refit`]); `progress` hears of each.
pub fn write(
    storage: &mut dyn Storage,
    settings: &StudySettings,
    evaluator: &Evaluator,
    test: Option<(&str, &Dataset)>,
    refit: Option<&Refit>,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<FrontReport, SearchError> {
    let models = out.join("models");
    std::fs::create_dir_all(&models).map_err(|e| SearchError::io(&models, e))?;
    let trials = storage.trials()?;
    let front = study::front(settings, &trials);
    // Joined once for every front model.
    let refit_on = match (refit, test) {
        (Some(_), Some(_)) if !front.is_empty() => Some(evaluator.training_and_validation()?),
        _ => None,
    };
    let mut written = Vec::new();
    for Scored { trial, measured } in &front {
        let bytes = storage.model(trial.id)?.ok_or_else(|| SearchError::Study {
            location: storage.location().to_string(),
            message: format!("trial {} is done but holds no model", trial.id),
        })?;
        let model = kinglet_train::TrainedModel::from_bytes(&bytes)
            .map_err(|e| SearchError::Trial(format!("trial {}'s model: {e}", trial.id)))?;
        let name = &measured.architecture;
        let arch_file = models.join(format!("{name}.toml"));
        let model_file = models.join(format!("{name}.kgl"));
        let tflite_file = models.join(format!("{name}.int8.tflite"));
        let arch_text = format!(
            "# Found by `kinglet search` (study {}, trial {}); {} epochs here.\n# Weights: {}.\n{}",
            storage.location(),
            trial.id,
            measured.epochs,
            precision_text(&measured.precision),
            model.architecture.to_toml()
        );
        write_file(&arch_file, arch_text.as_bytes())?;
        write_file(&model_file, &bytes)?;
        let (float, quantised) = evaluator.quantise(&model, &measured.precision)?;
        kinglet_graph::tflite::write_tflite_file(&quantised, &tflite_file)
            .map_err(|e| SearchError::Trial(e.to_string()))?;
        let test_accuracy = match test {
            Some((_, data)) => Some(Evaluator::score(&model, &float, &quantised, data)?.0),
            None => None,
        };
        let p = |p: &Path| shell_word(&p.display().to_string());
        let data = shell_word(&settings.data);
        let scheme = quantize_scheme(&measured.precision);
        let commands = vec![
            format!(
                "kinglet train --arch {} --data {data} --no-val --epochs {} --seed {} --out {}",
                p(&arch_file),
                measured.epochs,
                trial_seed(settings, name),
                p(&model_file)
            ),
            format!(
                "kinglet quantize --model {} --data {data} --scheme {scheme} --out {}",
                p(&model_file),
                p(&tflite_file)
            ),
            format!("kinglet profile {} --target cortex-m4", p(&tflite_file)),
        ];
        let refit = match (&refit_on, test, refit) {
            (Some(training), Some((_, test_windows)), Some(plan)) => {
                // With another schedule the refit trains its own architecture file.
                let (architecture, refit_arch_file) = match &plan.schedule {
                    Some(schedule) => {
                        let mut a = model.architecture.clone();
                        a.training = schedule.clone();
                        let file = models.join(format!("{name}.refit.toml"));
                        let text = format!(
                            "# {name} with the refit's schedule (`kinglet search --refit-schedule`).\n# Weights: {}.\n{}",
                            precision_text(&measured.precision),
                            a.to_toml()
                        );
                        write_file(&file, text.as_bytes())?;
                        (a, file)
                    }
                    None => (model.architecture.clone(), arch_file.clone()),
                };
                let epochs = plan.schedule.as_ref().map_or(measured.epochs, |s| s.epochs);
                progress(&format!(
                    "refitting {name} on training + validation windows ({epochs} epochs)"
                ));
                let seed = trial_seed(settings, name);
                let e = evaluator.refit(
                    training,
                    &architecture,
                    &measured.precision,
                    epochs,
                    seed,
                    test_windows,
                )?;
                let refit_model = models.join(format!("{name}.refit.kgl"));
                let refit_tflite = models.join(format!("{name}.refit.int8.tflite"));
                e.model.save(&refit_model).map_err(|err| {
                    SearchError::Trial(format!("{}: {err}", refit_model.display()))
                })?;
                kinglet_graph::tflite::write_tflite_file(&e.quantised, &refit_tflite)
                    .map_err(|err| SearchError::Trial(err.to_string()))?;
                let commands = vec![
                    format!(
                        "kinglet train --arch {} --data {data} --merge-val --epochs {epochs} --seed {seed} --out {}",
                        p(&refit_arch_file),
                        p(&refit_model)
                    ),
                    format!(
                        "kinglet quantize --model {} --data {data} --scheme {scheme} --out {}",
                        p(&refit_model),
                        p(&refit_tflite)
                    ),
                    format!("kinglet profile {} --target cortex-m4", p(&refit_tflite)),
                ];
                Some(RefitModel {
                    measured: e.measured,
                    model_file: refit_model,
                    tflite_file: refit_tflite,
                    commands,
                })
            }
            _ => None,
        };
        written.push(FrontModel {
            trial: trial.id,
            measured: measured.clone(),
            test_accuracy,
            architecture_file: arch_file,
            model_file,
            tflite_file,
            commands,
            refit,
        });
    }
    let measured: Vec<Measured> = study::best_fidelity(&trials)
        .into_iter()
        .map(|s| s.measured)
        .collect();
    let report = FrontReport {
        study: storage.location().to_string(),
        objectives: settings
            .objectives
            .iter()
            .map(|o| o.name().to_string())
            .collect(),
        limits: settings.limits.clone(),
        board: settings.board.clone(),
        trials: trials.len(),
        done: trials
            .iter()
            .filter(|t| t.state == crate::storage::TrialState::Done)
            .count(),
        failed: trials
            .iter()
            .filter(|t| t.state == crate::storage::TrialState::Failed)
            .count(),
        candidates: study::sampled(&trials),
        test_data: test.map(|(spec, _)| spec.to_string()),
        front: written,
        measured,
    };
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| SearchError::Invalid(e.to_string()))?;
    write_file(&out.join("front.json"), json.as_bytes())?;
    write_file(&out.join("front.md"), markdown(&report).as_bytes())?;
    for (file, svg) in plots(&report)? {
        write_file(&out.join(file), svg.as_bytes())?;
    }
    Ok(report)
}

/// The plot files of a front: accuracy against weight bytes, instructions and energy.
pub const PLOT_FILES: [&str; 3] = [
    "accuracy-vs-weight-bytes.svg",
    "accuracy-vs-instructions.svg",
    "accuracy-vs-energy.svg",
];

/// Every plot of the front, by file name (see [`PLOT_FILES`]).
pub fn plots(report: &FrontReport) -> Result<Vec<(&'static str, String)>, SearchError> {
    [Axis::WeightBytes, Axis::Instructions, Axis::Energy]
        .into_iter()
        .zip(PLOT_FILES)
        .map(|(axis, file)| Ok((file, plot(report, axis)?)))
        .collect()
}

/// Reads a search's `front.json`: `path` is the file or the search's output folder.
pub fn load(path: &Path) -> Result<(FrontReport, PathBuf), SearchError> {
    let file = if path.is_dir() {
        path.join("front.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| SearchError::io(&file, e))?;
    let report = serde_json::from_str(&text).map_err(|e| {
        SearchError::Invalid(format!(
            "{}: not a `kinglet search` front.json: {e}",
            file.display()
        ))
    })?;
    Ok((report, file))
}

/// The search's part of `kinglet report`: the front as a table (candidate, precision,
/// validation and test accuracy, weight bytes, flash, RAM, instructions, energy where the
/// board prices it, the commands that rebuild the model) and the front's plots — the SVG
/// files beside `front.json` when present, else drawn again from it. `label` tells several
/// searches apart (it prefixes the plot files written beside the report).
pub fn report_section(
    report: &FrontReport,
    front_json: &Path,
    label: &str,
) -> Result<kinglet_adapt::report::Section, SearchError> {
    use kinglet_adapt::report::{Section, SectionPlot, html_text};
    let with_energy = report
        .front
        .iter()
        .any(|m| m.measured.energy_uj.is_finite());
    let energy = |m: &FrontModel| {
        let e = m.measured.energy_uj;
        if e.is_finite() {
            format!("{e:.3}")
        } else {
            "-".to_string()
        }
    };
    let test = |m: &FrontModel| {
        m.test_accuracy
            .map_or("-".to_string(), |a| format!("{:.2} %", a * 100.0))
    };
    // `--refit`: the same architectures retrained on training + validation windows, scored
    // once on the test split.
    let with_refit = report.front.iter().any(|m| m.refit.is_some());
    let refit = |m: &FrontModel| {
        m.refit.as_ref().map_or("-".to_string(), |r| {
            format!("{:.2} %", r.measured.accuracy * 100.0)
        })
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Study `{}`: {} trials ({} done, {} failed) over {} candidates; objectives {}; board {}. \
         Accuracy is of the quantised model on the validation split (what the search chose on) \
         and, once, on the test split{}.\n",
        report.study,
        report.trials,
        report.done,
        report.failed,
        report.candidates,
        report.objectives.join(", "),
        report.board,
        report
            .test_data
            .as_ref()
            .map_or(" (not given)".to_string(), |t| format!(" `{t}`"))
    );
    let energy_head = if with_energy { " energy µJ |" } else { "" };
    let refit_head = if with_refit {
        " test acc, refitted on train + val |"
    } else {
        ""
    };
    let _ = writeln!(
        md,
        "| candidate | precision | val acc | test acc |{refit_head} weight B | flash B | RAM B | instructions |{energy_head} reproduce |"
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---:|{}---:|---:|---:|---:|{}---|",
        if with_refit { "---:|" } else { "" },
        if with_energy { "---:|" } else { "" }
    );
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<p>{}</p>",
        html_text(md.lines().next().unwrap_or(""))
    );
    let _ = writeln!(
        html,
        "<table>\n<tr><th>candidate</th><th>precision</th><th>val acc</th><th>test acc</th>{}<th>weight B</th><th>flash B</th><th>RAM B</th><th>instructions</th>{}<th>reproduce</th></tr>",
        if with_refit {
            "<th>test acc, refitted on train + val</th>"
        } else {
            ""
        },
        if with_energy {
            "<th>energy µJ</th>"
        } else {
            ""
        }
    );
    for m in &report.front {
        let x = &m.measured;
        let energy_cell = if with_energy {
            format!(" {} |", energy(m))
        } else {
            String::new()
        };
        let refit_cell = if with_refit {
            format!(" {} |", refit(m))
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} % | {} |{refit_cell} {} | {} | {} | {} |{energy_cell} `{}` |",
            x.architecture,
            x.precision,
            x.accuracy * 100.0,
            test(m),
            x.weight_bytes,
            x.flash_bytes,
            x.ram_bytes,
            x.instructions,
            m.commands.join(" && ")
        );
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.2} %</td><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td style=\"text-align:left\"><code>{}</code></td></tr>",
            html_text(&x.architecture),
            html_text(&x.precision),
            x.accuracy * 100.0,
            test(m),
            if with_refit {
                format!("<td>{}</td>", refit(m))
            } else {
                String::new()
            },
            x.weight_bytes,
            x.flash_bytes,
            x.ram_bytes,
            x.instructions,
            if with_energy {
                format!("<td>{}</td>", energy(m))
            } else {
                String::new()
            },
            m.commands
                .iter()
                .map(|c| html_text(c))
                .collect::<Vec<_>>()
                .join("<br/>")
        );
    }
    html.push_str("</table>\n");
    if report.front.is_empty() {
        md.push_str("\nNo candidate within the limits was measured.\n");
        html.push_str("<p>No candidate within the limits was measured.</p>\n");
    }
    let dir = front_json.parent().unwrap_or(Path::new("."));
    let drawn = plots(report)?;
    let titles = [
        "validation accuracy against weight bytes",
        "validation accuracy against instructions",
        "validation accuracy against energy",
    ];
    let section_plots = drawn
        .into_iter()
        .zip(titles)
        .map(|((file, svg), title)| SectionPlot {
            title: format!("{label}: {title}"),
            file: format!("{label}-{file}"),
            svg: std::fs::read_to_string(dir.join(file)).unwrap_or(svg),
        })
        .collect();
    Ok(Section {
        title: format!("Architecture search: {label}"),
        markdown: md,
        html,
        plots: section_plots,
    })
}

/// A precision for people: `int8`, or for a mixed one the widths and the quantize option
/// that applies them.
pub fn precision_text(precision: &str) -> String {
    match precision.strip_prefix("mixed:") {
        Some(bits) => format!(
            "mixed, bits {bits} per weighted layer in op order (`kinglet quantize --scheme mixed --bits {bits}`)"
        ),
        None => precision.to_string(),
    }
}

/// `kinglet quantize`'s arguments for a precision: the uniform names are its scheme names; a
/// `mixed:B,…` precision is `--scheme mixed --bits B,…` (one width per weighted layer).
pub fn quantize_scheme(precision: &str) -> String {
    match precision.strip_prefix("mixed:") {
        Some(bits) => format!("mixed --bits {bits}"),
        None => precision.to_string(),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SearchError> {
    kinglet_graph::files::write_atomic(path, bytes).map_err(|e| SearchError::io(path, e))
}

/// `front.md`: the front as a table, then each model's files and commands.
pub fn markdown(r: &FrontReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Architecture search: Pareto front\n");
    let _ = writeln!(
        s,
        "Study `{}`: {} trials ({} done, {} failed) over {} candidates; objectives {}; board {}.",
        r.study,
        r.trials,
        r.done,
        r.failed,
        r.candidates,
        r.objectives.join(", "),
        r.board
    );
    let limits = [
        ("flash", r.limits.max_flash),
        ("RAM", r.limits.max_ram),
        ("instructions", r.limits.max_instructions),
        ("weight bytes", r.limits.max_weight_bytes),
    ]
    .iter()
    .filter_map(|(n, l)| l.map(|l| format!("{n} ≤ {l}")))
    .collect::<Vec<_>>();
    if !limits.is_empty() {
        let _ = writeln!(s, "Hard limits: {}.", limits.join(", "));
    }
    let _ = writeln!(
        s,
        "\nAccuracy is of the int8 model: on the validation split (what the search chose on) and, once, on the test split{}.\n",
        r.test_data
            .as_ref()
            .map_or(" (not given)".to_string(), |t| format!(" `{t}`"))
    );
    let _ = writeln!(
        s,
        "| model | precision | epochs | val acc | test acc | params | weight B | flash B | RAM B | instructions | energy µJ |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &r.front {
        let x = &m.measured;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} % | {} | {} | {} | {} | {} | {} | {:.3} |",
            x.architecture,
            x.precision,
            x.epochs,
            x.accuracy * 100.0,
            m.test_accuracy
                .map_or("-".to_string(), |a| format!("{:.2} %", a * 100.0)),
            x.parameters,
            x.weight_bytes,
            x.flash_bytes,
            x.ram_bytes,
            x.instructions,
            x.energy_uj
        );
    }
    if r.front.is_empty() {
        let _ = writeln!(s, "\nNo candidate within the limits was measured.");
    }
    if r.front.iter().any(|m| m.refit.is_some()) {
        let _ = writeln!(
            s,
            "\nRefitted: each front model's architecture retrained on the training and validation windows together (the choice was made on validation), quantised, measured again in QEMU and scored once on the test split.\n"
        );
        let _ = writeln!(
            s,
            "| model | precision | epochs | test acc (int8) | test acc (float) | weight B | flash B | RAM B | instructions | energy µJ |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for m in &r.front {
            let Some(f) = &m.refit else { continue };
            let x = &f.measured;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} % | {:.2} % | {} | {} | {} | {} | {:.3} |",
                x.architecture,
                x.precision,
                x.epochs,
                x.accuracy * 100.0,
                x.float_accuracy * 100.0,
                x.weight_bytes,
                x.flash_bytes,
                x.ram_bytes,
                x.instructions,
                x.energy_uj
            );
        }
    }
    for m in &r.front {
        let _ = writeln!(
            s,
            "\n## {}\n\n- architecture: `{}`\n- model: `{}`\n- int8: `{}`\n\n```sh",
            m.measured.architecture,
            m.architecture_file.display(),
            m.model_file.display(),
            m.tflite_file.display()
        );
        for c in &m.commands {
            let _ = writeln!(s, "{c}");
        }
        let _ = writeln!(s, "```");
        if let Some(f) = &m.refit {
            let _ = writeln!(s, "\nRefitted on training + validation windows:\n\n```sh");
            for c in &f.commands {
                let _ = writeln!(s, "{c}");
            }
            let _ = writeln!(s, "```");
        }
    }
    let _ = writeln!(
        s,
        "\nPlots: accuracy-vs-weight-bytes.svg, accuracy-vs-instructions.svg, accuracy-vs-energy.svg."
    );
    s
}

#[derive(Clone, Copy)]
enum Axis {
    WeightBytes,
    Instructions,
    Energy,
}

impl Axis {
    fn of(self, m: &Measured) -> f64 {
        match self {
            Axis::WeightBytes => m.weight_bytes as f64,
            Axis::Instructions => m.instructions as f64,
            Axis::Energy => m.energy_uj,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Axis::WeightBytes => "weight bytes",
            Axis::Instructions => "instructions per inference",
            Axis::Energy => "energy per inference (µJ)",
        }
    }
}

/// Accuracy (validation, %) against one cost: every candidate faded, the front in blue.
fn plot(r: &FrontReport, axis: Axis) -> Result<String, SearchError> {
    let err = |e: &dyn std::fmt::Display| SearchError::Invalid(format!("plot: {e}"));
    let all: Vec<(f64, f64)> = r
        .measured
        .iter()
        .map(|m| (axis.of(m), m.accuracy * 100.0))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let front: Vec<(f64, f64)> = r
        .front
        .iter()
        .map(|m| (axis.of(&m.measured), m.measured.accuracy * 100.0))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let x_max = all.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9) * 1.1;
    let y_lo = all.iter().map(|p| p.1).fold(100.0, f64::min).min(100.0);
    let y_lo = (y_lo - 5.0).max(0.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .caption(
                format!("validation accuracy against {}", axis.label()),
                ("sans-serif", 16),
            )
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, y_lo..100.0)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(axis.label())
            .y_desc("accuracy (%)")
            .draw()
            .map_err(|e| err(&e))?;
        let faded = RGBColor(150, 150, 150).mix(0.35);
        chart
            .draw_series(all.iter().map(|&p| Circle::new(p, 4, faded.filled())))
            .map_err(|e| err(&e))?;
        let mut line = front.clone();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(line, BLUE.mix(0.6)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(front.iter().map(|&p| Circle::new(p, 5, BLUE.filled())))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
