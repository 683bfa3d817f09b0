//! The single-model mode of the test applications, one text for every core (as
//! [`crate::adaptive`] is): run the generated model on its embedded input, count the whole
//! inference and each layer, measure the inference's stack, and report outputs in a form the
//! host compares exactly. `firmware/qemu-app` declares it as a module; `firmware/qemu-app-riscv`
//! includes this very file (`#[path]`). Each application supplies its counter, its console,
//! `fail` and the stack-painting functions (`paint_stack`, `stack_low_water`, `stack_pointer`).

use crate::adaptive::Report;
#[cfg(kinglet_model)]
use crate::adaptive::Counter;

/// How the report prints a model output: int8 and int16 in decimal (`KINGLET outputs`), f32 as
/// its bit pattern in hex (`KINGLET outputs_f32`) so the host compares float outputs exactly.
#[cfg(any(kinglet_model, kinglet_guard))]
pub trait OutputValue: Copy {
    #[cfg_attr(not(kinglet_model), allow(dead_code))]
    const LINE: &'static str;
    #[cfg_attr(not(kinglet_guard), allow(dead_code))]
    const ZERO: Self;
    fn write(self, out: &mut dyn Report);
    fn bits(self) -> u32;
}

#[cfg(any(kinglet_model, kinglet_guard))]
impl OutputValue for i8 {
    const ZERO: Self = 0;
    const LINE: &'static str = "outputs";
    fn write(self, out: &mut dyn Report) {
        out.text(format_args!(" {self}"));
    }
    fn bits(self) -> u32 {
        u32::from(self as u8)
    }
}

#[cfg(any(kinglet_model, kinglet_guard))]
impl OutputValue for i16 {
    const ZERO: Self = 0;
    const LINE: &'static str = "outputs";
    fn write(self, out: &mut dyn Report) {
        out.text(format_args!(" {self}"));
    }
    fn bits(self) -> u32 {
        u32::from(self as u16)
    }
}

#[cfg(any(kinglet_model, kinglet_guard))]
impl OutputValue for f32 {
    const ZERO: Self = 0.0;
    const LINE: &'static str = "outputs_f32";
    fn write(self, out: &mut dyn Report) {
        out.text(format_args!(" {:08x}", self.to_bits()));
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

#[cfg(kinglet_model)]
#[inline(never)]
fn infer_once(
    net: &mut crate::model::Model,
    input: &[crate::model::InputElem; crate::model::INPUT_LEN],
    output: &mut [crate::model::OutputElem; crate::model::OUTPUT_LEN],
) {
    if net.infer(input, output).is_err() {
        crate::fail("inference rejected its buffers");
    }
}

/// Runs and reports the model; returns the stack's low-water mark from before the inference
/// (the checks and console output may have gone deeper than the inference will, and count
/// towards the whole program's peak), after which the stack is repainted so the inference's
/// own use is measured alone.
#[cfg(kinglet_model)]
pub fn run_model<C: Counter>(out: &mut impl Report, empty: u32) -> usize {
    use crate::model;
    use core::cell::UnsafeCell;
    // The model and its arena live in .bss, not on the stack, so the stack peak is the
    // kernels' own use.
    struct Slot(UnsafeCell<model::Model>);
    // SAFETY: single-threaded bare-metal program; `run_model` runs once.
    unsafe impl Sync for Slot {}
    static NET: Slot = Slot(UnsafeCell::new(model::Model::new()));
    // SAFETY: the only reference to NET, taken once.
    let net = unsafe { &mut *NET.0.get() };

    out.line(format_args!("KINGLET arena_bytes {}", model::ARENA_BYTES));
    let mut output = [0 as model::OutputElem; model::OUTPUT_LEN];
    let earlier = crate::stack_low_water();
    crate::paint_stack();
    let sp_at_call = crate::stack_pointer();
    let before = C::now();
    infer_once(net, &model::TEST_INPUT, &mut output);
    let after = C::now();
    let total = C::instructions(before, after, empty);
    let low = crate::stack_low_water();
    out.line(format_args!(
        "KINGLET inference_stack_bytes {}",
        sp_at_call.saturating_sub(low)
    ));
    out.line(format_args!("KINGLET instructions {total}"));

    // Per layer: the schedule calls the probe before each layer and once at the end.
    let mut marks = [0u32; model::LAYER_COUNT + 1];
    let mut probed = [0 as model::OutputElem; model::OUTPUT_LEN];
    let probed_run = net.infer_probed(&model::TEST_INPUT, &mut probed, &mut |i: usize| {
        if let Some(mark) = marks.get_mut(i) {
            *mark = C::now();
        }
    });
    if probed_run.is_err() {
        crate::fail("probed inference rejected its buffers");
    }
    // Cost of one probe, measured the same way it is taken inside the schedule.
    let mut cal = [0u32; 2];
    let mut probe = |i: usize| {
        if let Some(mark) = cal.get_mut(i) {
            *mark = C::now();
        }
    };
    probe(0);
    probe(1);
    let probe_cost = C::elapsed(cal[0], cal[1]);
    for layer in 0..model::LAYER_COUNT {
        out.line(format_args!(
            "KINGLET layer {} {} {}",
            layer,
            model::LAYER_NAMES[layer],
            C::instructions(marks[layer], marks[layer + 1], probe_cost)
        ));
    }
    out.text(format_args!(
        "KINGLET {}",
        <model::OutputElem as OutputValue>::LINE
    ));
    for &v in output.iter() {
        v.write(out);
    }
    out.line(format_args!(""));
    out.line(format_args!(
        "KINGLET probed_outputs_match {}",
        probed
            .iter()
            .zip(&output)
            .all(|(a, b)| a.bits() == b.bits())
    ));
    earlier
}
