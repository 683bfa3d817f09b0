//! Int8 fully connected over pruned weights stored compressed: only the non-zero weights are
//! kept (in flash), with either a per-row column bitmask or per-entry column deltas. Integer
//! sums do not depend on order and the zeros contribute nothing, so the results equal
//! [`crate::fully_connected::fully_connected_i8`] on the dense weights bit for bit.
//!
//! Bytes per weight at density `d` (non-zero fraction): bitmask `1/8 + d`, deltas about `2d`
//! (one delta byte and one value byte per non-zero). [`SparseFormat::smallest`] picks.

use crate::conv2d::QuantParams;
use crate::error::{KernelError, check_len, ensure_param};
use crate::fully_connected::FcShape;

/// Compressed `[out_features, in_features]` int8 weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseWeights<'a> {
    /// Each output row has `in_features.div_ceil(8)` mask bytes in `masks` (bit `i % 8` of
    /// byte `i / 8` set ⇔ column `i` is non-zero; bits past `in_features` clear); `values`
    /// holds the non-zero weights, row after row, in column order.
    Bitmask {
        /// Row masks, `out_features · in_features.div_ceil(8)` bytes.
        masks: &'a [u8],
        /// Non-zero weights.
        values: &'a [i8],
    },
    /// Row `o` has `row_lens[o]` entries; entry `k` moves the column forward by `deltas[k]`
    /// (the first entry of a row counts from column 0) and weighs it by `values[k]`. Gaps
    /// longer than 255 columns are bridged by entries of value 0 and delta 255.
    Deltas {
        /// Entries per output row.
        row_lens: &'a [u16],
        /// Column steps, one per entry.
        deltas: &'a [u8],
        /// Weights, one per entry.
        values: &'a [i8],
    },
}

/// Which compressed layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SparseFormat {
    /// [`SparseWeights::Bitmask`].
    Bitmask,
    /// [`SparseWeights::Deltas`].
    Deltas,
}

/// Sizes of an encoding, for allocating its arrays and comparing it with dense storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SparseSizes {
    /// Mask bytes (bitmask) or row lengths (deltas, `u16` each).
    pub index_len: usize,
    /// Delta bytes (deltas only).
    pub deltas_len: usize,
    /// Stored weights.
    pub values_len: usize,
}

impl SparseSizes {
    /// Flash bytes of the encoding.
    pub fn bytes(&self, format: SparseFormat) -> usize {
        match format {
            SparseFormat::Bitmask => self.index_len + self.values_len,
            SparseFormat::Deltas => 2 * self.index_len + self.deltas_len + self.values_len,
        }
    }
}

fn check_dense(shape: FcShape, weights: &[i8]) -> Result<(), KernelError> {
    let n = shape
        .out_features
        .checked_mul(shape.in_features)
        .ok_or(KernelError::InvalidParam {
            what: "sparse_fully_connected: dimensions overflow usize",
        })?;
    check_len("sparse_fully_connected dense weights", weights.len(), n)
}

impl SparseFormat {
    /// Sizes of `weights` (`[out, in]`, dense) in this format. Deltas fail when a row needs
    /// more than `u16::MAX` entries.
    pub fn sizes(self, shape: FcShape, weights: &[i8]) -> Result<SparseSizes, KernelError> {
        check_dense(shape, weights)?;
        let nonzero = weights.iter().filter(|w| **w != 0).count();
        match self {
            SparseFormat::Bitmask => Ok(SparseSizes {
                index_len: shape.out_features * shape.in_features.div_ceil(8),
                deltas_len: 0,
                values_len: nonzero,
            }),
            SparseFormat::Deltas => {
                let mut entries = 0;
                for row in weights.chunks_exact(shape.in_features.max(1)) {
                    let row_entries = delta_entries(row, |_, _| {});
                    ensure_param(
                        row_entries <= usize::from(u16::MAX),
                        "sparse_fully_connected: a row needs more than 65535 delta entries",
                    )?;
                    entries += row_entries;
                }
                Ok(SparseSizes {
                    index_len: shape.out_features,
                    deltas_len: entries,
                    values_len: entries,
                })
            }
        }
    }

    /// The format with the fewest bytes for `weights`, with its sizes.
    pub fn smallest(
        shape: FcShape,
        weights: &[i8],
    ) -> Result<(SparseFormat, SparseSizes), KernelError> {
        let bitmask = SparseFormat::Bitmask.sizes(shape, weights)?;
        match SparseFormat::Deltas.sizes(shape, weights) {
            Ok(deltas)
                if deltas.bytes(SparseFormat::Deltas) < bitmask.bytes(SparseFormat::Bitmask) =>
            {
                Ok((SparseFormat::Deltas, deltas))
            }
            _ => Ok((SparseFormat::Bitmask, bitmask)),
        }
    }
}

/// Walks one row's delta entries, calling `emit(delta, value)`; returns the entry count.
fn delta_entries(row: &[i8], mut emit: impl FnMut(u8, i8)) -> usize {
    let mut count = 0;
    let mut col = 0usize;
    for (i, &w) in row.iter().enumerate() {
        if w == 0 {
            continue;
        }
        while i - col > 255 {
            emit(255, 0);
            col += 255;
            count += 1;
        }
        emit((i - col) as u8, w);
        col = i;
        count += 1;
    }
    count
}

/// Encodes dense `[out, in]` `weights` as a bitmask into `masks` and `values`, sized by
/// [`SparseFormat::sizes`].
pub fn encode_bitmask(
    shape: FcShape,
    weights: &[i8],
    masks: &mut [u8],
    values: &mut [i8],
) -> Result<(), KernelError> {
    let sizes = SparseFormat::Bitmask.sizes(shape, weights)?;
    check_len("sparse_fully_connected masks", masks.len(), sizes.index_len)?;
    check_len(
        "sparse_fully_connected values",
        values.len(),
        sizes.values_len,
    )?;
    let row_bytes = shape.in_features.div_ceil(8);
    masks.fill(0);
    let mut k = 0;
    if row_bytes == 0 {
        return Ok(());
    }
    for (row, mask) in weights
        .chunks_exact(shape.in_features)
        .zip(masks.chunks_exact_mut(row_bytes))
    {
        for (i, &w) in row.iter().enumerate() {
            if w != 0 {
                mask[i / 8] |= 1 << (i % 8);
                values[k] = w;
                k += 1;
            }
        }
    }
    Ok(())
}

/// Encodes dense `[out, in]` `weights` as deltas, sized by [`SparseFormat::sizes`].
pub fn encode_deltas(
    shape: FcShape,
    weights: &[i8],
    row_lens: &mut [u16],
    deltas: &mut [u8],
    values: &mut [i8],
) -> Result<(), KernelError> {
    let sizes = SparseFormat::Deltas.sizes(shape, weights)?;
    check_len(
        "sparse_fully_connected row_lens",
        row_lens.len(),
        sizes.index_len,
    )?;
    check_len(
        "sparse_fully_connected deltas",
        deltas.len(),
        sizes.deltas_len,
    )?;
    check_len(
        "sparse_fully_connected values",
        values.len(),
        sizes.values_len,
    )?;
    if shape.in_features == 0 {
        row_lens.fill(0);
        return Ok(());
    }
    let mut k = 0;
    for (row, len) in weights
        .chunks_exact(shape.in_features)
        .zip(row_lens.iter_mut())
    {
        // `sizes` checked the counts, so every index below is in range.
        let n = delta_entries(row, |d, v| {
            deltas[k] = d;
            values[k] = v;
            k += 1;
        });
        *len = n as u16;
    }
    Ok(())
}

const CORRUPT: KernelError = KernelError::InvalidParam {
    what: "sparse_fully_connected: weight structure points outside the input row",
};

/// Int8 fully connected with compressed weights (symmetric weights: `filter_offset` must be
/// 0). Validates shapes and the structure's lengths first; a structure whose columns run past
/// the row or whose mask and value counts disagree is an error, never an out-of-bounds
/// access.
pub fn sparse_fully_connected_i8(
    shape: FcShape,
    quant: &QuantParams<'_>,
    input: &[i8],
    weights: &SparseWeights<'_>,
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    quant.check::<i8>(shape.out_features)?;
    ensure_param(
        quant.filter_offset == 0,
        "sparse_fully_connected: weights must be symmetric (filter_offset 0)",
    )?;
    sparse_fully_connected_i8_with(
        shape,
        quant.input_offset,
        input,
        weights,
        bias,
        output,
        |acc, o| quant.finish(acc, o),
    )
}

/// [`sparse_fully_connected_i8`] with the caller's output stage: `finish(acc, o)` turns
/// output `o`'s int32 accumulator (bias included) into the int8 result. Lets a target
/// requantise its own way (the Cortex-M4 firmware reproduces TFLite's double-precision
/// rounding in integer arithmetic instead of soft-float).
pub fn sparse_fully_connected_i8_with(
    shape: FcShape,
    input_offset: i32,
    input: &[i8],
    weights: &SparseWeights<'_>,
    bias: Option<&[i32]>,
    output: &mut [i8],
    mut finish: impl FnMut(i32, usize) -> i8,
) -> Result<(), KernelError> {
    let overflow = KernelError::InvalidParam {
        what: "sparse_fully_connected: dimensions overflow usize",
    };
    let n_in = shape
        .batches
        .checked_mul(shape.in_features)
        .ok_or(overflow)?;
    let n_out = shape
        .batches
        .checked_mul(shape.out_features)
        .ok_or(overflow)?;
    check_len("sparse_fully_connected input", input.len(), n_in)?;
    check_len("sparse_fully_connected output", output.len(), n_out)?;
    if let Some(b) = bias {
        check_len("sparse_fully_connected bias", b.len(), shape.out_features)?;
    }
    ensure_param(
        (-256..=256).contains(&input_offset),
        "sparse_fully_connected: input_offset outside -256..=256",
    )?;
    let in_len = shape.in_features;
    let out_len = shape.out_features;
    let x_off = input_offset;
    match *weights {
        SparseWeights::Bitmask { masks, values } => {
            let row_bytes = in_len.div_ceil(8);
            check_len(
                "sparse_fully_connected masks",
                masks.len(),
                out_len * row_bytes,
            )?;
            // The values are counted while walking the masks (a popcount pass would cost as
            // much as the layer on cores without a popcount instruction): too few is an error
            // when reached, too many after the walk.
            for b in 0..shape.batches {
                // In range: the lengths were checked above.
                let x = &input[b * in_len..(b + 1) * in_len];
                let out_row = &mut output[b * out_len..(b + 1) * out_len];
                let mut stored = values.iter();
                let mut rows = masks.chunks_exact(row_bytes.max(1));
                for (o, out_v) in out_row.iter_mut().enumerate() {
                    let mut acc = bias.map_or(0, |b| b[o]);
                    let row = if row_bytes == 0 {
                        &[][..]
                    } else {
                        rows.next().unwrap_or(&[])
                    };
                    for (byte_index, &byte) in row.iter().enumerate() {
                        let mut m = byte;
                        let base = byte_index * 8;
                        while m != 0 {
                            let col = base + m.trailing_zeros() as usize;
                            m &= m - 1;
                            let (Some(&xv), Some(&w)) = (x.get(col), stored.next()) else {
                                return Err(CORRUPT);
                            };
                            acc = acc.wrapping_add((i32::from(xv) + x_off) * i32::from(w));
                        }
                    }
                    *out_v = finish(acc, o);
                }
                if stored.next().is_some() {
                    return Err(KernelError::BufferLength {
                        what: "sparse_fully_connected values (more than the masks select)",
                        expected: values.len() - stored.len() - 1,
                        actual: values.len(),
                    });
                }
            }
        }
        SparseWeights::Deltas {
            row_lens,
            deltas,
            values,
        } => {
            check_len("sparse_fully_connected row_lens", row_lens.len(), out_len)?;
            let entries: usize = row_lens.iter().map(|n| usize::from(*n)).sum();
            check_len("sparse_fully_connected deltas", deltas.len(), entries)?;
            check_len("sparse_fully_connected values", values.len(), entries)?;
            for b in 0..shape.batches {
                let x = &input[b * in_len..(b + 1) * in_len];
                let out_row = &mut output[b * out_len..(b + 1) * out_len];
                let mut k = 0usize;
                for ((o, out_v), &n) in out_row.iter_mut().enumerate().zip(row_lens) {
                    let mut acc = bias.map_or(0, |b| b[o]);
                    let end = k + usize::from(n);
                    let mut col = 0usize;
                    for (&d, &w) in deltas[k..end].iter().zip(&values[k..end]) {
                        col += usize::from(d);
                        let Some(&xv) = x.get(col) else {
                            return Err(CORRUPT);
                        };
                        acc = acc.wrapping_add((i32::from(xv) + x_off) * i32::from(w));
                    }
                    k = end;
                    *out_v = finish(acc, o);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fully_connected::fully_connected_i8;
    use crate::quant::Requant;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }
    }

    fn encode(format: SparseFormat, shape: FcShape, w: &[i8]) -> (Vec<u8>, Vec<u16>, Vec<i8>) {
        let sizes = format.sizes(shape, w).unwrap();
        let mut values = vec![0i8; sizes.values_len];
        match format {
            SparseFormat::Bitmask => {
                let mut masks = vec![0u8; sizes.index_len];
                encode_bitmask(shape, w, &mut masks, &mut values).unwrap();
                (masks, Vec::new(), values)
            }
            SparseFormat::Deltas => {
                let mut lens = vec![0u16; sizes.index_len];
                let mut deltas = vec![0u8; sizes.deltas_len];
                encode_deltas(shape, w, &mut lens, &mut deltas, &mut values).unwrap();
                (deltas, lens, values)
            }
        }
    }

    #[test]
    fn equals_the_dense_kernel_on_random_sparse_weights() {
        let mut rng = Lcg(99);
        for case in 0..120 {
            let shape = FcShape {
                batches: 1 + (rng.next() % 3) as usize,
                in_features: 1 + (rng.next() % 700) as usize,
                out_features: 1 + (rng.next() % 12) as usize,
            };
            let zero_percent = [0, 50, 80, 95, 100][case % 5];
            let w: Vec<i8> = (0..shape.in_features * shape.out_features)
                .map(|_| {
                    if rng.next() % 100 < zero_percent {
                        0
                    } else {
                        (rng.next() % 256) as u8 as i8
                    }
                })
                .collect();
            let x: Vec<i8> = (0..shape.batches * shape.in_features)
                .map(|_| (rng.next() % 256) as u8 as i8)
                .collect();
            let bias: Vec<i32> = (0..shape.out_features)
                .map(|_| (rng.next() % 20_001) as i32 - 10_000)
                .collect();
            let scales: Vec<f64> = (0..shape.out_features)
                .map(|o| 0.0005 + 0.0001 * o as f64)
                .collect();
            let q = QuantParams {
                input_offset: (rng.next() % 256) as i32 - 128,
                filter_offset: 0,
                output_offset: (rng.next() % 256) as i32 - 128,
                requant: Requant::double(&scales),
                act_min: -128,
                act_max: 127,
            };
            let mut dense = vec![0i8; shape.batches * shape.out_features];
            fully_connected_i8(shape, &q, &x, &w, Some(&bias), &mut dense).unwrap();
            for format in [SparseFormat::Bitmask, SparseFormat::Deltas] {
                let (a, lens, values) = encode(format, shape, &w);
                let weights = match format {
                    SparseFormat::Bitmask => SparseWeights::Bitmask {
                        masks: &a,
                        values: &values,
                    },
                    SparseFormat::Deltas => SparseWeights::Deltas {
                        row_lens: &lens,
                        deltas: &a,
                        values: &values,
                    },
                };
                let mut out = vec![0i8; dense.len()];
                sparse_fully_connected_i8(shape, &q, &x, &weights, Some(&bias), &mut out).unwrap();
                assert_eq!(out, dense, "case {case} {format:?} {shape:?}");
            }
        }
    }

    #[test]
    fn smallest_format_follows_density() {
        let shape = FcShape {
            batches: 1,
            in_features: 2028,
            out_features: 10,
        };
        let every =
            |n: usize| -> Vec<i8> { (0..20280).map(|i| if i % n == 0 { 3 } else { 0 }).collect() };
        // 20 % non-zero: masks (2,540) + values (4,056) beat two bytes per non-zero.
        let (f, s) = SparseFormat::smallest(shape, &every(5)).unwrap();
        assert_eq!((f, s.bytes(f)), (SparseFormat::Bitmask, 2540 + 4056));
        // 2 % non-zero: deltas win.
        assert_eq!(
            SparseFormat::smallest(shape, &every(50)).unwrap().0,
            SparseFormat::Deltas
        );
        // Gaps over 255 columns take bridge entries.
        let mut sparse_row = vec![0i8; 2028];
        sparse_row[1000] = 5;
        let one = FcShape {
            out_features: 1,
            ..shape
        };
        let (_, lens, values) = encode(SparseFormat::Deltas, one, &sparse_row);
        assert_eq!((lens[0], values.len()), (4, 4));
    }

    #[test]
    fn corrupt_structures_are_errors_not_panics() {
        let shape = FcShape {
            batches: 1,
            in_features: 10,
            out_features: 2,
        };
        let scales = [0.01f64, 0.01];
        let q = QuantParams {
            input_offset: 0,
            filter_offset: 0,
            output_offset: 0,
            requant: Requant::double(&scales),
            act_min: -128,
            act_max: 127,
        };
        let x = [1i8; 10];
        let mut out = [0i8; 2];
        // Mask bits past column 10 (byte 1, bit 7 → column 15).
        let bad = SparseWeights::Bitmask {
            masks: &[1, 0x80, 0, 0],
            values: &[1, 2],
        };
        assert!(sparse_fully_connected_i8(shape, &q, &x, &bad, None, &mut out).is_err());
        let short = SparseWeights::Bitmask {
            masks: &[1, 0, 1, 0],
            values: &[1],
        };
        assert!(sparse_fully_connected_i8(shape, &q, &x, &short, None, &mut out).is_err());
        let long = SparseWeights::Bitmask {
            masks: &[1, 0, 0, 0],
            values: &[1, 2],
        };
        assert!(sparse_fully_connected_i8(shape, &q, &x, &long, None, &mut out).is_err());
        let far = SparseWeights::Deltas {
            row_lens: &[1, 1],
            deltas: &[3, 200],
            values: &[1, 1],
        };
        assert!(sparse_fully_connected_i8(shape, &q, &x, &far, None, &mut out).is_err());
        let lens = SparseWeights::Deltas {
            row_lens: &[1, 5],
            deltas: &[3, 2],
            values: &[1, 1],
        };
        assert!(sparse_fully_connected_i8(shape, &q, &x, &lens, None, &mut out).is_err());
    }
}
