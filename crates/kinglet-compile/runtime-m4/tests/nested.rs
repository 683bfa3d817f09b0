//! Nested-width kernels (run here through the portable instruction models; the same code runs
//! natively in QEMU) on seeded random layers: a width reading its share of the full width's
//! blob must give, bit for bit, what the ordinary kernel gives on the width's own weights
//! (`w_own[o][t][c] = w_full[o][t][c]`, `o < out_ch`, `c < in_ch`) and what kinglet-micro's
//! reference kernels give. Widths are the quarters of a slimmable network (24 → 6/12/18/24),
//! blocks any that divide every width's channels, storage widened and int8.
use kinglet_m4::nested::{
    FullRows, nested_conv1d, nested_conv1d_dyn, nested_conv1d_fixed, nested_conv1d_scratch_words,
    nested_conv1d_shared, nested_fully_connected, nested_fully_connected_dyn,
    nested_fully_connected_fixed, pack_weights_blocked, pack_weights_narrow_blocked,
};
use kinglet_m4::requant_form::{BIT31, GENERAL, HIGH_WORD};
use kinglet_m4::subbyte::{pack_weights_bits, packed_block_bytes};
use kinglet_m4::{
    Conv1d, ConvWeights, FcRequant, FullyConnected, Requant, ShapeError, channel_block, conv1d_dyn,
    conv1d_padded_len, conv1d_row_len, conv1d_scratch_words, fc_row_len, fully_connected_dyn,
    narrow_block_bytes, pack_weights, pack_weights_narrow, requant_form_1d, widen_padded_before,
};
use kinglet_micro::quant::{FusedActivation, activation_range_quantized};

mod common;
use common::{
    Conv1dShape, FcQuant, Lcg, bytes_of, fold, quant_params, random_conv1d_io, random_fc_io,
    random_fc_quant, random_requant, words_of,
};

/// A random element of `items`.
fn pick<T: Copy>(rng: &mut Lcg, items: &[T]) -> T {
    items[rng.range(0, items.len() as i32 - 1) as usize]
}

/// The quarters of `full` channels a width can have (`full · q / 4`, whole numbers); a width
/// with fewer inputs than the blob must have an even count when `even_below_full`.
fn quarter_widths(full: usize, even_below_full: bool) -> Vec<usize> {
    (1..=4)
        .filter(|q| (full * q).is_multiple_of(4))
        .map(|q| full * q / 4)
        .filter(|&w| w > 0 && (w == full || !even_below_full || w.is_multiple_of(2)))
        .collect()
}

/// A random block (1, 2 or 4) dividing both channel counts; the largest half of the time.
fn random_block(rng: &mut Lcg, out_ch: usize, full_out: usize) -> usize {
    let blocks: Vec<usize> = [4, 2, 1]
        .into_iter()
        .filter(|b| out_ch.is_multiple_of(*b) && full_out.is_multiple_of(*b))
        .collect();
    if rng.range(0, 1) == 0 {
        blocks[0]
    } else {
        pick(rng, &blocks)
    }
}

/// A width's own weights inside the full width's `[full_out][taps][full_in]`: of the first
/// `out_ch` filters, the first `in_ch` values of every tap.
fn own_weights(full: &[i8], taps: usize, full_in: usize, in_ch: usize, out_ch: usize) -> Vec<i8> {
    (0..out_ch * taps)
        .flat_map(|run| &full[run * full_in..run * full_in + in_ch])
        .copied()
        .collect()
}

/// int8 packed weights in word storage, as the generated code declares them: `len` bytes
/// filled by `pack`.
fn narrow_words(len: usize, pack: impl FnOnce(&mut [i8]) -> Result<(), ShapeError>) -> Vec<u32> {
    let mut bytes = vec![0i8; len];
    pack(&mut bytes).unwrap();
    words_of(&bytes.iter().map(|&b| b as u8).collect::<Vec<_>>())
}

/// The first `len` bytes of `words` as int8 weights.
fn narrow_of(words: &[u32], len: usize) -> &[i8] {
    let bytes = bytes_of(words, len);
    // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), len) }
}

/// A nested layer's blob, widened and int8 (word storage), packed in blocks of `block`.
struct Blob {
    wide: Vec<i16>,
    narrow: Vec<u32>,
    narrow_len: usize,
}

impl Blob {
    fn pack(weights: &[i8], out_ch: usize, row_in: usize, block: usize) -> Blob {
        let row = (row_in + 1) & !1;
        let mut wide = vec![0i16; out_ch * row];
        pack_weights_blocked(weights, out_ch, row_in, block, &mut wide).unwrap();
        let narrow_len = out_ch / block * narrow_block_bytes(block, row);
        let narrow = narrow_words(narrow_len, |b| {
            pack_weights_narrow_blocked(weights, out_ch, row_in, block, b)
        });
        Blob {
            wide,
            narrow,
            narrow_len,
        }
    }

    /// The blob as both storages the nested kernels read.
    fn storages(&self) -> [ConvWeights<'_>; 2] {
        [
            ConvWeights::Wide(&self.wide),
            ConvWeights::Narrow(narrow_of(&self.narrow, self.narrow_len)),
        ]
    }
}

/// Random full widths of a layer and one of its widths: `(full, in_ch, out_ch)`. With
/// `first_layer`, the blob has 9 inputs (an odd count, as a first layer's sensor channels)
/// that every width reads whole.
fn random_nested_shape(
    rng: &mut Lcg,
    first_layer: bool,
    even_inputs: bool,
) -> (FullRows, usize, usize) {
    let full_in = if first_layer {
        9
    } else {
        pick(rng, &[2, 4, 8, 12, 16, 24, 48])
    };
    let full_out = pick(rng, &[6, 8, 10, 12, 24, 48, 72]);
    let in_ch = pick(rng, &quarter_widths(full_in, even_inputs));
    let out_ch = pick(rng, &quarter_widths(full_out, false));
    let block = random_block(rng, out_ch, full_out);
    let full = FullRows {
        in_ch: full_in,
        out_ch: full_out,
        block,
    };
    (full, in_ch, out_ch)
}

/// One width of a random nested 1D convolution (SAME padding, `width = in_width`): the full
/// width's weights, the width's own, its data and quantisation, and the reference output.
#[derive(Clone)]
struct ConvLayer {
    full: FullRows,
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    width: usize,
    pool: bool,
    full_weights: Vec<i8>,
    weights: Vec<i8>,
    folded: Vec<i32>,
    multipliers: Vec<i32>,
    shifts: Vec<i32>,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
    padded: Vec<i16>,
    expected: Vec<i8>,
}

impl ConvLayer {
    /// `shape` is `(full, in_ch, out_ch, kernel, width, pool)`.
    fn random(
        rng: &mut Lcg,
        case: usize,
        shape: (FullRows, usize, usize, usize, usize, bool),
    ) -> ConvLayer {
        let (full, in_ch, out_ch, kernel, width, pool) = shape;
        // Every fifth case a channel without right shift under a ReLU: the BIT31 form.
        let bit31 = case % 5 == 4;
        let activation = if bit31 {
            FusedActivation::Relu
        } else {
            pick(
                rng,
                &[
                    FusedActivation::None,
                    FusedActivation::Relu,
                    FusedActivation::Relu6,
                ],
            )
        };
        let in_zp = rng.range(-128, 127);
        let out_zp = rng.range(-128, 127);
        let (out_s, multipliers, mut shifts) = random_requant(rng, case, out_ch);
        if bit31 {
            shifts[0] = 0;
        }
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        let full_weights: Vec<i8> = (0..full.out_ch * kernel * full.in_ch)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let weights = own_weights(&full_weights, kernel, full.in_ch, in_ch, out_ch);
        let requant = kinglet_micro::Requant::new(&multipliers, &shifts);
        let q = quant_params(in_zp, out_zp, requant, (act_min, act_max));
        let conv = Conv1dShape::same(in_ch, out_ch, kernel, width, pool);
        let (bias, input, expected) = random_conv1d_io(rng, &conv, &weights, &q);
        let mut padded = vec![0i16; conv1d_padded_len(width, in_ch, kernel)];
        let pad_before = conv.pad_before;
        widen_padded_before(&input, in_ch, in_zp as i8, pad_before, &mut padded).unwrap();
        ConvLayer {
            full,
            in_ch,
            out_ch,
            kernel,
            width,
            pool,
            folded: fold(&bias, &weights, out_ch, in_zp),
            full_weights,
            weights,
            multipliers,
            shifts,
            out_zp,
            act_min,
            act_max,
            padded,
            expected,
        }
    }

    fn params<'a>(&'a self, weights: ConvWeights<'a>) -> Conv1d<'a> {
        Conv1d {
            width: self.width,
            kernel: self.kernel,
            weights,
            bias: &self.folded,
            requant: Requant {
                multipliers: &self.multipliers,
                shifts: &self.shifts,
                output_offset: self.out_zp,
                act_min: self.act_min,
                act_max: self.act_max,
            },
            pool: self.pool,
        }
    }

    /// The width's own weights, packed as an ordinary layer's.
    fn own(&self) -> Blob {
        let block = channel_block(self.out_ch);
        Blob::pack(&self.weights, self.out_ch, self.kernel * self.in_ch, block)
    }

    /// The full width's weights, packed in the blob's blocks.
    fn blob(&self) -> Blob {
        let f = self.full;
        Blob::pack(&self.full_weights, f.out_ch, self.kernel * f.in_ch, f.block)
    }

    /// `nested_conv1d_dyn` on `weights` with a scratch of the documented size.
    fn run_nested(&self, weights: ConvWeights) -> Result<Vec<i8>, ShapeError> {
        let full_row = conv1d_row_len(self.full.in_ch, self.kernel);
        let mut scratch = vec![0u32; nested_conv1d_scratch_words(self.full.block, full_row)];
        let mut out = vec![0i8; self.expected.len()];
        let (p, x) = (self.params(weights), &self.padded);
        nested_conv1d_dyn(
            self.in_ch,
            self.out_ch,
            self.full,
            &p,
            x,
            &mut out,
            &mut scratch,
        )?;
        Ok(out)
    }

    /// [`Self::run_nested`] through `nested_conv1d_fixed`, instantiated for this layer's
    /// block, form and walk.
    fn run_fixed(&self, weights: ConvWeights) -> Result<Vec<i8>, ShapeError> {
        let full_row = conv1d_row_len(self.full.in_ch, self.kernel);
        let mut scratch = vec![0u32; nested_conv1d_scratch_words(self.full.block, full_row)];
        let mut out = vec![0i8; self.expected.len()];
        let (p, x) = (self.params(weights), &self.padded);
        let (i, o, f) = (self.in_ch, self.out_ch, self.full);
        macro_rules! fixed {
            ($($b:literal, $form:ident, $tap:literal);*) => {
                match (f.block, self.form(), i < f.in_ch) {
                    $(($b, $form, $tap) => nested_conv1d_fixed::<$b, $form, $tap>(
                        i, o, f, &p, x, &mut out, &mut scratch,
                    ),)*
                    _ => Err(ShapeError),
                }
            };
        }
        fixed!(4, HIGH_WORD, true; 4, BIT31, true; 4, GENERAL, true;
            2, HIGH_WORD, true; 2, BIT31, true; 2, GENERAL, true;
            1, HIGH_WORD, true; 1, BIT31, true; 1, GENERAL, true;
            4, HIGH_WORD, false; 4, BIT31, false; 4, GENERAL, false;
            2, HIGH_WORD, false; 2, BIT31, false; 2, GENERAL, false;
            1, HIGH_WORD, false; 1, BIT31, false; 1, GENERAL, false)?;
        Ok(out)
    }

    /// This width's requantisation form (`FORM` of the compile-time variants).
    fn form(&self) -> u8 {
        let row = conv1d_row_len(self.in_ch, self.kernel);
        requant_form_1d(&self.shifts, self.out_zp, self.act_min, &self.folded, row)
    }
}

/// Every width of random nested 1D convolutions (kernel 1, 3, 5, SAME padding, ± fused max
/// pool, the odd 9-channel first layer too) against the width's own packed weights and the
/// reference kernels, with widened and int8 blobs.
#[test]
fn nested_conv1d_matches_own_weights_and_reference() {
    let mut rng = Lcg(17);
    let mut seen = [0usize; 6];
    for case in 0..700 {
        let first_layer = case % 6 == 0;
        let (full, in_ch, out_ch) = random_nested_shape(&mut rng, first_layer, true);
        let kernel = pick(&mut rng, &[1usize, 3, 5]);
        let width = rng.range(kernel as i32, 32) as usize;
        let pool = rng.range(0, 1) == 1 && width >= 2;
        seen[0] += usize::from(in_ch < full.in_ch);
        seen[1] += usize::from(out_ch < full.out_ch);
        seen[2] += usize::from(full.block != channel_block(out_ch));
        seen[3] += usize::from(first_layer && out_ch < full.out_ch);
        seen[4] += usize::from(pool && in_ch < full.in_ch);
        seen[5] += usize::from(kernel > 1 && in_ch < full.in_ch);
        let layer = ConvLayer::random(&mut rng, case, (full, in_ch, out_ch, kernel, width, pool));
        let what = format!(
            "case {case}: {full:?} in {in_ch} out {out_ch} k {kernel} width {width} pool {pool}"
        );
        for weights in layer.own().storages() {
            let row = conv1d_row_len(in_ch, kernel);
            let mut scratch = vec![0u32; conv1d_scratch_words(out_ch, row)];
            let mut out = vec![0i8; layer.expected.len()];
            let (p, x) = (layer.params(weights), &layer.padded);
            conv1d_dyn(in_ch, out_ch, &p, x, &mut out, &mut scratch).unwrap();
            assert_eq!(out, layer.expected, "{what}: own {weights:?}");
        }
        for weights in layer.blob().storages() {
            let out = layer.run_nested(weights).unwrap();
            assert_eq!(out, layer.expected, "{what}: nested {weights:?}");
            let out = layer.run_fixed(weights).unwrap();
            assert_eq!(out, layer.expected, "{what}: nested, fixed {weights:?}");
        }
    }
    assert!(seen.iter().all(|&n| n >= 40), "{seen:?}");
}
/// One width of a random nested fully-connected layer, as [`ConvLayer`].
#[derive(Clone)]
struct FcLayer {
    full: FullRows,
    in_len: usize,
    out_len: usize,
    full_weights: Vec<i8>,
    weights: Vec<i8>,
    folded: Vec<i32>,
    scales: Vec<f64>,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
    padded: Vec<i16>,
    expected: Vec<i8>,
}

impl FcLayer {
    fn random(rng: &mut Lcg, relu: bool, full: FullRows, in_len: usize, out_len: usize) -> FcLayer {
        let fq = random_fc_quant(rng, out_len, relu);
        let full_weights: Vec<i8> = (0..full.out_ch * full.in_ch)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let weights = own_weights(&full_weights, 1, full.in_ch, in_len, out_len);
        let (bias, input, expected) = random_fc_io(rng, &fq, &weights, in_len);
        let FcQuant {
            scales,
            in_zp,
            out_zp,
            act_min,
            act_max,
        } = fq;
        let mut padded = vec![0i16; fc_row_len(in_len)];
        widen_padded_before(&input, in_len, in_zp as i8, 0, &mut padded).unwrap();
        FcLayer {
            full,
            in_len,
            out_len,
            folded: fold(&bias, &weights, out_len, in_zp),
            full_weights,
            weights,
            scales,
            out_zp,
            act_min,
            act_max,
            padded,
            expected,
        }
    }

    fn params<'a>(&'a self, weights: ConvWeights<'a>) -> FullyConnected<'a> {
        FullyConnected {
            weights,
            bias: &self.folded,
            requant: FcRequant {
                scales: &self.scales,
                output_offset: self.out_zp,
                act_min: self.act_min,
                act_max: self.act_max,
            },
        }
    }

    fn own(&self) -> Blob {
        let block = channel_block(self.out_len);
        Blob::pack(&self.weights, self.out_len, self.in_len, block)
    }

    fn blob(&self) -> Blob {
        let f = self.full;
        Blob::pack(&self.full_weights, f.out_ch, f.in_ch, f.block)
    }

    fn run_nested(&self, weights: ConvWeights) -> Result<Vec<i8>, ShapeError> {
        let mut out = vec![0i8; self.out_len];
        let (p, x) = (self.params(weights), &self.padded);
        nested_fully_connected_dyn(self.in_len, self.out_len, self.full, &p, x, &mut out)?;
        Ok(out)
    }

    /// [`Self::run_nested`] through `nested_fully_connected_fixed`.
    fn run_fixed(&self, weights: ConvWeights) -> Result<Vec<i8>, ShapeError> {
        let mut out = vec![0i8; self.out_len];
        let (p, x) = (self.params(weights), &self.padded);
        let (i, o, f) = (self.in_len, self.out_len, self.full);
        match (f.block, weights.bits()) {
            (4, 16) => nested_fully_connected_fixed::<4, 16>(i, o, f, &p, x, &mut out),
            (2, 16) => nested_fully_connected_fixed::<2, 16>(i, o, f, &p, x, &mut out),
            (1, 16) => nested_fully_connected_fixed::<1, 16>(i, o, f, &p, x, &mut out),
            (4, 8) => nested_fully_connected_fixed::<4, 8>(i, o, f, &p, x, &mut out),
            (2, 8) => nested_fully_connected_fixed::<2, 8>(i, o, f, &p, x, &mut out),
            (1, 8) => nested_fully_connected_fixed::<1, 8>(i, o, f, &p, x, &mut out),
            _ => Err(ShapeError),
        }?;
        Ok(out)
    }
}

/// Every width of random nested fully-connected layers (odd and even full input lengths)
/// against the width's own packed weights and the reference kernel.
#[test]
fn nested_fully_connected_matches_own_weights_and_reference() {
    let mut rng = Lcg(19);
    let mut seen = [0usize; 3];
    for case in 0..600 {
        let full_in = rng.range(1, 96) as usize;
        let full_out = pick(&mut rng, &[6, 8, 10, 12, 24, 48]);
        // A quarter width, or any even length below an odd full length.
        let in_len = if full_in % 2 == 1 && full_in > 2 && rng.range(0, 1) == 0 {
            2 * rng.range(1, full_in as i32 / 2) as usize
        } else {
            pick(&mut rng, &quarter_widths(full_in, true))
        };
        let out_len = pick(&mut rng, &quarter_widths(full_out, false));
        let block = random_block(&mut rng, out_len, full_out);
        let full = FullRows {
            in_ch: full_in,
            out_ch: full_out,
            block,
        };
        seen[0] += usize::from(in_len < full_in);
        seen[1] += usize::from(in_len < full_in && full_in % 2 == 1);
        seen[2] += usize::from(block != channel_block(out_len));
        let layer = FcLayer::random(&mut rng, case % 3 == 0, full, in_len, out_len);
        let what = format!("case {case}: {full:?} in {in_len} out {out_len}");
        for weights in layer.own().storages() {
            let mut out = vec![0i8; out_len];
            let (p, x) = (layer.params(weights), &layer.padded);
            fully_connected_dyn(in_len, out_len, &p, x, &mut out).unwrap();
            assert_eq!(out, layer.expected, "{what}: own {weights:?}");
        }
        for weights in layer.blob().storages() {
            let out = layer.run_nested(weights).unwrap();
            assert_eq!(out, layer.expected, "{what}: nested {weights:?}");
            let out = layer.run_fixed(weights).unwrap();
            assert_eq!(out, layer.expected, "{what}: nested, fixed {weights:?}");
        }
    }
    assert!(seen.iter().all(|&n| n >= 40), "{seen:?}");
}

/// Runs `nested_conv1d` and `nested_conv1d_shared` on a layer of these compile-time shapes,
/// in the layer's requantisation form, and checks both against the reference; a form other
/// than the layer's is refused.
fn check_const_conv<
    const IN_CH: usize,
    const OUT_CH: usize,
    const K: usize,
    const SCRATCH: usize,
    const WIDTH: usize,
    const POOL: bool,
    const FULL_IN_CH: usize,
    const FULL_OUT_CH: usize,
    const BLOCK: usize,
>(
    rng: &mut Lcg,
    forms: &mut [usize; 3],
) {
    let full = FullRows {
        in_ch: FULL_IN_CH,
        out_ch: FULL_OUT_CH,
        block: BLOCK,
    };
    for case in 0..12 {
        let shape = (full, IN_CH, OUT_CH, K, WIDTH, POOL);
        let layer = ConvLayer::random(rng, case, shape);
        let form = layer.form();
        forms[usize::from(form)] += 1;
        for weights in layer.blob().storages() {
            let (p, x) = (layer.params(weights), &layer.padded);
            let mut inlined = vec![0i8; layer.expected.len()];
            let mut shared = inlined.clone();
            let mut wrong = inlined.clone();
            macro_rules! run {
                ($form:expr, $out:expr) => {
                    nested_conv1d::<
                        IN_CH,
                        OUT_CH,
                        K,
                        SCRATCH,
                        $form,
                        FULL_IN_CH,
                        FULL_OUT_CH,
                        BLOCK,
                    >(&p, x, $out)
                };
            }
            macro_rules! run_shared {
                ($form:expr) => {
                    nested_conv1d_shared::<
                        IN_CH,
                        OUT_CH,
                        K,
                        SCRATCH,
                        WIDTH,
                        POOL,
                        $form,
                        FULL_IN_CH,
                        FULL_OUT_CH,
                        BLOCK,
                    >(&p, x, &mut shared)
                };
            }
            let (done, done_shared, refused) = match form {
                HIGH_WORD => (
                    run!(HIGH_WORD, &mut inlined),
                    run_shared!(HIGH_WORD),
                    run!(GENERAL, &mut wrong),
                ),
                BIT31 => (
                    run!(BIT31, &mut inlined),
                    run_shared!(BIT31),
                    run!(HIGH_WORD, &mut wrong),
                ),
                _ => (
                    run!(GENERAL, &mut inlined),
                    run_shared!(GENERAL),
                    run!(BIT31, &mut wrong),
                ),
            };
            let what = format!("{full:?} in {IN_CH} out {OUT_CH} k {K} form {form} {weights:?}");
            assert_eq!(done, Ok(()), "{what}");
            assert_eq!(done_shared, Ok(()), "{what}");
            assert_eq!(refused, Err(ShapeError), "{what}");
            assert_eq!(inlined, layer.expected, "{what}");
            assert_eq!(shared, layer.expected, "{what}");
        }
    }
}

/// Runs `nested_fully_connected` on a layer of these compile-time shapes with widened and
/// int8 blobs; the wrong `BITS` is refused.
fn check_const_fc<
    const IN_LEN: usize,
    const OUT_LEN: usize,
    const FULL_IN_LEN: usize,
    const FULL_OUT_LEN: usize,
    const BLOCK: usize,
>(
    rng: &mut Lcg,
) {
    let full = FullRows {
        in_ch: FULL_IN_LEN,
        out_ch: FULL_OUT_LEN,
        block: BLOCK,
    };
    for case in 0..6 {
        let layer = FcLayer::random(rng, case % 2 == 0, full, IN_LEN, OUT_LEN);
        for weights in layer.blob().storages() {
            let (p, x) = (layer.params(weights), &layer.padded);
            let mut out = vec![0i8; OUT_LEN];
            let (done, refused) = if weights.bits() == 16 {
                (
                    nested_fully_connected::<IN_LEN, OUT_LEN, 16, FULL_IN_LEN, FULL_OUT_LEN, BLOCK>(
                        &p, x, &mut out,
                    ),
                    nested_fully_connected::<IN_LEN, OUT_LEN, 8, FULL_IN_LEN, FULL_OUT_LEN, BLOCK>(
                        &p,
                        x,
                        &mut vec![0i8; OUT_LEN],
                    ),
                )
            } else {
                (
                    nested_fully_connected::<IN_LEN, OUT_LEN, 8, FULL_IN_LEN, FULL_OUT_LEN, BLOCK>(
                        &p, x, &mut out,
                    ),
                    nested_fully_connected::<IN_LEN, OUT_LEN, 16, FULL_IN_LEN, FULL_OUT_LEN, BLOCK>(
                        &p,
                        x,
                        &mut vec![0i8; OUT_LEN],
                    ),
                )
            };
            let what = format!("{full:?} in {IN_LEN} out {OUT_LEN} {weights:?}");
            assert_eq!(done, Ok(()), "{what}");
            assert_eq!(refused, Err(ShapeError), "{what}");
            assert_eq!(out, layer.expected, "{what}");
        }
    }
}

/// The compile-time-shaped variants, as generated firmware calls them, on the shapes of a
/// slimmable network's layers: a narrower width's tap runs, a first layer read whole, a
/// pointwise layer, fewer outputs in smaller blocks than the full width's own.
#[test]
fn nested_const_variants_match_reference() {
    let mut rng = Lcg(23);
    let mut forms = [0usize; 3];
    const fn scratch(block: usize, full_in: usize, kernel: usize) -> usize {
        nested_conv1d_scratch_words(block, conv1d_row_len(full_in, kernel))
    }
    check_const_conv::<12, 24, 5, { scratch(4, 24, 5) }, 16, true, 24, 48, 4>(&mut rng, &mut forms);
    check_const_conv::<9, 6, 3, { scratch(2, 9, 3) }, 20, false, 9, 24, 2>(&mut rng, &mut forms);
    check_const_conv::<36, 54, 1, { scratch(2, 48, 1) }, 8, false, 48, 72, 2>(&mut rng, &mut forms);
    check_const_conv::<6, 18, 3, { scratch(2, 24, 3) }, 11, true, 24, 72, 2>(&mut rng, &mut forms);
    assert!(forms.iter().all(|&n| n > 0), "forms {forms:?}");
    check_const_fc::<32, 6, 64, 12, 2>(&mut rng);
    check_const_fc::<50, 8, 63, 16, 4>(&mut rng);
    check_const_fc::<63, 4, 63, 8, 4>(&mut rng);
}

/// What a nested kernel cannot read is refused with `ShapeError`, never a panic or a read
/// past a buffer: a narrower width's odd run, a blob whose runs do not start on pairs, a block
/// that does not divide the channels, widths beyond the blob, sub-byte blobs, and buffers of
/// the wrong length.
#[test]
fn nested_kernels_refuse_what_they_cannot_read() {
    let mut rng = Lcg(29);
    let full = FullRows {
        in_ch: 8,
        out_ch: 8,
        block: 2,
    };
    let layer = ConvLayer::random(&mut rng, 1, (full, 4, 6, 3, 6, false));
    let blob = layer.blob();
    let [wide, narrow] = blob.storages();
    for weights in [wide, narrow] {
        assert_eq!(layer.run_nested(weights).as_ref(), Ok(&layer.expected));
    }
    let with_full = |full: FullRows| ConvLayer {
        full,
        ..layer.clone()
    };
    fn refused(l: &ConvLayer, weights: ConvWeights) {
        assert_eq!(l.run_nested(weights), Err(ShapeError), "{:?}", l.full);
    }
    for weights in [wide, narrow] {
        // An odd narrower width, and widths beyond the blob.
        refused(
            &ConvLayer {
                in_ch: 3,
                ..layer.clone()
            },
            weights,
        );
        refused(&with_full(FullRows { in_ch: 2, ..full }), weights);
        refused(&with_full(FullRows { out_ch: 4, ..full }), weights);
        // Blocks that do not divide the width's or the blob's channels, or are no block.
        for block in [4, 3, 0, 8] {
            refused(&with_full(FullRows { block, ..full }), weights);
        }
        refused(
            &ConvLayer {
                kernel: 0,
                ..layer.clone()
            },
            weights,
        );
    }
    // A blob of 9 inputs: a narrower width's taps would start mid-pair, unless there is one.
    let odd = FullRows { in_ch: 9, ..full };
    let layer3 = ConvLayer::random(&mut rng, 2, (odd, 4, 6, 3, 6, true));
    let layer1 = ConvLayer::random(&mut rng, 3, (odd, 4, 6, 1, 6, true));
    for weights in layer3.blob().storages() {
        refused(&layer3, weights);
    }
    for weights in layer1.blob().storages() {
        assert_eq!(layer1.run_nested(weights).as_ref(), Ok(&layer1.expected));
    }
    // Sub-byte blobs (packed in 4 bits, in the blob's blocks of 4) are not read by narrower
    // widths.
    let row = conv1d_row_len(full.in_ch, 3);
    let quad = FullRows { block: 4, ..full };
    let layer4 = ConvLayer::random(&mut rng, 4, (quad, 4, 4, 3, 6, false));
    let int4_len = full.out_ch / 4 * packed_block_bytes(4, 4, row);
    let mut int4 = vec![0u8; int4_len];
    pack_weights_bits(&[0; 8 * 3 * 8], 8, 3 * 8, 4, &mut int4).unwrap();
    let int4 = words_of(&int4);
    let wide4 = layer4.blob();
    assert_eq!(
        layer4.run_nested(wide4.storages()[0]).as_ref(),
        Ok(&layer4.expected)
    );
    refused(&layer4, ConvWeights::Int4(bytes_of(&int4, int4_len)));
    // Buffers of the wrong length.
    let wide_short = ConvWeights::Wide(&blob.wide[..blob.wide.len() - 2]);
    refused(&layer, wide_short);
    let narrow_short = ConvWeights::Narrow(narrow_of(&blob.narrow, blob.narrow_len - 4));
    refused(&layer, narrow_short);
    let p = layer.params(narrow);
    let scratch_words = nested_conv1d_scratch_words(full.block, row);
    let mut out = vec![0i8; layer.expected.len()];
    let x = &layer.padded;
    let run = |p: &Conv1d, x: &[i16], out: &mut [i8], scratch: usize| {
        let mut scratch = vec![0u32; scratch];
        nested_conv1d_dyn(4, 6, full, p, x, out, &mut scratch)
    };
    assert_eq!(run(&p, x, &mut out, scratch_words), Ok(()));
    assert_eq!(run(&p, x, &mut out, scratch_words - 1), Err(ShapeError));
    assert_eq!(run(&p, &x[1..], &mut out, scratch_words), Err(ShapeError));
    assert_eq!(run(&p, x, &mut out[1..], scratch_words), Err(ShapeError));
    let short_bias = Conv1d {
        bias: &layer.folded[1..],
        ..p
    };
    assert_eq!(
        run(&short_bias, x, &mut out, scratch_words),
        Err(ShapeError)
    );

    // Fully connected: an odd narrower input, blocks, sub-byte and short blobs.
    let full = FullRows {
        in_ch: 10,
        out_ch: 8,
        block: 2,
    };
    let odd = FcLayer::random(&mut rng, false, full, 5, 6);
    for weights in odd.blob().storages() {
        assert_eq!(odd.run_nested(weights), Err(ShapeError));
    }
    let even = FcLayer::random(&mut rng, false, full, 4, 6);
    let fc_blob = even.blob();
    for weights in fc_blob.storages() {
        assert_eq!(even.run_nested(weights).as_ref(), Ok(&even.expected));
        for block in [4, 3, 0] {
            let bad = FcLayer {
                full: FullRows { block, ..full },
                ..even.clone()
            };
            assert_eq!(bad.run_nested(weights), Err(ShapeError), "block {block}");
        }
    }
    let int4_len = full.out_ch / 2 * packed_block_bytes(4, 2, 10);
    let int4 = vec![0u32; int4_len / 4];
    assert_eq!(
        even.run_nested(ConvWeights::Int4(bytes_of(&int4, int4_len))),
        Err(ShapeError)
    );
    let wide_short = ConvWeights::Wide(&fc_blob.wide[..fc_blob.wide.len() - 2]);
    assert_eq!(even.run_nested(wide_short), Err(ShapeError));
}

/// With a block of `channel_block(out_ch)` the blocked packers give the ordinary packers'
/// bytes; with any block, the int8 blob widens into the widened one (what the nested
/// convolution unpacks into its scratch); blocks that cannot be are refused, empty rows are
/// packed without panicking.
#[test]
fn blocked_packing_with_the_default_block_is_the_ordinary_packing() {
    let mut rng = Lcg(31);
    for out_ch in 1..=17 {
        for row_in in [1usize, 2, 3, 7, 10, 27] {
            let weights: Vec<i8> = (0..out_ch * row_in)
                .map(|_| rng.range(-128, 127) as i8)
                .collect();
            let row = (row_in + 1) & !1;
            let block = channel_block(out_ch);
            let mut ordinary = vec![0i16; out_ch * row];
            pack_weights(&weights, out_ch, row_in, &mut ordinary).unwrap();
            let narrow_len = out_ch / block * narrow_block_bytes(block, row);
            let ordinary_narrow = narrow_words(narrow_len, |b| {
                pack_weights_narrow(&weights, out_ch, row_in, b)
            });
            let blob = Blob::pack(&weights, out_ch, row_in, block);
            assert_eq!(blob.wide, ordinary, "out {out_ch} row {row_in}");
            assert_eq!(blob.narrow, ordinary_narrow, "out {out_ch} row {row_in}");
            for block in [1, 2, 4].into_iter().filter(|b| out_ch.is_multiple_of(*b)) {
                let blob = Blob::pack(&weights, out_ch, row_in, block);
                let words = narrow_block_bytes(block, row) / 4;
                for (b, wide) in blob.wide.chunks(block * row).enumerate() {
                    let mut widened = vec![0u32; 2 * words];
                    // SAFETY: block b's `words` words of the int8 blob (4-byte aligned word
                    // storage) widen into 2·words words.
                    unsafe {
                        kinglet_m4::dsp::widen_words(
                            blob.narrow[b * words..].as_ptr(),
                            words,
                            widened.as_mut_ptr(),
                        );
                    }
                    let halves: Vec<i16> = widened
                        .iter()
                        .flat_map(|&w| [w as i16, (w >> 16) as i16])
                        .collect();
                    assert_eq!(&halves[..block * row], wide, "out {out_ch} block {block}");
                }
            }
            for block in [0, 3, 8] {
                let mut packed = vec![0i16; out_ch * row];
                let r = pack_weights_blocked(&weights, out_ch, row_in, block, &mut packed);
                assert_eq!(r, Err(ShapeError), "block {block}");
            }
            if !out_ch.is_multiple_of(4) {
                let mut packed = vec![0i8; out_ch * row];
                let r = pack_weights_narrow_blocked(&weights, out_ch, row_in, 4, &mut packed);
                assert_eq!(r, Err(ShapeError), "out {out_ch}");
            }
        }
    }
    assert_eq!(pack_weights_blocked(&[], 4, 0, 2, &mut []), Ok(()));
    assert_eq!(pack_weights_narrow_blocked(&[], 4, 0, 2, &mut []), Ok(()));
    assert_eq!(pack_weights_bits(&[], 4, 0, 4, &mut []), Ok(()));
}
