//! Hand-written accessors for the subset of the TFLite flatbuffer schema (`tflite` namespace,
//! file identifier `TFL3`) that kinglet reads and writes.
//!
//! Field slots are the schema's field ids: vtable offset = 4 + 2·id. Each table type has a
//! `Verifiable` impl listing the fields kinglet reads, so `verified_model` runs the
//! flatbuffers verifier over everything the reader later dereferences; accessors then use
//! the unchecked `Table::get`, which that verification makes sound.

use flatbuffers::{
    Follow, ForwardsUOffset, InvalidFlatbuffer, Table, Vector, Verifiable, Verifier,
    VerifierOptions,
};

/// Vtable offset of field number `id`.
pub const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

pub mod tensor_type {
    pub const FLOAT32: i8 = 0;
    pub const FLOAT16: i8 = 1;
    pub const INT32: i8 = 2;
    pub const UINT8: i8 = 3;
    pub const INT64: i8 = 4;
    pub const INT16: i8 = 7;
    pub const INT8: i8 = 9;
    pub const INT4: i8 = 17;
    pub const INT2: i8 = 19;

    /// Names of all schema tensor types, for errors about unsupported ones.
    pub fn name(t: i8) -> &'static str {
        const NAMES: [&str; 23] = [
            "FLOAT32",
            "FLOAT16",
            "INT32",
            "UINT8",
            "INT64",
            "STRING",
            "BOOL",
            "INT16",
            "COMPLEX64",
            "INT8",
            "FLOAT64",
            "COMPLEX128",
            "UINT64",
            "RESOURCE",
            "VARIANT",
            "UINT32",
            "UINT16",
            "INT4",
            "BFLOAT16",
            "INT2",
            "UINT4",
            "FLOAT8_E4M3FN",
            "FLOAT8_E5M2",
        ];
        usize::try_from(t)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("unknown")
    }
}

pub mod builtin_op {
    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEQUANTIZE: i32 = 6;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const MAX_POOL_2D: i32 = 17;
    pub const RELU: i32 = 19;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const SOFTMAX: i32 = 25;
    pub const PAD: i32 = 34;
    pub const MEAN: i32 = 40;
    pub const SQUEEZE: i32 = 43;
    pub const EXPAND_DIMS: i32 = 70;
    /// Expands a sparse constant (TF's converter puts one before each consumer of one).
    pub const DENSIFY: i32 = 124;

    /// Names of builtin operators, for errors about unsupported ones.
    pub fn name(code: i32) -> &'static str {
        match code {
            0 => "ADD",
            1 => "AVERAGE_POOL_2D",
            2 => "CONCATENATION",
            3 => "CONV_2D",
            4 => "DEPTHWISE_CONV_2D",
            6 => "DEQUANTIZE",
            9 => "FULLY_CONNECTED",
            11 => "L2_NORMALIZATION",
            14 => "LOGISTIC",
            16 => "LSTM",
            17 => "MAX_POOL_2D",
            18 => "MUL",
            19 => "RELU (standalone; kinglet reads ReLU fused into the producing op)",
            21 => "RELU6 (standalone; kinglet reads ReLU6 fused into the producing op)",
            22 => "RESHAPE",
            23 => "RESIZE_BILINEAR",
            25 => "SOFTMAX",
            28 => "TANH",
            32 => "CUSTOM",
            34 => "PAD",
            36 => "GATHER",
            39 => "TRANSPOSE",
            40 => "MEAN",
            41 => "SUB",
            43 => "SQUEEZE",
            45 => "STRIDED_SLICE",
            49 => "SPLIT",
            50 => "LOG_SOFTMAX",
            53 => "CAST",
            54 => "PRELU",
            55 => "MAXIMUM",
            57 => "MINIMUM",
            60 => "PADV2",
            67 => "TRANSPOSE_CONV",
            70 => "EXPAND_DIMS",
            74 => "SUM",
            77 => "SHAPE",
            82 => "REDUCE_MAX",
            83 => "PACK",
            98 => "LEAKY_RELU",
            114 => "QUANTIZE",
            117 => "HARD_SWISH",
            124 => "DENSIFY",
            126 => "BATCH_MATMUL",
            _ => "(unnamed)",
        }
    }
    pub const QUANTIZE: i32 = 114;
    /// Codes below this fit `deprecated_builtin_code` (a byte).
    pub const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;
}

/// `BuiltinOptions` union discriminants.
pub mod options_type {
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const FULLY_CONNECTED: u8 = 8;
    pub const SOFTMAX: u8 = 9;
    pub const CONCATENATION: u8 = 10;
    pub const ADD: u8 = 11;
    pub const RESHAPE: u8 = 17;
    pub const PAD: u8 = 22;
    pub const REDUCER: u8 = 27;
    pub const DEQUANTIZE: u8 = 38;
    pub const QUANTIZE: u8 = 89;
}

pub mod activation {
    pub const NONE: i8 = 0;
    pub const RELU: i8 = 1;
    pub const RELU6: i8 = 3;
}

pub mod padding {
    pub const SAME: i8 = 0;
    pub const VALID: i8 = 1;
}

macro_rules! table_type {
    ($name:ident) => {
        #[derive(Clone, Copy)]
        pub struct $name<'a>(pub Table<'a>);
        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: forwarded contract of `Follow::follow`.
                $name(unsafe { Table::new(buf, loc) })
            }
        }
    };
}

table_type!(Model);
table_type!(OperatorCode);
table_type!(SubGraph);
table_type!(TensorT);
table_type!(QuantizationParameters);
table_type!(Operator);
table_type!(Buffer);
table_type!(Metadata);
table_type!(SparsityParameters);
table_type!(DimensionMetadata);
// Int32Vector / Uint16Vector / Uint8Vector: one `values` vector each.
table_type!(IndexVector);
// Any options table; which fields mean what depends on the op.
table_type!(Options);

type Tables<'a, T> = Vector<'a, ForwardsUOffset<T>>;

/// Reads field `id` of type `T` (accessor helper; sound after verification).
fn field<'a, T: Follow<'a> + 'a>(t: &Table<'a>, id: u16) -> Option<T::Inner> {
    // SAFETY: every table reached through `verified_model` had this field verified as `T`.
    unsafe { t.get::<T>(slot(id), None) }
}

impl<'a> Model<'a> {
    pub fn version(&self) -> u32 {
        field::<u32>(&self.0, 0).unwrap_or(0)
    }
    pub fn operator_codes(&self) -> Option<Tables<'a, OperatorCode<'a>>> {
        field::<ForwardsUOffset<Tables<'a, OperatorCode<'a>>>>(&self.0, 1)
    }
    pub fn subgraphs(&self) -> Option<Tables<'a, SubGraph<'a>>> {
        field::<ForwardsUOffset<Tables<'a, SubGraph<'a>>>>(&self.0, 2)
    }
    pub fn description(&self) -> Option<&'a str> {
        field::<ForwardsUOffset<&str>>(&self.0, 3)
    }
    pub fn buffers(&self) -> Option<Tables<'a, Buffer<'a>>> {
        field::<ForwardsUOffset<Tables<'a, Buffer<'a>>>>(&self.0, 4)
    }
    pub fn metadata(&self) -> Option<Tables<'a, Metadata<'a>>> {
        field::<ForwardsUOffset<Tables<'a, Metadata<'a>>>>(&self.0, 6)
    }
}

impl<'a> OperatorCode<'a> {
    pub fn deprecated_builtin_code(&self) -> i8 {
        field::<i8>(&self.0, 0).unwrap_or(0)
    }
    pub fn custom_code(&self) -> Option<&'a str> {
        field::<ForwardsUOffset<&str>>(&self.0, 1)
    }
    pub fn version(&self) -> i32 {
        field::<i32>(&self.0, 2).unwrap_or(1)
    }
    pub fn builtin_code(&self) -> i32 {
        field::<i32>(&self.0, 3).unwrap_or(0)
    }
    /// The op code, taking the larger of the two fields as TFLite does for old files.
    pub fn code(&self) -> i32 {
        self.builtin_code()
            .max(i32::from(self.deprecated_builtin_code()))
    }
}

impl<'a> SubGraph<'a> {
    pub fn tensors(&self) -> Option<Tables<'a, TensorT<'a>>> {
        field::<ForwardsUOffset<Tables<'a, TensorT<'a>>>>(&self.0, 0)
    }
    pub fn inputs(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 1)
    }
    pub fn outputs(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 2)
    }
    pub fn operators(&self) -> Option<Tables<'a, Operator<'a>>> {
        field::<ForwardsUOffset<Tables<'a, Operator<'a>>>>(&self.0, 3)
    }
}

impl<'a> TensorT<'a> {
    pub fn shape(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 0)
    }
    pub fn tensor_type(&self) -> i8 {
        field::<i8>(&self.0, 1).unwrap_or(0)
    }
    pub fn buffer(&self) -> u32 {
        field::<u32>(&self.0, 2).unwrap_or(0)
    }
    pub fn name(&self) -> Option<&'a str> {
        field::<ForwardsUOffset<&str>>(&self.0, 3)
    }
    pub fn quantization(&self) -> Option<QuantizationParameters<'a>> {
        field::<ForwardsUOffset<QuantizationParameters<'a>>>(&self.0, 4)
    }
    pub fn is_variable(&self) -> bool {
        field::<bool>(&self.0, 5).unwrap_or(false)
    }
    pub fn sparsity(&self) -> Option<SparsityParameters<'a>> {
        field::<ForwardsUOffset<SparsityParameters<'a>>>(&self.0, 6)
    }
}

/// `DimensionMetadata.format` values.
pub mod dimension_type {
    pub const DENSE: i8 = 0;
    pub const SPARSE_CSR: i8 = 1;
}

/// `SparseIndexVector` union discriminants.
pub mod sparse_index_vector {
    pub const INT32: u8 = 1;
    pub const UINT16: u8 = 2;
    pub const UINT8: u8 = 3;
}

impl<'a> SparsityParameters<'a> {
    pub fn traversal_order(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 0)
    }
    pub fn block_map(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 1)
    }
    pub fn dim_metadata(&self) -> Option<Tables<'a, DimensionMetadata<'a>>> {
        field::<ForwardsUOffset<Tables<'a, DimensionMetadata<'a>>>>(&self.0, 2)
    }
}

impl<'a> DimensionMetadata<'a> {
    pub fn format(&self) -> i8 {
        field::<i8>(&self.0, 0).unwrap_or(dimension_type::DENSE)
    }
    pub fn dense_size(&self) -> i32 {
        field::<i32>(&self.0, 1).unwrap_or(0)
    }
    /// CSR row starts, widened to `u32` (`None` when absent or of an unknown union type).
    pub fn array_segments(&self) -> Option<Vec<u32>> {
        index_vector(&self.0, 2, 3)
    }
    /// CSR column indices, widened to `u32`.
    pub fn array_indices(&self) -> Option<Vec<u32>> {
        index_vector(&self.0, 4, 5)
    }
}

/// Reads a `SparseIndexVector` union (type field `type_id`, value field `value_id`). Negative
/// int32 entries become `u32::MAX`, which every bounds check rejects.
fn index_vector(t: &Table<'_>, type_id: u16, value_id: u16) -> Option<Vec<u32>> {
    use sparse_index_vector as s;
    let kind = field::<u8>(t, type_id).unwrap_or(0);
    if !matches!(kind, s::INT32 | s::UINT16 | s::UINT8) {
        // Unknown variants were not verified: never follow them.
        return None;
    }
    let table = field::<ForwardsUOffset<IndexVector<'_>>>(t, value_id)?;
    // `verify_index_vector` checked `values` with the element type read here.
    Some(match kind {
        s::INT32 => field::<ForwardsUOffset<Vector<'_, i32>>>(&table.0, 0)?
            .iter()
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .collect(),
        s::UINT16 => field::<ForwardsUOffset<Vector<'_, u16>>>(&table.0, 0)?
            .iter()
            .map(u32::from)
            .collect(),
        s::UINT8 => field::<ForwardsUOffset<Vector<'_, u8>>>(&table.0, 0)?
            .iter()
            .map(u32::from)
            .collect(),
        _ => return None,
    })
}

impl<'a> QuantizationParameters<'a> {
    pub fn scale(&self) -> Option<Vector<'a, f32>> {
        field::<ForwardsUOffset<Vector<'a, f32>>>(&self.0, 2)
    }
    pub fn zero_point(&self) -> Option<Vector<'a, i64>> {
        field::<ForwardsUOffset<Vector<'a, i64>>>(&self.0, 3)
    }
    pub fn details_type(&self) -> u8 {
        field::<u8>(&self.0, 4).unwrap_or(0)
    }
    pub fn quantized_dimension(&self) -> i32 {
        field::<i32>(&self.0, 6).unwrap_or(0)
    }
}

impl<'a> Operator<'a> {
    pub fn opcode_index(&self) -> u32 {
        field::<u32>(&self.0, 0).unwrap_or(0)
    }
    pub fn inputs(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 1)
    }
    pub fn outputs(&self) -> Option<Vector<'a, i32>> {
        field::<ForwardsUOffset<Vector<'a, i32>>>(&self.0, 2)
    }
    pub fn builtin_options_type(&self) -> u8 {
        field::<u8>(&self.0, 3).unwrap_or(0)
    }
    /// The options table, only for union types `verify_options` checked (others are never
    /// dereferenced: their layout was not verified).
    pub fn builtin_options(&self) -> Option<Options<'a>> {
        if !verified_options_type(self.builtin_options_type()) {
            return None;
        }
        field::<ForwardsUOffset<Options<'a>>>(&self.0, 4)
    }
}

impl<'a> Buffer<'a> {
    pub fn data(&self) -> Option<Vector<'a, u8>> {
        field::<ForwardsUOffset<Vector<'a, u8>>>(&self.0, 0)
    }
    pub fn offset(&self) -> u64 {
        field::<u64>(&self.0, 1).unwrap_or(0)
    }
}

impl<'a> Metadata<'a> {
    pub fn name(&self) -> Option<&'a str> {
        field::<ForwardsUOffset<&str>>(&self.0, 0)
    }
    pub fn buffer(&self) -> u32 {
        field::<u32>(&self.0, 1).unwrap_or(0)
    }
}

/// Options are read by field id with the schema's defaults; `verify_options` checked each
/// field kinglet reads with the type read here.
impl<'a> Options<'a> {
    pub fn i8_field(&self, id: u16, default: i8) -> i8 {
        field::<i8>(&self.0, id).unwrap_or(default)
    }
    pub fn i32_field(&self, id: u16, default: i32) -> i32 {
        field::<i32>(&self.0, id).unwrap_or(default)
    }
    pub fn bool_field(&self, id: u16, default: bool) -> bool {
        field::<bool>(&self.0, id).unwrap_or(default)
    }
    pub fn f32_field(&self, id: u16, default: f32) -> f32 {
        field::<f32>(&self.0, id).unwrap_or(default)
    }
}

impl Verifiable for Model<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u32>("version", slot(0), false)?
            .visit_field::<ForwardsUOffset<Tables<OperatorCode>>>("operator_codes", slot(1), false)?
            .visit_field::<ForwardsUOffset<Tables<SubGraph>>>("subgraphs", slot(2), false)?
            .visit_field::<ForwardsUOffset<&str>>("description", slot(3), false)?
            .visit_field::<ForwardsUOffset<Tables<Buffer>>>("buffers", slot(4), false)?
            .visit_field::<ForwardsUOffset<Tables<Metadata>>>("metadata", slot(6), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for OperatorCode<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<i8>("deprecated_builtin_code", slot(0), false)?
            .visit_field::<ForwardsUOffset<&str>>("custom_code", slot(1), false)?
            .visit_field::<i32>("version", slot(2), false)?
            .visit_field::<i32>("builtin_code", slot(3), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for SubGraph<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Tables<TensorT>>>("tensors", slot(0), false)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("inputs", slot(1), false)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("outputs", slot(2), false)?
            .visit_field::<ForwardsUOffset<Tables<Operator>>>("operators", slot(3), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for TensorT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("shape", slot(0), false)?
            .visit_field::<i8>("type", slot(1), false)?
            .visit_field::<u32>("buffer", slot(2), false)?
            .visit_field::<ForwardsUOffset<&str>>("name", slot(3), false)?
            .visit_field::<ForwardsUOffset<QuantizationParameters>>("quantization", slot(4), false)?
            .visit_field::<bool>("is_variable", slot(5), false)?
            .visit_field::<ForwardsUOffset<SparsityParameters>>("sparsity", slot(6), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for SparsityParameters<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("traversal_order", slot(0), false)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("block_map", slot(1), false)?
            .visit_field::<ForwardsUOffset<Tables<DimensionMetadata>>>(
                "dim_metadata",
                slot(2),
                false,
            )?
            .finish();
        Ok(())
    }
}

impl Verifiable for DimensionMetadata<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<i8>("format", slot(0), false)?
            .visit_field::<i32>("dense_size", slot(1), false)?
            .visit_union::<u8, _>(
                "array_segments_type",
                slot(2),
                "array_segments",
                slot(3),
                false,
                verify_index_vector,
            )?
            .visit_union::<u8, _>(
                "array_indices_type",
                slot(4),
                "array_indices",
                slot(5),
                false,
                verify_index_vector,
            )?
            .finish();
        Ok(())
    }
}

/// Verifies a `SparseIndexVector` variant's `values` with its element type.
fn verify_index_vector(key: u8, v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
    use sparse_index_vector as s;
    match key {
        s::INT32 => {
            v.verify_union_variant::<ForwardsUOffset<IndexVectorV<i32>>>("Int32Vector", pos)
        }
        s::UINT16 => {
            v.verify_union_variant::<ForwardsUOffset<IndexVectorV<u16>>>("Uint16Vector", pos)
        }
        s::UINT8 => v.verify_union_variant::<ForwardsUOffset<IndexVectorV<u8>>>("Uint8Vector", pos),
        _ => Ok(()),
    }
}

/// Verifier of an index vector table whose `values` hold `T`.
struct IndexVectorV<T>(std::marker::PhantomData<T>);
impl<T: flatbuffers::SimpleToVerifyInSlice + 'static> Verifiable for IndexVectorV<T> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<T>>>("values", slot(0), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for QuantizationParameters<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<f32>>>("scale", slot(2), false)?
            .visit_field::<ForwardsUOffset<Vector<i64>>>("zero_point", slot(3), false)?
            .visit_field::<u8>("details_type", slot(4), false)?
            .visit_field::<i32>("quantized_dimension", slot(6), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for Operator<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u32>("opcode_index", slot(0), false)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("inputs", slot(1), false)?
            .visit_field::<ForwardsUOffset<Vector<i32>>>("outputs", slot(2), false)?
            .visit_union::<u8, _>(
                "builtin_options_type",
                slot(3),
                "builtin_options",
                slot(4),
                false,
                verify_options,
            )?
            .finish();
        Ok(())
    }
}

fn verified_options_type(key: u8) -> bool {
    use options_type as o;
    matches!(
        key,
        o::CONV_2D
            | o::DEPTHWISE_CONV_2D
            | o::POOL_2D
            | o::FULLY_CONNECTED
            | o::SOFTMAX
            | o::CONCATENATION
            | o::ADD
            | o::REDUCER
    )
}

/// Verifies the fields of the options tables kinglet reads; other variants are never read.
fn verify_options(key: u8, v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
    use options_type as o;
    match key {
        o::CONV_2D => {
            v.verify_union_variant::<ForwardsUOffset<Conv2DOptionsV>>("Conv2DOptions", pos)
        }
        o::DEPTHWISE_CONV_2D => v.verify_union_variant::<ForwardsUOffset<DepthwiseOptionsV>>(
            "DepthwiseConv2DOptions",
            pos,
        ),
        o::POOL_2D => {
            v.verify_union_variant::<ForwardsUOffset<Pool2DOptionsV>>("Pool2DOptions", pos)
        }
        o::FULLY_CONNECTED => v.verify_union_variant::<ForwardsUOffset<FullyConnectedOptionsV>>(
            "FullyConnectedOptions",
            pos,
        ),
        o::SOFTMAX => {
            v.verify_union_variant::<ForwardsUOffset<SoftmaxOptionsV>>("SoftmaxOptions", pos)
        }
        o::CONCATENATION => v.verify_union_variant::<ForwardsUOffset<ConcatenationOptionsV>>(
            "ConcatenationOptions",
            pos,
        ),
        o::ADD => v.verify_union_variant::<ForwardsUOffset<AddOptionsV>>("AddOptions", pos),
        o::REDUCER => {
            v.verify_union_variant::<ForwardsUOffset<ReducerOptionsV>>("ReducerOptions", pos)
        }
        _ => Ok(()),
    }
}

/// Declares a marker type whose verifier checks the listed scalar fields of an options table.
macro_rules! options_verifier {
    ($name:ident, $(($ty:ty, $id:expr, $field:literal)),* $(,)?) => {
        struct $name;
        impl Verifiable for $name {
            fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
                v.visit_table(pos)?
                    $(.visit_field::<$ty>($field, slot($id), false)?)*
                    .finish();
                Ok(())
            }
        }
    };
}

options_verifier!(
    Conv2DOptionsV,
    (i8, 0, "padding"),
    (i32, 1, "stride_w"),
    (i32, 2, "stride_h"),
    (i8, 3, "fused_activation_function"),
    (i32, 4, "dilation_w_factor"),
    (i32, 5, "dilation_h_factor")
);
options_verifier!(
    DepthwiseOptionsV,
    (i8, 0, "padding"),
    (i32, 1, "stride_w"),
    (i32, 2, "stride_h"),
    (i32, 3, "depth_multiplier"),
    (i8, 4, "fused_activation_function"),
    (i32, 5, "dilation_w_factor"),
    (i32, 6, "dilation_h_factor")
);
options_verifier!(
    Pool2DOptionsV,
    (i8, 0, "padding"),
    (i32, 1, "stride_w"),
    (i32, 2, "stride_h"),
    (i32, 3, "filter_width"),
    (i32, 4, "filter_height"),
    (i8, 5, "fused_activation_function")
);
options_verifier!(
    FullyConnectedOptionsV,
    (i8, 0, "fused_activation_function"),
    (i8, 1, "weights_format"),
    (bool, 2, "keep_num_dims")
);
options_verifier!(SoftmaxOptionsV, (f32, 0, "beta"));
options_verifier!(
    ConcatenationOptionsV,
    (i32, 0, "axis"),
    (i8, 1, "fused_activation_function")
);
options_verifier!(AddOptionsV, (i8, 0, "fused_activation_function"));
options_verifier!(ReducerOptionsV, (bool, 0, "keep_dims"));

impl Verifiable for Buffer<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("data", slot(0), false)?
            .visit_field::<u64>("offset", slot(1), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for Metadata<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<&str>>("name", slot(0), false)?
            .visit_field::<u32>("buffer", slot(1), false)?
            .finish();
        Ok(())
    }
}

/// Verifies the whole file (identifier, then every field kinglet reads) and returns its root.
pub fn verified_model(bytes: &[u8]) -> Result<Model<'_>, String> {
    if bytes.len() < 8 {
        return Err(format!(
            "file is {} bytes, too short for a flatbuffer",
            bytes.len()
        ));
    }
    if !flatbuffers::buffer_has_identifier(bytes, "TFL3", false) {
        return Err("missing the TFL3 file identifier (not a .tflite model?)".into());
    }
    let opts = VerifierOptions {
        max_tables: 10_000_000,
        ..VerifierOptions::default()
    };
    flatbuffers::root_with_opts::<Model>(&opts, bytes)
        .map_err(|e| format!("flatbuffer verification failed: {e}"))
}
