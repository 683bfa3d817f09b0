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

/// [`lcg_input`] for every input of `graph`: one LCG stream filling input 0, then input 1, …
/// end to end, as a compiled multi-input model takes its input array.
pub fn lcg_input_for(graph: &kinglet_graph::Graph) -> Vec<i8> {
    lcg_input(
        graph
            .inputs
            .iter()
            .map(|&i| graph.tensor(i).elements())
            .sum(),
    )
}

/// The float test input of float models: the same LCG bytes scaled by 1/128 (exact in f32),
/// so values lie in [-1, 1).
pub fn float_test_input(bytes: &[i8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(b) / 128.0).collect()
}

/// The int16 test input of a16w8 models: each LCG byte is the high byte of its value and,
/// multiplied by 37, the low byte, so the values cover the whole int16 range with varied low
/// bits (a byte-only stream would leave them zero).
pub fn int16_test_input(bytes: &[i8]) -> Vec<i16> {
    bytes
        .iter()
        .map(|&b| i16::from_be_bytes([b as u8, (b as u8).wrapping_mul(37)]))
        .collect()
}
