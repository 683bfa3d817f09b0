//! Element-wise addition with 4D broadcasting (each dimension equal or 1).
//! Quantised arithmetic as TFLite's 8-bit `Add`: both inputs are shifted left by 20 bits,
//! rescaled to a common scale (twice the larger input scale) with
//! `multiply_by_quantized_multiplier`, summed, rescaled to the output, offset and clamped.

use crate::conv2d::ActivationF32;
use crate::error::{KernelError, ensure_param, ensure_shape};
use crate::quant::{check_shift, multiply_by_quantized_multiplier, quantize_multiplier};
use crate::tensor::{Quant8, Shape4, TensorMut, TensorRef};

/// Precomputed parameters of a quantised add ([`AddParams::new`] derives them like TFLite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    /// `-zero_point` of input 1.
    pub input1_offset: i32,
    /// `-zero_point` of input 2.
    pub input2_offset: i32,
    /// Output zero point.
    pub output_offset: i32,
    /// Pre-scaling left shift (20 for 8-bit).
    pub left_shift: i32,
    /// Input 1 multiplier.
    pub input1_multiplier: i32,
    /// Input 1 shift (<= 0).
    pub input1_shift: i32,
    /// Input 2 multiplier.
    pub input2_multiplier: i32,
    /// Input 2 shift (<= 0).
    pub input2_shift: i32,
    /// Output multiplier.
    pub output_multiplier: i32,
    /// Output shift.
    pub output_shift: i32,
    /// Lower clamp.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

/// Scale and zero point of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantScale {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

impl AddParams {
    /// Derives the fixed-point parameters from the three tensors' quantisation (TFLite
    /// `PrepareGeneralSubOp`/`Add` prepare for 8-bit types).
    pub fn new(
        in1: QuantScale,
        in2: QuantScale,
        out: QuantScale,
        act_min: i32,
        act_max: i32,
    ) -> Result<Self, KernelError> {
        Self::with_left_shift(in1, in2, out, act_min, act_max, 20)
    }

    /// [`AddParams::new`] with another pre-scaling shift: TFLite shifts int16 inputs by 15
    /// instead of 20, leaving the headroom their wider values need.
    pub(crate) fn with_left_shift(
        in1: QuantScale,
        in2: QuantScale,
        out: QuantScale,
        act_min: i32,
        act_max: i32,
        left_shift: i32,
    ) -> Result<Self, KernelError> {
        ensure_param(
            in1.scale > 0.0 && in2.scale > 0.0 && out.scale > 0.0,
            "add: scales must be positive",
        )?;
        let twice_max_input_scale = (2.0 * in1.scale.max(in2.scale)) as f64;
        let real1 = in1.scale as f64 / twice_max_input_scale;
        let real2 = in2.scale as f64 / twice_max_input_scale;
        let real_out = twice_max_input_scale / ((1i64 << left_shift) as f64 * out.scale as f64);
        let (input1_multiplier, input1_shift) = quantize_multiplier(real1)?;
        let (input2_multiplier, input2_shift) = quantize_multiplier(real2)?;
        let (output_multiplier, output_shift) = quantize_multiplier(real_out)?;
        Ok(AddParams {
            input1_offset: -in1.zero_point,
            input2_offset: -in2.zero_point,
            output_offset: out.zero_point,
            left_shift,
            input1_multiplier,
            input1_shift,
            input2_multiplier,
            input2_shift,
            output_multiplier,
            output_shift,
            act_min,
            act_max,
        })
    }

    fn check(&self) -> Result<(), KernelError> {
        check_shift(self.input1_shift)?;
        check_shift(self.input2_shift)?;
        check_shift(self.output_shift)?;
        ensure_param(
            (0..=20).contains(&self.left_shift),
            "add: left_shift outside 0..=20",
        )?;
        ensure_param(
            (-256..=256).contains(&self.input1_offset)
                && (-256..=256).contains(&self.input2_offset)
                && (-256..=256).contains(&self.output_offset),
            "add: zero points outside -256..=256",
        )?;
        ensure_param(self.act_min <= self.act_max, "add: act_min > act_max")
    }

    #[inline(always)]
    fn apply(&self, a: i32, b: i32) -> i32 {
        let a = (a + self.input1_offset) << self.left_shift;
        let b = (b + self.input2_offset) << self.left_shift;
        let a = multiply_by_quantized_multiplier(a, self.input1_multiplier, self.input1_shift);
        let b = multiply_by_quantized_multiplier(b, self.input2_multiplier, self.input2_shift);
        let sum = a.wrapping_add(b);
        multiply_by_quantized_multiplier(sum, self.output_multiplier, self.output_shift)
            .saturating_add(self.output_offset)
            .clamp(self.act_min, self.act_max)
    }
}

/// Validates broadcast shapes and returns per-dimension strides of both inputs (0 where the
/// input's dimension is broadcast).
fn broadcast_strides(
    a: Shape4,
    b: Shape4,
    out: Shape4,
) -> Result<([usize; 4], [usize; 4]), KernelError> {
    let (ad, bd, od) = (a.dims(), b.dims(), out.dims());
    let strides = |d: [usize; 4]| [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];
    let (sa, sb) = (strides(ad), strides(bd));
    let mut ra = [0; 4];
    let mut rb = [0; 4];
    for i in 0..4 {
        ensure_shape(
            (ad[i] == od[i] || ad[i] == 1) && (bd[i] == od[i] || bd[i] == 1),
            "add: input dims must equal the output dim or be 1",
        )?;
        ra[i] = if ad[i] == 1 { 0 } else { sa[i] };
        rb[i] = if bd[i] == 1 { 0 } else { sb[i] };
    }
    Ok((ra, rb))
}

fn for_each_broadcast<A: Copy, B: Copy, C>(
    a: TensorRef<'_, A>,
    b: TensorRef<'_, B>,
    out: TensorMut<'_, C>,
    f: impl Fn(A, B) -> C,
) -> Result<(), KernelError> {
    a.check("add input1")?;
    b.check("add input2")?;
    out.check("add output")?;
    if a.shape == out.shape && b.shape == out.shape {
        for ((o, &x), &y) in out.data.iter_mut().zip(a.data).zip(b.data) {
            *o = f(x, y);
        }
        return Ok(());
    }
    let (sa, sb) = broadcast_strides(a.shape, b.shape, out.shape)?;
    let d = out.shape.dims();
    let mut it = out.data.iter_mut();
    for i0 in 0..d[0] {
        for i1 in 0..d[1] {
            for i2 in 0..d[2] {
                for i3 in 0..d[3] {
                    let Some(o) = it.next() else {
                        return Ok(());
                    };
                    let ia = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3];
                    let ib = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3];
                    *o = f(a.data[ia], b.data[ib]);
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn add_q8<T: Quant8>(
    p: &AddParams,
    a: TensorRef<'_, T>,
    b: TensorRef<'_, T>,
    out: TensorMut<'_, T>,
) -> Result<(), KernelError> {
    p.check()?;
    for_each_broadcast(a, b, out, |x, y| {
        T::from_i32_saturating(p.apply(x.to_i32(), y.to_i32()))
    })
}

/// Int8 add.
pub fn add_i8(
    p: &AddParams,
    a: TensorRef<'_, i8>,
    b: TensorRef<'_, i8>,
    out: TensorMut<'_, i8>,
) -> Result<(), KernelError> {
    add_q8(p, a, b, out)
}

/// Legacy uint8 add.
pub fn add_u8(
    p: &AddParams,
    a: TensorRef<'_, u8>,
    b: TensorRef<'_, u8>,
    out: TensorMut<'_, u8>,
) -> Result<(), KernelError> {
    add_q8(p, a, b, out)
}

/// Float add with fused clamp.
pub fn add_f32(
    act: ActivationF32,
    a: TensorRef<'_, f32>,
    b: TensorRef<'_, f32>,
    out: TensorMut<'_, f32>,
) -> Result<(), KernelError> {
    for_each_broadcast(a, b, out, |x, y| act.apply(x + y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_add_close_to_real_math() {
        let in1 = QuantScale {
            scale: 0.05,
            zero_point: -10,
        };
        let in2 = QuantScale {
            scale: 0.02,
            zero_point: 5,
        };
        let out = QuantScale {
            scale: 0.07,
            zero_point: 3,
        };
        let p = AddParams::new(in1, in2, out, -128, 127).unwrap();
        let a: [i8; 5] = [-128, -10, 0, 50, 127];
        let b: [i8; 5] = [127, 5, -128, 0, 127];
        let mut o = [0i8; 5];
        let s = Shape4::new(1, 1, 1, 5);
        add_i8(
            &p,
            TensorRef::new(&a, s),
            TensorRef::new(&b, s),
            TensorMut::new(&mut o, s),
        )
        .unwrap();
        for i in 0..5 {
            let real = 0.05 * (a[i] as f64 + 10.0) + 0.02 * (b[i] as f64 - 5.0);
            let q = (real / 0.07 + 3.0).round().clamp(-128.0, 127.0);
            assert!((o[i] as f64 - q).abs() <= 1.0, "{i}: {} vs {q}", o[i]);
        }
    }

    #[test]
    fn broadcast_add_f32() {
        let a = [1.0f32, 2.0, 3.0, 4.0]; // [1,1,2,2]
        let b = [10.0f32, 20.0]; // [1,1,1,2]
        let mut o = [0.0f32; 4];
        add_f32(
            ActivationF32::NONE,
            TensorRef::new(&a, Shape4::new(1, 1, 2, 2)),
            TensorRef::new(&b, Shape4::new(1, 1, 1, 2)),
            TensorMut::new(&mut o, Shape4::new(1, 1, 2, 2)),
        )
        .unwrap();
        assert_eq!(o, [11.0, 22.0, 13.0, 24.0]);
    }
}
