//! Kernel errors: every kernel validates shapes and parameters before touching data, so a
//! malformed graph surfaces as one of these instead of a panic deep inside a loop.

use core::fmt;

/// Why a kernel refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A buffer's length does not match the element count implied by its shape.
    BufferLength {
        /// Which buffer (e.g. `"conv2d input"`).
        what: &'static str,
        /// Elements the shape requires.
        expected: usize,
        /// Elements the slice holds.
        actual: usize,
    },
    /// Two shapes that must agree do not (e.g. batch or channel counts).
    ShapeMismatch {
        /// Which relation failed (e.g. `"conv2d: filter in_channels != input channels"`).
        what: &'static str,
    },
    /// A parameter is outside its valid range (zero stride, shift out of range, NaN scale, ...).
    InvalidParam {
        /// Which parameter and why.
        what: &'static str,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::BufferLength {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: buffer holds {actual} elements, shape needs {expected}"
            ),
            KernelError::ShapeMismatch { what } => write!(f, "shape mismatch: {what}"),
            KernelError::InvalidParam { what } => write!(f, "invalid parameter: {what}"),
        }
    }
}

impl core::error::Error for KernelError {}

/// Checks that `len` equals `expected`.
pub(crate) fn check_len(
    what: &'static str,
    len: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if len == expected {
        Ok(())
    } else {
        Err(KernelError::BufferLength {
            what,
            expected,
            actual: len,
        })
    }
}

/// Fails with `ShapeMismatch` unless `ok`.
pub(crate) fn ensure_shape(ok: bool, what: &'static str) -> Result<(), KernelError> {
    if ok {
        Ok(())
    } else {
        Err(KernelError::ShapeMismatch { what })
    }
}

/// Fails with `InvalidParam` unless `ok`.
pub(crate) fn ensure_param(ok: bool, what: &'static str) -> Result<(), KernelError> {
    if ok {
        Ok(())
    } else {
        Err(KernelError::InvalidParam { what })
    }
}
