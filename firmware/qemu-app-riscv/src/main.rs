//! Test application for QEMU's RISC-V `virt` board (rv32imc), the counterpart of
//! `firmware/qemu-app` for the Arm cores: same `KINGLET …` report lines, so the host parses
//! both alike.
//!
//! Under `-icount shift=0` QEMU advances `minstret` by exactly one per retired instruction, so
//! two reads of it bracket a region; the cost of the reads is calibrated on an empty region,
//! and a known loop (`li; 1: addi; addi; bnez` = 3001 instructions) checks the method. Output
//! goes through semihosting (`:tt` opened as a host file, as on the Arm cores), and the exit
//! status says whether the run got to the end. No runtime crate: the few lines of start-up
//! code are below.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::Write as _;
use core::panic::PanicInfo;
use core::ptr::{addr_of, read_volatile, write_volatile};

#[cfg(kinglet_model)]
#[allow(dead_code, clippy::all)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

// Reset: global pointer, stack at the top of the RAM region, .bss cleared, then `main`. QEMU
// loads the whole image (code, constants, initialised data) into RAM, so nothing is copied.
global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    ".option push",
    ".option norelax",
    "la gp, __global_pointer$",
    ".option pop",
    "la sp, _stack_start",
    "la t0, _sbss",
    "la t1, _ebss",
    "1:",
    "bgeu t0, t1, 2f",
    "sw zero, 0(t0)",
    "addi t0, t0, 4",
    "j 1b",
    "2:",
    "call main",
    "3:",
    "j 3b",
);

/// RISC-V semihosting call `op` with parameter `arg`: the `slli/ebreak/srai` sequence,
/// uncompressed, that QEMU recognises.
fn semihost(op: usize, arg: usize) -> usize {
    let mut a0 = op;
    // SAFETY: a semihosting trap handled by QEMU; it reads the parameter block `arg` points
    // to and changes nothing but a0.
    unsafe {
        asm!(
            ".option push",
            ".option norvc",
            "slli zero, zero, 0x1f",
            "ebreak",
            "srai zero, zero, 7",
            ".option pop",
            inout("a0") a0,
            in("a1") arg,
            options(nostack),
        );
    }
    a0
}

const SYS_OPEN: usize = 0x01;
const SYS_WRITE: usize = 0x05;
const SYS_EXIT: usize = 0x18;
/// `ADP_Stopped_ApplicationExit`: QEMU exits with status 0.
const EXIT_SUCCESS: usize = 0x20026;
/// `ADP_Stopped_RunTimeErrorUnknown`: QEMU exits with status 1.
const EXIT_FAILURE: usize = 0x20023;

fn exit(reason: usize) -> ! {
    semihost(SYS_EXIT, reason);
    loop {
        core::hint::spin_loop();
    }
}

/// The host's standard output through semihosting, with a line buffer (one trap per line).
struct Console {
    handle: Option<usize>,
    buf: [u8; 256],
    len: usize,
}

impl Console {
    fn open() -> Console {
        let name = b":tt\0";
        // mode 4 = "w": the host's standard output.
        let block = [name.as_ptr() as usize, 4, 3];
        let handle = semihost(SYS_OPEN, block.as_ptr() as usize);
        Console {
            handle: (handle != usize::MAX).then_some(handle),
            buf: [0; 256],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if let (Some(handle), true) = (self.handle, self.len > 0) {
            let block = [handle, self.buf.as_ptr() as usize, self.len];
            semihost(SYS_WRITE, block.as_ptr() as usize);
        }
        self.len = 0;
    }

    #[cfg_attr(not(kinglet_model), allow(dead_code))]
    fn text(&mut self, args: core::fmt::Arguments) {
        let _ = self.write_fmt(args);
    }

    fn line(&mut self, args: core::fmt::Arguments) {
        let _ = self.write_fmt(args);
        let _ = self.write_str("\n");
        self.flush();
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Instructions retired so far.
#[inline(always)]
#[cfg_attr(not(kinglet_model), allow(dead_code))]
fn instret() -> u32 {
    let n: u32;
    // SAFETY: reading a counter CSR, allowed in machine mode, with no side effects.
    unsafe { asm!("csrr {0}, minstret", out(reg) n, options(nomem, nostack)) };
    n
}

/// Instructions between two back-to-back reads: the fixed cost subtracted from every region.
#[inline(never)]
fn empty_region() -> u32 {
    let (before, after): (u32, u32);
    // SAFETY: two counter reads.
    unsafe {
        asm!(
            "csrr {b}, minstret",
            "csrr {a}, minstret",
            b = out(reg) before,
            a = out(reg) after,
            options(nomem, nostack),
        );
    }
    after.wrapping_sub(before)
}

/// The known loop, 1 + 3 × 1000 = 3001 instructions, between the same two reads.
#[inline(never)]
fn known_loop() -> u32 {
    let (before, after): (u32, u32);
    // SAFETY: two counter reads around a register-only loop.
    unsafe {
        asm!(
            "csrr {b}, minstret",
            "li t0, 1000",
            "2:",
            "addi t1, t1, 1",
            "addi t0, t0, -1",
            "bnez t0, 2b",
            "csrr {a}, minstret",
            b = out(reg) before,
            a = out(reg) after,
            out("t0") _,
            out("t1") _,
            options(nomem, nostack),
        );
    }
    after.wrapping_sub(before)
}

const STACK_PAINT: u32 = 0xA5C3_5A3C;

unsafe extern "C" {
    static __sheap: u32;
    static _stack_start: u32;
}

fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies the stack pointer.
    unsafe { asm!("mv {0}, sp", out(reg) sp, options(nomem, nostack)) };
    sp
}

/// Fills the free RAM between the end of static data and (a margin below) the stack pointer
/// with a pattern, so the deepest stack use can be found afterwards.
#[inline(never)]
fn paint_stack() {
    let bottom = addr_of!(__sheap) as usize;
    let top = stack_pointer() - 16;
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

#[unsafe(no_mangle)]
extern "C" fn main() -> ! {
    let mut out = Console::open();
    paint_stack();
    let empty = empty_region();
    let known = known_loop();
    out.line(format_args!("KINGLET empty_region_ticks {empty}"));
    out.line(format_args!(
        "KINGLET known_loop {} ticks {known}",
        known.saturating_sub(empty)
    ));
    #[allow(unused_mut)]
    let mut low = stack_low_water();
    #[cfg(kinglet_model)]
    {
        low = low.min(run_model(&mut out, empty));
    }
    let stack_top = addr_of!(_stack_start) as usize;
    out.line(format_args!(
        "KINGLET stack_peak_bytes {}",
        stack_top - low.min(stack_low_water())
    ));
    out.line(format_args!("KINGLET done"));
    exit(EXIT_SUCCESS)
}

/// How the report prints a model output (see firmware/qemu-app).
#[cfg(kinglet_model)]
trait OutputValue: Copy {
    const LINE: &'static str;
    fn write(self, out: &mut Console);
    fn bits(self) -> u32;
}

#[cfg(kinglet_model)]
impl OutputValue for i8 {
    const LINE: &'static str = "outputs";
    fn write(self, out: &mut Console) {
        out.text(format_args!(" {self}"));
    }
    fn bits(self) -> u32 {
        u32::from(self as u8)
    }
}

#[cfg(kinglet_model)]
impl OutputValue for i16 {
    const LINE: &'static str = "outputs";
    fn write(self, out: &mut Console) {
        out.text(format_args!(" {self}"));
    }
    fn bits(self) -> u32 {
        u32::from(self as u16)
    }
}

#[cfg(kinglet_model)]
impl OutputValue for f32 {
    const LINE: &'static str = "outputs_f32";
    fn write(self, out: &mut Console) {
        out.text(format_args!(" {:08x}", self.to_bits()));
    }
    fn bits(self) -> u32 {
        self.to_bits()
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

#[cfg(kinglet_model)]
fn fail(what: &str) -> ! {
    let mut out = Console::open();
    out.line(format_args!("KINGLET error {what}"));
    exit(EXIT_FAILURE)
}

/// Runs and reports the model as firmware/qemu-app does; returns the stack low-water mark of
/// everything before the inference's own measurement.
#[cfg(kinglet_model)]
fn run_model(out: &mut Console, empty: u32) -> usize {
    static mut NET: model::Model = model::Model::new();
    // SAFETY: single-threaded bare-metal program; `run_model` runs once and takes the only
    // reference to NET.
    let net = unsafe { &mut *core::ptr::addr_of_mut!(NET) };

    out.line(format_args!("KINGLET arena_bytes {}", model::ARENA_BYTES));
    let mut output = [0 as model::OutputElem; model::OUTPUT_LEN];
    let earlier = stack_low_water();
    paint_stack();
    let sp_at_call = stack_pointer();
    let before = instret();
    infer_once(net, &model::TEST_INPUT, &mut output);
    let after = instret();
    let total = after.wrapping_sub(before).saturating_sub(empty);
    let low = stack_low_water();
    out.line(format_args!(
        "KINGLET inference_stack_bytes {}",
        sp_at_call.saturating_sub(low)
    ));
    out.line(format_args!("KINGLET instructions {total}"));

    let mut marks = [0u32; model::LAYER_COUNT + 1];
    let mut probed = [0 as model::OutputElem; model::OUTPUT_LEN];
    let probed_run = net.infer_probed(&model::TEST_INPUT, &mut probed, &mut |i: usize| {
        if let Some(mark) = marks.get_mut(i) {
            *mark = instret();
        }
    });
    if probed_run.is_err() {
        fail("probed inference rejected its buffers");
    }
    // Cost of one probe, measured the same way it is taken inside the schedule.
    let mut cal = [0u32; 2];
    let mut probe = |i: usize| {
        if let Some(mark) = cal.get_mut(i) {
            *mark = instret();
        }
    };
    probe(0);
    probe(1);
    let probe_cost = cal[1].wrapping_sub(cal[0]);
    for layer in 0..model::LAYER_COUNT {
        let n = marks[layer + 1].wrapping_sub(marks[layer]);
        out.line(format_args!(
            "KINGLET layer {} {} {}",
            layer,
            model::LAYER_NAMES[layer],
            n.saturating_sub(probe_cost)
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
    earlier.min(low)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut out = Console::open();
    out.line(format_args!("KINGLET panic {info}"));
    exit(EXIT_FAILURE)
}
