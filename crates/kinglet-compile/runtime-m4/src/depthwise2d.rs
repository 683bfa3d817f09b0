//! int8 2D depthwise convolution (depth multiplier 1; any kernel size, stride, vertical
//! dilation, VALID or SAME padding) on `SMLAD` pairs. The input is widened once per call into
//! channel-major zero-point-padded `i16` planes (channels-last data would pair two channels,
//! whose products `SMLAD` cannot keep apart), so a window of channel `c` is `kh` contiguous
//! runs of `kw` taps. Filter rows are padded at compile time to whole pairs with a zero weight
//! ([`pack_depthwise2d_weights`]); the zero point is folded into the bias. Requantisation is
//! kinglet-micro's, so outputs equal `depthwise_conv2d_i8` bit for bit.

use crate::conv2d::conv2d_padded_hw;
use crate::{Requant, ShapeError, dsp};

/// A depthwise convolution's shapes and constants (batch 1, NHWC, multiplier 1).
#[derive(Clone, Copy, Debug)]
pub struct Depthwise2d<'a> {
    /// Input height and width.
    pub input: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
    /// Channels (input = output).
    pub channels: usize,
    /// Filter height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical dilation (horizontal dilation is 1).
    pub dilation_h: usize,
    /// Zero-point rows above and columns left of the image (SAME padding).
    pub pad: [usize; 2],
    /// Input zero point: the value padding cells hold.
    pub zero_point: i8,
    /// Filter packed by [`pack_depthwise2d_weights`].
    pub weights: &'a [i16],
    /// `bias − zp_in · Σ w` per channel.
    pub bias: &'a [i32],
    pub requant: Requant<'a>,
}

/// Values of one packed filter row: `kw` rounded up to whole pairs.
pub const fn depthwise2d_row_len(kw: usize) -> usize {
    (kw + 1) & !1
}

/// Length of the `i16` buffer [`depthwise2d`] widens the input into: one padded plane per
/// channel plus one value an odd last run reads past the end (times the zero weight).
pub const fn depthwise2d_padded_len(
    channels: usize,
    output: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation_h: usize,
) -> usize {
    let [h, w] = conv2d_padded_hw([output[0], output[1], 1], kernel, stride, dilation_h);
    channels * h * w + 2
}

/// Packs a TFLite depthwise filter `[1][kh][kw][channels]` into `packed`
/// (`channels · kh · depthwise2d_row_len(kw)` values): per channel, its filter rows, each
/// padded with a zero to whole pairs.
pub fn pack_depthwise2d_weights(
    weights: &[i8],
    channels: usize,
    kh: usize,
    kw: usize,
    packed: &mut [i16],
) -> Result<(), ShapeError> {
    let row = depthwise2d_row_len(kw);
    if weights.len() != channels * kh * kw || packed.len() != channels * kh * row {
        return Err(ShapeError);
    }
    for (c, dst) in packed.chunks_exact_mut(kh * row).enumerate() {
        for ky in 0..kh {
            for r in 0..row {
                dst[ky * row + r] = if r < kw {
                    i16::from(weights[(ky * kw + r) * channels + c])
                } else {
                    0
                };
            }
        }
    }
    Ok(())
}

/// [`depthwise2d`] with the requantisation form chosen at run time (host execution, tests).
pub fn depthwise2d_dyn(
    c: &Depthwise2d,
    input: &[i8],
    padded: &mut [i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    if c.requant.fast() {
        depthwise2d::<true>(c, input, padded, output)
    } else {
        depthwise2d::<false>(c, input, padded, output)
    }
}

/// The depthwise convolution of `input` into `output`, using `padded` (at least
/// [`depthwise2d_padded_len`] values) as the widened planes. `FAST`
/// ([`crate::requant_is_fast`]) is compile-time and must agree with `c`, else `ShapeError`.
pub fn depthwise2d<const FAST: bool>(
    c: &Depthwise2d,
    input: &[i8],
    padded: &mut [i16],
    output: &mut [i8],
) -> Result<(), ShapeError> {
    let [ih, iw] = c.input;
    let [oh, ow] = c.output;
    let ch = c.channels;
    let [kh, kw] = c.kernel;
    let row = depthwise2d_row_len(kw);
    let [ph, pw] = conv2d_padded_hw([oh, ow, 1], c.kernel, c.stride, c.dilation_h);
    if ch == 0
        || FAST != c.requant.fast()
        || kh == 0
        || kw == 0
        || c.stride[0] == 0
        || c.stride[1] == 0
        || c.dilation_h == 0
        || input.len() != ih * iw * ch
        || output.len() != oh * ow * ch
        || c.weights.len() != ch * kh * row
        || c.bias.len() != ch
        || padded.len() < depthwise2d_padded_len(ch, c.output, c.kernel, c.stride, c.dilation_h)
    {
        return Err(ShapeError);
    }
    c.requant.check(ch)?;
    if oh == 0 || ow == 0 {
        return Ok(());
    }
    // Channel-major planes with zero-point borders.
    let zp = i16::from(c.zero_point);
    let plane = ph * pw;
    let (planes, slack) = padded.split_at_mut(ch * plane);
    slack.fill(zp);
    for (k, p) in planes.chunks_exact_mut(plane).enumerate() {
        for (py, line) in p.chunks_exact_mut(pw).enumerate() {
            let y = py.wrapping_sub(c.pad[0]);
            for (px, v) in line.iter_mut().enumerate() {
                let x = px.wrapping_sub(c.pad[1]);
                *v = if py >= c.pad[0] && y < ih && px >= c.pad[1] && x < iw {
                    // SAFETY: y < ih, x < iw and k < ch, so the index is below input.len().
                    i16::from(unsafe { *input.get_unchecked((y * iw + x) * ch + k) })
                } else {
                    zp
                };
            }
        }
    }
    let pairs = row / 2;
    let row_step = c.stride[0] * pw;
    let tap_step = c.dilation_h * pw;
    let image = padded.as_ptr();
    let out = output.as_mut_ptr();
    for k in 0..ch {
        // SAFETY: lengths checked above: channel k's weights are weights[k·kh·row ..][..kh·row];
        // its plane starts at k·plane and the last window's last run ends at
        // k·plane + (ph−1)·pw + pw + 1 ≤ ch·plane + 1 < padded.len(); outputs stay below
        // oh·ow·ch.
        unsafe {
            let w = c.weights.as_ptr().add(k * kh * row).cast::<u32>();
            let base = image.add(k * plane);
            let bias = *c.bias.get_unchecked(k);
            let fast_ch = if FAST {
                c.requant.fast_channel(k)
            } else {
                Default::default()
            };
            for oy in 0..oh {
                let row_start = base.add(oy * row_step);
                for ox in 0..ow {
                    let window = row_start.add(ox * c.stride[1]);
                    let mut acc = [bias];
                    for ky in 0..kh {
                        dsp::dot_block::<1>(
                            window.add(ky * tap_step),
                            w.add(ky * pairs),
                            pairs,
                            &mut acc,
                        );
                    }
                    *out.add((oy * ow + ox) * ch + k) = if FAST {
                        fast_ch.finish(acc[0], &c.requant)
                    } else {
                        c.requant.finish(acc[0], k)
                    };
                }
            }
        }
    }
    Ok(())
}
