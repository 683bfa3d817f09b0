//! The fixed cross-check input of `shared/seed-models/README.md`.

/// `s = 12345; s = s·1103515245 + 12345 (mod 2^32); byte = (s >> 16) & 0xff`, as int8.
pub fn lcg_input(len: usize) -> Vec<i8> {
    let mut s: u32 = 12345;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((s >> 16) & 0xff) as u8 as i8
        })
        .collect()
}
