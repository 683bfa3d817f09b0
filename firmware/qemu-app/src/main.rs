//! Test application for QEMU's `mps2-an386` (Cortex-M4F).
//!
//! Run under `-icount shift=7`, every instruction advances virtual time by 128 ns, and the
//! CMSDK APB timer0 (25 MHz, 40 ns per tick) becomes an exact instruction counter:
//! instructions = round(ticks × 40 / 128) minus the cost of the two timer reads, which is
//! calibrated on an empty region. Every result line starts with `KINGLET ` so the host runner
//! can pick it out; the process exit status says whether the run got to the end.
#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt::Write as _;
use core::panic::PanicInfo;
use core::ptr::{addr_of, read_volatile, write_volatile};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};

#[cfg(kinglet_model)]
#[allow(dead_code, clippy::all)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// CMSDK APB timer0 of the mps2-an386 board.
mod timer {
    use super::*;
    const BASE: usize = 0x4000_0000;
    const CTRL: *mut u32 = BASE as *mut u32;
    pub const VALUE: *mut u32 = (BASE + 0x4) as *mut u32;
    const RELOAD: *mut u32 = (BASE + 0x8) as *mut u32;

    /// Starts the 32-bit down-counter from its maximum.
    pub fn start() {
        // SAFETY: fixed MMIO registers of the board's timer0; nothing else touches them.
        unsafe {
            write_volatile(CTRL, 0);
            write_volatile(RELOAD, u32::MAX);
            write_volatile(VALUE, u32::MAX);
            write_volatile(CTRL, 1);
        }
    }

    #[inline(always)]
    #[cfg_attr(not(kinglet_model), allow(dead_code))]
    pub fn value() -> u32 {
        // SAFETY: reading the timer's VALUE register has no side effects.
        unsafe { read_volatile(VALUE) }
    }
}

/// Timer ticks (25 MHz) to instructions (128 ns each under `-icount shift=7`), rounded.
fn ticks_to_instructions(ticks: u32) -> u32 {
    ((u64::from(ticks) * 40 + 64) / 128) as u32
}

/// Ticks between two back-to-back timer loads: the fixed cost subtracted from every region.
#[inline(never)]
fn empty_region_ticks() -> u32 {
    let (before, after): (u32, u32);
    // SAFETY: two loads from the timer's VALUE register.
    unsafe {
        asm!(
            "ldr {b}, [{t}]",
            "ldr {a}, [{t}]",
            t = in(reg) timer::VALUE,
            b = out(reg) before,
            a = out(reg) after,
            options(nostack, readonly),
        );
    }
    before.wrapping_sub(after)
}

/// The known loop, 1 + 3 × 1000 = 3001 instructions, between the same two loads.
#[inline(never)]
fn known_loop_ticks() -> u32 {
    let (before, after): (u32, u32);
    // SAFETY: two timer loads around a register-only loop.
    unsafe {
        asm!(
            "ldr {b}, [{t}]",
            "movw r0, #1000",
            "2:",
            "adds r1, #1",
            "subs r0, #1",
            "bne 2b",
            "ldr {a}, [{t}]",
            t = in(reg) timer::VALUE,
            b = out(reg) before,
            a = out(reg) after,
            out("r0") _,
            out("r1") _,
            options(nostack, readonly),
        );
    }
    before.wrapping_sub(after)
}

/// Instructions of a region measured as `ticks`, less the calibrated read cost.
fn region_instructions(ticks: u32, empty_ticks: u32) -> u32 {
    ticks_to_instructions(ticks.saturating_sub(empty_ticks))
}

const STACK_PAINT: u32 = 0xA5C3_5A3C;

unsafe extern "C" {
    static __sheap: u32;
    static _stack_start: u32;
}

/// Fills the free RAM between the end of static data and (a margin below) the current
/// stack pointer with a pattern, so the deepest stack use can be found afterwards.
#[inline(never)]
fn paint_stack() {
    let bottom = addr_of!(__sheap) as usize;
    // Below this function's own stack pointer nothing is live (no interrupts are enabled);
    // a small margin covers the loop's own spills.
    let top = cortex_m::register::msp::read() as usize - 16;
    let mut word = bottom;
    while word < top {
        // SAFETY: [__sheap, sp - 16) is unused RAM between static data and the live stack.
        unsafe { write_volatile(word as *mut u32, STACK_PAINT) };
        word += 4;
    }
}

/// Lowest address the stack has reached since `paint_stack`.
fn stack_low_water() -> usize {
    let mut word = addr_of!(__sheap) as usize;
    // SAFETY: reads within the painted region only; stops at the first overwritten word.
    while unsafe { read_volatile(word as *const u32) } == STACK_PAINT {
        word += 4;
    }
    word
}

/// Semihosting console; a failed write is reported by the exit status, not by a panic.
struct Console(Option<hio::HostStream>);

impl Console {
    #[cfg_attr(not(kinglet_model), allow(dead_code))]
    fn text(&mut self, args: core::fmt::Arguments) {
        if let Some(out) = self.0.as_mut() {
            let _ = out.write_fmt(args);
        }
    }

    fn line(&mut self, args: core::fmt::Arguments) {
        if let Some(out) = self.0.as_mut() {
            let _ = out.write_fmt(args);
            let _ = out.write_str("\n");
        }
    }
}

#[entry]
fn main() -> ! {
    let mut out = Console(hio::hstdout().ok());
    paint_stack();
    timer::start();

    let empty = empty_region_ticks();
    let known = known_loop_ticks();
    out.line(format_args!("KINGLET empty_region_ticks {empty}"));
    out.line(format_args!(
        "KINGLET known_loop {} ticks {}",
        region_instructions(known, empty),
        known
    ));

    #[cfg(kinglet_model)]
    run_model(&mut out, empty);

    let stack_top = addr_of!(_stack_start) as usize;
    out.line(format_args!(
        "KINGLET stack_peak_bytes {}",
        stack_top - stack_low_water()
    ));
    out.line(format_args!("KINGLET done"));
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::bkpt();
    }
}

#[cfg(kinglet_model)]
#[inline(never)]
fn infer_once(
    net: &mut model::Model,
    input: &[model::InputElem; model::INPUT_LEN],
    output: &mut [model::OutputElem; model::OUTPUT_LEN],
) {
    if net.infer(input, output).is_err() {
        fail("inference rejected its buffers");
    }
}

/// Reports an error line and exits with a failure status.
#[cfg(kinglet_model)]
fn fail(what: &str) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "KINGLET error {what}");
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}

#[cfg(kinglet_model)]
fn run_model(out: &mut Console, empty: u32) {
    // The model and its arena live in .bss, not on the stack, so the stack peak is the
    // kernels' own use.
    use core::cell::UnsafeCell;
    struct Slot(UnsafeCell<model::Model>);
    // SAFETY: single-threaded bare-metal program; `run_model` runs once.
    unsafe impl Sync for Slot {}
    static NET: Slot = Slot(UnsafeCell::new(model::Model::new()));
    // SAFETY: the only reference to NET, taken once.
    let net = unsafe { &mut *NET.0.get() };

    out.line(format_args!("KINGLET arena_bytes {}", model::ARENA_BYTES));
    let mut output = [0 as model::OutputElem; model::OUTPUT_LEN];
    let sp_at_call = cortex_m::register::msp::read() as usize;
    let before = timer::value();
    infer_once(net, &model::TEST_INPUT, &mut output);
    let after = timer::value();
    let total = region_instructions(before.wrapping_sub(after), empty);
    let low = stack_low_water();
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
            *mark = timer::value();
        }
    });
    if probed_run.is_err() {
        fail("probed inference rejected its buffers");
    }
    // Cost of one probe, measured the same way it is taken inside the schedule.
    let mut cal = [0u32; 2];
    let mut probe = |i: usize| {
        if let Some(mark) = cal.get_mut(i) {
            *mark = timer::value();
        }
    };
    probe(0);
    probe(1);
    let probe_ticks = cal[0].wrapping_sub(cal[1]);
    for layer in 0..model::LAYER_COUNT {
        let ticks = marks[layer].wrapping_sub(marks[layer + 1]);
        out.line(format_args!(
            "KINGLET layer {} {} {}",
            layer,
            model::LAYER_NAMES[layer],
            region_instructions(ticks, probe_ticks)
        ));
    }
    out.text(format_args!("KINGLET outputs"));
    for v in output.iter() {
        out.text(format_args!(" {v}"));
    }
    out.line(format_args!(""));
    out.line(format_args!(
        "KINGLET probed_outputs_match {}",
        probed == output
    ));
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstderr() {
        let _ = writeln!(out, "KINGLET panic {info}");
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
