//! Tensor views: a shape plus a borrowed slice. Kernels never own memory; the caller (host
//! executor or generated firmware) hands out slices of one arena.

use crate::error::{KernelError, check_len};

/// Element types a tensor can hold. `F16` is reserved for half-precision weights (not yet
/// executed by any kernel); packed sub-byte types will be added beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16 (storage only; no kernel consumes it yet).
    F16,
    /// Signed 8-bit quantised.
    I8,
    /// Unsigned 8-bit quantised (legacy TFLite asymmetric scheme).
    U8,
    /// 32-bit integer (biases).
    I32,
}

impl DType {
    /// Bytes per element.
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }
}

/// NHWC shape. 1D signals are `h = 1`, `w = length`; fully-connected activations are
/// `n = batches, h = w = 1, c = features`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape4 {
    /// Batch.
    pub n: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (columns; the time axis of a 1D signal).
    pub w: usize,
    /// Channels (innermost, contiguous).
    pub c: usize,
}

impl Shape4 {
    /// Builds a shape from its four dimensions.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Self {
        Shape4 { n, h, w, c }
    }

    /// Element count, or `None` on overflow.
    pub fn checked_len(&self) -> Option<usize> {
        self.n
            .checked_mul(self.h)?
            .checked_mul(self.w)?
            .checked_mul(self.c)
    }

    /// Dimensions as an array in NHWC order.
    pub const fn dims(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.c]
    }

    /// Builds a shape from an array in NHWC order.
    pub const fn from_dims(d: [usize; 4]) -> Self {
        Shape4 {
            n: d[0],
            h: d[1],
            w: d[2],
            c: d[3],
        }
    }
}

/// Read-only tensor view.
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a, T> {
    /// Elements in NHWC order.
    pub data: &'a [T],
    /// Logical shape.
    pub shape: Shape4,
}

/// Mutable tensor view (a kernel's output).
#[derive(Debug)]
pub struct TensorMut<'a, T> {
    /// Elements in NHWC order.
    pub data: &'a mut [T],
    /// Logical shape.
    pub shape: Shape4,
}

impl<'a, T> TensorRef<'a, T> {
    /// Pairs a slice with a shape (validated by the kernel that consumes it).
    pub const fn new(data: &'a [T], shape: Shape4) -> Self {
        TensorRef { data, shape }
    }

    pub(crate) fn check(&self, what: &'static str) -> Result<(), KernelError> {
        let expected = self.shape.checked_len().ok_or(KernelError::InvalidParam {
            what: "shape element count overflows usize",
        })?;
        check_len(what, self.data.len(), expected)
    }
}

impl<'a, T> TensorMut<'a, T> {
    /// Pairs a slice with a shape (validated by the kernel that writes it).
    pub fn new(data: &'a mut [T], shape: Shape4) -> Self {
        TensorMut { data, shape }
    }

    pub(crate) fn check(&self, what: &'static str) -> Result<(), KernelError> {
        let expected = self.shape.checked_len().ok_or(KernelError::InvalidParam {
            what: "shape element count overflows usize",
        })?;
        check_len(what, self.data.len(), expected)
    }
}

/// Quantised activation element (`i8`, `u8`, and `i16` for the 16×8 scheme). Lets one kernel
/// body serve the TFLite int8 scheme and the legacy uint8 scheme, and the kernels whose
/// arithmetic does not depend on the width (pools, concatenation, requantisation) serve int16
/// too; the arithmetic is identical once widened to `i32`.
pub trait Quant8: Copy + Default + PartialOrd + 'static {
    /// Smallest representable value as `i32`.
    const MIN: i32;
    /// Largest representable value as `i32`.
    const MAX: i32;
    /// Widens to `i32`.
    fn to_i32(self) -> i32;
    /// Narrows an `i32` after clamping it to `[MIN, MAX]`.
    fn from_i32_saturating(v: i32) -> Self;
}

impl Quant8 for i8 {
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn from_i32_saturating(v: i32) -> Self {
        v.clamp(<Self as Quant8>::MIN, <Self as Quant8>::MAX) as i8
    }
}

impl Quant8 for u8 {
    const MIN: i32 = u8::MIN as i32;
    const MAX: i32 = u8::MAX as i32;
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn from_i32_saturating(v: i32) -> Self {
        v.clamp(<Self as Quant8>::MIN, <Self as Quant8>::MAX) as u8
    }
}

impl Quant8 for i16 {
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn from_i32_saturating(v: i32) -> Self {
        v.clamp(<Self as Quant8>::MIN, <Self as Quant8>::MAX) as i16
    }
}

/// Reinterprets arena bytes as `i8` (same size and alignment; always sound).
pub fn bytes_as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have identical size, alignment and validity (every bit pattern).
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Mutable form of [`bytes_as_i8`].
pub fn bytes_as_i8_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: as in `bytes_as_i8`; the returned borrow replaces the input borrow.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<i8>(), bytes.len()) }
}

macro_rules! word_views {
    ($t:ty, $name:ident, $name_mut:ident) => {
        /// Reinterprets arena bytes as words; fails unless the bytes are aligned and a whole
        /// number of words (the memory planner aligns every tensor to 4 bytes).
        pub fn $name(bytes: &[u8]) -> Result<&[$t], KernelError> {
            // SAFETY: every bit pattern is a valid value of this plain numeric type.
            let (head, body, tail) = unsafe { bytes.align_to::<$t>() };
            if head.is_empty() && tail.is_empty() {
                Ok(body)
            } else {
                Err(KernelError::InvalidParam {
                    what: concat!("byte slice is not aligned to ", stringify!($t)),
                })
            }
        }

        /// Mutable form.
        pub fn $name_mut(bytes: &mut [u8]) -> Result<&mut [$t], KernelError> {
            // SAFETY: every bit pattern is a valid value of this plain numeric type.
            let (head, body, tail) = unsafe { bytes.align_to_mut::<$t>() };
            if head.is_empty() && tail.is_empty() {
                Ok(body)
            } else {
                Err(KernelError::InvalidParam {
                    what: concat!("byte slice is not aligned to ", stringify!($t)),
                })
            }
        }
    };
}

word_views!(f32, bytes_as_f32, bytes_as_f32_mut);
word_views!(i32, bytes_as_i32, bytes_as_i32_mut);
word_views!(i16, bytes_as_i16, bytes_as_i16_mut);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_len_and_overflow() {
        assert_eq!(Shape4::new(1, 2, 3, 4).checked_len(), Some(24));
        assert_eq!(Shape4::new(usize::MAX, 2, 1, 1).checked_len(), None);
    }

    #[test]
    fn byte_views() {
        let b = [0x80u8, 0x7f, 0xff];
        assert_eq!(bytes_as_i8(&b), &[-128i8, 127, -1]);
        let words = [1.5f32, -2.0];
        let mut raw = [0u8; 8];
        raw[..4].copy_from_slice(&words[0].to_ne_bytes());
        raw[4..].copy_from_slice(&words[1].to_ne_bytes());
        // A stack array of u8 may be unaligned; test on an aligned i32 buffer instead.
        let mut aligned = [0u32; 2];
        for (dst, chunk) in aligned.iter_mut().zip(raw.chunks_exact(4)) {
            *dst = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let bytes: &[u8] = unsafe { core::slice::from_raw_parts(aligned.as_ptr().cast(), 8) };
        assert_eq!(bytes_as_f32(bytes).unwrap(), &words);
        assert!(bytes_as_f32(&bytes[1..5]).is_err());
    }
}
