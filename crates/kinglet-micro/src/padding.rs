//! Output size and explicit padding for SAME / VALID windows (TFLite
//! `ComputePaddingHeightWidth`). Kernels take the resulting top/left padding; the bottom/right
//! padding is implied by the output size.

use crate::error::KernelError;

/// TFLite padding scheme of a windowed op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaddingKind {
    /// Output size `ceil(in / stride)`, zero-point padding split evenly (extra at the end).
    Same,
    /// Output size `ceil((in - dilated_filter + 1) / stride)`, no padding.
    Valid,
}

/// Output size and leading padding along one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AxisGeometry {
    /// Output length.
    pub out: usize,
    /// Padding before the first input element (top or left).
    pub pad_before: usize,
    /// Padding after the last input element (bottom or right).
    pub pad_after: usize,
}

/// Computes one axis of a windowed op's geometry. Errors on zero stride/dilation/filter or a
/// VALID window larger than the input.
pub fn axis_geometry(
    kind: PaddingKind,
    input: usize,
    filter: usize,
    stride: usize,
    dilation: usize,
) -> Result<AxisGeometry, KernelError> {
    if stride == 0 || dilation == 0 || filter == 0 {
        return Err(KernelError::InvalidParam {
            what: "stride, dilation and filter size must be >= 1",
        });
    }
    let dilated = (filter - 1)
        .checked_mul(dilation)
        .and_then(|v| v.checked_add(1))
        .ok_or(KernelError::InvalidParam {
            what: "dilated filter size overflows",
        })?;
    let out = match kind {
        PaddingKind::Same => input.div_ceil(stride),
        PaddingKind::Valid => {
            if dilated > input {
                return Err(KernelError::ShapeMismatch {
                    what: "VALID window is larger than the input",
                });
            }
            (input - dilated) / stride + 1
        }
    };
    let needed = out.saturating_sub(1) * stride + dilated;
    let total = needed.saturating_sub(input);
    Ok(AxisGeometry {
        out,
        pad_before: total / 2,
        pad_after: total - total / 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_and_valid() {
        let g = axis_geometry(PaddingKind::Same, 128, 3, 1, 1).unwrap();
        assert_eq!((g.out, g.pad_before, g.pad_after), (128, 1, 1));
        let g = axis_geometry(PaddingKind::Same, 128, 4, 1, 1).unwrap();
        assert_eq!((g.out, g.pad_before, g.pad_after), (128, 1, 2));
        let g = axis_geometry(PaddingKind::Same, 7, 3, 2, 1).unwrap();
        assert_eq!((g.out, g.pad_before, g.pad_after), (4, 1, 1));
        let g = axis_geometry(PaddingKind::Same, 8, 2, 2, 1).unwrap();
        assert_eq!((g.out, g.pad_before, g.pad_after), (4, 0, 0));
        let g = axis_geometry(PaddingKind::Valid, 128, 3, 1, 1).unwrap();
        assert_eq!((g.out, g.pad_before), (126, 0));
        let g = axis_geometry(PaddingKind::Valid, 10, 3, 3, 2).unwrap();
        assert_eq!(g.out, 2);
        assert!(axis_geometry(PaddingKind::Valid, 2, 3, 1, 1).is_err());
        assert!(axis_geometry(PaddingKind::Same, 2, 3, 0, 1).is_err());
    }
}
