//! `kinglet report`: one self-contained HTML page (inline SVG plots drawn with plotters' SVG
//! backend) and a Markdown summary, built from the records `kinglet cascade --save` writes
//! and from [`Section`]s other stages contribute (an architecture search's front). Why
//! sections are plain text and SVG here: this crate cannot know the stages that depend on it,
//! so they render their own tables and plots and the report only places them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::{AdaptError, ChangeNotice, EnergyReport, StrategySpec};

/// Everything one `kinglet cascade` run measured: what the report is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeRecord {
    /// Display name, e.g. `1b6s` or `confidence(max≥0.90)`.
    pub strategy: String,
    pub spec: StrategySpec,
    /// Where the windows and model outputs came from.
    pub source: String,
    pub n: usize,
    /// On a continuous stream: the windows with a label (accuracy counts these) and those
    /// whose samples straddle an activity change. `None` on curated windows.
    #[serde(default)]
    pub stream: Option<StreamCounts>,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub big_runs: usize,
    pub little_runs: usize,
    pub change_notice: ChangeNotice,
    pub class_names: Vec<String>,
    pub confusion: Vec<Vec<u64>>,
    pub costs_source: String,
    pub energy: Vec<EnergyReport>,
    pub calibration: Option<Calibration>,
}

/// See [`CascadeRecord::stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounts {
    pub scored: usize,
    pub straddling: usize,
    pub window: usize,
    pub step: usize,
}

impl CascadeRecord {
    pub fn load(path: &Path) -> Result<Self, AdaptError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdaptError::io(path, e))?;
        let mut r: Self = serde_json::from_str(&text).map_err(|e| AdaptError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })?;
        // Records written before the device was modelled priced the MCU alone: their battery
        // life is the MCU-only figure, not the device's.
        for e in &mut r.energy {
            if e.operating_points.is_empty() && e.mcu_only_battery_life_days.is_none() {
                e.mcu_only_battery_life_days = e.battery_life_days.take();
            }
        }
        Ok(r)
    }
}

/// `kinglet cascade`'s summary of a record: the headline figures on one board, as one JSON
/// object or as text. Here beside the record so that every program showing a cascade run
/// shows the same figures under the same names.
impl CascadeRecord {
    /// The summary as one JSON object, with `board`'s energy as the headline.
    pub fn summary_json(&self, board: &str) -> serde_json::Value {
        let r = self;
        let headline = r.energy.iter().find(|e| e.board == board);
        serde_json::json!({
            "strategy": r.strategy,
            "spec": r.spec,
            "data": r.source,
            "n": r.n,
            "stream": r.stream,
            "accuracy": r.accuracy,
            "macro_f1": r.macro_f1,
            "big_runs": r.big_runs,
            "little_runs": r.little_runs,
            "change_notice": r.change_notice,
            "board": board,
            "energy_per_window_uj": headline.and_then(|e| e.total_uj_per_window),
            "inference_energy_per_window_uj": headline.and_then(|e| e.inference_uj_per_window),
            // Inference energy against the reference model (`--cost reference=…`, else Big) on
            // every window.
            "inference_ratio_to_reference": headline.and_then(|e| {
                Some(e.inference_uj_per_window? / e.big_only_inference_uj_per_window?)
            }),
            "instructions_per_window": headline.map(|e| e.instructions_per_window),
            // Models without a measured instruction count (priced at 0) and board figures
            // not found: the energy numbers above are incomplete when either is non-empty.
            "unmeasured": headline.map(|e| e.unmeasured.clone()).unwrap_or_default(),
            "missing_figures": headline.map(|e| e.missing_figures.clone()).unwrap_or_default(),
            // The whole device on the cell (MCU, IMU, sampling wake-ups, self-discharge) at
            // the default clock, each part's share, and the MCU alone for comparison.
            "battery_life_days": headline.and_then(|e| e.battery_life_days),
            "mcu_only_battery_life_days": headline.and_then(|e| e.mcu_only_battery_life_days),
            "device_parts": headline.and_then(|e| e.system()).map(|s| &s.parts),
            "best_operating_point": headline.map(EnergyReport::best_point_text),
            "energy": r.energy,
            "costs_source": r.costs_source,
            "calibration": r.calibration.as_ref().map(|c| serde_json::json!({
                "budget_pp": c.budget_pp,
                "reference_accuracy": c.reference_accuracy,
                "within_budget": c.within_budget,
                "chosen": c.chosen.label,
                "chosen_accuracy": c.chosen.accuracy,
                "front": c.front.iter().map(|p| serde_json::json!({
                    "label": p.label, "accuracy": p.accuracy, "instructions_per_window": p.instructions_per_window
                })).collect::<Vec<_>>(),
            })),
            "confusion": r.confusion,
        })
    }

    /// The summary as text: accuracy, runs, change notice, calibration, and one energy line
    /// per board.
    pub fn summary_text(&self) -> String {
        let r = self;
        let mut s = String::new();
        let _ = writeln!(s, "strategy  {}\ndata      {}", r.strategy, r.source);
        if let Some(c) = &r.stream {
            let _ = writeln!(
                s,
                "stream    {} windows on a {}/{} grid: {} scored (the rest unlabelled), {} straddle a change",
                r.n, c.window, c.step, c.scored, c.straddling
            );
        }
        let _ = writeln!(
            s,
            "accuracy  {:.2} %   macro-F1 {:.4}   n {}\nBig runs  {}   little runs {}",
            r.accuracy * 100.0,
            r.macro_f1,
            r.n,
            r.big_runs,
            r.little_runs
        );
        let c = &r.change_notice;
        let _ = writeln!(
            s,
            "activity changes {}: noticed {}, mean {:.2} / median {:.1} / max {} windows to notice",
            c.changes, c.noticed, c.mean_windows, c.median_windows, c.max_windows
        );
        if let Some(cal) = &r.calibration {
            let _ = writeln!(
                s,
                "calibrated within {:.2} pp of Big-only ({:.2} %): {} ({:.2} % on the calibration stream){}",
                cal.budget_pp,
                cal.reference_accuracy * 100.0,
                cal.chosen.label,
                cal.chosen.accuracy * 100.0,
                if cal.within_budget {
                    ""
                } else {
                    " — budget not met, most accurate point taken"
                }
            );
        }
        let _ = writeln!(s, "instruction counts: {}", r.costs_source);
        let na = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
        let _ = writeln!(
            s,
            "{:<10} {:>12} {:>13} {:>10} {:>12} {:>10} {:>10} {:>10}",
            "board",
            "instr/window",
            "inference µJ",
            "×Big-only",
            "MCU µJ",
            "latency ms",
            "device d",
            "MCU-only d"
        );
        for e in &r.energy {
            let ratio = match (
                e.inference_uj_per_window,
                e.big_only_inference_uj_per_window,
            ) {
                (Some(x), Some(b)) if b > 0.0 => format!("{:.3}", x / b),
                _ => "n/a".into(),
            };
            if e.counts_unknown() {
                let _ = writeln!(s, "{:<10} {}", e.board, e.unknown_text());
                continue;
            }
            let _ = writeln!(
                s,
                "{:<10} {:>12.0} {:>13} {:>10} {:>12} {:>10.3} {:>10} {:>10}",
                e.board,
                e.instructions_per_window,
                na(e.inference_uj_per_window, 3),
                ratio,
                na(e.total_uj_per_window, 3),
                e.mean_latency_ms,
                na(e.battery_life_days, 1),
                na(e.mcu_only_battery_life_days, 0)
            );
            if let Some(sys) = e.system().filter(|s| s.total_uj_per_window.is_some()) {
                let _ = writeln!(
                    s,
                    "           device ({}, {}): {:.2} µA mean, {}",
                    e.sensor,
                    match (e.sensor.as_str(), e.fifo) {
                        ("none", _) => "one wake-up per window",
                        (_, true) => "FIFO",
                        _ => "no FIFO",
                    },
                    sys.mean_ua.unwrap_or(0.0),
                    shares_text(sys)
                );
            }
            if e.operating_points.len() > 1 {
                let _ = writeln!(
                    s,
                    "           best operating point: {}",
                    e.best_point_text()
                );
            }
            if !e.unmeasured.is_empty() {
                let _ = writeln!(
                    s,
                    "           no measured instruction count for: {} (priced at 0)",
                    e.unmeasured.join(", ")
                );
            }
            if !e.missing_figures.is_empty() {
                let _ = writeln!(s, "           {}", e.unknown_text());
            }
        }
        s
    }
}

/// Each part's share of the device's energy, e.g. `sensor 99.2 %, mcu sleep 0.4 %, …`.
pub fn shares_text(s: &crate::energy::SystemEnergy) -> String {
    s.parts
        .iter()
        .map(|p| match p.share {
            Some(x) => format!("{} {:.2} %", p.name, x * 100.0),
            None => format!("{} unknown", p.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Paths written by [`write_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub markdown: PathBuf,
}

/// A part of the report another stage renders (e.g. `kinglet search`'s front): a heading, the
/// same content as Markdown and as an HTML fragment, and its plots.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    pub title: String,
    pub markdown: String,
    /// Trusted HTML (the section escapes its own text).
    pub html: String,
    pub plots: Vec<SectionPlot>,
}

/// One SVG plot of a [`Section`]: inline in the HTML page, and written beside `report.md` as
/// `file` (Markdown cannot hold SVG inline).
#[derive(Debug, Clone, PartialEq)]
pub struct SectionPlot {
    pub title: String,
    pub file: String,
    pub svg: String,
}

/// Text safe inside HTML character data and attribute values.
pub fn html_text(s: &str) -> String {
    xml_text(s).replace('"', "&quot;")
}

/// The named SVG plots of a report, in page order.
pub fn plots(records: &[CascadeRecord]) -> Result<Vec<(String, String)>, AdaptError> {
    let mut out = Vec::new();
    out.push((
        "Accuracy against inference energy (Pareto front of the threshold sweeps)".to_string(),
        pareto_svg(records)?,
    ));
    for board in boards(records) {
        let rows = bar_rows(records, &board, |e| {
            e.total_uj_per_window.or(e.inference_uj_per_window)
        });
        let inference_only = records
            .iter()
            .flat_map(|r| &r.energy)
            .any(|e| e.board == board && e.total_uj_per_window.is_none());
        let what = if inference_only {
            "inference only (board figures missing for sleep/wake)"
        } else {
            "inference + wake-up + sleep"
        };
        if !rows.is_empty() {
            out.push((
                format!("Energy per window on {board}: {what}"),
                hbar_svg(&rows, "µJ per window")?,
            ));
        }
        let life = bar_rows(records, &board, |e| e.battery_life_days);
        if !life.is_empty() {
            let cell = records
                .iter()
                .flat_map(|r| &r.energy)
                .find(|e| e.board == board)
                .map(|e| e.battery.clone())
                .unwrap_or_default();
            out.push((
                format!("Battery life on {board} with a {cell}"),
                hbar_svg(&life, "days")?,
            ));
        }
    }
    for r in records {
        out.push((
            format!("Confusion matrix: {}", r.strategy),
            confusion_svg(r)?,
        ));
    }
    Ok(out)
}

/// Writes `report.html` and `report.md` into `dir` (created if needed), each atomically.
pub fn write_report(records: &[CascadeRecord], dir: &Path) -> Result<ReportFiles, AdaptError> {
    write_report_with(records, &[], dir)
}

/// Writes `report.html` and `report.md` from cascade records and further sections (either may
/// be empty, not both), each section's plots as SVG files beside them.
pub fn write_report_with(
    records: &[CascadeRecord],
    sections: &[Section],
    dir: &Path,
) -> Result<ReportFiles, AdaptError> {
    if records.is_empty() && sections.is_empty() {
        return Err(AdaptError::Invalid(
            "nothing to report: no cascade records and no other results".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| AdaptError::io(dir, e))?;
    let plots = if records.is_empty() {
        Vec::new()
    } else {
        plots(records)?
    };
    let html = html_page(records, &plots, sections);
    let mut md = if records.is_empty() {
        "# Kinglet report\n".to_string()
    } else {
        markdown(records)
    };
    for section in sections {
        let _ = write!(md, "\n## {}\n\n{}", section.title, section.markdown);
        if !md.ends_with('\n') {
            md.push('\n');
        }
        for plot in &section.plots {
            write_atomic(&dir.join(&plot.file), &plot.svg)?;
            let _ = writeln!(md, "\n![{}]({})", plot.title, plot.file);
        }
    }
    let files = ReportFiles {
        html: dir.join("report.html"),
        markdown: dir.join("report.md"),
    };
    write_atomic(&files.html, &html)?;
    write_atomic(&files.markdown, &md)?;
    Ok(files)
}

fn write_atomic(path: &Path, text: &str) -> Result<(), AdaptError> {
    kinglet_graph::files::write_atomic(path, text.as_bytes()).map_err(|e| AdaptError::io(path, e))
}

fn boards(records: &[CascadeRecord]) -> Vec<String> {
    let mut b: Vec<String> = records
        .iter()
        .flat_map(|r| r.energy.iter().map(|e| e.board.clone()))
        .collect();
    b.sort();
    b.dedup();
    b
}

fn bar_rows(
    records: &[CascadeRecord],
    board: &str,
    value: impl Fn(&EnergyReport) -> Option<f64>,
) -> Vec<(String, f64)> {
    records
        .iter()
        .filter_map(|r| {
            r.energy
                .iter()
                .find(|e| e.board == board)
                .and_then(&value)
                .map(|v| (r.strategy.clone(), v))
        })
        .collect()
}

/// Text safe inside SVG/HTML character data.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn plot_err<E: std::fmt::Debug>(e: E) -> AdaptError {
    AdaptError::Invalid(format!("plotting failed: {e:?}"))
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// x: inference cost per window (µJ on the first board that has it, else kilo-instructions);
/// y: accuracy in %. Sweeps as lines through their Pareto fronts, runs as large dots.
fn pareto_svg(records: &[CascadeRecord]) -> Result<String, AdaptError> {
    // µJ per instruction on the first board with an active-current figure, if any.
    let scale = records.iter().flat_map(|r| &r.energy).find_map(|e| {
        e.inference_uj_per_window
            .filter(|_| e.instructions_per_window > 0.0)
            .map(|uj| (uj / e.instructions_per_window, e.board.clone()))
    });
    let (per_instr, x_desc) = match &scale {
        Some((k, board)) => (*k, format!("inference energy per window on {board} (µJ)")),
        None => (
            1e-3,
            "inference instructions per window (thousands)".to_string(),
        ),
    };
    // (name, Pareto front of its sweep, its operating point)
    type Series = (String, Vec<(f64, f64)>, Vec<(f64, f64)>);
    let mut series: Vec<Series> = Vec::new();
    for r in records {
        let run_point = r
            .energy
            .first()
            .map(|e| (e.instructions_per_window * per_instr, r.accuracy * 100.0));
        let front = r
            .calibration
            .as_ref()
            .map(|c| {
                c.front
                    .iter()
                    .map(|p| (p.instructions_per_window * per_instr, p.accuracy * 100.0))
                    .collect()
            })
            .unwrap_or_default();
        series.push((r.strategy.clone(), front, run_point.into_iter().collect()));
    }
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, f, p)| f.iter().chain(p.iter()).copied())
        .collect();
    let (x_max, y_min, y_max) = if all.is_empty() {
        (1.0, 0.0, 100.0)
    } else {
        let x_max = all.iter().map(|p| p.0).fold(0.0, f64::max) * 1.08 + 1e-9;
        let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_max = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let pad = ((y_max - y_min) * 0.1).max(0.5);
        ((x_max), (y_min - pad).max(0.0), (y_max + pad).min(100.0))
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        // The legend gets its own column so it never hides a point.
        let (plot_area, legend_area) = root.split_horizontally(620);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max, y_min..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc.as_str())
            .y_desc("accuracy (%)")
            .draw()
            .map_err(plot_err)?;
        for (i, (name, front, run)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if !front.is_empty() {
                chart
                    .draw_series(LineSeries::new(
                        front.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_err)?;
                chart
                    .draw_series(front.iter().map(|&p| Circle::new(p, 2, color.filled())))
                    .map_err(plot_err)?;
            }
            chart
                .draw_series(run.iter().map(|&p| Circle::new(p, 6, color.filled())))
                .map_err(plot_err)?;
            let y = 24 + 22 * i as i32;
            legend_area
                .draw(&Circle::new((12, y), 5, color.filled()))
                .map_err(plot_err)?;
            legend_area
                .draw(&Text::new(
                    name.clone(),
                    (24, y - 7),
                    ("sans-serif", 13).into_font(),
                ))
                .map_err(plot_err)?;
        }
        legend_area
            .draw(&Text::new(
                "large dot: the run; line: its sweep's Pareto front",
                (4, 30 + 22 * series.len() as i32),
                ("sans-serif", 11).into_font(),
            ))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Horizontal bars, one per (label, value).
fn hbar_svg(rows: &[(String, f64)], x_desc: &str) -> Result<String, AdaptError> {
    let n = rows.len() as u32;
    let x_max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut svg = String::new();
    {
        let height = 70 + 34 * n;
        let root = SVGBackend::with_string(&mut svg, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(240)
            .build_cartesian_2d(0.0..x_max, (0..n.saturating_sub(1)).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .y_labels(n as usize)
            .y_label_formatter(&|v: &SegmentValue<u32>| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        for (i, (_, value)) in rows.iter().enumerate() {
            let i = i as u32;
            let color = PALETTE[i as usize % PALETTE.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*value, SegmentValue::Exact(i + 1)),
                    ],
                    color.mix(0.8).filled(),
                )))
                .map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format_value(*value),
                    (*value, SegmentValue::CenterOf(i)),
                    ("sans-serif", 13).into_font(),
                )))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!(" {v:.0}")
    } else if v >= 1.0 {
        format!(" {v:.2}")
    } else {
        format!(" {v:.4}")
    }
}

/// Rows = true class, columns = predicted; shade = share of the row.
fn confusion_svg(r: &CascadeRecord) -> Result<String, AdaptError> {
    let k = r.confusion.len() as u32;
    let names: Vec<String> = r.class_names.clone();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (620, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(190)
            .build_cartesian_2d(
                (0..k.saturating_sub(1)).into_segmented(),
                (0..k.saturating_sub(1)).into_segmented(),
            )
            .map_err(plot_err)?;
        // Columns carry the class index (names would overlap); rows "index name".
        let column = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if *i < k => i.to_string(),
            _ => String::new(),
        };
        // Row t is drawn at y = k − 1 − t so that the matrix reads top-down as printed.
        let row_name = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if *i < k => {
                let t = (k - 1 - *i) as usize;
                format!("{t} {}", names.get(t).map_or("", String::as_str))
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true")
            .x_labels(k as usize)
            .y_labels(k as usize)
            .x_label_formatter(&column)
            .y_label_formatter(&row_name)
            .draw()
            .map_err(plot_err)?;
        for (t, row) in r.confusion.iter().enumerate() {
            let total: u64 = row.iter().sum();
            // Row t is drawn from the top, so it reads like the printed matrix.
            let y = k - 1 - t as u32;
            for (p, &count) in row.iter().enumerate() {
                let share = if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                };
                let shade = (255.0 - 200.0 * share) as u8;
                let fill = RGBColor(shade, shade, 255);
                let p = p as u32;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [
                            (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                        ],
                        fill.filled(),
                    )))
                    .map_err(plot_err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        count.to_string(),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                        ("sans-serif", 13).into_font(),
                    )))
                    .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}

/// The Markdown summary: one table of runs, one of energy per board, and calibration notes.
pub fn markdown(records: &[CascadeRecord]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Kinglet adaptive inference report\n");
    let _ = writeln!(
        s,
        "| strategy | windows | accuracy % | macro-F1 | Big runs | little runs | changes noticed | mean windows to notice |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in records {
        let c = &r.change_notice;
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.4} | {} | {} | {}/{} | {:.2} |",
            r.strategy,
            r.n,
            r.accuracy * 100.0,
            r.macro_f1,
            r.big_runs,
            r.little_runs,
            c.noticed,
            c.changes,
            c.mean_windows
        );
    }
    let mut periods: Vec<f64> = records
        .iter()
        .flat_map(|r| r.energy.iter().map(|e| e.window_period_s))
        .collect();
    periods.sort_by(f64::total_cmp);
    periods.dedup();
    let periods: Vec<String> = periods.iter().map(|p| format!("{p}")).collect();
    let _ = writeln!(
        s,
        "\n## Energy per window (a window every {} s)\n",
        if periods.is_empty() {
            crate::WINDOW_PERIOD_S.to_string()
        } else {
            periods.join(" / ")
        }
    );
    let _ = writeln!(
        s,
        "| strategy | board (core) | instructions | inference µJ | × reference on every window | MCU total µJ (with sleep) | mean latency ms | battery days (device) | battery days (MCU only) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in records {
        for e in &r.energy {
            if e.counts_unknown() {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | | | | | | |",
                    r.strategy,
                    board_core(e),
                    e.unknown_text()
                );
                continue;
            }
            let ratio = match (
                e.inference_uj_per_window,
                e.big_only_inference_uj_per_window,
            ) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {:.3} | {} | {} |",
                r.strategy,
                board_core(e),
                e.instructions_per_window,
                opt(e.inference_uj_per_window, 3),
                ratio,
                opt(e.total_uj_per_window, 3),
                e.mean_latency_ms,
                opt(e.battery_life_days, 0),
                opt(e.mcu_only_battery_life_days, 0)
            );
        }
    }
    device_tables(&mut s, records);
    let mut notes = Vec::new();
    for r in records {
        for e in &r.energy {
            if !e.unmeasured.is_empty() {
                notes.push(format!(
                    "{} on {}: no measured instruction count for {} (priced at 0).",
                    r.strategy,
                    e.board,
                    e.unmeasured.join(", ")
                ));
            }
            if !e.missing_figures.is_empty() {
                notes.push(format!("{}: {}.", e.board, e.unknown_text()));
            }
            if !e.cpi_note.is_empty() {
                notes.push(format!("{}: {}.", e.board, e.cpi_note));
            }
        }
    }
    notes.sort();
    notes.dedup();
    if !notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let mut sources: Vec<&str> = records.iter().map(|r| r.costs_source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let _ = writeln!(s, "\nInstruction counts: {}.", sources.join("; "));
    for r in records {
        if let Some(c) = &r.calibration {
            let _ = writeln!(
                s,
                "Calibrated {} within {:.2} pp of the better of Big-only ({:.2} %) and its most accurate setting: chose {} ({:.2} %, {:.0} instructions/window; {} points, {} on the Pareto front){}.",
                r.strategy,
                c.budget_pp,
                c.reference_accuracy * 100.0,
                c.chosen.label,
                c.chosen.accuracy * 100.0,
                c.chosen.instructions_per_window,
                c.points.len(),
                c.front.len(),
                if c.within_budget {
                    ""
                } else {
                    " — no point met the budget; the most accurate was taken"
                }
            );
        }
    }
    s
}

/// `board (core)`, or the board alone for records that did not name the core.
fn board_core(e: &EnergyReport) -> String {
    if e.core.is_empty() {
        e.board.clone()
    } else {
        format!("{} ({})", e.board, e.core)
    }
}

/// The device around the MCU (battery life with each part's share) and the operating points,
/// for every run and board priced with them.
fn device_tables(s: &mut String, records: &[CascadeRecord]) {
    let priced: Vec<(&CascadeRecord, &EnergyReport)> = records
        .iter()
        .flat_map(|r| r.energy.iter().map(move |e| (r, e)))
        .filter(|(_, e)| !e.operating_points.is_empty())
        .collect();
    if priced.is_empty() {
        return;
    }
    let cell = priced[0].1.battery.clone();
    let _ = writeln!(
        s,
        "\n## Battery life of the device ({cell}, default clock)\n\nMCU inference, its sleep, the wake-ups that read the IMU, the bus reads, the IMU's own current and the cell's self-discharge; each part's share of the mean current.\n"
    );
    let _ = writeln!(
        s,
        "| strategy | board | sensor | wake-ups / window | mean µA | battery days | inference | MCU sleep | wake-ups | sample reads | sensor | self-discharge |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (r, e) in &priced {
        let Some(sys) = e.system() else { continue };
        let share = |i: usize| {
            sys.parts
                .get(i)
                .and_then(|p| p.share)
                .map_or("unknown".to_string(), |x| format!("{:.2} %", x * 100.0))
        };
        let sensor = format!(
            "{}{}",
            e.sensor,
            if e.sensor != "none" && e.fifo {
                " (FIFO)"
            } else {
                ""
            }
        );
        match sys.mean_ua {
            Some(ua) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                    r.strategy,
                    e.board,
                    sensor,
                    sys.wakeups_per_window,
                    ua,
                    opt(sys.battery_life_days, 1),
                    share(0),
                    share(1),
                    share(2),
                    share(3),
                    share(4),
                    share(5)
                );
            }
            None => {
                let unknown: Vec<String> = sys
                    .unknown
                    .iter()
                    .map(|u| format!("unknown: {u}"))
                    .collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {} | | | | | | | |",
                    r.strategy,
                    e.board,
                    sensor,
                    sys.wakeups_per_window,
                    unknown.join("; ")
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\n## Operating points\n\nThe cheapest clock (and core voltage) that meets the window deadline, against the default clock: ranked by the device total when it is known at every priced point, else by the parts known at all of them (named); the saving is counted on the MCU's parts, inference alone beside it. Points are clock MHz / core mV / flash wait states.\n"
    );
    let _ = writeln!(s, "| strategy | board | points | best operating point |");
    let _ = writeln!(s, "|---|---|---|---|");
    for (r, e) in &priced {
        let points: Vec<String> = e
            .operating_points
            .iter()
            .map(|p| {
                let mut d = format!("{}", p.clock_mhz);
                if let Some(v) = p.core_mv {
                    d += &format!("/{v:.0}mV");
                }
                if let Some(w) = p.flash_wait_states {
                    d += &format!("/{w}WS");
                }
                d
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.strategy,
            e.board,
            points.join(", "),
            e.best_point_text()
        );
    }
}

/// An SVG inside an HTML page: the backend's output is a complete <svg> element; drop any
/// XML declaration.
fn inline_svg(svg: &str) -> &str {
    let body = svg.trim_start();
    if body.starts_with("<?xml") {
        body.split_once("?>").map_or(body, |(_, rest)| rest)
    } else {
        body
    }
}

fn html_page(
    records: &[CascadeRecord],
    plots: &[(String, String)],
    sections: &[Section],
) -> String {
    let mut h = String::new();
    // A report of other results alone (a search's front) is not about adaptive inference.
    let title = if records.is_empty() {
        "Kinglet report"
    } else {
        "Kinglet adaptive inference report"
    };
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{title}</title>"
    );
    h.push_str("<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}figure{margin:1.5em 0}figcaption{font-weight:bold;margin-bottom:.4em}</style>\n</head>\n<body>\n");
    let _ = writeln!(h, "<h1>{title}</h1>");
    if records.is_empty() {
        h.push_str("<p>No cascade records: the sections below only.</p>\n");
    } else {
        h.push_str("<table>\n<tr><th>strategy</th><th>windows</th><th>accuracy %</th><th>macro-F1</th><th>Big runs</th><th>little runs</th><th>mean windows to notice a change</th></tr>\n");
        for r in records {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                xml_text(&r.strategy),
                r.n,
                r.accuracy * 100.0,
                r.macro_f1,
                r.big_runs,
                r.little_runs,
                r.change_notice.mean_windows
            );
        }
        h.push_str("</table>\n");
    }
    for (title, svg) in plots {
        let _ = writeln!(h, "<figure>\n<figcaption>{}</figcaption>", xml_text(title));
        h.push_str(inline_svg(svg));
        h.push_str("\n</figure>\n");
    }
    for section in sections {
        let _ = writeln!(h, "<h2>{}</h2>", html_text(&section.title));
        h.push_str(&section.html);
        for plot in &section.plots {
            let _ = writeln!(
                h,
                "<figure>\n<figcaption>{}</figcaption>",
                xml_text(&plot.title)
            );
            h.push_str(inline_svg(&plot.svg));
            h.push_str("\n</figure>\n");
        }
    }
    if !records.is_empty() {
        h.push_str("<h2>Summary</h2>\n<pre>");
        h.push_str(&xml_text(&markdown(records)));
        h.push_str("</pre>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}
