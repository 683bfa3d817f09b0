//! Nested-width (slimmable) layers: one weight blob, the full width's, serves every width,
//! a narrower width using the first `out_ch` filters and, of each filter, the first `in_ch`
//! input channels of every tap. Flash then holds one copy of the weights however many
//! operating modes a model has.
//!
//! A narrower width's filters are not a contiguous slice of the blob ([`crate::pack_weights`]
//! order): its block of output channels may be smaller than the blob's (24 channels pack in
//! blocks of 4, the quarter width's 6 channels would take blocks of 2), and its row is
//! `kernel` runs of `in_ch` values at a stride of the full width's `in_ch`. The kernels here
//! therefore compute in the blob's blocks ([`FullRows::block`], which must divide every
//! width's output count) and, for a width with fewer inputs, take one dot product per tap
//! over that tap's run, which starts on a pair when the channel counts are even. Outputs equal
//! those of [`crate::conv1d`] and [`crate::fully_connected`] on the width's own weights, bit
//! for bit. Only widened and int8 weights are read this way.

use crate::requant_form;
use crate::{
    Conv1d, ConvWeights, FastChannel, FullyConnected, ShapeError, Storage, conv_weights_ok,
    conv1d_padded_len, conv1d_row_len, dsp, fc_row_len, finish_output, narrow_block_bytes,
    packed_weights_ok, subbyte, unpack_words,
};
use filters::{BLOB_ROWS, TAP_RUNS};

/// The shape a nested blob was packed for (by [`pack_weights_blocked`] or
/// [`pack_weights_narrow_blocked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullRows {
    /// The full width's input channels (its `in_len` for a fully-connected layer).
    pub in_ch: usize,
    /// The full width's output channels: the blob's filters.
    pub out_ch: usize,
    /// Output channels each block of the blob interleaves: 1, 2 or 4, dividing every
    /// width's `out_ch` (the largest that does computes fastest).
    pub block: usize,
}

impl FullRows {
    /// A layer's own weights as [`crate::pack_weights`] packs them: the full width is the
    /// layer itself.
    pub const fn new(in_ch: usize, out_ch: usize) -> Self {
        FullRows {
            in_ch,
            out_ch,
            block: crate::channel_block(out_ch),
        }
    }

    /// The compile-time shape of a generated layer's blob.
    const fn blob(in_ch: usize, out_ch: usize, block: usize) -> Self {
        FullRows {
            in_ch,
            out_ch,
            block,
        }
    }

    /// Whether a width of `in_ch` inputs and `out_ch` outputs whose filters have `taps` runs
    /// of inputs can be read from this blob: its channels are whole blocks of the blob's,
    /// and every run of `in_ch` values starts and ends on a pair of the blob's rows (a pair
    /// straddling two runs would mix in a weight of another width).
    pub(crate) fn holds(&self, in_ch: usize, out_ch: usize, taps: usize) -> bool {
        in_ch <= self.in_ch
            && out_ch <= self.out_ch
            && block_divides(self.block, out_ch)
            && block_divides(self.block, self.out_ch)
            && (in_ch == self.in_ch
                || (in_ch.is_multiple_of(2) && (taps == 1 || self.in_ch.is_multiple_of(2))))
    }
}

/// Whether `block` is a block the kernels compute (1, 2 or 4 channels) and divides `out_ch`.
pub(crate) fn block_divides(block: usize, out_ch: usize) -> bool {
    matches!(block, 1 | 2 | 4) && out_ch.is_multiple_of(block)
}

/// Whether `weights` are the blob `full` describes with rows of `row` values, as
/// [`pack_weights_blocked`] or [`pack_weights_narrow_blocked`] lay it out (read as words, so
/// 4-byte aligned where the kernels need it). Widened and int8 weights only: narrower widths
/// do not read sub-byte blobs. (The layer-own checks in lib.rs stay as they are: touching
/// them changes the code generated for the existing kernels.)
pub(crate) fn blob_ok(weights: ConvWeights, full: FullRows, row: usize) -> bool {
    if !block_divides(full.block, full.out_ch) {
        return false;
    }
    let blocks = full.out_ch / full.block;
    match weights {
        ConvWeights::Wide(w) => crate::weights_ok(w, full.out_ch * row),
        ConvWeights::Narrow(w) => {
            w.len() == blocks * narrow_block_bytes(full.block, row)
                && (w.as_ptr() as usize).is_multiple_of(4)
        }
        ConvWeights::Int4(_) | ConvWeights::Int2(_) => false,
    }
}

/// [`blob_ok`] for a convolution, whose int8 weights widen one block at a time into
/// `scratch_words` words.
pub(crate) fn conv_blob_ok(
    weights: ConvWeights,
    full: FullRows,
    row: usize,
    scratch_words: usize,
) -> bool {
    blob_ok(weights, full, row)
        && (matches!(weights, ConvWeights::Wide(_))
            || scratch_words >= nested_conv1d_scratch_words(full.block, row))
}

/// [`crate::pack_weights`] in blocks of `block` channels (1, 2 or 4, dividing `out_ch`; else
/// `ShapeError`) rather than [`crate::channel_block`]`(out_ch)`: a nested blob keeps its
/// block fixed so that every width's channels are whole blocks of it.
pub fn pack_weights_blocked(
    weights: &[i8],
    out_ch: usize,
    row_in: usize,
    block: usize,
    packed: &mut [i16],
) -> Result<(), ShapeError> {
    let row = (row_in + 1) & !1;
    if !block_divides(block, out_ch)
        || weights.len() != out_ch * row_in
        || packed.len() != out_ch * row
    {
        return Err(ShapeError);
    }
    if row == 0 {
        // Empty rows: nothing to pack (and no chunks to cut).
        return Ok(());
    }
    for (bi, dst) in packed.chunks_exact_mut(block * row).enumerate() {
        for (d, v) in dst
            .iter_mut()
            .zip(subbyte::block_values(weights, row_in, block, bi * block))
        {
            *d = i16::from(v);
        }
    }
    Ok(())
}

/// [`crate::pack_weights_narrow`] in blocks of `block` channels (see
/// [`pack_weights_blocked`]); `packed` must hold `(out_ch / block) ·`
/// [`narrow_block_bytes`]`(block, row)` bytes.
pub fn pack_weights_narrow_blocked(
    weights: &[i8],
    out_ch: usize,
    row_in: usize,
    block: usize,
    packed: &mut [i8],
) -> Result<(), ShapeError> {
    // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid.
    let bytes =
        unsafe { core::slice::from_raw_parts_mut(packed.as_mut_ptr().cast::<u8>(), packed.len()) };
    subbyte::pack_weights_bits_blocked(weights, out_ch, row_in, block, 8, bytes)
}

/// Stack words a nested convolution needs for int8 weights: one block of `block` filters of
/// the blob's rows (`full_row = conv1d_row_len(full.in_ch, kernel)`) widened, since a
/// narrower width's taps are read in place from the widened full rows. The `SCRATCH` of
/// [`nested_conv1d`]; widened weights need none.
pub const fn nested_conv1d_scratch_words(block: usize, full_row: usize) -> usize {
    // Every word of int8 weights widens into two words of pairs.
    narrow_block_bytes(block, full_row) / 2
}

/// [`crate::conv1d`] for a width of `IN_CH` inputs and `OUT_CH` outputs of a nested layer
/// whose blob (`params.weights`: `FULL_OUT_CH` filters of `conv1d_row_len(FULL_IN_CH, K)`
/// values, packed in blocks of `BLOCK` channels by [`pack_weights_blocked`] or
/// [`pack_weights_narrow_blocked`]) is the full width's; `params.bias` and `params.requant`
/// are this width's, `padded` its widened input and `FORM` its [`crate::requant_form_1d`]
/// (with this width's row, `conv1d_row_len(IN_CH, K)`). `SCRATCH` is
/// [`nested_conv1d_scratch_words`] for int8 weights. `BLOCK` must divide `OUT_CH` and
/// `FULL_OUT_CH`, and a width with fewer inputs than the blob needs even channel counts
/// (`IN_CH`, and `FULL_IN_CH` when `K > 1`); otherwise `ShapeError`.
#[inline(always)]
pub fn nested_conv1d<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const FORM: u8,
    const FULL_IN_CH: usize,
    const FULL_OUT_CH: usize,
    const BLOCK: usize,
>(
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let full = FullRows::blob(FULL_IN_CH, FULL_OUT_CH, BLOCK);
    if IN_CH == FULL_IN_CH {
        conv1d_on::<IN_CH, OUT_CH, K, SCRATCH, FORM, BLOB_ROWS>(full, params, padded, output)
    } else {
        conv1d_on::<IN_CH, OUT_CH, K, SCRATCH, FORM, TAP_RUNS>(full, params, padded, output)
    }
}

/// [`nested_conv1d`] as one out-of-line function per instance, with `WIDTH`, `POOL` and
/// `FORM` compile-time as in [`crate::conv1d_shared`].
#[inline(never)]
pub fn nested_conv1d_shared<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const WIDTH: usize,
    const POOL: bool,
    const FORM: u8,
    const FULL_IN_CH: usize,
    const FULL_OUT_CH: usize,
    const BLOCK: usize,
>(
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let full = FullRows::blob(FULL_IN_CH, FULL_OUT_CH, BLOCK);
    if IN_CH == FULL_IN_CH {
        conv1d_shared_on::<IN_CH, OUT_CH, K, SCRATCH, WIDTH, POOL, FORM, BLOB_ROWS>(
            full, params, padded, output,
        )
    } else {
        conv1d_shared_on::<IN_CH, OUT_CH, K, SCRATCH, WIDTH, POOL, FORM, TAP_RUNS>(
            full, params, padded, output,
        )
    }
}

/// [`nested_conv1d`] with shapes known only at run time (host execution, tests); `scratch`
/// holds [`nested_conv1d_scratch_words`] words for int8 weights.
pub fn nested_conv1d_dyn(
    in_ch: usize,
    out_ch: usize,
    full: FullRows,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<(), ShapeError> {
    if in_ch == full.in_ch {
        conv1d_dyn_on::<BLOB_ROWS>(in_ch, out_ch, full, params, padded, output, scratch)
    } else {
        conv1d_dyn_on::<TAP_RUNS>(in_ch, out_ch, full, params, padded, output, scratch)
    }
}

/// [`crate::fully_connected`] for a width of `IN_LEN` inputs and `OUT_LEN` outputs of a
/// nested layer whose blob (`params.weights`, `BITS` 16 or 8: `FULL_OUT_LEN` rows of
/// `fc_row_len(FULL_IN_LEN)` values in blocks of `BLOCK`) is the full width's; bias and
/// requantisation are this width's. Each output reads the first `IN_LEN` values of its row
/// in place, so `IN_LEN < FULL_IN_LEN` needs an even `IN_LEN`; `BLOCK` must divide `OUT_LEN`
/// and `FULL_OUT_LEN`. Otherwise `ShapeError`.
pub fn nested_fully_connected<
    const IN_LEN: usize,
    const OUT_LEN: usize,
    const BITS: u32,
    const FULL_IN_LEN: usize,
    const FULL_OUT_LEN: usize,
    const BLOCK: usize,
>(
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let full = FullRows::blob(FULL_IN_LEN, FULL_OUT_LEN, BLOCK);
    fully_connected_on::<BITS, BLOB_ROWS>(IN_LEN, OUT_LEN, full, params, padded, output)
}

/// [`nested_fully_connected`] with sizes known only at run time (host execution, tests);
/// `full.in_ch` is the full width's input length.
pub fn nested_fully_connected_dyn(
    in_len: usize,
    out_len: usize,
    full: FullRows,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    fully_connected_dyn_on::<BLOB_ROWS>(in_len, out_len, full, params, padded, output)
}

/// [`nested_conv1d_dyn`] with the blob's channel block, the width's requantisation form and
/// the filter walk (`TAP_RUNS`: fewer inputs than the blob) fixed at compile time and the
/// shapes at run time. One out-of-line function per combination serves every layer and width
/// that uses it, so a schedule running all widths of a nested network from tables links a
/// few convolution loops rather than one per layer and width. `ShapeError` when `full.block`
/// or the width's form (`requant_form_1d` of its own row) is not the one compiled in.
#[inline(never)]
pub fn nested_conv1d_fixed<const BLOCK: usize, const FORM: u8, const TAP_RUNS_WALK: bool>(
    in_ch: usize,
    out_ch: usize,
    full: FullRows,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<(), ShapeError> {
    let form = params
        .requant
        .form_1d(params.bias, conv1d_row_len(in_ch, params.kernel));
    if full.block != BLOCK || form != FORM {
        return Err(ShapeError);
    }
    let full = FullRows {
        block: BLOCK,
        ..full
    };
    // SAFETY: initialised u32 viewed as possibly-uninitialised: same layout, and the kernel
    // only writes through it before reading.
    let scratch = unsafe {
        core::slice::from_raw_parts_mut(
            scratch.as_mut_ptr().cast::<core::mem::MaybeUninit<u32>>(),
            scratch.len(),
        )
    };
    // The block and form are constants here, so only their loop survives in each instance.
    if TAP_RUNS_WALK {
        conv1d_impl::<TAP_RUNS>(
            in_ch,
            out_ch,
            params.kernel,
            FORM,
            full,
            params,
            padded,
            output,
            scratch,
        )
    } else {
        conv1d_impl::<BLOB_ROWS>(
            in_ch,
            out_ch,
            params.kernel,
            FORM,
            full,
            params,
            padded,
            output,
            scratch,
        )
    }
}

/// [`nested_fully_connected_dyn`] with the blob's block and the weights' bits fixed at compile
/// time (see [`nested_conv1d_fixed`]).
#[inline(never)]
pub fn nested_fully_connected_fixed<const BLOCK: usize, const BITS: u32>(
    in_len: usize,
    out_len: usize,
    full: FullRows,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if full.block != BLOCK || params.weights.bits() != BITS {
        return Err(ShapeError);
    }
    let full = FullRows {
        block: BLOCK,
        ..full
    };
    fully_connected_impl::<BITS, BLOB_ROWS>(in_len, out_len, full, params, padded, output)
}

/// A narrower width's filter row inside the blob's: `taps` runs of `pairs` pairs, run `t`
/// at pair `t·stride` of the blob's row (`stride` = the blob's inputs / 2) and at value
/// `t·2·pairs` of the window (the width's inputs are contiguous there).
#[derive(Clone, Copy)]
pub(crate) struct TapRuns {
    pub(crate) taps: usize,
    pub(crate) pairs: usize,
    pub(crate) stride: usize,
}

impl TapRuns {
    /// `acc[j] +=` the dot product of the window and channel `j`'s runs, one
    /// [`dsp::dot_block`] per tap.
    ///
    /// # Safety
    /// `window` must have `2·pairs·taps` readable values; `weights` a block of `BLOCK`
    /// widened rows of at least `2·stride·taps` values (4-byte aligned on DSP targets).
    #[inline(always)]
    pub(crate) unsafe fn dot<const BLOCK: usize>(
        self,
        window: *const i16,
        weights: *const u32,
        acc: &mut [i32; BLOCK],
    ) {
        for t in 0..self.taps {
            // SAFETY: run t reads window values 2·pairs·t .. 2·pairs·(t+1) and, of the block's
            // rows, pairs t·stride .. t·stride + pairs ≤ taps·stride (pairs ≤ stride): both
            // within what the caller guarantees.
            unsafe {
                dsp::dot_block::<BLOCK>(
                    window.add(2 * self.pairs * t),
                    weights.add(t * self.stride * BLOCK),
                    self.pairs,
                    acc,
                );
            }
        }
    }

    /// [`TapRuns::dot`] at two positions with the same weights ([`dsp::dot_block_pair`]).
    ///
    /// # Safety
    /// As [`TapRuns::dot`], for both windows.
    #[inline(always)]
    pub(crate) unsafe fn dot_pair<const BLOCK: usize>(
        self,
        window0: *const i16,
        window1: *const i16,
        weights: *const u32,
        acc0: &mut [i32; BLOCK],
        acc1: &mut [i32; BLOCK],
    ) {
        for t in 0..self.taps {
            let run = 2 * self.pairs * t;
            // SAFETY: as in `dot`, for both windows.
            unsafe {
                dsp::dot_block_pair::<BLOCK>(
                    window0.add(run),
                    window1.add(run),
                    weights.add(t * self.stride * BLOCK),
                    self.pairs,
                    acc0,
                    acc1,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A width's channels are whole blocks of the blob's, and runs of a narrower width start on
    /// pairs; a width with all the inputs may be odd.
    #[test]
    fn holds_checks_blocks_and_pairs() {
        let full = FullRows {
            in_ch: 24,
            out_ch: 24,
            block: 2,
        };
        assert!(full.holds(12, 6, 5));
        assert!(full.holds(24, 24, 3));
        assert!(!full.holds(11, 6, 1));
        assert!(!full.holds(12, 5, 1));
        assert!(!full.holds(26, 6, 1));
        assert!(!full.holds(12, 26, 1));
        assert!(FullRows::new(9, 12).holds(9, 12, 3));
        let odd = FullRows::new(9, 12);
        assert!(!odd.holds(4, 12, 3));
        assert!(odd.holds(4, 12, 1));
        assert!(!FullRows { block: 3, ..full }.holds(12, 6, 1));
    }
}

// The kernels' loops generalised to blob filters (`FILTERS`): a copy of lib.rs's `conv1d_impl`,
// `conv_rows`, `fully_connected_impl` and `fc_blocks` rather than a generalisation of them,
// because threading the filter walk through the originals changed the code rustc generates
// for ordinary models (measured: +0.2 to +0.9 % instructions on the M4 in whole images).
/// [`conv1d`] reading the filters of a blob packed for `full` as `FILTERS` says (see
/// [`filters`]).
#[inline(always)]
pub(crate) fn conv1d_on<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const FORM: u8,
    const FILTERS: u8,
>(
    full: FullRows,
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
    conv1d_impl::<FILTERS>(
        IN_CH,
        OUT_CH,
        K,
        FORM,
        full,
        params,
        padded,
        output,
        &mut scratch,
    )
}

/// The body of [`conv1d_shared`] on a blob packed for `full` (see [`conv1d_on`]), inlined
/// into each out-of-line instance.
#[inline(always)]
pub(crate) fn conv1d_shared_on<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const WIDTH: usize,
    const POOL: bool,
    const FORM: u8,
    const FILTERS: u8,
>(
    full: FullRows,
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
    conv1d_impl::<FILTERS>(
        IN_CH,
        OUT_CH,
        K,
        FORM,
        full,
        &params,
        padded,
        output,
        &mut scratch,
    )
}

/// [`conv1d_dyn`] reading the filters of a blob packed for `full` (see [`conv1d_on`]).
pub(crate) fn conv1d_dyn_on<const FILTERS: u8>(
    in_ch: usize,
    out_ch: usize,
    full: FullRows,
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
    conv1d_impl::<FILTERS>(
        in_ch,
        out_ch,
        params.kernel,
        form,
        full,
        params,
        padded,
        output,
        scratch,
    )
}

/// How a kernel finds its filters (the `FILTERS` parameter of the 1D convolution and
/// fully-connected internals): compile-time, so that a layer's own weights compile exactly as
/// they did before nested widths, and a nested width links only the walk it uses.
pub(crate) mod filters {
    /// The layer's own weights ([`crate::pack_weights`]): `full` is
    /// [`crate::nested::FullRows::new`]`(in_ch, out_ch)`.
    pub const OWN: u8 = 0;
    /// A nested width with all of the blob's inputs: whole rows of the blob, in its blocks.
    pub const BLOB_ROWS: u8 = 1;
    /// A nested width with fewer inputs: per tap, a run of `in_ch` values of the blob's row
    /// ([`crate::nested::TapRuns`]).
    pub const TAP_RUNS: u8 = 2;
}

/// The 1D convolution of `in_ch` inputs and `out_ch` outputs whose filters are read from a
/// blob packed for `full` as `FILTERS` says ([`filters`]): the layer's own weights or a
/// nested width's share of a wider layer's ([`nested`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv1d_impl<const FILTERS: u8>(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    form: u8,
    full: FullRows,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: &mut [core::mem::MaybeUninit<u32>],
) -> Result<(), ShapeError> {
    // The blob's row: the width's own when it has all the inputs.
    let row = conv1d_row_len(full.in_ch, kernel);
    let width = params.width;
    let out_len = if params.pool { width / 2 } else { width } * out_ch;
    if in_ch == 0
        || out_ch == 0
        || kernel == 0
        || !(FILTERS == filters::TAP_RUNS || in_ch == full.in_ch)
        || !full.holds(in_ch, out_ch, kernel)
        || !if FILTERS == filters::OWN {
            conv_weights_ok(params.weights, out_ch, row, scratch)
        } else {
            conv_blob_ok(params.weights, full, row, scratch.len())
        }
        || params.bias.len() != out_ch
        || padded.len() < conv1d_padded_len(width, in_ch, kernel)
        || output.len() != out_len
    {
        return Err(ShapeError);
    }
    params.requant.check(out_ch)?;
    let scratch = scratch.as_mut_ptr().cast::<u32>();
    use requant_form::{BIT31, GENERAL, HIGH_WORD};
    let (o, p) = (output, padded);
    let shape = RowShape {
        in_ch,
        out_ch,
        row,
        runs: TapRuns {
            taps: kernel,
            pairs: in_ch / 2,
            stride: full.in_ch / 2,
        },
    };
    match (full.block, form) {
        (4, HIGH_WORD) => conv_rows::<4, HIGH_WORD, FILTERS>(shape, params, p, o, scratch),
        (4, BIT31) => conv_rows::<4, BIT31, FILTERS>(shape, params, p, o, scratch),
        (4, _) => conv_rows::<4, GENERAL, FILTERS>(shape, params, p, o, scratch),
        (2, HIGH_WORD) => conv_rows::<2, HIGH_WORD, FILTERS>(shape, params, p, o, scratch),
        (2, BIT31) => conv_rows::<2, BIT31, FILTERS>(shape, params, p, o, scratch),
        (2, _) => conv_rows::<2, GENERAL, FILTERS>(shape, params, p, o, scratch),
        (_, HIGH_WORD) => conv_rows::<1, HIGH_WORD, FILTERS>(shape, params, p, o, scratch),
        (_, BIT31) => conv_rows::<1, BIT31, FILTERS>(shape, params, p, o, scratch),
        (_, _) => conv_rows::<1, GENERAL, FILTERS>(shape, params, p, o, scratch),
    }
    Ok(())
}

/// The shapes `conv1d_impl` checked, for the row loops.
#[derive(Clone, Copy)]
struct RowShape {
    in_ch: usize,
    out_ch: usize,
    /// The blob's row length, `conv1d_row_len(full.in_ch, kernel)`.
    row: usize,
    /// A narrower width's filter inside the blob's rows (read for `filters::TAP_RUNS`).
    runs: TapRuns,
}

/// Block of `BLOCK` output channels outside, positions inside: the block's requantisation
/// constants are prepared once and its packed weights stay hot.
#[inline(always)]
fn conv_rows<const BLOCK: usize, const FORM: u8, const FILTERS: u8>(
    shape: RowShape,
    params: &Conv1d,
    padded: &[i16],
    output: &mut [i8],
    scratch: *mut u32,
) {
    let RowShape {
        in_ch,
        out_ch,
        row,
        runs,
    } = shape;
    let pairs = row / 2;
    let width = params.width;
    let requant = &params.requant;
    let monotonic = requant.monotonic();
    let window = padded.as_ptr();
    let out = output.as_mut_ptr();
    let mut b = 0;
    while b < out_ch {
        // SAFETY: lengths were checked by the caller: the block's packed weights are
        // weights[b·row .. (b+BLOCK)·row] (row: the blob's), read whole or (TAP_RUNS) as tap t's
        // in_ch/2 pairs from pair t·full.in_ch/2, ending by pair kernel·full.in_ch/2 ≤ row/2;
        // every window read ends at x·in_ch + conv1d_row_len(in_ch, kernel) ≤ (width−1)·in_ch
        // + kernel·in_ch + 1 ≤ conv1d_padded_len; outputs are written below out_len.
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
                    if FILTERS == filters::TAP_RUNS {
                        runs.dot_pair::<BLOCK>(
                            window.add(x * in_ch),
                            window.add((x + 1) * in_ch),
                            w,
                            &mut acc0,
                            &mut acc1,
                        );
                    } else {
                        dsp::dot_block_pair::<BLOCK>(
                            window.add(x * in_ch),
                            window.add((x + 1) * in_ch),
                            w,
                            pairs,
                            &mut acc0,
                            &mut acc1,
                        );
                    }
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
                    if FILTERS == filters::TAP_RUNS {
                        runs.dot::<BLOCK>(window.add(x * in_ch), w, &mut acc);
                    } else {
                        dsp::dot_block::<BLOCK>(window.add(x * in_ch), w, pairs, &mut acc);
                    }
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

/// [`fully_connected`] reading the rows of a blob packed for `full` as `FILTERS` says
/// ([`filters`]: `OWN` or `BLOB_ROWS`, a row being one run).
#[inline(always)]
pub(crate) fn fully_connected_on<const BITS: u32, const FILTERS: u8>(
    in_len: usize,
    out_len: usize,
    full: FullRows,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if params.weights.bits() != BITS {
        return Err(ShapeError);
    }
    fully_connected_impl::<BITS, FILTERS>(in_len, out_len, full, params, padded, output)
}

/// [`fully_connected_dyn`] reading the rows of a blob packed for `full` (see
/// [`fully_connected_on`]).
pub(crate) fn fully_connected_dyn_on<const FILTERS: u8>(
    in_len: usize,
    out_len: usize,
    full: FullRows,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let (i, o, f) = (in_len, out_len, full);
    match params.weights.bits() {
        16 => fully_connected_impl::<16, FILTERS>(i, o, f, params, padded, output),
        8 => fully_connected_impl::<8, FILTERS>(i, o, f, params, padded, output),
        4 => fully_connected_impl::<4, FILTERS>(i, o, f, params, padded, output),
        _ => fully_connected_impl::<2, FILTERS>(i, o, f, params, padded, output),
    }
}

/// `BITS` must agree with `params.weights` (the callers check). The first `in_len` values of
/// the first `out_len` rows of a blob packed for `full` (see [`fully_connected_on`]).
#[inline(always)]
fn fully_connected_impl<const BITS: u32, const FILTERS: u8>(
    in_len: usize,
    out_len: usize,
    full: FullRows,
    params: &FullyConnected,
    padded: &[i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let row = fc_row_len(in_len);
    let full_row = fc_row_len(full.in_ch);
    if out_len == 0
        || (BITS < 8 && row > subbyte::PACKED_FC_MAX_ROW)
        || !full.holds(in_len, out_len, 1)
        || !if FILTERS == filters::OWN {
            packed_weights_ok(params.weights, out_len, row)
        } else {
            blob_ok(params.weights, full, full_row)
        }
        || params.bias.len() != out_len
        || padded.len() < row
        || output.len() != out_len
    {
        return Err(ShapeError);
    }
    params.requant.check(out_len)?;
    let (o, p) = (output, padded);
    match full.block {
        4 => fc_blocks::<4, BITS>(in_len, full_row, out_len, params, p, o),
        2 => fc_blocks::<2, BITS>(in_len, full_row, out_len, params, p, o),
        _ => fc_blocks::<1, BITS>(in_len, full_row, out_len, params, p, o),
    }
    Ok(())
}

/// Blocks of `BLOCK` outputs, each a dot product over the first `fc_row_len(in_len) / 2`
/// pairs of the block's rows of `full_row` values (a whole row for a layer's own weights).
#[inline(always)]
fn fc_blocks<const BLOCK: usize, const BITS: u32>(
    in_len: usize,
    full_row: usize,
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
    let packed_block_words = subbyte::packed_block_bytes(BITS, BLOCK, full_row) / 4;
    let mut b = 0;
    while b < out_len {
        // SAFETY: the vector read covers padded[..row]; the block's weights are
        // weights[b·full_row .. (b+BLOCK)·full_row] (wide) or block b/BLOCK of
        // packed_block_bytes (narrow and sub-byte, whose first ⌈BLOCK·row/4⌉ words
        // dot_block_narrow reads, or ⌈BLOCK·row·BITS/32⌉ dot_block_packed does); row ≤
        // full_row (checked); b + j < out_len = output.len() (checked).
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
                let w = weights.add(b * full_row / 2);
                dsp::dot_block::<BLOCK>(padded.as_ptr(), w, row / 2, &mut acc);
            }
            for (j, &a) in acc.iter().enumerate() {
                *output.get_unchecked_mut(b + j) = params.requant.finish(a, b + j);
            }
        }
        b += BLOCK;
    }
}
