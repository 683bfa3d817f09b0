//! Big–little activity recognition on a NUCLEO-L4R5ZI: a 50 Hz timer samples the IMU into a
//! ring of windows (128 samples, a new window every 64); for each window kinglet's controller
//! runs the signature check (per-axis mean and spread of the accelerometer, a few thousand
//! instructions) and wakes the big model only when the activity may have changed; between
//! samples the core sleeps (WFI).
//!
//! **The sensor is stubbed**: no IMU is attached to a bare NUCLEO board, so [`read_imu`]
//! synthesises samples. Replace it with your driver (e.g. an LSM6DSO over I2C), delivering
//! the model's nine channels quantised as its input expects.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use cortex_m::interrupt::Mutex;
use cortex_m_rt::entry;
use kinglet_adapt_core::{Check, Controller, Evidence, Guards, Signature, Strategy, Verdict};
use kinglet_model::{INPUT_LEN, Model, OUTPUT_LEN};
use panic_halt as _;
use stm32l4xx_hal::pac::{self, interrupt};
use stm32l4xx_hal::prelude::*;
use stm32l4xx_hal::timer::{Event, Timer};

/// Samples per window and channels per sample (the model's input is `[WINDOW, CHANNELS]`).
const WINDOW: usize = 128;
const CHANNELS: usize = INPUT_LEN / WINDOW;
/// A new window every this many samples (50 % overlap, 1.28 s at 50 Hz).
const HOP: usize = 64;
/// Where the accelerometer with gravity sits among the channels (total_acc x, y, z).
const ACCEL_FIRST: usize = 6;
/// Signature-distance thresholds per activity, from `kinglet cascade --budget … --json`
/// (`spec.thresholds`); these are the main job's, calibrated on validation subjects.
const THRESHOLDS: [u32; 12] = [1438, 1864, 1438, 344, 668, 2632, 0, 0, 0, 0, 0, 0];

/// Samples written by the timer interrupt, read by the main loop once a hop is complete.
struct Ring {
    samples: [[i8; CHANNELS]; WINDOW],
    written: usize,
}

static RING: Mutex<RefCell<Ring>> = Mutex::new(RefCell::new(Ring {
    samples: [[0; CHANNELS]; WINDOW],
    written: 0,
}));
static TIMER: Mutex<RefCell<Option<Timer<pac::TIM2>>>> = Mutex::new(RefCell::new(None));

/// The activity of the latest window, and how often the big model ran: what the rest of an
/// application (a radio task, a display, a debugger) reads.
pub static ACTIVITY: AtomicU8 = AtomicU8::new(0);
pub static BIG_RUNS: AtomicU32 = AtomicU32::new(0);

#[entry]
fn main() -> ! {
    let (Some(dp), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        panic!("peripherals taken twice");
    };
    let mut flash = dp.FLASH.constrain();
    let mut rcc = dp.RCC.constrain();
    let mut pwr = dp.PWR.constrain(&mut rcc.apb1r1);
    // The MSI's 4 MHz after reset: the seed's Big-1IN (84 k instructions on this core) takes
    // about 21 ms of each 1.28 s window, and a slow clock draws least while awake.
    let clocks = rcc.cfgr.freeze(&mut flash.acr, &mut pwr);
    let mut timer = Timer::tim2(dp.TIM2, 50.Hz(), clocks, &mut rcc.apb1r1);
    timer.listen(Event::TimeOut);
    cortex_m::interrupt::free(|cs| TIMER.borrow(cs).replace(Some(timer)));
    // SAFETY: the handler only touches RING and TIMER through critical sections.
    unsafe { cortex_m::peripheral::NVIC::unmask(pac::Interrupt::TIM2) };
    cp.SCB.clear_sleepdeep();

    let mut model = Model::new();
    let mut controller = Controller::new(
        Strategy::Signature {
            thresholds: THRESHOLDS,
        },
        Guards {
            settle_windows: 1,
            ..Guards::default()
        },
    );
    let mut window = [0i8; INPUT_LEN];
    let mut previous: Option<Signature> = None;
    let mut label = 0u8;
    let mut windows_seen = 0usize;
    loop {
        cortex_m::asm::wfi();
        // A full window, taken once every HOP samples (oldest sample first).
        let ready = cortex_m::interrupt::free(|cs| {
            let ring = RING.borrow(cs).borrow();
            if ring.written < WINDOW || ring.written / HOP == windows_seen {
                return false;
            }
            for t in 0..WINDOW {
                let sample = &ring.samples[(ring.written + t) % WINDOW];
                window[t * CHANNELS..(t + 1) * CHANNELS].copy_from_slice(sample);
            }
            true
        });
        if !ready {
            continue;
        }
        windows_seen += 1;
        let current = Signature::of(&window, CHANNELS, ACCEL_FIRST);
        let evidence = match controller.check() {
            Check::Signature => match previous {
                Some(p) => Evidence::Distance(p.distance(&current)),
                None => Evidence::Distance(u32::MAX),
            },
            _ => Evidence::None,
        };
        previous = Some(current);
        label = match controller.decide(evidence) {
            Ok(Verdict::Label(l)) => l,
            Ok(Verdict::RunBig) => {
                BIG_RUNS.fetch_add(1, Ordering::Relaxed);
                let mut scores = [0i8; OUTPUT_LEN];
                let top = match model.infer(&window, &mut scores) {
                    Ok(()) => argmax(&scores),
                    Err(_) => usize::from(label),
                };
                controller.big_result(top).unwrap_or(label)
            }
            Err(_) => label,
        };
        ACTIVITY.store(label, Ordering::Relaxed);
    }
}

fn argmax(scores: &[i8]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

/// STUB: a deterministic pseudo-signal in place of an IMU read (see the module docs).
fn read_imu(t: usize) -> [i8; CHANNELS] {
    let mut sample = [0i8; CHANNELS];
    for (c, v) in sample.iter_mut().enumerate() {
        let phase = (t * (c + 3)) % 64;
        *v = (phase as i32 - 32).clamp(-128, 127) as i8;
    }
    sample
}

#[interrupt]
fn TIM2() {
    cortex_m::interrupt::free(|cs| {
        if let Some(timer) = TIMER.borrow(cs).borrow_mut().as_mut() {
            timer.clear_interrupt(Event::TimeOut);
        }
        let mut ring = RING.borrow(cs).borrow_mut();
        let t = ring.written;
        ring.samples[t % WINDOW] = read_imu(t);
        ring.written = t + 1;
    });
}
