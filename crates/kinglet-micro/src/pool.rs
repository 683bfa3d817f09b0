//! Pooling window shared by max and average pooling.

use crate::error::{KernelError, ensure_param, ensure_shape};
use crate::tensor::{Shape4, TensorMut, TensorRef};
use crate::window::tap_range;

/// Pooling window: size, stride and top/left padding (from
/// [`crate::padding::axis_geometry`]). Out-of-bounds positions are excluded from the window,
/// as in TFLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolParams {
    /// Window height (>= 1).
    pub filter_h: usize,
    /// Window width (>= 1).
    pub filter_w: usize,
    /// Vertical stride (>= 1).
    pub stride_h: usize,
    /// Horizontal stride (>= 1).
    pub stride_w: usize,
    /// Rows of padding above.
    pub pad_top: usize,
    /// Columns of padding to the left.
    pub pad_left: usize,
}

impl PoolParams {
    pub(crate) fn check<A, B>(
        &self,
        input: &TensorRef<'_, A>,
        output: &TensorMut<'_, B>,
        what: &'static str,
    ) -> Result<(), KernelError> {
        ensure_param(
            self.filter_h >= 1 && self.filter_w >= 1 && self.stride_h >= 1 && self.stride_w >= 1,
            "pool filter size and stride must be >= 1",
        )?;
        ensure_param(
            self.pad_top <= isize::MAX as usize / 4 && self.pad_left <= isize::MAX as usize / 4,
            "pool padding is implausibly large",
        )?;
        input.check(what)?;
        output.check(what)?;
        ensure_shape(
            input.shape.n == output.shape.n && input.shape.c == output.shape.c,
            "pool: output batch/channels differ from input",
        )
    }

    /// `Some((in_h, in_w))` when no padding is involved and every window lies inside the
    /// input (valid after [`PoolParams::check`]), so kernels may skip clipping.
    pub(crate) fn all_windows_inside(
        &self,
        input: Shape4,
        output: Shape4,
    ) -> Option<(usize, usize)> {
        let fits = |out: usize, stride: usize, filter: usize, inp: usize| {
            out == 0
                || (out - 1)
                    .checked_mul(stride)
                    .and_then(|v| v.checked_add(filter))
                    .is_some_and(|end| end <= inp)
        };
        (self.pad_top == 0
            && self.pad_left == 0
            && input.c > 0
            && fits(output.h, self.stride_h, self.filter_h, input.h)
            && fits(output.w, self.stride_w, self.filter_w, input.w))
        .then_some((input.h, input.w))
    }

    /// Calls `f(out_index_base, window)` for every output pixel in NHWC order.
    #[inline(always)]
    pub(crate) fn for_each_window(
        &self,
        in_shape: Shape4,
        out_shape: Shape4,
        mut f: impl FnMut(usize, Window),
    ) {
        let (ih, iw, c) = (in_shape.h, in_shape.w, in_shape.c);
        let mut out_base = 0usize;
        for b in 0..out_shape.n {
            for oy in 0..out_shape.h {
                let y0 = (oy * self.stride_h) as isize - self.pad_top as isize;
                let (ky_lo, ky_hi) = tap_range(y0, self.filter_h, 1, ih);
                for ox in 0..out_shape.w {
                    let x0 = (ox * self.stride_w) as isize - self.pad_left as isize;
                    let (kx_lo, kx_hi) = tap_range(x0, self.filter_w, 1, iw);
                    let window = Window {
                        batch_base: b * ih * iw * c,
                        row_len: iw * c,
                        c,
                        // Empty ranges (window entirely in padding) become 0..0 so no
                        // index is ever formed from them.
                        y: if ky_hi > ky_lo {
                            (y0 + ky_lo as isize) as usize..(y0 + ky_hi as isize) as usize
                        } else {
                            0..0
                        },
                        x: if kx_hi > kx_lo {
                            (x0 + kx_lo as isize) as usize..(x0 + kx_hi as isize) as usize
                        } else {
                            0..0
                        },
                    };
                    f(out_base, window);
                    out_base += c;
                }
            }
        }
    }
}

/// In-bounds input rows `y` and columns `x` of one pooling window.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    batch_base: usize,
    row_len: usize,
    c: usize,
    pub(crate) y: core::ops::Range<usize>,
    pub(crate) x: core::ops::Range<usize>,
}

impl Window {
    /// Number of in-bounds positions.
    pub(crate) fn count(&self) -> usize {
        self.y.len() * self.x.len()
    }

    /// Input index of channel 0 at each in-bounds position, row by row.
    pub(crate) fn taps(&self) -> Taps {
        Taps {
            next: self.batch_base + self.y.start * self.row_len + self.x.start * self.c,
            rows_left: self.y.len(),
            cols: self.x.len(),
            col: 0,
            c: self.c,
            row_skip: self.row_len - self.x.len() * self.c,
        }
    }
}

/// Iterator over a window's tap indices (a plain counter; `flat_map` was measurably slower).
pub(crate) struct Taps {
    next: usize,
    rows_left: usize,
    cols: usize,
    col: usize,
    c: usize,
    row_skip: usize,
}

impl Iterator for Taps {
    type Item = usize;
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.rows_left == 0 || self.cols == 0 {
            return None;
        }
        let idx = self.next;
        self.col += 1;
        self.next += self.c;
        if self.col == self.cols {
            self.col = 0;
            self.rows_left -= 1;
            self.next += self.row_skip;
        }
        Some(idx)
    }
}
