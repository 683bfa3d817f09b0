//! Static arena planning: every buffer gets a byte offset such that buffers alive during the
//! same step never overlap. Greedy, largest first, lowest free offset — optimal enough for
//! the chain-shaped graphs HAR models are, and deterministic.

use crate::program::{Buffer, Loc, Step};

/// Arena offsets are multiples of this, so `i16`/`i32` views are aligned.
pub const ALIGN: usize = 4;

/// Assigns `offset` to every buffer and returns the arena size in bytes.
pub fn plan_arena(buffers: &mut [Buffer], steps: &[Step]) -> usize {
    let mut live: Vec<Option<(usize, usize)>> = vec![None; buffers.len()];
    for (i, step) in steps.iter().enumerate() {
        for loc in [step.kind.src(), step.kind.dst()]
            .into_iter()
            .chain(step.kind.scratch())
        {
            if let Loc::Arena(b) = loc {
                let range = live[b].get_or_insert((i, i));
                range.0 = range.0.min(i);
                range.1 = range.1.max(i);
            }
        }
    }
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(buffers[b].bytes()), b));
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for b in order {
        let Some((first, last)) = live[b] else {
            buffers[b].offset = 0;
            continue;
        };
        let size = buffers[b].bytes().next_multiple_of(ALIGN);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter_map(|&p| {
                let (f, l) = live[p]?;
                (f <= last && first <= l)
                    .then(|| (buffers[p].offset, buffers[p].offset + buffers[p].bytes()))
            })
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + size <= start {
                break;
            }
            offset = offset.max(end.next_multiple_of(ALIGN));
        }
        buffers[b].offset = offset;
        arena = arena.max(offset + size);
        placed.push(b);
    }
    arena
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{Elem, StepKind};

    fn buf(len: usize) -> Buffer {
        Buffer {
            name: String::new(),
            elem: Elem::I8,
            len,
            offset: 0,
        }
    }

    fn copy(src: Loc, dst: Loc) -> Step {
        Step {
            layer: 0,
            kind: StepKind::Copy { src, dst, len: 1 },
        }
    }

    #[test]
    fn chain_reuses_memory_of_dead_buffers() {
        // input → a → b → c → output: a and c never live together.
        let mut buffers = vec![buf(100), buf(10), buf(100)];
        let steps = vec![
            copy(Loc::Input, Loc::Arena(0)),
            copy(Loc::Arena(0), Loc::Arena(1)),
            copy(Loc::Arena(1), Loc::Arena(2)),
            copy(Loc::Arena(2), Loc::Output),
        ];
        let size = plan_arena(&mut buffers, &steps);
        assert_eq!(buffers[0].offset, buffers[2].offset);
        assert!(buffers[1].offset >= 100);
        assert_eq!(size, 112);
        // Live-together buffers do not overlap.
        let (a, b) = (&buffers[0], &buffers[1]);
        assert!(a.offset + a.bytes() <= b.offset || b.offset + b.bytes() <= a.offset);
    }
}
