//! One nested-width network's operating modes on the device, switched at run time.
//!
//! The widths are compiled into one cascade-mode image (one arena, the windows embedded, as
//! the big–little cascade is) with a table of [`WidthMode`]s. Before each window the firmware
//! asks a battery-aware policy ([`battery_mode`]: least remaining charge per mode) which mode
//! the charge calls for and, when it changed, calls `ModeSwitch::set_mode`; then
//! `WidthMode::classify` runs the mode's widths. The host simulator makes the same calls over
//! kinglet-graph's interpreter, so both must agree on every window's mode, widths run and
//! label; the firmware also counts each window's instructions.
//!
//! The charge is an input here (a per-window list, a cell draining over the stream in the
//! main use), so the test drives the mode through every level of the policy.
//!
//! The widths of a shared-scale network (`kinglet train --width-norm shared-scale`, quantised
//! by `kinglet_compress::nested`) compile over one weight blob ([`compile_blob`]); other
//! nested networks compile each width with weights of its own.

use std::fmt::Write as _;
use std::path::Path;
use std::rc::Rc;

use kinglet_adapt_core::{
    ConfidenceMeasure, ModeSwitch, StepError, WidthMode, battery_mode, softmax_in_place,
};

use crate::classifier::{OutputKind, WindowClassifier};
use crate::firmware::{
    CascadeModel, StreamWindows, build_and_run_sized, cascade_lock, cascade_source_with,
    embed_windows, f32_literal,
};
use crate::models::{GraphClassifier, output_kind};
use crate::strategy::StrategyKind;
use crate::{AdaptError, StrategySpec};

/// The line that marks a cascade-mode image as a width-modes image (the firmware's build
/// script looks for it).
const MARKER: &str = "// kinglet-width-modes";

/// What the device is told: its mode table, its battery policy and the charge it sees.
#[derive(Debug, Clone, PartialEq)]
pub struct ModePlan {
    pub modes: Vec<WidthMode>,
    /// (least remaining charge in %, mode index), most charge first.
    pub levels: Vec<(u8, u8)>,
    /// Remaining charge before each window, %.
    pub charges: Vec<u8>,
}

impl ModePlan {
    /// A cell draining evenly from 100 % to 0 % over `n` windows.
    pub fn draining(modes: Vec<WidthMode>, levels: Vec<(u8, u8)>, n: usize) -> Self {
        let charges = (0..n)
            .map(|i| (100 - (100 * i / n.max(1)).min(100)) as u8)
            .collect();
        Self {
            modes,
            levels,
            charges,
        }
    }

    /// Checks the plan against `widths` widths and `n` windows.
    pub fn check(&self, widths: usize, n: usize) -> Result<(), AdaptError> {
        let bad = |m: String| Err(AdaptError::Invalid(m));
        if self.modes.is_empty() || self.levels.is_empty() {
            return bad("a mode plan needs at least one mode and one battery level".into());
        }
        if let Some(m) = self
            .modes
            .iter()
            .find(|m| m.chain().iter().any(|&w| usize::from(w) >= widths.min(8)))
        {
            return bad(format!(
                "mode {:?} runs a width beyond the {widths} compiled",
                m.chain()
            ));
        }
        if let Some((_, m)) = self
            .levels
            .iter()
            .find(|(_, m)| usize::from(*m) >= self.modes.len())
        {
            return bad(format!(
                "battery level names mode {m}; the table has {}",
                self.modes.len()
            ));
        }
        if self.levels.windows(2).any(|l| l[0].0 <= l[1].0) {
            return bad("battery levels must go from most charge to least".into());
        }
        if self.charges.len() != n {
            return bad(format!(
                "{} charge values for {n} windows",
                self.charges.len()
            ));
        }
        Ok(())
    }

    /// The mode the policy picks at window `index`.
    fn mode_at(&self, index: usize) -> u8 {
        let charge = self.charges.get(index).copied().unwrap_or(0);
        battery_mode(&self.levels, charge).unwrap_or(0)
    }
}

/// One window as decided: the mode in force, the widths that ran (bit per width), the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeWindow {
    pub mode: u8,
    pub ran: u8,
    pub label: u8,
}

/// What the firmware reported.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareModesRun {
    pub windows: Vec<ModeWindow>,
    /// Instructions of each window's classification (the widths it ran and the decisions).
    pub instructions: Vec<u64>,
    /// Windows before which the mode was switched, with the new mode.
    pub switches: Vec<(usize, u8)>,
    pub shared_arena_bytes: u64,
    /// Flash of the whole image (code, weights, the embedded windows).
    pub image_flash_bytes: u64,
}

impl FirmwareModesRun {
    /// Mean instructions per window of each mode that ran (mode, windows, mean).
    pub fn per_mode(&self) -> Vec<(u8, usize, f64)> {
        let mut modes: Vec<u8> = self.windows.iter().map(|w| w.mode).collect();
        modes.sort_unstable();
        modes.dedup();
        modes
            .into_iter()
            .map(|m| {
                let counts: Vec<u64> = (self.windows.iter().zip(&self.instructions))
                    .filter(|(w, _)| w.mode == m)
                    .map(|(_, &n)| n)
                    .collect();
                let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
                (m, counts.len(), mean)
            })
            .collect()
    }
}

/// The host simulator and the firmware on the same windows.
#[derive(Debug, Clone, PartialEq)]
pub struct ModesComparison {
    pub host: Vec<ModeWindow>,
    pub firmware: FirmwareModesRun,
    /// Windows whose mode, widths run or label differ.
    pub mismatched: Vec<usize>,
}

/// Runs `plan` over `windows` on the host (kinglet-graph's interpreter, the core's softmax and
/// the device's decision code).
pub fn simulate(
    widths: &[CascadeModel<'_>],
    plan: &ModePlan,
    windows: &StreamWindows,
) -> Result<Vec<ModeWindow>, AdaptError> {
    plan.check(widths.len(), windows.n())?;
    let data = Rc::new(windows.window_data());
    let mut models = widths
        .iter()
        .map(|m| GraphClassifier::new(m.name, m.graph, data.clone(), m.normalise.cloned()))
        .collect::<Result<Vec<_>, _>>()?;
    let logits: Vec<bool> = widths
        .iter()
        .map(|m| output_kind(m.graph) == OutputKind::Logits)
        .collect();
    let classes = widths
        .iter()
        .filter_map(|m| {
            m.graph
                .outputs
                .first()
                .map(|&id| m.graph.tensor(id).elements())
        })
        .max()
        .unwrap_or(0);
    let mut switch = ModeSwitch::new(&plan.modes, usize::from(plan.mode_at(0)))
        .map_err(|e| AdaptError::Invalid(format!("mode table: {e:?}")))?;
    let mut out = Vec::with_capacity(windows.n());
    let mut buffer = vec![0f32; classes];
    for index in 0..windows.n() {
        let mode = plan.mode_at(index);
        switch
            .set_mode(usize::from(mode))
            .map_err(|e| AdaptError::Invalid(format!("window {index}: set_mode {mode}: {e:?}")))?;
        let step = switch
            .classify(&mut buffer, |width, scores: &mut [f32]| {
                let w = usize::from(width);
                let model = models.get_mut(w).ok_or_else(|| {
                    AdaptError::Invalid(format!("mode runs width {w}, not compiled"))
                })?;
                let mut s = model.scores(index)?;
                if logits[w] {
                    softmax_in_place(&mut s);
                }
                scores
                    .get_mut(..s.len())
                    .ok_or_else(|| {
                        AdaptError::Invalid(format!("width {w}: more scores than classes"))
                    })?
                    .copy_from_slice(&s);
                Ok(s.len())
            })
            .map_err(|e| match e {
                StepError::Model(e) => e,
                StepError::Mode(e) => AdaptError::Invalid(format!("window {index}: {e:?}")),
            })?;
        out.push(ModeWindow {
            mode,
            ran: step.ran,
            label: step.label,
        });
    }
    Ok(out)
}

fn measure_literal(m: ConfidenceMeasure) -> &'static str {
    match m {
        ConfidenceMeasure::MaxProbability => "ConfidenceMeasure::MaxProbability",
        ConfidenceMeasure::Margin => "ConfidenceMeasure::Margin",
        ConfidenceMeasure::Entropy => "ConfidenceMeasure::Entropy",
    }
}

/// The generated image source: the widths as the cascade's models (width `k` is model `k`),
/// the windows, the mode table, the battery levels and the charges.
pub fn modes_source(
    widths: &[CascadeModel<'_>],
    plan: &ModePlan,
    windows: &StreamWindows,
    bins: &crate::firmware::EmbeddedFiles,
    blob: Option<&kinglet_compile::nested::NestedImage>,
) -> Result<String, AdaptError> {
    plan.check(widths.len(), windows.n())?;
    let (first, rest) = widths
        .split_first()
        .ok_or_else(|| AdaptError::Invalid("no widths to compile".into()))?;
    let spec = StrategySpec::new(StrategyKind::BigOnly);
    let mut s = cascade_source_with(&spec, first, rest, None, windows, bins, blob)?;
    let modes: Vec<String> = plan
        .modes
        .iter()
        .map(|m| {
            let chain: Vec<String> = m.chain().iter().map(u8::to_string).collect();
            if m.chain().len() == 1 {
                format!("WidthMode::fixed({})", chain[0])
            } else {
                format!(
                    "WidthMode::new(&[{}], {}, {})?",
                    chain.join(", "),
                    measure_literal(m.measure()),
                    f32_literal(m.threshold())
                )
            }
        })
        .collect();
    let levels: Vec<String> = plan
        .levels
        .iter()
        .map(|(c, m)| format!("({c}, {m})"))
        .collect();
    let charges: Vec<String> = plan.charges.iter().map(u8::to_string).collect();
    let _ = writeln!(
        s,
        "\n{MARKER}\n\
         pub use kinglet_adapt_core::{{ModeError, WidthMode}};\n\
         pub const MODE_COUNT: usize = {count};\n\
         /// The operating modes: widths run narrowest first, and when to stop.\n\
         pub fn width_modes() -> Result<[WidthMode; MODE_COUNT], ModeError> {{\n    \
             Ok([{modes}])\n}}\n\
         /// Battery policy: (least remaining charge in %, mode), most charge first.\n\
         pub const BATTERY_LEVELS: [(u8, u8); {nlevels}] = [{levels}];\n\
         /// Remaining charge before each window, %: the policy's input.\n\
         static CHARGES: [u8; WINDOW_COUNT] = [{charges}];\n\
         pub fn charge_percent(index: usize) -> u8 {{\n    CHARGES.get(index).copied().unwrap_or(0)\n}}",
        count = plan.modes.len(),
        modes = modes.join(", "),
        nlevels = plan.levels.len(),
        levels = levels.join(", "),
        charges = charges.join(", "),
    );
    Ok(s)
}

/// The widths compiled over one weight blob (the full width last): every width's weighted
/// layers read the full width's weights (kinglet-compile `nested`), which fails unless the
/// widths were quantised to share them (`kinglet_compress::nested`).
pub fn compile_blob(
    widths: &[CascadeModel<'_>],
    layout: kinglet_compile::nested::Layout,
) -> Result<kinglet_compile::nested::NestedImage, AdaptError> {
    let graphs: Vec<&kinglet_graph::Graph> = widths.iter().map(|m| m.graph).collect();
    let names: Vec<&str> = widths.iter().map(|m| m.name).collect();
    kinglet_compile::nested::compile_widths(&graphs, &names, layout)
        .map_err(|e| AdaptError::Invalid(format!("one weight blob: {e}")))
}

/// Builds the width-modes image for `target`, runs it in QEMU and reads its report. With
/// `blob`, the widths read one weight blob ([`compile_blob`]); else each has its own weights.
pub fn run_in_qemu_on(
    target: &dyn kinglet_compile::target::Target,
    widths: &[CascadeModel<'_>],
    plan: &ModePlan,
    windows: &StreamWindows,
    work_dir: &Path,
    blob: Option<&kinglet_compile::nested::NestedImage>,
) -> Result<FirmwareModesRun, AdaptError> {
    let _guard = cascade_lock();
    let bins = embed_windows(windows, work_dir)?;
    let source = modes_source(widths, plan, windows, &bins, blob)?;
    let (text, flash) = build_and_run_sized(target, &source, work_dir)?;
    let mut run = parse_output(&text, windows.n())?;
    run.image_flash_bytes = flash;
    Ok(run)
}

/// [`simulate`] and [`run_in_qemu_on`] on the same windows, and where they differ.
pub fn compare_with_host_on(
    target: &dyn kinglet_compile::target::Target,
    widths: &[CascadeModel<'_>],
    plan: &ModePlan,
    windows: &StreamWindows,
    work_dir: &Path,
    blob: Option<&kinglet_compile::nested::NestedImage>,
) -> Result<ModesComparison, AdaptError> {
    let host = simulate(widths, plan, windows)?;
    let firmware = run_in_qemu_on(target, widths, plan, windows, work_dir, blob)?;
    let mismatched = (0..windows.n())
        .filter(|&i| host.get(i) != firmware.windows.get(i))
        .collect();
    Ok(ModesComparison {
        host,
        firmware,
        mismatched,
    })
}

/// Reads a width-modes run's `KINGLET` lines; errors unless every window was reported.
pub fn parse_output(text: &str, n: usize) -> Result<FirmwareModesRun, AdaptError> {
    let bad = |line: &str| AdaptError::Parse {
        path: "firmware output".into(),
        line: 0,
        message: format!("malformed line `{line}`"),
    };
    let mut run = FirmwareModesRun {
        windows: Vec::new(),
        instructions: Vec::new(),
        switches: Vec::new(),
        shared_arena_bytes: 0,
        image_flash_bytes: 0,
    };
    let mut done = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("KINGLET ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let number = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok());
        match it.next() {
            Some("mode_window") => {
                let (Some(fields), Some(count)) = (it.next(), number(it.next())) else {
                    return Err(bad(line));
                };
                let f: Vec<u8> = fields
                    .split(',')
                    .skip(1)
                    .map(|v| v.parse().map_err(|_| bad(line)))
                    .collect::<Result<_, _>>()?;
                let [mode, ran, label] = f[..] else {
                    return Err(bad(line));
                };
                run.windows.push(ModeWindow { mode, ran, label });
                run.instructions.push(count);
            }
            Some("set_mode") => {
                let (Some(at), Some(mode)) = (number(it.next()), number(it.next())) else {
                    return Err(bad(line));
                };
                run.switches.push((at as usize, mode as u8));
            }
            Some("arena_bytes") => {
                run.shared_arena_bytes = number(it.next()).ok_or_else(|| bad(line))?;
            }
            Some("error") | Some("panic") => {
                return Err(AdaptError::Invalid(format!("firmware reported: {rest}")));
            }
            Some("done") => done = true,
            _ => {}
        }
    }
    if !done || run.windows.len() != n {
        return Err(AdaptError::Invalid(format!(
            "firmware reported {} of {n} windows{}",
            run.windows.len(),
            if done { "" } else { " and did not finish" }
        )));
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draining_cell_walks_through_every_level() {
        let modes = vec![WidthMode::fixed(2), WidthMode::fixed(0)];
        let plan = ModePlan::draining(modes, vec![(50, 0), (0, 1)], 200);
        assert_eq!(plan.charges[0], 100);
        assert_eq!(plan.charges[199], 1);
        assert_eq!(plan.mode_at(0), 0);
        assert_eq!(plan.mode_at(101), 0, "50 % left");
        assert_eq!(plan.mode_at(102), 1);

        plan.check(3, 200).unwrap();
        assert!(plan.check(2, 200).is_err(), "width 2 of 2");
        assert!(plan.check(3, 199).is_err(), "charges per window");
        let mut bad = plan.clone();
        bad.levels = vec![(0, 1), (50, 0)];
        assert!(bad.check(3, 200).is_err(), "levels must descend");
        bad.levels = vec![(50, 2)];
        assert!(bad.check(3, 200).is_err(), "no mode 2");
    }

    #[test]
    fn firmware_output_needs_every_window_and_done() {
        let text = "KINGLET arena_bytes 96\nKINGLET modes 2\nKINGLET mode_window 0,0,4,3 1200\n\
                    KINGLET set_mode 1 1\nKINGLET mode_window 1,1,1,2 300\nKINGLET done\n";
        let run = parse_output(text, 2).unwrap();
        assert_eq!(run.instructions, [1200, 300]);
        assert_eq!(run.switches, [(1, 1)]);
        assert_eq!(
            run.windows[1],
            ModeWindow {
                mode: 1,
                ran: 1,
                label: 2
            }
        );
        assert_eq!(run.per_mode(), vec![(0, 1, 1200.0), (1, 1, 300.0)]);
        assert!(parse_output(text, 3).is_err());
        assert!(parse_output(&text.replace("KINGLET done\n", ""), 2).is_err());
        assert!(parse_output(&text.replace(",1,2 300", ",1 300"), 2).is_err());
    }
}
