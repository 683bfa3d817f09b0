//! The adaptive part of the test applications, one text for every core: the per-window checks
//! measured beside a model, and the cascade over embedded windows. `firmware/qemu-app` (Arm)
//! declares it as a module; `firmware/qemu-app-riscv` includes this very file (`#[path]`), so
//! both cores run the same decision code and report it alike. Each application supplies its
//! instruction counter ([`Counter`]), its console ([`Report`]) and `fail`.

use core::hint::black_box;

use kinglet_adapt_core::{Signature, l1_distance_u8};

/// A core's instruction counter: Arm's icount-driven timer counts down in ticks, RISC-V's
/// `minstret` counts up in instructions.
pub trait Counter {
    /// The counter now (inlined at the measured region's edges).
    fn now() -> u32;
    /// Counter units between the reads `before` and `after`.
    fn elapsed(before: u32, after: u32) -> u32;
    /// Counter units as instructions (the same unit by default).
    fn to_instructions(units: u32) -> u32 {
        units
    }
    /// Instructions between the reads `before` and `after`, less the calibrated cost of an
    /// empty region (`empty`, in the counter's own unit).
    fn instructions(before: u32, after: u32, empty: u32) -> u32 {
        Self::to_instructions(Self::elapsed(before, after).saturating_sub(empty))
    }
}

/// Where the report lines go (semihosting on every core).
#[cfg_attr(not(kinglet_cascade), allow(dead_code))]
pub trait Report {
    /// Part of a line.
    fn text(&mut self, args: core::fmt::Arguments);
    /// The rest of a line, and its end.
    fn line(&mut self, args: core::fmt::Arguments);
}

/// A 128 × 9 int8 window of LCG bytes for measuring the checks.
const CHECK_WINDOW: [u8; 128 * 9] = {
    let mut w = [0u8; 128 * 9];
    let mut x: u32 = 12345;
    let mut i = 0;
    while i < w.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        w[i] = (x >> 16) as u8;
        i += 1;
    }
    w
};

/// Instructions of the signature strategy's per-window check: the window's total_acc
/// signature and its distance to the previous window's.
#[inline(never)]
pub fn signature_check_instructions<C: Counter>(empty: u32) -> u32 {
    let previous = black_box(Signature::default());
    let window = black_box(&CHECK_WINDOW[..]);
    let before = C::now();
    let current = Signature::of_int8_bytes(window, 9, 6);
    let distance = current.distance(&previous);
    let after = C::now();
    black_box(distance);
    C::instructions(before, after, empty)
}

/// Instructions of 1BDD's per-window check as the firmware cascade runs it: total_acc of the
/// previous and the current window gathered into the seed's uint8 scaling, then their L1
/// distance.
#[inline(never)]
pub fn l1_distance_check_instructions<C: Counter>(empty: u32) -> u32 {
    fn total_acc(window: &[u8], out: &mut [u8; 128 * 3]) {
        for (t, step) in window.chunks_exact(9).enumerate() {
            for (k, c) in (6..9).enumerate() {
                if let (Some(o), Some(&v)) = (out.get_mut(t * 3 + k), step.get(c)) {
                    *o = v ^ 0x80;
                }
            }
        }
    }
    let (previous, current) = CHECK_WINDOW.split_at(CHECK_WINDOW.len() / 2);
    let (previous, current) = (black_box(previous), black_box(current));
    let mut a = [0u8; 128 * 3];
    let mut b = [0u8; 128 * 3];
    let before = C::now();
    total_acc(previous, &mut a);
    total_acc(current, &mut b);
    let distance = l1_distance_u8(&a, &b);
    let after = C::now();
    black_box(distance);
    C::instructions(before, after, empty)
}

/// The `KINGLET check …` lines the host reads into a profile's `checks`.
pub fn report_checks<C: Counter>(out: &mut impl Report, empty: u32) {
    out.line(format_args!(
        "KINGLET check signature {}",
        signature_check_instructions::<C>(empty)
    ));
    out.line(format_args!(
        "KINGLET check l1_distance {}",
        l1_distance_check_instructions::<C>(empty)
    ));
}

/// Runs kinglet-adapt-core's controller over the embedded windows exactly as kinglet-adapt's
/// host simulator does, the models taking turns in one shared arena, and reports per window
/// `KINGLET window <i>,<check>,<big>,<label> <instructions>` (the first part in the format of
/// kinglet-adapt's `decisions_csv`; instructions cover the check, the decision and any Big run).
#[cfg(kinglet_cascade)]
pub fn run_cascade<C: Counter>(out: &mut impl Report, empty: u32) {
    use crate::cascade;
    use core::cell::UnsafeCell;
    #[repr(C, align(8))]
    struct SharedArena([u8; cascade::SHARED_ARENA_BYTES]);
    struct Slot(UnsafeCell<SharedArena>);
    // SAFETY: single-threaded bare-metal program; `run_cascade` runs once.
    unsafe impl Sync for Slot {}
    static ARENA: Slot = Slot(UnsafeCell::new(SharedArena(
        [0; cascade::SHARED_ARENA_BYTES],
    )));
    // SAFETY: the only reference to ARENA, taken once.
    let arena = unsafe { &mut (*ARENA.0.get()).0 };

    out.line(format_args!(
        "KINGLET arena_bytes {}",
        cascade::SHARED_ARENA_BYTES
    ));
    for (name, bytes) in cascade::MODEL_NAMES.iter().zip(cascade::MODEL_ARENA_BYTES) {
        out.line(format_args!("KINGLET model_arena {name} {bytes}"));
    }
    out.line(format_args!("KINGLET windows {}", cascade::WINDOW_COUNT));
    #[cfg(kinglet_modes)]
    run_width_modes::<C>(out, empty, arena);
    #[cfg(not(kinglet_modes))]
    run_strategy::<C>(out, empty, arena);
}

/// The big–little strategy's controller over the embedded windows.
#[cfg(all(kinglet_cascade, not(kinglet_modes)))]
fn run_strategy<C: Counter>(out: &mut impl Report, empty: u32, arena: &mut [u8]) {
    use crate::cascade;
    use kinglet_adapt_core::{Check, Controller};
    let mut controller = Controller::new(cascade::STRATEGY, cascade::GUARDS);
    let mut last_signature = None;
    for index in 0..cascade::WINDOW_COUNT {
        let before = C::now();
        let step = cascade_window(&mut controller, arena, index, &mut last_signature);
        let after = C::now();
        let (check, big, label) = match step {
            Ok(step) => step,
            Err(what) => crate::fail(what),
        };
        out.text(format_args!("KINGLET window {index},"));
        match check {
            Check::None => out.text(format_args!("none")),
            Check::SameActivity { model } => out.text(format_args!("little{model}")),
            Check::Dual => out.text(format_args!("dual")),
            Check::Distance => out.text(format_args!("distance")),
            Check::Signature => out.text(format_args!("signature")),
            Check::Classifier { model } => out.text(format_args!("classifier{model}")),
        }
        out.line(format_args!(
            ",{},{label} {}",
            u8::from(big),
            C::instructions(before, after, empty)
        ));
    }
}

/// One window: the check the controller asks for, its decision, and Big if it wakes.
#[cfg(all(kinglet_cascade, not(kinglet_modes)))]
#[inline(never)]
fn cascade_window(
    controller: &mut kinglet_adapt_core::Controller,
    arena: &mut [u8],
    index: usize,
    last: &mut Option<(usize, Signature)>,
) -> Result<(kinglet_adapt_core::Check, bool, u8), &'static str> {
    use crate::cascade;
    use kinglet_adapt_core::{Check, Evidence, Verdict, argmax, softmax_in_place};
    let window = cascade::window(index).ok_or("window out of range")?;
    let mut scores = [0f32; cascade::MAX_OUTPUTS];
    let check = controller.check();
    let evidence = match check {
        Check::None => Evidence::None,
        Check::SameActivity { model } | Check::Classifier { model } => {
            let which = 1 + usize::from(model);
            let n = cascade::run_model(which, arena, window, &mut scores)
                .map_err(|_| "little model: no such model or a buffer mismatch")?;
            let scores = &mut scores[..n];
            if cascade::MODEL_LOGITS[which] {
                softmax_in_place(scores);
            }
            match check {
                Check::SameActivity { .. } => Evidence::SameScores(scores),
                _ => Evidence::ClassProbabilities(scores),
            }
        }
        Check::Distance => {
            let previous = cascade::window(index.wrapping_sub(1)).ok_or("no previous window")?;
            let mut a = [0u8; cascade::DISTANCE_LEN];
            let mut b = [0u8; cascade::DISTANCE_LEN];
            cascade::distance_bytes(previous, &mut a);
            cascade::distance_bytes(window, &mut b);
            Evidence::Distance(l1_distance_u8(&a, &b))
        }
        Check::Signature => {
            let signature = |i: usize| {
                cascade::signature_window(i).map(|w| {
                    Signature::of_int8_bytes(
                        w,
                        cascade::SIGNATURE_STRIDE,
                        cascade::SIGNATURE_FIRST_AXIS,
                    )
                })
            };
            // The previous window's signature is kept; when Big ran there without a check it
            // is computed now.
            let previous = match *last {
                Some((i, s)) if i + 1 == index => s,
                _ => signature(index.wrapping_sub(1)).ok_or("no previous window")?,
            };
            let current = signature(index).ok_or("window out of range")?;
            *last = Some((index, current));
            Evidence::Distance(previous.distance(&current))
        }
        Check::Dual => {
            let previous = cascade::window(index.wrapping_sub(1)).ok_or("no previous window")?;
            let n = cascade::run_dual(arena, previous, window, &mut scores)
                .map_err(|_| "Dual model: none in this image or a buffer mismatch")?;
            let scores = &mut scores[..n];
            if cascade::MODEL_LOGITS[cascade::MODEL_COUNT - 1] {
                softmax_in_place(scores);
            }
            Evidence::SameScores(scores)
        }
    };
    let verdict = controller
        .decide(evidence)
        .map_err(|_| "the controller refused the evidence")?;
    match verdict {
        Verdict::Label(label) => Ok((check, false, label)),
        Verdict::RunBig => {
            let mut big = [0f32; cascade::MAX_OUTPUTS];
            let n = cascade::run_model(0, arena, window, &mut big)
                .map_err(|_| "big model: buffer mismatch")?;
            let top = argmax(&big[..n]).ok_or("big model gave no output")?;
            let label = controller
                .big_result(top)
                .map_err(|_| "the controller refused the Big label")?;
            Ok((check, true, label))
        }
    }
}

/// A nested-width network's operating modes over the embedded windows: before each window the
/// battery policy picks the mode for the remaining charge and `set_mode` switches to it when
/// it changed; the mode then runs its widths (model `k` is width `k`). Reports
/// `KINGLET set_mode <window> <mode>` on each switch and
/// `KINGLET mode_window <i>,<mode>,<widths run>,<label> <instructions>` per window.
#[cfg(kinglet_modes)]
fn run_width_modes<C: Counter>(out: &mut impl Report, empty: u32, arena: &mut [u8]) {
    use crate::cascade;
    use kinglet_adapt_core::{ModeSwitch, battery_mode, softmax_in_place};
    let modes = match cascade::width_modes() {
        Ok(modes) => modes,
        Err(_) => crate::fail("the mode table does not build"),
    };
    let mode_for = |index: usize| {
        battery_mode(&cascade::BATTERY_LEVELS, cascade::charge_percent(index)).unwrap_or(0)
    };
    let mut switch = match ModeSwitch::new(&modes, usize::from(mode_for(0))) {
        Ok(switch) => switch,
        Err(_) => crate::fail("the first mode is not in the table"),
    };
    out.line(format_args!("KINGLET modes {}", cascade::MODE_COUNT));
    let mut scores = [0f32; cascade::MAX_OUTPUTS];
    for index in 0..cascade::WINDOW_COUNT {
        let wanted = usize::from(mode_for(index));
        if wanted != switch.mode() {
            if switch.set_mode(wanted).is_err() {
                crate::fail("set_mode: no such mode");
            }
            out.line(format_args!("KINGLET set_mode {index} {wanted}"));
        }
        let Some(window) = cascade::window(index) else {
            crate::fail("window out of range")
        };
        let before = C::now();
        let step = switch.classify(&mut scores, |width, buffer: &mut [f32]| {
            let which = usize::from(width);
            let buffer: &mut [f32; cascade::MAX_OUTPUTS] =
                buffer.try_into().map_err(|_| "score buffer")?;
            let n = cascade::run_model(which, arena, window, buffer)
                .map_err(|_| "width model: buffer mismatch")?;
            let probabilities = buffer.get_mut(..n).ok_or("width model: too many scores")?;
            if cascade::MODEL_LOGITS.get(which).copied().unwrap_or(false) {
                softmax_in_place(probabilities);
            }
            Ok::<usize, &'static str>(n)
        });
        let after = C::now();
        let step = match step {
            Ok(step) => step,
            Err(kinglet_adapt_core::StepError::Model(what)) => crate::fail(what),
            Err(kinglet_adapt_core::StepError::Mode(_)) => crate::fail("the mode refused a step"),
        };
        out.line(format_args!(
            "KINGLET mode_window {index},{},{},{} {}",
            switch.mode(),
            step.ran,
            step.label,
            C::instructions(before, after, empty)
        ));
    }
}
