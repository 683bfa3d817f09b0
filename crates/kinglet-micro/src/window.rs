//! Shared helpers for windowed kernels (conv, depthwise conv, pooling).

use crate::error::{KernelError, ensure_param};

/// Stride, dilation and leading padding of a 2D window. Padding is the top/left amount from
/// [`crate::padding::axis_geometry`]; positions outside the input are skipped, which equals
/// padding with the input zero point (TFLite semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvParams {
    /// Vertical stride (>= 1).
    pub stride_h: usize,
    /// Horizontal stride (>= 1).
    pub stride_w: usize,
    /// Vertical dilation (>= 1).
    pub dilation_h: usize,
    /// Horizontal dilation (>= 1).
    pub dilation_w: usize,
    /// Rows of padding above the input.
    pub pad_top: usize,
    /// Columns of padding left of the input.
    pub pad_left: usize,
}

impl ConvParams {
    /// Unit stride and dilation, no padding.
    pub const fn unit() -> Self {
        ConvParams {
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        }
    }

    pub(crate) fn check(&self) -> Result<(), KernelError> {
        ensure_param(
            self.stride_h >= 1
                && self.stride_w >= 1
                && self.dilation_h >= 1
                && self.dilation_w >= 1,
            "stride and dilation must be >= 1",
        )?;
        ensure_param(
            self.pad_top <= isize::MAX as usize / 4 && self.pad_left <= isize::MAX as usize / 4,
            "padding is implausibly large",
        )
    }
}

/// Taps `[lo, hi)` of a window of `k` taps starting at `origin` (may be negative) with
/// `dilation` that fall inside `0..input`.
#[inline(always)]
pub(crate) fn tap_range(origin: isize, k: usize, dilation: usize, input: usize) -> (usize, usize) {
    if dilation == 1 {
        // Division-free common case (integer division dominates small kernels otherwise).
        let lo = if origin >= 0 { 0 } else { (-origin) as usize };
        let rem = input as isize - origin;
        let hi = if rem <= 0 { 0 } else { (rem as usize).min(k) };
        return (lo.min(hi), hi);
    }
    let d = dilation as isize;
    let lo = if origin >= 0 {
        0
    } else {
        ((-origin + d - 1) / d) as usize
    };
    let rem = input as isize - origin;
    let hi = if rem <= 0 {
        0
    } else {
        (((rem + d - 1) / d) as usize).min(k)
    };
    (lo.min(hi), hi)
}

/// Checks that an offset added to an 8-bit value stays small enough that products of two
/// offset values cannot overflow `i32`.
pub(crate) fn check_offset(offset: i32, what: &'static str) -> Result<(), KernelError> {
    ensure_param((-256..=256).contains(&offset), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_ranges() {
        assert_eq!(tap_range(-1, 3, 1, 5), (1, 3));
        assert_eq!(tap_range(0, 3, 1, 5), (0, 3));
        assert_eq!(tap_range(3, 3, 1, 5), (0, 2));
        assert_eq!(tap_range(-3, 3, 2, 5), (2, 3));
        assert_eq!(tap_range(-5, 3, 1, 5), (3, 3));
        assert_eq!(tap_range(6, 3, 1, 5), (0, 0));
        assert_eq!(tap_range(4, 3, 2, 5), (0, 1));
    }
}
