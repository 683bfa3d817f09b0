//! Pad (TFLite `PAD`/`PADV2`): constant padding of a rank-≤4 tensor, written as NHWC with
//! leading unit dimensions. Quantised tensors pad with their zero point.

use crate::error::{KernelError, ensure_shape};
use crate::tensor::{TensorMut, TensorRef};

/// Pads `input` with `before[d]`/`after[d]` elements of `value` along each NHWC dimension `d`.
pub fn pad<T: Copy>(
    input: TensorRef<'_, T>,
    before: [usize; 4],
    after: [usize; 4],
    value: T,
    output: TensorMut<'_, T>,
) -> Result<(), KernelError> {
    input.check("pad input")?;
    output.check("pad output")?;
    let i = input.shape.dims();
    let o = output.shape.dims();
    for d in 0..4 {
        ensure_shape(
            i[d].checked_add(before[d])
                .and_then(|v| v.checked_add(after[d]))
                == Some(o[d]),
            "pad: output dim != before + input dim + after",
        )?;
    }
    // Fill everything, then copy the input rows (contiguous along C) into place.
    output.data.fill(value);
    if i[3] == 0 {
        return Ok(());
    }
    let mut rows = input.data.chunks_exact(i[3]);
    for n in 0..i[0] {
        for h in 0..i[1] {
            for w in 0..i[2] {
                let Some(row) = rows.next() else {
                    return Ok(());
                };
                let base = (((n + before[0]) * o[1] + h + before[1]) * o[2] + w + before[2]) * o[3]
                    + before[3];
                output.data[base..base + i[3]].copy_from_slice(row);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape4;

    #[test]
    fn pads_width_and_channels() {
        let input = [1i8, 2, 3, 4]; // [1,1,2,2]
        let mut out = [0i8; 12]; // [1,1,3,4]: pad w by (1,0), c by (1,1)
        pad(
            TensorRef::new(&input, Shape4::new(1, 1, 2, 2)),
            [0, 0, 1, 1],
            [0, 0, 0, 1],
            -128,
            TensorMut::new(&mut out, Shape4::new(1, 1, 3, 4)),
        )
        .unwrap();
        assert_eq!(
            out,
            [-128, -128, -128, -128, -128, 1, 2, -128, -128, 3, 4, -128]
        );
    }

    #[test]
    fn rejects_wrong_output_shape() {
        let input = [1i8; 4];
        let mut out = [0i8; 12];
        let r = pad(
            TensorRef::new(&input, Shape4::new(1, 1, 2, 2)),
            [0, 0, 1, 1],
            [0, 0, 0, 1],
            0,
            TensorMut::new(&mut out, Shape4::new(1, 1, 4, 3)),
        );
        assert!(r.is_err());
    }
}
