/* Big-little activity recognition on a NUCLEO-L4R5ZI, in C99 around `kinglet compile --lang c`
 * output: SysTick samples the IMU at 50 Hz into a ring (128-sample windows, a new one every
 * 64); each window first gets the signature check (per-axis mean and spread of the
 * accelerometer) and wakes the big model only when the activity may have changed, and once
 * more on the window after a change (kinglet's settle guard); the core sleeps in between.
 *
 * The decision rule is kinglet-adapt-core's signature strategy written out in C (that crate
 * is Rust); thresholds come from `kinglet cascade --budget ... --json` (spec.thresholds).
 *
 * THE SENSOR IS STUBBED: a bare NUCLEO board has no IMU, so read_imu() synthesises samples.
 * Replace it with your driver, delivering the model's channels quantised as its input expects. */
#include <stdint.h>
#include <stdlib.h>

#include MODEL_H

#define WINDOW 128
#define CHANNELS (MODEL_INPUT_LEN / WINDOW)
#define HOP 64
#define ACCEL_FIRST 6 /* total_acc x, y, z among the channels */
#define CLOCK_HZ 4000000u /* the MSI after reset */
#define SAMPLE_HZ 50u

static const uint32_t thresholds[6] = {1438, 1864, 1438, 344, 668, 2632};

static volatile int8_t ring[WINDOW][CHANNELS];
static volatile uint32_t written;

/* What the rest of an application (radio, display, debugger) reads. */
volatile uint8_t activity;
volatile uint32_t big_runs;

typedef struct {
    int32_t sum[3];
    int32_t spread[3];
} signature_t;

/* STUB: a deterministic pseudo-signal in place of an IMU read (see the top of this file). */
static void read_imu(uint32_t t, volatile int8_t *sample) {
    for (uint32_t c = 0; c < CHANNELS; c++) {
        int32_t phase = (int32_t)((t * (c + 3u)) % 64u);
        sample[c] = (int8_t)(phase - 32);
    }
}

void systick_handler(void) {
    read_imu(written, ring[written % WINDOW]);
    written++;
}

static int32_t floor_div(int32_t a, int32_t b) {
    int32_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The same integers as kinglet_adapt_core::Signature: per axis the sum of the samples and
 * the sum of absolute deviations from the mean rounded half up. */
static signature_t signature_of(const int8_t *window) {
    signature_t s = {{0, 0, 0}, {0, 0, 0}};
    for (int t = 0; t < WINDOW; t++) {
        for (int a = 0; a < 3; a++) {
            s.sum[a] += window[t * CHANNELS + ACCEL_FIRST + a];
        }
    }
    for (int a = 0; a < 3; a++) {
        int32_t mean = floor_div(2 * s.sum[a] + WINDOW, 2 * WINDOW);
        for (int t = 0; t < WINDOW; t++) {
            s.spread[a] += abs(window[t * CHANNELS + ACCEL_FIRST + a] - mean);
        }
    }
    return s;
}

static uint32_t distance(const signature_t *p, const signature_t *q) {
    uint32_t d = 0;
    for (int a = 0; a < 3; a++) {
        d += (uint32_t)abs(p->sum[a] - q->sum[a]) + (uint32_t)abs(p->spread[a] - q->spread[a]);
    }
    return d;
}

static uint8_t run_big(const int8_t *window) {
    int8_t scores[MODEL_OUTPUT_LEN];
    uint8_t best = 0;
    big_runs++;
    MODEL_INFER(window, scores);
    for (uint8_t i = 1; i < MODEL_OUTPUT_LEN; i++) {
        if (scores[i] > scores[best]) {
            best = i;
        }
    }
    return best;
}

int main(void) {
    static int8_t window[MODEL_INPUT_LEN];
    signature_t previous = {{0, 0, 0}, {0, 0, 0}};
    int have_label = 0, settle = 0;
    uint32_t windows_seen = 0;

    /* SysTick at 50 Hz from the core clock, with its interrupt. */
    *(volatile uint32_t *)0xE000E014u = CLOCK_HZ / SAMPLE_HZ - 1u; /* LOAD */
    *(volatile uint32_t *)0xE000E018u = 0u;                        /* VAL */
    *(volatile uint32_t *)0xE000E010u = 0x7u;                      /* CTRL: core clock, tick, on */
    for (;;) {
        __asm volatile("wfi");
        uint32_t n = written;
        if (n < WINDOW || n / HOP == windows_seen) {
            continue;
        }
        windows_seen = n / HOP;
        for (uint32_t t = 0; t < WINDOW; t++) {
            for (uint32_t c = 0; c < CHANNELS; c++) {
                window[t * CHANNELS + c] = ring[(n + t) % WINDOW][c];
            }
        }
        signature_t current = signature_of(window);
        if (!have_label || settle) {
            settle = 0;
            activity = run_big(window);
            have_label = 1;
        } else if (distance(&previous, &current) > thresholds[activity < 6 ? activity : 0]) {
            activity = run_big(window);
            settle = 1;
        }
        previous = current;
    }
}
