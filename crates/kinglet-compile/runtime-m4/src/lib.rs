//! Cortex-M4 kernels for the shapes human-activity-recognition networks have: 1D convolutions
//! with kernel 3 and few channels (optionally fused with ReLU and a 2-wide max pool) and small
//! fully-connected layers, all int8 with TFLite-exact requantisation.
//!
//! Both kernels are dot products of 16-bit pairs: activations are widened once per layer into
//! a padded `i16` buffer and the compiler stores weights already widened, so every `SMLAD`
//! does two multiply-accumulates with no per-MAC sign extension. The input zero point is folded
//! into the bias at compile time (`bias − zp_in·Σw`) and padding cells hold `zp_in`, so border
//! positions need no special case. On targets without the DSP extension the same arithmetic
//! runs through portable versions of the instructions (that is how the host tests check it
//! against the reference kernels); compiled models use kinglet-micro's reference kernels there.
//!
//! Every kernel checks its slice lengths once on entry and returns [`ShapeError`] instead of
//! panicking; after that, inner loops index without bounds checks.
#![no_std]

/// Whether this build runs the DSP instructions natively (a `thumbv7em` target). Compiled
/// models use kinglet-m4's kernels only then, and kinglet-micro's reference kernels otherwise.
pub const HAS_DSP: bool = cfg!(kinglet_dsp);

pub mod arena;
pub mod dsp;

use kinglet_micro::quant::multiply_by_quantized_multiplier;

/// A kernel was handed buffers whose lengths disagree with its shape parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeError;

/// Length of the widened, padded activation buffer a 1D k=3 convolution reads: one zero-point
/// position before and two after the signal, plus room for rows rounded up to whole pairs.
pub const fn conv1d_k3_padded_len(width: usize, in_ch: usize) -> usize {
    (width + 3) * in_ch + 4
}

/// Weight row length of a widened k=3 filter: `3·in_ch` rounded up to whole `i16` pairs.
pub const fn conv1d_k3_row_len(in_ch: usize) -> usize {
    (3 * in_ch + 1) & !1
}

/// Row length of a widened fully-connected weight matrix: `in_len` rounded up to whole pairs.
pub const fn fc_row_len(in_len: usize) -> usize {
    (in_len + 1) & !1
}

/// Output channels computed together (and interleaved in packed weights): 4, 2 or 1.
pub const fn channel_block(out_ch: usize) -> usize {
    if out_ch.is_multiple_of(4) {
        4
    } else if out_ch.is_multiple_of(2) {
        2
    } else {
        1
    }
}

/// `[T; N]` aligned to 4 bytes: packed weights are read with `LDM`, which needs it.
#[repr(C, align(4))]
pub struct Aligned<T>(pub T);

/// Packs int8 weights `[out_ch][row_in]` (row_in = `3·in_ch` for a k=3 filter in OHWI
/// order, or `in_len` for a fully-connected layer) into the layout the kernels read: rows
/// rounded up to `row = (row_in + 1) & !1` with zeros, then for every block of
/// [`channel_block`] output channels, pair by pair, the block's channels side by side.
/// `packed` must hold `out_ch · row` values; returns `ShapeError` otherwise.
pub fn pack_weights(
    weights: &[i8],
    out_ch: usize,
    row_in: usize,
    packed: &mut [i16],
) -> Result<(), ShapeError> {
    let row = (row_in + 1) & !1;
    if weights.len() != out_ch * row_in || packed.len() != out_ch * row {
        return Err(ShapeError);
    }
    let block = channel_block(out_ch);
    let pairs = row / 2;
    let mut i = 0;
    for b in (0..out_ch).step_by(block) {
        for k in 0..pairs {
            for j in 0..block {
                let o = b + j;
                for t in [2 * k, 2 * k + 1] {
                    packed[i] = if t < row_in {
                        i16::from(weights[o * row_in + t])
                    } else {
                        0
                    };
                    i += 1;
                }
            }
        }
    }
    Ok(())
}

/// Widens int8 `input` (`width × in_ch`, channels last) into `padded` as laid out by
/// [`conv1d_k3_padded_len`], filling the borders with the input zero point.
pub fn widen_padded(
    input: &[i8],
    in_ch: usize,
    zero_point: i8,
    padded: &mut [i16],
) -> Result<(), ShapeError> {
    let body = input.len();
    if in_ch == 0 || !body.is_multiple_of(in_ch) || padded.len() < body + 2 * in_ch + 1 {
        return Err(ShapeError);
    }
    let zp = i16::from(zero_point);
    let (head, rest) = padded.split_at_mut(in_ch);
    head.fill(zp);
    let (middle, tail) = rest.split_at_mut(body);
    dsp::widen(input, middle);
    tail.fill(zp);
    Ok(())
}

/// Output requantisation and clamp shared by the kernels, per output channel.
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// Q31 multipliers (non-negative, from `quantize_multiplier`).
    pub multipliers: &'a [i32],
    /// Shifts, positive = left, as `quantize_multiplier` returns them.
    pub shifts: &'a [i32],
    /// Output zero point.
    pub output_offset: i32,
    /// Clamp range (fused activation and storage range).
    pub act_min: i32,
    pub act_max: i32,
}

impl Requant<'_> {
    fn check(&self, channels: usize) -> Result<(), ShapeError> {
        let ok = self.multipliers.len() == channels
            && self.shifts.len() == channels
            && self.multipliers.iter().all(|&m| m >= 0)
            && self.shifts.iter().all(|&s| (-31..=30).contains(&s))
            && self.act_min <= self.act_max
            && self.act_min >= -128
            && self.act_max <= 127;
        if ok { Ok(()) } else { Err(ShapeError) }
    }

    /// Whether requantisation is monotonic, so `requant(max(a, b)) = max(requant(a),
    /// requant(b))` and a fused max pool needs one requantisation instead of two. A left
    /// shift can wrap (as TFLite's does), which breaks that.
    fn monotonic(&self) -> bool {
        self.shifts.iter().all(|&s| s <= 0)
    }

    #[inline(always)]
    fn finish(&self, acc: i32, ch: usize) -> i8 {
        // SAFETY: `check` verified both slices have one entry per output channel.
        let (m, s) = unsafe {
            (
                *self.multipliers.get_unchecked(ch),
                *self.shifts.get_unchecked(ch),
            )
        };
        let scaled = if s <= 0 {
            requantize_right_shift(acc, m, -s)
        } else {
            multiply_by_quantized_multiplier(acc, m, s)
        };
        scaled
            .wrapping_add(self.output_offset)
            .clamp(self.act_min, self.act_max) as i8
    }
}

/// TFLite's `MultiplyByQuantizedMultiplier` for a non-negative multiplier and a right shift
/// `exponent` in `0..=31`, in fewer instructions: for `m ≠ i32::MIN` gemmlowp's
/// `SaturatingRoundingDoublingHighMul` with its sign-dependent nudge equals
/// `(a·m + 2^30) >> 31` (floor), and the rounding divide is TFLite's own mask formula.
#[inline(always)]
pub fn requantize_right_shift(acc: i32, multiplier: i32, exponent: i32) -> i32 {
    let high = ((i64::from(acc) * i64::from(multiplier) + (1 << 30)) >> 31) as i32;
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = high & mask;
    let threshold = (mask >> 1) + (high < 0) as i32;
    (high >> exponent) + (remainder > threshold) as i32
}

/// A 1D convolution with kernel 3, stride 1, dilation 1 and SAME padding over a
/// `width × in_ch` signal, optionally followed by a 2-wide, stride-2 VALID max pool.
#[derive(Clone, Copy, Debug)]
pub struct Conv1dK3<'a> {
    /// Signal length (input and convolution output).
    pub width: usize,
    /// Weights packed by [`pack_weights`] (`row_in = 3·in_ch`).
    pub weights: &'a [i16],
    /// `bias − zp_in · Σ w` per output channel.
    pub bias: &'a [i32],
    pub requant: Requant<'a>,
    /// Fuse the max pool: output is `(width / 2) × out_ch` instead of `width × out_ch`.
    pub pool: bool,
}

/// Runs [`Conv1dK3`] on a buffer prepared by [`widen_padded`]. `IN_CH` and `OUT_CH` are
/// compile-time so the shape arithmetic folds away.
pub fn conv1d_k3<const IN_CH: usize, const OUT_CH: usize>(
    params: &Conv1dK3,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    conv1d_k3_impl(IN_CH, OUT_CH, params, padded, output)
}

/// [`conv1d_k3`] with channel counts known only at run time (host execution, tests).
pub fn conv1d_k3_dyn(
    in_ch: usize,
    out_ch: usize,
    params: &Conv1dK3,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    conv1d_k3_impl(in_ch, out_ch, params, padded, output)
}

fn weights_ok(weights: &[i16], len: usize) -> bool {
    // LDM faults on an unaligned address.
    weights.len() == len && (!HAS_DSP || (weights.as_ptr() as usize).is_multiple_of(4))
}

#[inline(always)]
fn conv1d_k3_impl(
    in_ch: usize,
    out_ch: usize,
    params: &Conv1dK3,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let row = conv1d_k3_row_len(in_ch);
    let width = params.width;
    let out_len = if params.pool { width / 2 } else { width } * out_ch;
    if in_ch == 0
        || out_ch == 0
        || !weights_ok(params.weights, out_ch * row)
        || params.bias.len() != out_ch
        || padded.len() < conv1d_k3_padded_len(width, in_ch)
        || output.len() != out_len
    {
        return Err(ShapeError);
    }
    params.requant.check(out_ch)?;
    let fast = params.requant.fast();
    match (channel_block(out_ch), fast) {
        (4, true) => conv_rows::<4, true>(in_ch, out_ch, params, padded, output),
        (4, false) => conv_rows::<4, false>(in_ch, out_ch, params, padded, output),
        (2, true) => conv_rows::<2, true>(in_ch, out_ch, params, padded, output),
        (2, false) => conv_rows::<2, false>(in_ch, out_ch, params, padded, output),
        (_, true) => conv_rows::<1, true>(in_ch, out_ch, params, padded, output),
        (_, false) => conv_rows::<1, false>(in_ch, out_ch, params, padded, output),
    }
    Ok(())
}

/// Block of `BLOCK` output channels outside, positions inside: the block's requantisation
/// constants are prepared once and its packed weights stay hot.
#[inline(always)]
fn conv_rows<const BLOCK: usize, const FAST: bool>(
    in_ch: usize,
    out_ch: usize,
    params: &Conv1dK3,
    padded: &[i16],
    output: &mut [i8],
) {
    let row = conv1d_k3_row_len(in_ch);
    let pairs = row / 2;
    let width = params.width;
    let requant = &params.requant;
    let monotonic = requant.monotonic();
    let window = padded.as_ptr();
    let out = output.as_mut_ptr();
    let mut b = 0;
    while b < out_ch {
        // SAFETY: lengths were checked by the caller: the block's packed weights are
        // weights[b·row .. (b+BLOCK)·row]; every window read ends at x·in_ch + row ≤
        // (width+1)·in_ch + row ≤ conv1d_k3_padded_len; outputs are written below out_len.
        unsafe {
            let w = params.weights.as_ptr().add(b * row).cast::<u32>();
            let mut bias = [0i32; BLOCK];
            let mut fast_ch = [FastChannel::default(); BLOCK];
            for j in 0..BLOCK {
                bias[j] = *params.bias.get_unchecked(b + j);
                if FAST {
                    fast_ch[j] = requant.fast_channel(b + j);
                }
            }
            let finish = |acc: i32, j: usize| -> i8 {
                if FAST {
                    fast_ch[j].finish(acc, requant)
                } else {
                    requant.finish(acc, b + j)
                }
            };
            if params.pool {
                let mut x = 0;
                while x + 1 < width {
                    let mut acc0 = bias;
                    let mut acc1 = bias;
                    dsp::dot_block::<BLOCK>(window.add(x * in_ch), w, pairs, &mut acc0);
                    dsp::dot_block::<BLOCK>(window.add((x + 1) * in_ch), w, pairs, &mut acc1);
                    let dst = out.add((x / 2) * out_ch + b);
                    for j in 0..BLOCK {
                        *dst.add(j) = if monotonic || FAST {
                            finish(acc0[j].max(acc1[j]), j)
                        } else {
                            finish(acc0[j], j).max(finish(acc1[j], j))
                        };
                    }
                    x += 2;
                }
            } else {
                for x in 0..width {
                    let mut acc = bias;
                    dsp::dot_block::<BLOCK>(window.add(x * in_ch), w, pairs, &mut acc);
                    let dst = out.add(x * out_ch + b);
                    for (j, &a) in acc.iter().enumerate() {
                        *dst.add(j) = finish(a, j);
                    }
                }
            }
        }
        b += BLOCK;
    }
}

/// A fully-connected layer on an int8 vector widened by [`widen_padded`] with `in_ch =
/// in_len` (so the vector starts at `padded[in_len]`).
#[derive(Clone, Copy, Debug)]
pub struct FullyConnected<'a> {
    /// Weights packed by [`pack_weights`] (`row_in = in_len`).
    pub weights: &'a [i16],
    /// `bias − zp_in · Σ w` per output.
    pub bias: &'a [i32],
    pub requant: Requant<'a>,
}

pub fn fully_connected<const IN_LEN: usize, const OUT_LEN: usize>(
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    fully_connected_impl(IN_LEN, OUT_LEN, params, padded, output)
}

/// [`fully_connected`] with sizes known only at run time (host execution, tests).
pub fn fully_connected_dyn(
    in_len: usize,
    out_len: usize,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    fully_connected_impl(in_len, out_len, params, padded, output)
}

#[inline(always)]
fn fully_connected_impl(
    in_len: usize,
    out_len: usize,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let row = fc_row_len(in_len);
    if out_len == 0
        || !weights_ok(params.weights, out_len * row)
        || params.bias.len() != out_len
        || padded.len() < in_len + row
        || output.len() != out_len
    {
        return Err(ShapeError);
    }
    params.requant.check(out_len)?;
    match channel_block(out_len) {
        4 => fc_blocks::<4>(in_len, out_len, params, padded, output),
        2 => fc_blocks::<2>(in_len, out_len, params, padded, output),
        _ => fc_blocks::<1>(in_len, out_len, params, padded, output),
    }
    Ok(())
}

#[inline(always)]
fn fc_blocks<const BLOCK: usize>(
    in_len: usize,
    out_len: usize,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) {
    let row = fc_row_len(in_len);
    let mut b = 0;
    while b < out_len {
        // SAFETY: the vector read covers padded[in_len .. in_len + row]; the block's weights
        // are weights[b·row .. (b+BLOCK)·row]; b + j < out_len = output.len() (checked).
        unsafe {
            let mut acc = [0i32; BLOCK];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = *params.bias.get_unchecked(b + j);
            }
            let w = params.weights.as_ptr().add(b * row).cast::<u32>();
            dsp::dot_block::<BLOCK>(padded.as_ptr().add(in_len), w, row / 2, &mut acc);
            for (j, &a) in acc.iter().enumerate() {
                *output.get_unchecked_mut(b + j) = params.requant.finish(a, b + j);
            }
        }
        b += BLOCK;
    }
}

/// Per-channel constants of [`Requant::fast`] requantisation.
#[derive(Clone, Copy, Debug, Default)]
struct FastChannel {
    multiplier: i32,
    /// `2^30 + 2^(30+e)`: both roundings of TFLite's double rounding folded into one add.
    addend: i64,
    /// `e − 1` for a right shift `e ≥ 1`.
    shift: u32,
}

impl FastChannel {
    #[inline(always)]
    fn finish(&self, acc: i32, r: &Requant) -> i8 {
        let high = ((i64::from(acc) * i64::from(self.multiplier) + self.addend) >> 32) as i32;
        (high >> self.shift)
            .wrapping_add(r.output_offset)
            .clamp(r.act_min, r.act_max) as i8
    }
}

impl Requant<'_> {
    /// Whether the one-rounding form applies: every shift is a right shift of at least one
    /// and the clamp's floor is at or above the zero point (ReLU-style). Then
    /// `RoundingDivideByPOT(SRDHM(x, m), e)` equals `(x·m + 2^30 + 2^(30+e)) >> (31+e)` for
    /// every result the clamp can let through: for non-negative SRDHM results both
    /// floor-divisions compose exactly, and negative ones end at or below the zero point
    /// either way, where the clamp maps them to `act_min`.
    fn fast(&self) -> bool {
        self.act_min >= self.output_offset && self.shifts.iter().all(|&s| s <= -1)
    }

    #[inline(always)]
    fn fast_channel(&self, ch: usize) -> FastChannel {
        // SAFETY: `check` verified one entry per channel; `fast` verified -31 <= s <= -1.
        let (m, s) = unsafe {
            (
                *self.multipliers.get_unchecked(ch),
                *self.shifts.get_unchecked(ch),
            )
        };
        let e = (-s) as u32;
        FastChannel {
            multiplier: m,
            addend: (1i64 << 30) + (1i64 << (30 + e)),
            shift: e - 1,
        }
    }
}
