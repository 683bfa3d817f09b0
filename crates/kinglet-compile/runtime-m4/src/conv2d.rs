//! int8 2D convolution (any kernel size, stride, vertical dilation, VALID or SAME padding) on
//! `SMLAD` pairs. The input is widened once per call into a zero-point-padded `i16` image, so
//! a window is `kh` contiguous runs of `kw·in_ch` values (one per filter row) and border
//! positions need no special case (the zero point is folded into the bias, as in
//! [`crate::Conv1d`]). Each filter row is padded at compile time to whole pairs with a zero
//! weight ([`pack_conv2d_weights`]), so an odd run also reads the value after it, multiplied
//! by that zero. Requantisation is kinglet-micro's (TFLite's `MultiplyByQuantizedMultiplier`),
//! so outputs equal `conv2d_i8` bit for bit.

use crate::{FastChannel, Requant, ShapeError, channel_block, dsp};

/// A 2D convolution's shapes and constants (batch 1, NHWC).
#[derive(Clone, Copy, Debug)]
pub struct Conv2d<'a> {
    /// Input height, width, channels.
    pub input: [usize; 3],
    /// Output height, width, channels.
    pub output: [usize; 3],
    /// Filter height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical dilation (horizontal dilation is 1: filter rows read contiguous runs).
    pub dilation_h: usize,
    /// Zero-point rows above and columns left of the image (SAME padding).
    pub pad: [usize; 2],
    /// Input zero point: the value padding cells hold.
    pub zero_point: i8,
    /// Filter packed by [`pack_conv2d_weights`].
    pub weights: &'a [i16],
    /// `bias − zp_in · Σ w` per output channel.
    pub bias: &'a [i32],
    pub requant: Requant<'a>,
}

/// Values of one filter row as packed: `kw · in_ch` rounded up to whole pairs.
pub const fn conv2d_row_len(kw: usize, in_ch: usize) -> usize {
    (kw * in_ch + 1) & !1
}

/// Height and width of the padded image the windows of this geometry cover.
pub const fn conv2d_padded_hw(
    output: [usize; 3],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation_h: usize,
) -> [usize; 2] {
    if output[0] == 0 || output[1] == 0 || kernel[0] == 0 || kernel[1] == 0 {
        return [0, 0];
    }
    [
        (output[0] - 1) * stride[0] + (kernel[0] - 1) * dilation_h + 1,
        (output[1] - 1) * stride[1] + kernel[1],
    ]
}

/// Length of the `i16` buffer [`conv2d`] widens the input into: the padded image plus one
/// value an odd last run reads past its end (times the zero weight).
pub const fn conv2d_padded_len(
    in_ch: usize,
    output: [usize; 3],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation_h: usize,
) -> usize {
    let [h, w] = conv2d_padded_hw(output, kernel, stride, dilation_h);
    h * w * in_ch + 2
}

/// Packs an int8 filter `[out_ch][kh][kw][in_ch]` (TFLite OHWI) into `packed`
/// (`out_ch · kh · conv2d_row_len(kw, in_ch)` values): each filter row padded with a zero to
/// whole pairs, then laid out by [`crate::pack_weights`] (blocks of [`channel_block`]
/// channels side by side), so filter row `ky` of a block is a contiguous run of pairs.
pub fn pack_conv2d_weights(
    weights: &[i8],
    out_ch: usize,
    kh: usize,
    kw: usize,
    in_ch: usize,
    packed: &mut [i16],
) -> Result<(), ShapeError> {
    let run = kw * in_ch;
    let row = conv2d_row_len(kw, in_ch);
    if weights.len() != out_ch * kh * run || packed.len() != out_ch * kh * row {
        return Err(ShapeError);
    }
    let total = kh * row;
    let block = channel_block(out_ch);
    let mut i = 0;
    for b in (0..out_ch).step_by(block) {
        for k in 0..total / 2 {
            for j in 0..block {
                let o = b + j;
                for t in [2 * k, 2 * k + 1] {
                    let (ky, r) = (t / row, t % row);
                    packed[i] = if r < run {
                        i16::from(weights[(o * kh + ky) * run + r])
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

/// Widens `input` (`ih × iw × in_ch`, int8) into the padded image of [`conv2d`]: `padded_hw`
/// rows and columns, the image at row `pad[0]`, column `pad[1]`, zero points everywhere else
/// (and in the slack after it). Image cells no window reaches are left out.
fn widen_padded_2d(
    input: &[i8],
    [ih, iw, in_ch]: [usize; 3],
    pad: [usize; 2],
    [ph, pw]: [usize; 2],
    zero_point: i8,
    padded: &mut [i16],
) {
    let zp = i16::from(zero_point);
    let line = pw * in_ch;
    let left = pad[1].min(pw);
    let cols = iw.min(pw - left);
    let (image, slack) = padded.split_at_mut(ph * line);
    slack.fill(zp);
    for (py, dst) in image.chunks_exact_mut(line).enumerate() {
        let y = py.wrapping_sub(pad[0]);
        if py < pad[0] || y >= ih {
            dst.fill(zp);
            continue;
        }
        let (head, rest) = dst.split_at_mut(left * in_ch);
        head.fill(zp);
        let (body, tail) = rest.split_at_mut(cols * in_ch);
        let src = &input[y * iw * in_ch..][..cols * in_ch];
        dsp::widen(src, body);
        tail.fill(zp);
    }
}

/// The convolution of `input` into `output`, using `padded` (at least [`conv2d_padded_len`]
/// values) as the widened image. `BLOCK` ([`channel_block`] of the output channels) and
/// `FAST` ([`crate::requant_is_fast`]) are compile-time so a model links only the variants
/// its layers use; they must agree with `c`, else `ShapeError`.
pub fn conv2d<const BLOCK: usize, const FAST: bool>(
    c: &Conv2d,
    input: &[i8],
    padded: &mut [i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let [ih, iw, ic] = c.input;
    let [oh, ow, oc] = c.output;
    let [kh, kw] = c.kernel;
    let row = conv2d_row_len(kw, ic);
    let hw = conv2d_padded_hw(c.output, c.kernel, c.stride, c.dilation_h);
    if ic == 0
        || oc == 0
        || kh == 0
        || kw == 0
        || BLOCK != channel_block(oc)
        || FAST != c.requant.fast()
        || c.stride[0] == 0
        || c.stride[1] == 0
        || c.dilation_h == 0
        || input.len() != ih * iw * ic
        || output.len() != oh * ow * oc
        || c.weights.len() != oc * kh * row
        // LDM faults on an unaligned address.
        || (crate::HAS_DSP && !(c.weights.as_ptr() as usize).is_multiple_of(4))
        || c.bias.len() != oc
        || padded.len() < conv2d_padded_len(ic, c.output, c.kernel, c.stride, c.dilation_h)
    {
        return Err(ShapeError);
    }
    c.requant.check(oc)?;
    if oh == 0 || ow == 0 {
        return Ok(());
    }
    widen_padded_2d(input, c.input, c.pad, hw, c.zero_point, padded);
    conv2d_blocks::<BLOCK, FAST>(c, hw[1] * ic, padded, output);
    Ok(())
}

/// [`conv2d`] with the block size and requantisation form chosen at run time (host
/// execution, tests).
pub fn conv2d_dyn(
    c: &Conv2d,
    input: &[i8],
    padded: &mut [i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    match (channel_block(c.output[2]), c.requant.fast()) {
        (4, true) => conv2d::<4, true>(c, input, padded, output),
        (4, false) => conv2d::<4, false>(c, input, padded, output),
        (2, true) => conv2d::<2, true>(c, input, padded, output),
        (2, false) => conv2d::<2, false>(c, input, padded, output),
        (_, true) => conv2d::<1, true>(c, input, padded, output),
        (_, false) => conv2d::<1, false>(c, input, padded, output),
    }
}

/// Blocks of `BLOCK` output channels outside, positions inside (the block's weights and
/// requantisation constants stay hot), one `dot_block` per filter row.
#[inline(always)]
fn conv2d_blocks<const BLOCK: usize, const FAST: bool>(
    c: &Conv2d,
    line: usize,
    padded: &[i16],
    output: &mut [i8],
) {
    let [_, _, ic] = c.input;
    let [oh, ow, oc] = c.output;
    let [kh, kw] = c.kernel;
    let row = conv2d_row_len(kw, ic);
    let pairs = row / 2;
    let requant = &c.requant;
    let row_step = c.stride[0] * line;
    let col_step = c.stride[1] * ic;
    let tap_step = c.dilation_h * line;
    let image = padded.as_ptr();
    let out = output.as_mut_ptr();
    let mut b = 0;
    while b < oc {
        // SAFETY: `conv2d` checked the lengths: the block's packed weights are
        // weights[b·kh·row .. (b+BLOCK)·kh·row] (4-byte aligned on DSP targets; row is even);
        // the last window's last run ends at (ph−1)·line + (ow−1)·col_step + kw·ic + 1
        // ≤ ph·line + 1 < conv2d_padded_len; outputs are written below oh·ow·oc.
        unsafe {
            let w = c.weights.as_ptr().add(b * kh * row).cast::<u32>();
            let mut bias = [0i32; BLOCK];
            let mut fast_ch = [FastChannel::default(); BLOCK];
            for j in 0..BLOCK {
                bias[j] = *c.bias.get_unchecked(b + j);
                if FAST {
                    fast_ch[j] = requant.fast_channel(b + j);
                }
            }
            for oy in 0..oh {
                let row_start = image.add(oy * row_step);
                for ox in 0..ow {
                    let window = row_start.add(ox * col_step);
                    let mut acc = bias;
                    for ky in 0..kh {
                        dsp::dot_block::<BLOCK>(
                            window.add(ky * tap_step),
                            w.add(ky * pairs * BLOCK),
                            pairs,
                            &mut acc,
                        );
                    }
                    let dst = out.add((oy * ow + ox) * oc + b);
                    for (j, &a) in acc.iter().enumerate() {
                        *dst.add(j) = if FAST {
                            fast_ch[j].finish(a, requant)
                        } else {
                            requant.finish(a, b + j)
                        };
                    }
                }
            }
        }
        b += BLOCK;
    }
}
