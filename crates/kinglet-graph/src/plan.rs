//! Static memory planner: every activation tensor (graph inputs and outputs included) gets an
//! offset in one arena, from tensor lifetimes, before anything runs. Constants are not in the
//! arena (they live in flash on a microcontroller, in the graph on the host).

use std::ops::Range;

use crate::error::GraphError;
use crate::graph::{Graph, OpKind, TensorId};

/// Every tensor offset is a multiple of this, so f32/i32 views of the arena are aligned and
/// word-wise kernels may use 16-byte loads.
pub const ARENA_ALIGN: usize = 16;

/// Placement of one activation tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub tensor: TensorId,
    pub offset: usize,
    pub bytes: usize,
    /// First op that needs the tensor (0 for graph inputs).
    pub first_op: usize,
    /// Last op that needs it (the final op for graph outputs).
    pub last_op: usize,
}

/// Offsets of all activation tensors and the arena size they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    placements: Vec<Option<Placement>>,
    arena_bytes: usize,
}

impl ArenaPlan {
    /// Plans the arena: lifetimes from op order, then greedy placement of the largest tensors
    /// first, each at the lowest aligned offset not overlapping a placed tensor whose lifetime
    /// overlaps its own (first fit).
    pub fn new(graph: &Graph) -> Result<ArenaPlan, GraphError> {
        graph.validate()?;
        let n = graph.tensors.len();
        let last = graph.ops.len().saturating_sub(1);
        let mut life: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut touch = |id: TensorId, at: usize| {
            let e = life[id.0].get_or_insert((at, at));
            e.0 = e.0.min(at);
            e.1 = e.1.max(at);
        };
        for id in &graph.inputs {
            touch(*id, 0);
        }
        for (i, op) in graph.ops.iter().enumerate() {
            for id in op.inputs.iter().chain(&op.outputs) {
                if !graph.tensor(*id).is_constant() {
                    touch(*id, i);
                }
            }
        }
        for id in &graph.outputs {
            touch(*id, last);
        }
        // A Reshape's output aliases its input (same bytes, row-major): the pair shares one
        // buffer whose lifetime covers both, and the executor skips the copy.
        let mut root: Vec<usize> = (0..n).collect();
        for op in &graph.ops {
            if let OpKind::Reshape { .. } = op.kind {
                let (src, dst) = (op.inputs[0].0, op.outputs[0].0);
                if !graph.tensors[src].is_constant() {
                    root[dst] = root[src];
                }
            }
        }
        for i in 0..n {
            if root[i] != i
                && let (Some((f, l)), Some(r)) = (life[i], life[root[i]].as_mut())
            {
                r.0 = r.0.min(f);
                r.1 = r.1.max(l);
            }
        }
        let mut order: Vec<(TensorId, usize, (usize, usize))> = life
            .iter()
            .enumerate()
            .filter(|(i, _)| root[*i] == *i)
            .filter_map(|(i, l)| l.map(|l| (TensorId(i), graph.tensors[i].byte_size(), l)))
            .collect();
        // Largest first; ties by first use then id keep the plan deterministic.
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.0.cmp(&b.2.0)).then(a.0.cmp(&b.0)));
        let mut placed: Vec<Placement> = Vec::with_capacity(order.len());
        for (tensor, bytes, (first_op, last_op)) in order {
            let mut conflicts: Vec<Range<usize>> = placed
                .iter()
                .filter(|p| p.first_op <= last_op && first_op <= p.last_op)
                .map(|p| p.offset..p.offset + p.bytes)
                .collect();
            conflicts.sort_by_key(|r| r.start);
            let mut offset = 0;
            for r in &conflicts {
                if offset + bytes <= r.start {
                    break;
                }
                offset = offset.max(r.end.next_multiple_of(ARENA_ALIGN));
            }
            placed.push(Placement {
                tensor,
                offset,
                bytes,
                first_op,
                last_op,
            });
        }
        let arena_bytes = placed
            .iter()
            .map(|p| p.offset + p.bytes)
            .max()
            .unwrap_or(0)
            .next_multiple_of(ARENA_ALIGN);
        let mut placements: Vec<Option<Placement>> = vec![None; n];
        for p in placed {
            let i = p.tensor.0;
            placements[i] = Some(p);
        }
        for i in 0..n {
            if root[i] != i && life[i].is_some() {
                placements[i] = placements[root[i]].clone().map(|p| Placement {
                    tensor: TensorId(i),
                    ..p
                });
            }
        }
        Ok(ArenaPlan {
            placements,
            arena_bytes,
        })
    }

    /// Peak arena size in bytes: exactly what the executor allocates.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// Placement of a tensor, `None` for constants and unused tensors.
    pub fn placement(&self, id: TensorId) -> Option<&Placement> {
        self.placements.get(id.0).and_then(Option::as_ref)
    }

    /// Byte range of a tensor in the arena.
    pub fn range(&self, id: TensorId) -> Option<Range<usize>> {
        self.placement(id).map(|p| p.offset..p.offset + p.bytes)
    }

    pub fn placements(&self) -> impl Iterator<Item = &Placement> {
        self.placements.iter().flatten()
    }

    /// Sum of all activation sizes: what a planner without reuse or aliasing would need.
    pub fn unshared_bytes(&self) -> usize {
        self.placements().map(|p| p.bytes).sum()
    }

    /// Whether two tensors share one buffer (a Reshape and its input).
    pub fn aliased(&self, a: TensorId, b: TensorId) -> bool {
        a != b && self.range(a).is_some() && self.range(a) == self.range(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Activation, DType, Hw, OpKind, Padding};

    fn chain() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 1, 32, 4], DType::F32, None);
        let w = g.add_constant_f32("w", &[4, 1, 3, 4], &[0.1; 48]).unwrap();
        let conv = OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: Padding::Same,
            activation: Activation::Relu,
        };
        let a = g.add_op_inferred(conv.clone(), &[x, w], "a").unwrap();
        let b = g.add_op_inferred(conv.clone(), &[a, w], "b").unwrap();
        let c = g.add_op_inferred(conv, &[b, w], "c").unwrap();
        g.mark_output(c);
        g
    }

    #[test]
    fn live_tensors_never_overlap_and_dead_ones_are_reused() {
        let g = chain();
        let plan = ArenaPlan::new(&g).unwrap();
        let ps: Vec<&Placement> = plan.placements().collect();
        assert_eq!(ps.len(), 4);
        for a in &ps {
            assert_eq!(a.offset % ARENA_ALIGN, 0);
            for b in &ps {
                if plan.aliased(a.tensor, b.tensor) {
                    continue;
                }
                let lives_overlap = a.first_op <= b.last_op && b.first_op <= a.last_op;
                let bytes_overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                if a.tensor != b.tensor && lives_overlap {
                    assert!(!bytes_overlap, "{a:?} overlaps {b:?}");
                }
            }
        }
        // Four 512-byte tensors, at most two live at once: reuse gives 1024, not 2048.
        assert_eq!(plan.unshared_bytes(), 2048);
        assert_eq!(plan.arena_bytes(), 1024);
    }

    #[test]
    fn reshape_outputs_share_their_input_buffer() {
        let mut g = chain();
        let c = g.outputs[0];
        g.outputs.clear();
        let r = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, 128],
                },
                &[c],
                "r",
            )
            .unwrap();
        g.mark_output(r);
        let plan = ArenaPlan::new(&g).unwrap();
        assert!(plan.aliased(c, r));
        assert_eq!(plan.arena_bytes(), 1024);
    }
}
