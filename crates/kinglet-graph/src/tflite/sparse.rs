//! TFLite's sparse tensor format (`SparsityParameters`): decoding any file's sparse constants
//! and choosing an encoding for kinglet's own pruned weights.
//!
//! A sparse tensor of rank `n` with `k` blocked dimensions is traversed as `n + k` levels
//! (`traversal_order`: the original dimensions, then the block dimensions; `block_map[j]` is
//! the original dimension block dimension `j` splits). A DENSE level stores every index
//! implicitly; a SPARSE_CSR level stores, for each position of the levels above it, a slice
//! `array_indices[array_segments[p] .. array_segments[p + 1]]` of the indices present. The
//! tensor's buffer holds the stored values in traversal order.

/// One traversal level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    /// Size of the (expanded) dimension; for a block level, the block size.
    pub dense_size: usize,
    /// `Some((array_segments, array_indices))` for SPARSE_CSR levels.
    pub csr: Option<(Vec<u32>, Vec<u32>)>,
}

/// A tensor's `SparsityParameters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SparseLayout {
    pub traversal_order: Vec<usize>,
    pub block_map: Vec<usize>,
    pub levels: Vec<Level>,
}

/// Most traversal levels (dimensions plus block dimensions) a sparse tensor may have.
const MAX_LEVELS: usize = 16;

/// Expands `values` (elements of `elem_bytes` bytes, in traversal order) into the dense
/// row-major bytes of a tensor of `shape`. Every index and segment is bounds-checked.
pub(crate) fn densify(
    shape: &[usize],
    elem_bytes: usize,
    layout: &SparseLayout,
    values: &[u8],
) -> Result<Vec<u8>, String> {
    let n = shape.len();
    let k = layout.block_map.len();
    let levels = n + k;
    // The walk recurses once per level: bound it (TFLite tensors have at most 6 dimensions).
    if levels > MAX_LEVELS {
        return Err(format!(
            "sparsity has {levels} traversal levels, at most {MAX_LEVELS} are read"
        ));
    }
    if layout.traversal_order.len() != levels || layout.levels.len() != levels {
        return Err(format!(
            "sparsity has {} traversal levels and {} dimension metadata entries, rank {n} with \
             {k} block dimensions needs {levels}",
            layout.traversal_order.len(),
            layout.levels.len()
        ));
    }
    let mut seen = vec![false; levels];
    for (level, &d) in layout.traversal_order.iter().enumerate() {
        let ok = if level < n { d < n } else { d == level };
        if !ok || std::mem::replace(&mut seen[d], true) {
            return Err(format!(
                "traversal_order {:?} is not the original dimensions followed by the block \
                 dimensions in order",
                layout.traversal_order
            ));
        }
    }
    // Sizes of the expanded dimensions (original dims divided by their blocks, then blocks).
    let mut expanded: Vec<usize> = shape.to_vec();
    let mut block_sizes = Vec::with_capacity(k);
    for (j, &d) in layout.block_map.iter().enumerate() {
        let b = layout.levels[n + j].dense_size;
        if d >= n || b == 0 || !shape[d].is_multiple_of(b) || expanded[d] != shape[d] {
            return Err(format!(
                "block {j} of size {b} on dimension {d} does not tile shape {shape:?}"
            ));
        }
        expanded[d] = shape[d] / b;
        block_sizes.push(b);
    }
    expanded.extend(&block_sizes);
    for (level, meta) in layout.levels.iter().enumerate() {
        let size = expanded[layout.traversal_order[level]];
        if meta.csr.is_none() && meta.dense_size != size {
            return Err(format!(
                "dense level {level} has size {}, the dimension has {size}",
                meta.dense_size
            ));
        }
    }
    let elements: usize = shape.iter().product();
    let mut dense = vec![0u8; elements * elem_bytes];
    let mut walk = Walk {
        shape,
        layout,
        expanded: &expanded,
        block_sizes: &block_sizes,
        elem_bytes,
        values,
        next_value: 0,
        dense: &mut dense,
        indices: vec![0; levels],
    };
    walk.level(0, 0)?;
    if walk.next_value * elem_bytes != values.len() {
        return Err(format!(
            "buffer has {} bytes, the sparsity structure stores {} values of {elem_bytes} bytes",
            values.len(),
            walk.next_value
        ));
    }
    Ok(dense)
}

struct Walk<'a> {
    shape: &'a [usize],
    layout: &'a SparseLayout,
    expanded: &'a [usize],
    block_sizes: &'a [usize],
    elem_bytes: usize,
    values: &'a [u8],
    next_value: usize,
    dense: &'a mut [u8],
    indices: Vec<usize>,
}

impl Walk<'_> {
    /// Visits traversal level `level` below position `prev` of the level above.
    fn level(&mut self, level: usize, prev: usize) -> Result<(), String> {
        if level == self.indices.len() {
            return self.store();
        }
        let meta = &self.layout.levels[level];
        match &meta.csr {
            None => {
                for i in 0..meta.dense_size {
                    self.indices[level] = i;
                    self.level(level + 1, prev * meta.dense_size + i)?;
                }
            }
            Some((segments, indices)) => {
                let (start, end) = match (segments.get(prev), segments.get(prev + 1)) {
                    (Some(&s), Some(&e)) if s <= e && (e as usize) <= indices.len() => {
                        (s as usize, e as usize)
                    }
                    _ => {
                        return Err(format!(
                            "level {level}: array_segments has no valid entry for position {prev}"
                        ));
                    }
                };
                let size = self.expanded[self.layout.traversal_order[level]];
                for (i, &index) in indices[start..end].iter().enumerate() {
                    let index = index as usize;
                    if index >= size {
                        return Err(format!(
                            "level {level}: index {index} outside dimension of size {size}"
                        ));
                    }
                    self.indices[level] = index;
                    self.level(level + 1, start + i)?;
                }
            }
        }
        Ok(())
    }

    /// Copies the next stored value to the dense position of the current indices.
    fn store(&mut self) -> Result<(), String> {
        let n = self.shape.len();
        let mut original = vec![0usize; n];
        for level in 0..n {
            original[self.layout.traversal_order[level]] = self.indices[level];
        }
        for (j, &d) in self.layout.block_map.iter().enumerate() {
            original[d] = original[d] * self.block_sizes[j] + self.indices[n + j];
        }
        let flat = original
            .iter()
            .zip(self.shape)
            .fold(0usize, |acc, (i, s)| acc * s + i);
        let e = self.elem_bytes;
        let src = self
            .values
            .get(self.next_value * e..(self.next_value + 1) * e)
            .ok_or_else(|| {
                format!(
                    "the sparsity structure stores more values than the buffer's {} bytes hold",
                    self.values.len()
                )
            })?;
        self.dense[flat * e..(flat + 1) * e].copy_from_slice(src);
        self.next_value += 1;
        Ok(())
    }
}

/// Bytes of an index vector holding values up to `max` in the narrowest schema type.
fn index_bytes(count: usize, max: usize) -> usize {
    count
        * if max <= u8::MAX as usize {
            1
        } else if max <= u16::MAX as usize {
            2
        } else {
            4
        }
}

/// Flatbuffer bytes a level's metadata costs beyond its index vectors (tables, vtables,
/// union offsets), for comparing layouts.
const LEVEL_OVERHEAD: usize = 40;

impl SparseLayout {
    /// Bytes the layout adds to the file besides the stored values.
    pub(crate) fn index_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|l| {
                LEVEL_OVERHEAD
                    + l.csr.as_ref().map_or(0, |(s, i)| {
                        let max_index = i.iter().copied().max().unwrap_or(0) as usize;
                        index_bytes(s.len(), s.last().copied().unwrap_or(0) as usize)
                            + index_bytes(i.len(), max_index)
                    })
            })
            .sum::<usize>()
            + 8 * self.traversal_order.len()
    }
}

/// Encodes row-major `data` of `shape` as TFLite's plain CSR: all leading dimensions DENSE,
/// the last one SPARSE_CSR. (A sparse level inside a block would allow uint8 indices for long
/// rows, but the TFLite runtime crashes on such files: it reads block sizes only from dense
/// levels.) Returns the layout, the stored values, and the layout's size in bytes including
/// values.
pub(crate) fn encode(
    shape: &[usize],
    elem_bytes: usize,
    data: &[u8],
) -> Option<(SparseLayout, Vec<u8>, usize)> {
    let (&last, leading) = shape.split_last()?;
    if last == 0 || elem_bytes == 0 || data.len() != shape.iter().product::<usize>() * elem_bytes {
        return None;
    }
    let mut segments = vec![0u32];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for row in data.chunks_exact(last * elem_bytes) {
        for (i, v) in row.chunks_exact(elem_bytes).enumerate() {
            if v.iter().any(|b| *b != 0) {
                indices.push(i as u32);
                values.extend_from_slice(v);
            }
        }
        segments.push(indices.len() as u32);
    }
    let mut levels: Vec<Level> = leading
        .iter()
        .map(|&d| Level {
            dense_size: d,
            csr: None,
        })
        .collect();
    levels.push(Level {
        dense_size: last,
        csr: Some((segments, indices)),
    });
    let layout = SparseLayout {
        traversal_order: (0..shape.len()).collect(),
        block_map: Vec::new(),
        levels,
    };
    let bytes = layout.index_bytes() + values.len();
    Some((layout, values, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pruned(len: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if (s >> 24).is_multiple_of(5) {
                    (s >> 8) as u8 | 1
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn encodings_round_trip() {
        for (shape, elem) in [
            (vec![10, 2028], 1),
            (vec![7, 300], 4),
            (vec![12, 3, 3, 5], 1),
            (vec![300], 1),
        ] {
            let data = pruned(shape.iter().product::<usize>() * elem, 7);
            let (layout, values, bytes) = encode(&shape, elem, &data).unwrap();
            assert!(bytes < data.len(), "{shape:?}: {bytes} ≥ {}", data.len());
            assert_eq!(densify(&shape, elem, &layout, &values).unwrap(), data);
        }
    }

    #[test]
    fn blocked_layouts_decode() {
        // A 2×4 tensor in 1×2 blocks: rows DENSE, column blocks CSR, blocks DENSE (TF's
        // converter's block-sparse form).
        let layout = SparseLayout {
            traversal_order: vec![0, 1, 2, 3],
            block_map: vec![0, 1],
            levels: vec![
                Level {
                    dense_size: 2,
                    csr: None,
                },
                Level {
                    dense_size: 0,
                    csr: Some((vec![0, 1, 2], vec![1, 0])),
                },
                Level {
                    dense_size: 1,
                    csr: None,
                },
                Level {
                    dense_size: 2,
                    csr: None,
                },
            ],
        };
        let dense = densify(&[2, 4], 1, &layout, &[1, 2, 3, 4]).unwrap();
        assert_eq!(dense, [0, 0, 1, 2, 3, 4, 0, 0]);
    }

    #[test]
    fn corrupt_structures_are_errors() {
        let data = pruned(4 * 8, 1);
        let (layout, values, _) = encode(&[4, 8], 1, &data).unwrap();
        let mut bad = layout.clone();
        if let Some((_, idx)) = &mut bad.levels[1].csr {
            idx[0] = 8;
        }
        assert!(densify(&[4, 8], 1, &bad, &values).is_err());
        let mut bad = layout.clone();
        if let Some((seg, _)) = &mut bad.levels[1].csr {
            seg[2] = 1000;
        }
        assert!(densify(&[4, 8], 1, &bad, &values).is_err());
        assert!(densify(&[4, 8], 1, &layout, &values[1..]).is_err());
        let deep = SparseLayout {
            traversal_order: (0..40).collect(),
            block_map: Vec::new(),
            levels: vec![
                Level {
                    dense_size: 1,
                    csr: None,
                };
                40
            ],
        };
        assert!(densify(&[1; 40], 1, &deep, &[0]).is_err());
        let mut bad = layout;
        bad.traversal_order = vec![1, 0];
        bad.levels[0].dense_size = 8;
        assert!(densify(&[4, 8], 1, &bad, &values).is_err());
    }
}
