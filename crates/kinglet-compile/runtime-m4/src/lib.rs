//! Cortex-M4 kernels for the shapes human-activity-recognition networks have: 1D convolutions
//! of any kernel size with few channels, pointwise (1×1) convolutions (both optionally fused
//! with ReLU and a 2-wide max pool), 1D depthwise convolutions, small fully-connected layers
//! and global average pooling, all int8 with TFLite-exact requantisation (fully-connected
//! layers round in double precision like TFLite's reference kernel, see [`FcRequant`]).
//! [`conv2d`] covers int8 2D convolutions (image models such as an MNIST CNN) the same way.
//!
//! All kernels are dot products of 16-bit pairs: activations are widened once per layer into
//! a padded `i16` buffer and weights are stored widened (or int8, widened one block of output
//! channels at a time, see [`ConvWeights`]), so every `SMLAD` does two multiply-accumulates
//! with no per-MAC sign extension. The input zero point is folded
//! into the bias at compile time (`bias − zp_in·Σw`) and padding cells hold `zp_in`, so border
//! positions need no special case. On targets without the DSP extension the same arithmetic
//! runs through portable versions of the instructions (that is how the host tests check it
//! against the reference kernels), with hand-scheduled inner loops for Cortex-M3; compiled
//! models use these kernels on Cortex-M4/M7, Cortex-M3 and RISC-V rv32 ([`PACKED_KERNELS`])
//! and kinglet-micro's reference kernels on other targets.
//!
//! Every kernel checks its slice lengths once on entry and returns [`ShapeError`] instead of
//! panicking; after that, inner loops index without bounds checks.
#![no_std]

/// Whether this build runs the DSP instructions natively (a `thumbv7em` target).
pub const HAS_DSP: bool = cfg!(kinglet_dsp);

/// Whether compiled models use these kernels on this build's core: Cortex-M4/M7 (`SMLAD`),
/// Cortex-M3 (`thumbv7m`: the pairs split and fed to `MLA`, see [`dsp::dot_block`]) and
/// RISC-V rv32 (the portable arithmetic, plain `MUL`/`ADD`). The widened activations and
/// folded zero points save as much there as on the M4: kinglet-micro's reference kernels
/// take 3× (M3) the instructions. Other targets (the host) run the reference kernels.
pub const PACKED_KERNELS: bool = cfg!(kinglet_packed);

pub mod arena;
pub mod conv2d;
pub mod depthwise2d;
pub mod dsp;
pub mod float_conv;
pub mod nested;
pub mod subbyte;

use kinglet_micro::quant::multiply_by_quantized_multiplier;

/// A kernel was handed buffers whose lengths disagree with its shape parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeError;

/// Length of the widened, padded activation buffer a 1D k=3 convolution reads: one zero-point
/// position before and two after the signal, plus room for rows rounded up to whole pairs.
pub const fn conv1d_k3_padded_len(width: usize, in_ch: usize) -> usize {
    conv1d_padded_len(width, in_ch, 3)
}

/// Length of the widened, padded activation buffer a 1D convolution with kernel `kernel` and
/// `width` output positions (before pooling) reads: the `width + kernel − 1` input positions
/// its windows cover (padding included), plus room for rows rounded up to whole pairs.
pub const fn conv1d_padded_len(width: usize, in_ch: usize, kernel: usize) -> usize {
    (width + kernel) * in_ch + 4
}

/// Weight row length of a widened k=3 filter: `3·in_ch` rounded up to whole `i16` pairs.
pub const fn conv1d_k3_row_len(in_ch: usize) -> usize {
    conv1d_row_len(in_ch, 3)
}

/// Weight row length of a widened 1D filter: `kernel·in_ch` rounded up to whole `i16` pairs.
pub const fn conv1d_row_len(in_ch: usize, kernel: usize) -> usize {
    (kernel * in_ch + 1) & !1
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

/// Packs int8 weights `[out_ch][row_in]` (row_in = `kernel·in_ch` for a 1D filter in OHWI
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
    nested::pack_weights_blocked(weights, out_ch, row_in, channel_block(out_ch), packed)
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
    widen_padded_before(input, in_ch, zero_point, 1, padded)
}

/// Widens int8 `input` (`width × in_ch`, channels last) into `padded` after `pad_before`
/// positions of zero points, filling the rest of `padded` with zero points too (the
/// convolution's right-hand padding and the pair rounding).
#[inline]
pub fn widen_padded_before(
    input: &[i8],
    in_ch: usize,
    zero_point: i8,
    pad_before: usize,
    padded: &mut [i16],
) -> Result<(), ShapeError> {
    let body = input.len();
    let head = pad_before * in_ch;
    if in_ch == 0 || !body.is_multiple_of(in_ch) || padded.len() < head + body {
        return Err(ShapeError);
    }
    let zp = i16::from(zero_point);
    let (head, rest) = padded.split_at_mut(head);
    head.fill(zp);
    let (middle, tail) = rest.split_at_mut(body);
    dsp::widen(input, middle);
    tail.fill(zp);
    Ok(())
}

/// Row length (per channel) of the channel-major buffer a 1D depthwise convolution with
/// `width` output positions reads: its windows' `width + kernel − 1` positions plus room for
/// pair rounding, kept even so every channel row starts 4-byte aligned.
pub const fn depthwise_row_len(width: usize, kernel: usize) -> usize {
    (width + kernel + 1) & !1
}

/// Tap pairs of a widened depthwise filter row: `kernel` rounded up to whole pairs.
pub const fn depthwise_pairs(kernel: usize) -> usize {
    kernel.div_ceil(2)
}

/// Widens int8 `input` (`width × channels`, channels last) into `padded`, channel-major: row
/// `c` (of `row_len` values) holds `pad_before` zero points, channel `c` of the signal, and
/// zero points to the end. Taps of one channel are then adjacent pairs for `SMLAD`.
pub fn widen_channel_major(
    input: &[i8],
    channels: usize,
    zero_point: i8,
    pad_before: usize,
    row_len: usize,
    padded: &mut [i16],
) -> Result<(), ShapeError> {
    if channels == 0
        || !input.len().is_multiple_of(channels)
        || pad_before + input.len() / channels > row_len
        || padded.len() != channels * row_len
    {
        return Err(ShapeError);
    }
    let width = input.len() / channels;
    let zp = i16::from(zero_point);
    for (c, row) in padded.chunks_exact_mut(row_len).enumerate() {
        let (head, rest) = row.split_at_mut(pad_before);
        head.fill(zp);
        let (middle, tail) = rest.split_at_mut(width);
        for (x, v) in middle.iter_mut().enumerate() {
            // SAFETY: x < width and c < channels, so x·channels + c < input.len().
            *v = i16::from(unsafe { *input.get_unchecked(x * channels + c) });
        }
        tail.fill(zp);
    }
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

/// A 1D convolution (stride 1, dilation 1) with any kernel size — k = 3, 5, 7 with SAME
/// padding, or a pointwise 1×1 — optionally followed by a 2-wide, stride-2 VALID max pool.
/// Output position `x` reads the window starting at position `x` of the padded buffer, so
/// SAME and VALID differ only in how many zero-point positions the widening puts first.
#[derive(Clone, Copy, Debug)]
pub struct Conv1d<'a> {
    /// Convolution output length (before pooling).
    pub width: usize,
    /// Kernel size (taps along the signal).
    pub kernel: usize,
    /// Packed weights (`row_in = kernel·in_ch`).
    pub weights: ConvWeights<'a>,
    /// `bias − zp_in · Σ w` per output channel.
    pub bias: &'a [i32],
    pub requant: Requant<'a>,
    /// Fuse the max pool: output is `(width / 2) × out_ch` instead of `width × out_ch`.
    pub pool: bool,
}

/// Runs [`Conv1d`] on a buffer prepared by [`widen_padded_before`] (at least
/// [`conv1d_padded_len`] long), inlined at the call site: `IN_CH`, `OUT_CH` and `K` are
/// compile-time, and the call site's constant buffers, tables and flags fold into the loops.
/// `SCRATCH` is [`conv1d_scratch_words`] for narrow weights (a stack buffer for one block of
/// widened weights) and 0 for wide ones. `FORM` is the requantisation form
/// ([`requant_form_1d`], checked against `params`): given by the compiler rather than derived
/// here, so only its loop is generated even where the optimiser cannot fold the derivation.
#[inline(always)]
pub fn conv1d<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const FORM: u8,
>(
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if params.kernel != K
        || params
            .requant
            .form_1d(params.bias, conv1d_row_len(IN_CH, K))
            != FORM
    {
        return Err(ShapeError);
    }
    let mut scratch = [const { core::mem::MaybeUninit::<u32>::uninit() }; SCRATCH];
    conv1d_impl(
        IN_CH,
        OUT_CH,
        OUT_CH,
        K,
        FORM,
        params,
        padded,
        output,
        &mut scratch,
    )
}

/// [`conv1d`] on the leading `active` output channels only (a multiple of the channel block,
/// [`channel_block`]`(OUT_CH)`), written at the full stride of `OUT_CH` channels per position;
/// `params.bias` holds `active` values. The other channels are left as they were (see
/// [`fill_channels`]). One compiled schedule so runs every width of a nested network over the
/// full width's weights, the narrower widths' inputs padded with the zero point and their
/// biases folded over the full rows (kinglet-compile `nested`, full-stride layout).
#[inline(always)]
pub fn conv1d_active<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const FORM: u8,
>(
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    active: usize,
) -> Result<(), ShapeError> {
    if params.kernel != K
        || active == 0
        || active > OUT_CH
        || !active.is_multiple_of(channel_block(OUT_CH))
        || !params
            .requant
            .form_fits(FORM, params.bias, conv1d_row_len(IN_CH, K))
    {
        return Err(ShapeError);
    }
    let mut scratch = [const { core::mem::MaybeUninit::<u32>::uninit() }; SCRATCH];
    conv1d_impl(
        IN_CH,
        OUT_CH,
        active,
        K,
        FORM,
        params,
        padded,
        output,
        &mut scratch,
    )
}

/// Sets channels `from..stride` of every position (row of `stride` values) of `output` to
/// `value`: the channels a narrower width does not compute ([`conv1d_active`],
/// [`depthwise1d_active`]) become the zero point, which the next layer's padded rows and
/// folded biases take as zero.
#[inline(never)]
pub fn fill_channels(
    output: &mut [i8],
    stride: usize,
    from: usize,
    value: i8,
) -> Result<(), ShapeError> {
    if stride == 0 || from > stride || !output.len().is_multiple_of(stride) {
        return Err(ShapeError);
    }
    for row in output.chunks_exact_mut(stride) {
        if let Some(rest) = row.get_mut(from..) {
            rest.fill(value);
        }
    }
    Ok(())
}

/// [`conv1d`] as one out-of-line function per instance, for layers whose shape occurs more
/// than once in a model (a multi-branch model's branches): they share one copy of the code
/// instead of each inlining its own. Out of line, nothing folds from the call site, so
/// `WIDTH`, `POOL` and the requantisation form (`FORM`, see [`requant_form_1d`]) are
/// compile-time too; they must agree with `params`, else `ShapeError`.
#[inline(never)]
pub fn conv1d_shared<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const WIDTH: usize,
    const POOL: bool,
    const FORM: u8,
>(
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if params.kernel != K
        || params.width != WIDTH
        || params.pool != POOL
        || params
            .requant
            .form_1d(params.bias, conv1d_row_len(IN_CH, K))
            != FORM
    {
        return Err(ShapeError);
    }
    let params = Conv1d {
        width: WIDTH,
        pool: POOL,
        ..*params
    };
    let mut scratch = [const { core::mem::MaybeUninit::<u32>::uninit() }; SCRATCH];
    conv1d_impl(
        IN_CH,
        OUT_CH,
        OUT_CH,
        K,
        FORM,
        &params,
        padded,
        output,
        &mut scratch,
    )
}

/// [`conv1d`] with shapes known only at run time (host execution, tests); `scratch` holds
/// [`conv1d_scratch_words`] words for narrow weights.
pub fn conv1d_dyn(
    in_ch: usize,
    out_ch: usize,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<(), ShapeError> {
    let form = params
        .requant
        .form_1d(params.bias, conv1d_row_len(in_ch, params.kernel));
    // SAFETY: initialised u32 viewed as possibly-uninitialised: same layout, and the kernel
    // only writes through it before reading.
    let scratch = unsafe {
        core::slice::from_raw_parts_mut(
            scratch.as_mut_ptr().cast::<core::mem::MaybeUninit<u32>>(),
            scratch.len(),
        )
    };
    conv1d_impl(
        in_ch,
        out_ch,
        out_ch,
        params.kernel,
        form,
        params,
        padded,
        output,
        scratch,
    )
}

/// A convolution's packed weights: widened to `i16` in flash (fastest), or kept int8 in flash
/// (half the size) and widened one block of output channels at a time into a stack buffer
/// before the block's positions run — one `SXTB16` pair per four weights, so the cost is a
/// few instructions per weight, not per multiply-accumulate.
#[derive(Clone, Copy, Debug)]
pub enum ConvWeights<'a> {
    /// Packed by [`pack_weights`].
    Wide(&'a [i16]),
    /// Packed by [`pack_weights_narrow`].
    Narrow(&'a [i8]),
    /// 4-bit weights packed by [`subbyte::pack_weights_bits`] (or
    /// [`subbyte::pack_depthwise_weights_bits`]), unpacked like narrow ones.
    Int4(&'a [u8]),
    /// 2-bit weights, as [`ConvWeights::Int4`].
    Int2(&'a [u8]),
}

impl<'a> ConvWeights<'a> {
    /// Bits per stored weight (16 for widened weights).
    pub const fn bits(&self) -> u32 {
        match self {
            ConvWeights::Wide(_) => 16,
            ConvWeights::Narrow(_) => 8,
            ConvWeights::Int4(_) => 4,
            ConvWeights::Int2(_) => 2,
        }
    }

    /// Widened weights, or the stored bytes of int8 and sub-byte ones (which the kernels
    /// read as words) with their width.
    fn storage(&self) -> Storage<'a> {
        match *self {
            ConvWeights::Wide(w) => Storage::Wide(w),
            // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid.
            ConvWeights::Narrow(w) => Storage::Packed(
                unsafe { core::slice::from_raw_parts(w.as_ptr().cast::<u8>(), w.len()) },
                8,
            ),
            ConvWeights::Int4(w) => Storage::Packed(w, 4),
            ConvWeights::Int2(w) => Storage::Packed(w, 2),
        }
    }
}

/// [`ConvWeights`] as the kernels read them.
#[derive(Clone, Copy)]
enum Storage<'a> {
    Wide(&'a [i16]),
    /// Bytes and bits per weight (8, 4 or 2).
    Packed(&'a [u8], u32),
}

/// Unpacks `words` words of `bits`-bit weights (see [`subbyte::unpack_words`]).
///
/// # Safety
/// As [`subbyte::unpack_words`].
#[inline(always)]
unsafe fn unpack_words(bits: u32, src: *const u32, words: usize, dst: *mut u32) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match bits {
            4 => subbyte::unpack_words::<4>(src, words, dst),
            2 => subbyte::unpack_words::<2>(src, words, dst),
            _ => subbyte::unpack_words::<8>(src, words, dst),
        }
    }
}

/// Bytes of one block of [`pack_weights_narrow`] output: `block · row` values rounded up to
/// whole words.
pub const fn narrow_block_bytes(block: usize, row: usize) -> usize {
    subbyte::packed_block_bytes(8, block, row)
}

/// Stack words [`conv1d`] needs for narrow weights of `out_ch` filters with rows of `row`.
pub const fn conv1d_scratch_words(out_ch: usize, row: usize) -> usize {
    subbyte::packed_scratch_words(8, out_ch, row)
}

/// Packs int8 weights like [`pack_weights`] but keeps them int8: per block of
/// [`channel_block`] channels, the same value sequence, each block padded to whole words, and
/// within every word the bytes ordered `v0 v2 v1 v3` so that `SXTB16` yields the pair
/// `(v0, v1)` and `SXTB16 …, ROR #8` the pair `(v2, v3)` — exactly the widened layout.
/// `packed` must hold `(out_ch / block) · narrow_block_bytes(block, row)` bytes.
pub fn pack_weights_narrow(
    weights: &[i8],
    out_ch: usize,
    row_in: usize,
    packed: &mut [i8],
) -> Result<(), ShapeError> {
    nested::pack_weights_narrow_blocked(weights, out_ch, row_in, channel_block(out_ch), packed)
}

fn weights_ok(weights: &[i16], len: usize) -> bool {
    // LDM faults on an unaligned address.
    weights.len() == len && (!HAS_DSP || (weights.as_ptr() as usize).is_multiple_of(4))
}

/// Whether packed weights of `out_ch` rows of `row` values have the right length and (read
/// as words) alignment.
fn packed_weights_ok(weights: ConvWeights, out_ch: usize, row: usize) -> bool {
    match weights.storage() {
        Storage::Wide(w) => weights_ok(w, out_ch * row),
        Storage::Packed(w, bits) => {
            let block = channel_block(out_ch);
            w.len() == out_ch / block * subbyte::packed_block_bytes(bits, block, row)
                && (w.as_ptr() as usize).is_multiple_of(4)
        }
    }
}

fn conv_weights_ok(
    weights: ConvWeights,
    out_ch: usize,
    row: usize,
    scratch: &[core::mem::MaybeUninit<u32>],
) -> bool {
    packed_weights_ok(weights, out_ch, row)
        && (matches!(weights, ConvWeights::Wide(_))
            || scratch.len() >= subbyte::packed_scratch_words(weights.bits(), out_ch, row))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv1d_impl(
    in_ch: usize,
    out_ch: usize,
    active: usize,
    kernel: usize,
    form: u8,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: &mut [core::mem::MaybeUninit<u32>],
) -> Result<(), ShapeError> {
    let row = conv1d_row_len(in_ch, kernel);
    let width = params.width;
    let out_len = if params.pool { width / 2 } else { width } * out_ch;
    if in_ch == 0
        || out_ch == 0
        || kernel == 0
        || !conv_weights_ok(params.weights, out_ch, row, scratch)
        || params.bias.len() != active
        || padded.len() < conv1d_padded_len(width, in_ch, kernel)
        || output.len() != out_len
    {
        return Err(ShapeError);
    }
    params.requant.check(out_ch)?;
    let scratch = scratch.as_mut_ptr().cast::<u32>();
    use requant_form::{BIT31, GENERAL, HIGH_WORD};
    let (o, p) = (output, padded);
    match (channel_block(out_ch), form) {
        (4, HIGH_WORD) => {
            conv_rows::<4, HIGH_WORD>(in_ch, out_ch, active, row, params, p, o, scratch)
        }
        (4, BIT31) => conv_rows::<4, BIT31>(in_ch, out_ch, active, row, params, p, o, scratch),
        (4, _) => conv_rows::<4, GENERAL>(in_ch, out_ch, active, row, params, p, o, scratch),
        (2, HIGH_WORD) => {
            conv_rows::<2, HIGH_WORD>(in_ch, out_ch, active, row, params, p, o, scratch)
        }
        (2, BIT31) => conv_rows::<2, BIT31>(in_ch, out_ch, active, row, params, p, o, scratch),
        (2, _) => conv_rows::<2, GENERAL>(in_ch, out_ch, active, row, params, p, o, scratch),
        (_, HIGH_WORD) => {
            conv_rows::<1, HIGH_WORD>(in_ch, out_ch, active, row, params, p, o, scratch)
        }
        (_, BIT31) => conv_rows::<1, BIT31>(in_ch, out_ch, active, row, params, p, o, scratch),
        (_, _) => conv_rows::<1, GENERAL>(in_ch, out_ch, active, row, params, p, o, scratch),
    }
    Ok(())
}

/// Output channel `b + j`'s accumulator to int8 in the form `FORM`: the block's prepared
/// one-rounding constants, or the general double rounding.
#[inline(always)]
fn finish_output<const FORM: u8>(
    fast: &[FastChannel],
    requant: &Requant,
    acc: i32,
    b: usize,
    j: usize,
) -> i8 {
    if requant_form::one_rounding(FORM) {
        // SAFETY: j < BLOCK = fast.len() in every caller's loop.
        unsafe { fast.get_unchecked(j) }.finish_form::<FORM>(acc, requant)
    } else {
        requant.finish(acc, b + j)
    }
}

/// Block of `BLOCK` output channels outside, positions inside: the block's requantisation
/// constants are prepared once and its packed weights stay hot.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv_rows<const BLOCK: usize, const FORM: u8>(
    in_ch: usize,
    out_ch: usize,
    active: usize,
    row: usize,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: *mut u32,
) {
    let pairs = row / 2;
    let width = params.width;
    let requant = &params.requant;
    let monotonic = requant.monotonic();
    let window = padded.as_ptr();
    let out = output.as_mut_ptr();
    let mut b = 0;
    // `active` is `out_ch` but for [`conv1d_active`]: the leading channels, at full stride.
    while b < active {
        // SAFETY: lengths were checked by the caller: the block's packed weights are
        // weights[b·row .. (b+BLOCK)·row]; every window read ends at x·in_ch + row ≤
        // (width−1)·in_ch + kernel·in_ch + 1 ≤ conv1d_padded_len; outputs are written below
        // out_len.
        unsafe {
            // Narrow and sub-byte weights: the block's words unpack into `scratch` (checked to
            // hold packed_scratch_words), giving the wide layout.
            let w = match params.weights.storage() {
                Storage::Wide(w) => w.as_ptr().add(b * row).cast::<u32>(),
                Storage::Packed(w, bits) => {
                    let bytes = subbyte::packed_block_bytes(bits, BLOCK, row);
                    let src = w.as_ptr().add(b / BLOCK * bytes).cast::<u32>();
                    unpack_words(bits, src, bytes / 4, scratch);
                    scratch.cast_const()
                }
            };
            let mut bias = [0i32; BLOCK];
            let mut fast_ch = [FastChannel::default(); BLOCK];
            for j in 0..BLOCK {
                bias[j] = *params.bias.get_unchecked(b + j);
                if requant_form::one_rounding(FORM) {
                    fast_ch[j] = requant.one_rounding_channel::<FORM>(b + j);
                }
            }
            // A function forced inline, not a closure: the optimiser declined to inline the
            // closure this was into the unpooled loop (+4 instructions per output, +45 % on a
            // pointwise layer of the kinglet default).
            let finish =
                |acc: i32, j: usize| -> i8 { finish_output::<FORM>(&fast_ch, requant, acc, b, j) };
            if params.pool {
                let mut x = 0;
                while x + 1 < width {
                    let mut acc0 = bias;
                    let mut acc1 = bias;
                    dsp::dot_block_pair::<BLOCK>(
                        window.add(x * in_ch),
                        window.add((x + 1) * in_ch),
                        w,
                        pairs,
                        &mut acc0,
                        &mut acc1,
                    );
                    let dst = out.add((x / 2) * out_ch + b);
                    for j in 0..BLOCK {
                        *dst.add(j) = if monotonic || requant_form::one_rounding(FORM) {
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

/// Largest kernel [`depthwise1d`] takes (its filter pairs stay in registers).
pub const DEPTHWISE_MAX_KERNEL: usize = 16;

/// A 1D depthwise convolution with depth multiplier 1, stride 1 and dilation 1 (SAME or VALID
/// padding), over the channel-major buffer [`widen_channel_major`] makes: each output is
/// `kernel` taps of one channel, so pairs of adjacent taps feed one `SMLAD` — channels-last
/// data would pair two channels, whose products `SMLAD` cannot keep apart.
#[derive(Clone, Copy, Debug)]
pub struct Depthwise1d<'a> {
    /// Output positions.
    pub width: usize,
    /// Kernel size (taps), at most [`DEPTHWISE_MAX_KERNEL`].
    pub kernel: usize,
    /// Per channel, its `kernel` taps padded with zeros to `2 · depthwise_pairs(kernel)`
    /// values: widened ([`pack_depthwise_weights`]) or packed in whole words per channel
    /// ([`subbyte::pack_depthwise_weights_bits`]), unpacked into registers once per channel.
    pub weights: ConvWeights<'a>,
    /// `bias − zp_in · Σ w` per channel.
    pub bias: &'a [i32],
    pub requant: Requant<'a>,
}

/// Runs [`Depthwise1d`] inlined at the call site (`CH`, `K` and `FORM` compile-time, see
/// [`conv1d`]).
#[inline(always)]
pub fn depthwise1d<const CH: usize, const K: usize, const FORM: u8>(
    params: &Depthwise1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if params.kernel != K || params.requant.form_1d(params.bias, K) != FORM {
        return Err(ShapeError);
    }
    depthwise1d_impl(CH, CH, K, FORM, params, padded, output)
}

/// [`depthwise1d`] on the leading `active` channels only, at the full stride of `CH`
/// channels per position (see [`conv1d_active`]); `params.bias` holds `active` values.
#[inline(always)]
pub fn depthwise1d_active<const CH: usize, const K: usize, const FORM: u8>(
    params: &Depthwise1d,
    padded: &[i16],
    output: &mut [i8],
    active: usize,
) -> Result<(), ShapeError> {
    if params.kernel != K
        || active == 0
        || active > CH
        || !params.requant.form_fits(FORM, params.bias, K)
    {
        return Err(ShapeError);
    }
    depthwise1d_impl(CH, active, K, FORM, params, padded, output)
}

/// [`depthwise1d`] out of line, shared by layers of the same shape (see [`conv1d_shared`]).
#[inline(never)]
pub fn depthwise1d_shared<const CH: usize, const K: usize, const WIDTH: usize, const FORM: u8>(
    params: &Depthwise1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if params.kernel != K || params.width != WIDTH || params.requant.form_1d(params.bias, K) != FORM
    {
        return Err(ShapeError);
    }
    let params = Depthwise1d {
        width: WIDTH,
        ..*params
    };
    depthwise1d_impl(CH, CH, K, FORM, &params, padded, output)
}

/// [`depthwise1d`] with shapes known only at run time (host execution, tests).
pub fn depthwise1d_dyn(
    channels: usize,
    params: &Depthwise1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let form = params.requant.form_1d(params.bias, params.kernel);
    depthwise1d_impl(
        channels,
        channels,
        params.kernel,
        form,
        params,
        padded,
        output,
    )
}

#[inline(always)]
fn depthwise1d_impl(
    channels: usize,
    active: usize,
    kernel: usize,
    form: u8,
    params: &Depthwise1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let width = params.width;
    let pairs = depthwise_pairs(kernel);
    if channels == 0
        || kernel == 0
        || kernel > DEPTHWISE_MAX_KERNEL
        || !depthwise_weights_ok(params.weights, channels, kernel)
        || params.bias.len() != active
        || padded.len() != channels * depthwise_row_len(width, kernel)
        || output.len() != width * channels
    {
        return Err(ShapeError);
    }
    params.requant.check(channels)?;
    use requant_form::{BIT31, GENERAL, HIGH_WORD};
    match form {
        HIGH_WORD => depthwise_rows::<HIGH_WORD>(channels, active, pairs, params, padded, output),
        BIT31 => depthwise_rows::<BIT31>(channels, active, pairs, params, padded, output),
        _ => depthwise_rows::<GENERAL>(channels, active, pairs, params, padded, output),
    }
    Ok(())
}

fn depthwise_weights_ok(weights: ConvWeights, channels: usize, kernel: usize) -> bool {
    match weights.storage() {
        Storage::Wide(w) => weights_ok(w, channels * 2 * depthwise_pairs(kernel)),
        Storage::Packed(w, bits) => {
            w.len() == channels * subbyte::depthwise_packed_channel_bytes(bits, kernel)
                && (w.as_ptr() as usize).is_multiple_of(4)
        }
    }
}

/// Channel outside (its taps and requantisation constants in registers), positions inside.
#[inline(always)]
fn depthwise_rows<const FORM: u8>(
    channels: usize,
    active: usize,
    pairs: usize,
    params: &Depthwise1d,
    padded: &[i16],
    output: &mut [i8],
) {
    let width = params.width;
    let row_len = depthwise_row_len(width, params.kernel);
    let requant = &params.requant;
    let out = output.as_mut_ptr();
    for c in 0..active {
        // SAFETY: the caller checked weights (2·pairs per channel), bias and requantisation
        // (one per channel), padded (row_len per channel) and output (width·channels). The
        // last pair read of a row starts at (width−1) + 2·(pairs−1) and ends at
        // width + 2·pairs − 2 ≤ width + kernel − 1 < row_len.
        unsafe {
            let mut taps = [0u32; DEPTHWISE_MAX_KERNEL / 2];
            match params.weights.storage() {
                Storage::Wide(w) => {
                    let w = w.as_ptr().add(2 * pairs * c);
                    for (p, t) in taps.iter_mut().enumerate().take(pairs) {
                        *t = dsp::read_pair(w.add(2 * p));
                    }
                }
                Storage::Packed(w, bits) => {
                    // A channel's 2·pairs ≤ 16 values fill at most 8 words of pairs.
                    let bytes = subbyte::depthwise_packed_channel_bytes(bits, params.kernel);
                    let src = w.as_ptr().add(c * bytes).cast::<u32>();
                    unpack_words(bits, src, bytes / 4, taps.as_mut_ptr());
                }
            }
            let bias = *params.bias.get_unchecked(c);
            let fast_ch = if requant_form::one_rounding(FORM) {
                requant.one_rounding_channel::<FORM>(c)
            } else {
                FastChannel::default()
            };
            let src = padded.as_ptr().add(c * row_len);
            for x in 0..width {
                let mut acc = bias;
                for (p, &t) in taps.iter().enumerate().take(pairs) {
                    acc = dsp::smlad(dsp::read_pair(src.add(x + 2 * p)), t, acc);
                }
                *out.add(x * channels + c) = if requant_form::one_rounding(FORM) {
                    fast_ch.finish_form::<FORM>(acc, requant)
                } else {
                    requant.finish(acc, c)
                };
            }
        }
    }
}

/// Packs depthwise weights `[1, 1, kernel, channels]` (TFLite layout, multiplier 1) into
/// [`Depthwise1d::weights`] order: per channel, its taps, then a zero to a whole pair.
pub fn pack_depthwise_weights(
    weights: &[i8],
    channels: usize,
    kernel: usize,
    packed: &mut [i16],
) -> Result<(), ShapeError> {
    let per_channel = 2 * depthwise_pairs(kernel);
    if weights.len() != channels * kernel || packed.len() != channels * per_channel {
        return Err(ShapeError);
    }
    for (c, row) in packed.chunks_exact_mut(per_channel).enumerate() {
        for (t, v) in row.iter_mut().enumerate() {
            *v = if t < kernel {
                i16::from(weights[t * channels + c])
            } else {
                0
            };
        }
    }
    Ok(())
}

/// Mean over the middle axis of `[outer, count, channels]` (a global average pool), as
/// kinglet-micro's `mean_hw_i8` (TFLite reference `QuantizedMeanOrSum`) computes it but with
/// its requantisation (`multiplier`, `shift`: `s_in / s_out` with `1/count` absorbed) derived at
/// compile time — at run time that derivation needs soft-float double on Cortex-M4.
#[allow(clippy::too_many_arguments)]
pub fn mean_i8(
    input: &[i8],
    count: usize,
    channels: usize,
    input_zero_point: i32,
    output_zero_point: i32,
    multiplier: i32,
    shift: i32,
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let image = count * channels;
    if image == 0
        || !input.len().is_multiple_of(image)
        || output.len() != input.len() / image * channels
        || multiplier < 0
        || !(-31..=30).contains(&shift)
    {
        return Err(ShapeError);
    }
    let zp_sum = (i64::from(input_zero_point) * count as i64) as i32;
    for (rows, out) in input
        .chunks_exact(image)
        .zip(output.chunks_exact_mut(channels))
    {
        for (c, o) in out.iter_mut().enumerate() {
            let mut sum = 0i32;
            for i in 0..count {
                // SAFETY: i·channels + c < count·channels = rows.len().
                sum = sum.wrapping_add(i32::from(unsafe { *rows.get_unchecked(i * channels + c) }));
            }
            let v = multiply_by_quantized_multiplier(sum.wrapping_sub(zp_sum), multiplier, shift)
                .saturating_add(output_zero_point);
            *o = v.clamp(-128, 127) as i8;
        }
    }
    Ok(())
}

/// Output requantisation of a fully-connected layer as TFLite's reference kernel computes it:
/// `round(acc · scale)` in double precision, ties away from zero, then the zero point
/// (saturating) and the clamp — kinglet-micro's `Requant::Double`. Q31 fixed point cannot
/// reproduce it: it rounds twice (and approximates the scale), so a product whose fixed-point
/// intermediate lands exactly on a half (e.g. `−75.4997` → `−77312 / 2^10 = −75.5`) rounds
/// away from zero where the reference rounds to nearest.
#[derive(Clone, Copy, Debug)]
pub struct FcRequant<'a> {
    /// `(double)s_in · (double)s_w[o] / (double)s_out` per output (kinglet-micro
    /// `fc_reference_scales`).
    pub scales: &'a [f64],
    /// Output zero point.
    pub output_offset: i32,
    /// Clamp range (fused activation and storage range).
    pub act_min: i32,
    pub act_max: i32,
}

impl FcRequant<'_> {
    fn check(&self, outputs: usize) -> Result<(), ShapeError> {
        let ok = self.scales.len() == outputs
            && self.scales.iter().all(|s| s.is_finite())
            && self.act_min <= self.act_max
            && self.act_min >= -128
            && self.act_max <= 127;
        if ok { Ok(()) } else { Err(ShapeError) }
    }

    #[inline(always)]
    fn finish(&self, acc: i32, ch: usize) -> i8 {
        // SAFETY: `check` verified one scale per output.
        let scale = unsafe { *self.scales.get_unchecked(ch) };
        requantize_double(acc, scale)
            .saturating_add(self.output_offset)
            .clamp(self.act_min, self.act_max) as i8
    }
}

/// `round(acc · scale)` with the product rounded to double precision first and ties away from
/// zero, saturated to `i32`: bit for bit `round_f64(f64::from(acc) * scale) as i32`, what
/// TFLite's reference fully-connected kernel computes, in integer arithmetic (soft-float
/// double costs ~800 instructions per output on Cortex-M4 and ~16 kB of flash).
///
/// With `scale = S · 2^−k` (S the 53-bit significand) and `N = |acc| · S`, the exact product
/// is `N / 2^k`. Rounding it to double keeps the 53 leading bits of N (nearest, ties even);
/// every half-integer `(2q+1) · 2^(k−1)` below 2^31 lies on that grid and is even there, so the
/// double product reaches or passes one exactly when N is at most half a grid step `w` below
/// it. Hence the result is `(N + 2^(k−1) + w) >> k`, with `w = 2^(bits(N) − 54)` (0 when N
/// has at most 53 bits); the sign is applied last, as both roundings are symmetric.
///
/// The common case takes a shorter path: with the 31-bit multiplier `M = ⌊S / 2^22⌋` and
/// `sh = k − 22`, `|acc|·M / 2^sh` is within `|p|·2^−30` of the exact product `p` (and the
/// double rounding within `|p|·2^−53`), so for `|p| < 2^10` its rounding is exact unless its
/// fraction lies within 2^−19 of one half; those near-ties, huge products and unusual scales
/// take the exact path.
#[inline]
pub fn requantize_double(acc: i32, scale: f64) -> i32 {
    let bits = scale.to_bits();
    let biased_exp = ((bits >> 52) & 0x7ff) as u32;
    // sh = k − 22 = 1053 − biased_exp in 20..=62 (scales from about 2^−32 to 2^10).
    let sh = 1053u32.wrapping_sub(biased_exp);
    if (20..=62).contains(&sh) {
        let multiplier = ((bits >> 22) & ((1 << 30) - 1)) | (1 << 30);
        let half = 1u64 << (sh - 1);
        let h = u64::from(acc.unsigned_abs()) * multiplier + half;
        let rounded = h >> sh;
        let fraction = h & ((half << 1) - 1);
        let margin = 1u64 << (sh - 19);
        if rounded < 1 << 10 && fraction >= margin && fraction <= (half << 1) - margin {
            let r = rounded as i32;
            return if acc < 0 { -r } else { r };
        }
    }
    requantize_double_exact(acc, scale)
}

/// [`requantize_double`]'s exact path (out of line: near-ties and extremes are rare).
#[inline(never)]
#[cold]
fn requantize_double_exact(acc: i32, scale: f64) -> i32 {
    let bits = scale.to_bits();
    let biased_exp = ((bits >> 52) & 0x7ff) as i32;
    let n = u64::from(acc.unsigned_abs());
    // Zero, subnormal (< 2^−1022) and negative-zero scales give |product| < 0.5.
    if n == 0 || biased_exp == 0 {
        return 0;
    }
    let significand = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let k = 1075 - biased_exp;
    let magnitude: u64 = if k <= 0 {
        // scale ≥ 2^52: the product is at least 2^52.
        u64::MAX
    } else if k > 126 {
        // |product| < 2^84 · 2^−127.
        0
    } else {
        // N = n · S as hi · 2^64 + lo (n < 2^32, S < 2^53: N < 2^85).
        let low = n * (significand & 0xffff_ffff);
        let high = n * (significand >> 32);
        let (lo, carry) = low.overflowing_add(high << 32);
        let hi = (high >> 32) + u64::from(carry);
        let bit_len = if hi != 0 {
            128 - hi.leading_zeros()
        } else {
            64 - lo.leading_zeros()
        };
        let (lo, hi) = add_pow2(lo, hi, (k - 1) as u32);
        let (lo, hi) = if bit_len >= 54 {
            add_pow2(lo, hi, bit_len - 54)
        } else {
            (lo, hi)
        };
        let k = k as u32;
        if k >= 64 {
            hi >> (k - 64)
        } else if hi >> k != 0 {
            u64::MAX
        } else {
            (lo >> k) | (hi << (64 - k))
        }
    };
    if acc < 0 {
        if magnitude >= 1 << 31 {
            i32::MIN
        } else {
            -(magnitude as i32)
        }
    } else {
        magnitude.min(i32::MAX as u64) as i32
    }
}

/// `(lo, hi) + 2^bit` for a 128-bit value split in halves (`bit < 128`, no overflow).
#[inline(always)]
fn add_pow2(lo: u64, hi: u64, bit: u32) -> (u64, u64) {
    if bit >= 64 {
        (lo, hi + (1u64 << (bit - 64)))
    } else {
        let (lo, carry) = lo.overflowing_add(1u64 << bit);
        (lo, hi + u64::from(carry))
    }
}

/// A fully-connected layer on an int8 vector widened by [`widen_padded_before`] with
/// `in_ch = in_len` and no padding before: `padded` holds the vector and, for an odd `in_len`,
/// one more value the zero weight of the last pair multiplies ([`fc_row_len`] in all).
#[derive(Clone, Copy, Debug)]
pub struct FullyConnected<'a> {
    /// Weights packed by [`pack_weights`] or [`pack_weights_narrow`] (`row_in = in_len`).
    /// Narrow weights are widened in registers as they are read (each is used once), so they
    /// need no scratch buffer.
    pub weights: ConvWeights<'a>,
    /// `bias − zp_in · Σ w` per output.
    pub bias: &'a [i32],
    pub requant: FcRequant<'a>,
}

/// Runs [`FullyConnected`]; `BITS` is its weights' [`ConvWeights::bits`] (else
/// `ShapeError`), so a model links only the kernel its layer uses.
pub fn fully_connected<const IN_LEN: usize, const OUT_LEN: usize, const BITS: u32>(
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if params.weights.bits() != BITS {
        return Err(ShapeError);
    }
    fully_connected_impl::<BITS>(IN_LEN, OUT_LEN, params, padded, output)
}

/// [`fully_connected`] with sizes known only at run time (host execution, tests).
pub fn fully_connected_dyn(
    in_len: usize,
    out_len: usize,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    match params.weights.bits() {
        16 => fully_connected_impl::<16>(in_len, out_len, params, padded, output),
        8 => fully_connected_impl::<8>(in_len, out_len, params, padded, output),
        4 => fully_connected_impl::<4>(in_len, out_len, params, padded, output),
        _ => fully_connected_impl::<2>(in_len, out_len, params, padded, output),
    }
}

/// `BITS` must agree with `params.weights` (the callers check).
#[inline(always)]
fn fully_connected_impl<const BITS: u32>(
    in_len: usize,
    out_len: usize,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let row = fc_row_len(in_len);
    if out_len == 0
        || (BITS < 8 && row > subbyte::PACKED_FC_MAX_ROW)
        || !packed_weights_ok(params.weights, out_len, row)
        || params.bias.len() != out_len
        || padded.len() < row
        || output.len() != out_len
    {
        return Err(ShapeError);
    }
    params.requant.check(out_len)?;
    match channel_block(out_len) {
        4 => fc_blocks::<4, BITS>(in_len, out_len, params, padded, output),
        2 => fc_blocks::<2, BITS>(in_len, out_len, params, padded, output),
        _ => fc_blocks::<1, BITS>(in_len, out_len, params, padded, output),
    }
    Ok(())
}

#[inline(always)]
fn fc_blocks<const BLOCK: usize, const BITS: u32>(
    in_len: usize,
    out_len: usize,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) {
    let row = fc_row_len(in_len);
    let weights = match params.weights.storage() {
        Storage::Wide(w) => w.as_ptr().cast::<u32>(),
        Storage::Packed(w, _) => w.as_ptr().cast::<u32>(),
    };
    let packed_block_words = subbyte::packed_block_bytes(BITS, BLOCK, row) / 4;
    let mut b = 0;
    while b < out_len {
        // SAFETY: the vector read covers padded[..row]; the block's weights are
        // weights[b·row .. (b+BLOCK)·row] (wide) or block b/BLOCK of narrow_block_bytes
        // (narrow, whose ⌈BLOCK·row/4⌉ words dot_block_narrow reads); b + j < out_len =
        // output.len() (checked).
        unsafe {
            let mut acc = [0i32; BLOCK];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = *params.bias.get_unchecked(b + j);
            }
            if BITS < 8 {
                // Sub-byte pairs come scaled by 2^(8−BITS) (see subbyte::scaled_pairs): the
                // dot product accumulates from zero, then divides exactly (row ≤
                // PACKED_FC_MAX_ROW keeps it in range) before the bias joins it.
                let w = weights.add(b / BLOCK * packed_block_words);
                let mut dot = [0i32; BLOCK];
                match BITS {
                    4 => {
                        subbyte::dot_block_packed::<BLOCK, 4>(padded.as_ptr(), w, row / 2, &mut dot)
                    }
                    _ => {
                        subbyte::dot_block_packed::<BLOCK, 2>(padded.as_ptr(), w, row / 2, &mut dot)
                    }
                }
                for (a, d) in acc.iter_mut().zip(dot) {
                    *a = a.wrapping_add(d >> (8 - BITS));
                }
            } else if BITS == 8 {
                let w = weights.add(b / BLOCK * packed_block_words);
                dsp::dot_block_narrow::<BLOCK>(padded.as_ptr(), w, row / 2, &mut acc);
            } else {
                let w = weights.add(b * row / 2);
                dsp::dot_block::<BLOCK>(padded.as_ptr(), w, row / 2, &mut acc);
            }
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
        self.finish_form::<{ requant_form::HIGH_WORD }>(acc, r)
    }

    /// `FORM` is `HIGH_WORD` or `BIT31` (see [`requant_form`]).
    #[inline(always)]
    fn finish_form<const FORM: u8>(&self, acc: i32, r: &Requant) -> i8 {
        let product = i64::from(acc) * i64::from(self.multiplier) + self.addend;
        let high = if FORM == requant_form::BIT31 {
            (product >> 31) as i32
        } else {
            (product >> 32) as i32
        };
        (high >> self.shift)
            .wrapping_add(r.output_offset)
            .clamp(r.act_min, r.act_max) as i8
    }
}

/// Whether requantisation with these shifts, zero point and clamp floor takes the
/// one-rounding form (see `Requant::fast`): the `FAST` parameter of the 2D kernels.
#[inline(always)]
pub fn requant_is_fast(shifts: &[i32], output_offset: i32, act_min: i32) -> bool {
    act_min >= output_offset && shifts.iter().all(|&s| s <= -1)
}

/// How a 1D layer's requantisation is computed: the `FORM` parameter of [`conv1d_shared`]
/// and [`depthwise1d_shared`] (a `u8` because stable Rust takes no enum as a const
/// parameter).
pub mod requant_form {
    /// TFLite's double rounding per output ([`super::requantize_right_shift`]).
    pub const GENERAL: u8 = 0;
    /// One rounding, the high word of the 64-bit product: every shift is a right shift.
    pub const HIGH_WORD: u8 = 1;
    /// One rounding from bit 31 of the product: some channel has shift 0 (no right shift,
    /// common with 2-bit weights, whose scales are large), which the high word cannot
    /// express. One instruction more per output than `HIGH_WORD`, several fewer than
    /// `GENERAL`.
    pub const BIT31: u8 = 2;

    /// Whether `form` rounds once (`HIGH_WORD` or `BIT31`).
    #[inline(always)]
    pub const fn one_rounding(form: u8) -> bool {
        form != GENERAL
    }
}

/// Largest accumulator magnitude for which [`requant_form::BIT31`] is exact: bit 31 of the
/// product, plus the rounding addends, must stay inside an `i32`.
const BIT31_MAX_ACCUMULATOR: i64 = 1 << 29;

/// The requantisation form of a 1D layer (see [`requant_form`]). `row` is the number of
/// products per accumulator and `bias` the folded biases: with int8 inputs (|x − zp| ≤ 255)
/// and weights (|w| ≤ 128) they bound every accumulator, which `BIT31` needs.
#[inline(always)]
pub fn requant_form_1d(
    shifts: &[i32],
    output_offset: i32,
    act_min: i32,
    bias: &[i32],
    row: usize,
) -> u8 {
    if requant_is_fast(shifts, output_offset, act_min) {
        requant_form::HIGH_WORD
    } else if bit31_fits(shifts, output_offset, act_min, bias, row) {
        requant_form::BIT31
    } else {
        requant_form::GENERAL
    }
}

/// Whether the `BIT31` form is exact here: no left shifts, a ReLU-style clamp floor, and every
/// accumulator (bias plus `row` products of int8 inputs and weights) within its bound.
#[inline(always)]
fn bit31_fits(shifts: &[i32], output_offset: i32, act_min: i32, bias: &[i32], row: usize) -> bool {
    let largest_bias = bias.iter().map(|&b| i64::from(b).abs()).max().unwrap_or(0);
    let bound = largest_bias.saturating_add(255 * 128 * row as i64);
    act_min >= output_offset && shifts.iter().all(|&s| s <= 0) && bound <= BIT31_MAX_ACCUMULATOR
}

/// Whether requantisation form `form` computes exactly for a layer with these biases and
/// `row` products per accumulator: [`requant_form_1d`]'s choice, or any form it would have
/// allowed (`GENERAL` always; `BIT31` within its accumulator bound). One schedule serving
/// several widths ([`conv1d_active`]) fixes the form that fits every width's biases.
#[inline(always)]
pub fn requant_form_fits(
    form: u8,
    shifts: &[i32],
    output_offset: i32,
    act_min: i32,
    bias: &[i32],
    row: usize,
) -> bool {
    match form {
        requant_form::HIGH_WORD => requant_is_fast(shifts, output_offset, act_min),
        requant_form::BIT31 => bit31_fits(shifts, output_offset, act_min, bias, row),
        _ => true,
    }
}

impl Requant<'_> {
    /// Whether `form` computes exactly with these biases ([`requant_form_fits`]).
    #[inline(always)]
    fn form_fits(&self, form: u8, bias: &[i32], row: usize) -> bool {
        requant_form_fits(
            form,
            self.shifts,
            self.output_offset,
            self.act_min,
            bias,
            row,
        )
    }

    /// Whether the one-rounding form applies: every shift is a right shift of at least one
    /// and the clamp's floor is at or above the zero point (ReLU-style). Then
    /// `RoundingDivideByPOT(SRDHM(x, m), e)` equals `(x·m + 2^30 + 2^(30+e)) >> (31+e)` for
    /// every result the clamp can let through: for non-negative SRDHM results both
    /// floor-divisions compose exactly, and negative ones end at or below the zero point
    /// either way, where the clamp maps them to `act_min`.
    fn fast(&self) -> bool {
        requant_is_fast(self.shifts, self.output_offset, self.act_min)
    }

    /// The requantisation form of a 1D layer with these biases and `row` products per
    /// accumulator ([`requant_form_1d`]).
    #[inline(always)]
    fn form_1d(&self, bias: &[i32], row: usize) -> u8 {
        requant_form_1d(self.shifts, self.output_offset, self.act_min, bias, row)
    }

    #[inline(always)]
    fn fast_channel(&self, ch: usize) -> FastChannel {
        self.one_rounding_channel::<{ requant_form::HIGH_WORD }>(ch)
    }

    /// The constants of one channel in a one-rounding `FORM` (`HIGH_WORD`: every shift
    /// −31..=−1; `BIT31`: −31..=0, as `fast` and `form_1d` verified).
    #[inline(always)]
    fn one_rounding_channel<const FORM: u8>(&self, ch: usize) -> FastChannel {
        // SAFETY: `check` verified one entry per channel.
        let (m, s) = unsafe {
            (
                *self.multipliers.get_unchecked(ch),
                *self.shifts.get_unchecked(ch),
            )
        };
        let e = (-s) as u32;
        // BIT31: `((x·m + 2^30 + 2^(30+e)) >> 31) >> e`, the same one rounding as HIGH_WORD
        // for e ≥ 1; for e = 0 TFLite applies no rounding divide and the result is
        // SRDHM's `(x·m + 2^30) >> 31` alone.
        let addend = if FORM == requant_form::BIT31 && e == 0 {
            1i64 << 30
        } else {
            (1i64 << 30) + (1i64 << (30 + e))
        };
        FastChannel {
            multiplier: m,
            addend,
            shift: if FORM == requant_form::BIT31 {
                e
            } else {
                e - 1
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinglet_micro::fmath::round_f64;

    /// The definition: TFLite's reference fully-connected requantisation.
    fn by_definition(acc: i32, scale: f64) -> i32 {
        round_f64(f64::from(acc) * scale) as i32
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 11
        }
    }

    /// Both one-rounding forms against TFLite's `MultiplyByQuantizedMultiplier` then zero
    /// point and clamp, on random accumulators inside the bound `requant_form_1d` checks,
    /// ReLU-style clamps and every shift the form admits (BIT31 includes shift 0).
    #[test]
    fn one_rounding_forms_match_tflite() {
        let mut rng = Lcg(3);
        for form in [requant_form::HIGH_WORD, requant_form::BIT31] {
            let lowest_shift = if form == requant_form::BIT31 { 0 } else { -1 };
            for _ in 0..200_000 {
                let multiplier = (1 << 30) + (rng.next() % (1 << 30)) as i32;
                let shift = lowest_shift - (rng.next() % 31) as i32;
                let shift = shift.max(-31);
                let acc = match rng.next() % 3 {
                    0 => (rng.next() % (2 << 29)) as i32 - (1 << 29),
                    1 => (rng.next() % 20_001) as i32 - 10_000,
                    _ => ((rng.next() % (2 << 29)) as i32 - (1 << 29)) >> (rng.next() % 29),
                };
                let output_offset = (rng.next() % 256) as i32 - 128;
                let act_min = output_offset.max(-128);
                let requant = Requant {
                    multipliers: &[multiplier],
                    shifts: &[shift],
                    output_offset,
                    act_min,
                    act_max: 127,
                };
                let expected = multiply_by_quantized_multiplier(acc, multiplier, shift)
                    .wrapping_add(output_offset)
                    .clamp(act_min, 127) as i8;
                let got = match form {
                    requant_form::BIT31 => requant
                        .one_rounding_channel::<{ requant_form::BIT31 }>(0)
                        .finish_form::<{ requant_form::BIT31 }>(acc, &requant),
                    _ => requant.fast_channel(0).finish(acc, &requant),
                };
                assert_eq!(
                    got, expected,
                    "form {form} acc {acc} m {multiplier} s {shift}"
                );
            }
        }
    }

    #[test]
    fn the_form_falls_back_where_one_rounding_is_not_exact() {
        use requant_form::{BIT31, GENERAL, HIGH_WORD};
        assert_eq!(requant_form_1d(&[-1, -5], 0, 0, &[100], 15), HIGH_WORD);
        assert_eq!(requant_form_1d(&[-1, 0], 0, 0, &[100], 15), BIT31);
        // A left shift, a clamp floor below the zero point, accumulators past 2^29.
        assert_eq!(requant_form_1d(&[1, 0], 0, 0, &[100], 15), GENERAL);
        assert_eq!(requant_form_1d(&[-1, 0], 0, -128, &[100], 15), GENERAL);
        assert_eq!(requant_form_1d(&[-1, 0], 0, 0, &[1 << 29], 15), GENERAL);
        assert_eq!(requant_form_1d(&[-1, 0], 0, 0, &[0], 20_000), GENERAL);
    }

    #[test]
    fn requantize_double_matches_the_definition_on_random_values() {
        let mut rng = Lcg(1);
        for _ in 0..200_000 {
            let acc = match rng.next() % 3 {
                0 => (rng.next() as i32) >> (rng.next() % 31),
                1 => (rng.next() % 2001) as i32 - 1000,
                _ => rng.next() as i32,
            };
            // Scales from 2^-40 to 2^12, plus products of typical f32 scales.
            let scale = match rng.next() % 2 {
                0 => {
                    (rng.next() as f64 / (1u64 << 53) as f64)
                        * 2f64.powi((rng.next() % 52) as i32 - 40)
                }
                _ => {
                    let (a, b, c) = (
                        1e-3 + (rng.next() % 1000) as f32 * 1e-4,
                        1e-4 + (rng.next() % 1000) as f32 * 1e-5,
                        1e-2 + (rng.next() % 1000) as f32 * 1e-3,
                    );
                    f64::from(a) * f64::from(b) / f64::from(c)
                }
            };
            assert_eq!(
                requantize_double(acc, scale),
                by_definition(acc, scale),
                "acc {acc} scale {scale:e}"
            );
        }
    }

    /// Products whose double rounding lands exactly on a half (`acc · scale` a hair off
    /// `q + ½`, the rounded product exactly `q + ½`), exact halves, and extremes.
    #[test]
    fn requantize_double_matches_the_definition_at_ties() {
        let mut rng = Lcg(2);
        let mut double_rounded_ties = 0;
        for _ in 0..100_000 {
            let acc = ((rng.next() % 2_000_000) as i32 + 1)
                * if rng.next().is_multiple_of(2) { 1 } else { -1 };
            let q = (rng.next() % 300) as i32;
            let scale = (f64::from(2 * q + 1) / 2.0 / f64::from(acc)).abs();
            let product = f64::from(acc) * scale;
            if product.abs().fract() == 0.5 {
                // Is the exact product off the half? acc·S ≠ (2q+1)·2^(k−1).
                let bits = scale.to_bits();
                let sig = i128::from((bits & ((1u64 << 52) - 1)) | (1u64 << 52));
                let k = 1075 - ((bits >> 52) & 0x7ff) as i32;
                let exact = i128::from(acc.unsigned_abs()) * sig;
                if exact != i128::from(2 * q + 1) << (k - 1) {
                    double_rounded_ties += 1;
                }
            }
            assert_eq!(
                requantize_double(acc, scale),
                by_definition(acc, scale),
                "acc {acc} scale {scale:e}"
            );
        }
        assert!(
            double_rounded_ties > 1000,
            "only {double_rounded_ties} double-rounded ties"
        );
        for (acc, scale) in [
            (3, 0.5),
            (-3, 0.5),
            (-1, 0.5),
            (1, 0.5),
            (i32::MIN, 1.0),
            (i32::MAX, 1.0),
            (i32::MIN, 0.25),
            (i32::MAX, 3.0),
            (i32::MIN, 3.0),
            (-5, 1e300),
            (5, 1e300),
            (7, 1e-300),
            (7, 5e-324),
            (7, 0.0),
            (0, 1e10),
            (i32::MIN, 2f64.powi(-31)),
            (-140_172, 5.386_e-4),
        ] {
            assert_eq!(
                requantize_double(acc, scale),
                by_definition(acc, scale),
                "acc {acc} scale {scale:e}"
            );
        }
    }
}
