//! A compiled model before it becomes source text: buffers, a static schedule of kernel calls
//! with their constant data already in the layout each kernel reads, and the arena plan.
//!
//! Two schedules come out of one graph: [`KernelSet::Reference`] calls kinglet-micro's
//! reference kernels op by op (any target); [`KernelSet::CortexM4`] replaces the shapes HAR
//! networks are made of (1D convolutions of any kernel size and pointwise ones, optionally
//! with their 2-wide max pool, 1D depthwise convolutions and fully-connected layers) and
//! other int8 2D convolutions ([`crate::conv2d_dsp`]) by kinglet-m4's DSP kernels and uses
//! the reference kernels for the rest.

/// Which kernels a schedule calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelSet {
    /// kinglet-micro reference kernels only.
    Reference,
    /// kinglet-m4 DSP kernels where the shape fits, reference kernels elsewhere.
    CortexM4,
}

/// Element type of a planned buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    I8,
    I16,
    /// Float activations (float32, float16-weight and dynamic-range models).
    F32,
}

impl Elem {
    pub fn size(self) -> usize {
        match self {
            Elem::I8 => 1,
            Elem::I16 => 2,
            Elem::F32 => 4,
        }
    }

    pub fn rust(self) -> &'static str {
        match self {
            Elem::I8 => "i8",
            Elem::I16 => "i16",
            Elem::F32 => "f32",
        }
    }

    pub fn c(self) -> &'static str {
        match self {
            Elem::I8 => "int8_t",
            Elem::I16 => "int16_t",
            Elem::F32 => "float",
        }
    }
}

/// An arena buffer: an activation or a kernel's scratch.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub name: String,
    pub elem: Elem,
    pub len: usize,
    /// Byte offset in the arena (set by the planner).
    pub offset: usize,
}

impl Buffer {
    pub fn bytes(&self) -> usize {
        self.len * self.elem.size()
    }
}

/// Where a step reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loc {
    /// The caller's input array.
    Input,
    /// One graph input of a multi-input model: `len` values at `offset` of the caller's
    /// input array, which holds the graph inputs end to end in graph order.
    InputPart { offset: usize, len: usize },
    /// The caller's output array.
    Output,
    /// Arena buffer by index into [`Program::buffers`].
    Arena(usize),
}

/// Requantisation of an op's int32 accumulators to int8 outputs, one entry per channel:
/// Q31 multipliers and shifts for convolutions, double-precision scales for fully-connected
/// layers (TFLite's reference kernel rounds `acc · scale` in double; the other vectors are
/// then empty).
#[derive(Clone, Debug, PartialEq)]
pub struct RequantData {
    pub multipliers: Vec<i32>,
    pub shifts: Vec<i32>,
    pub scales: Vec<f64>,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

impl RequantData {
    /// Bytes of its tables in flash.
    pub fn bytes(&self) -> usize {
        4 * (self.multipliers.len() + self.shifts.len()) + 8 * self.scales.len()
    }

    /// The per-channel constants as kinglet-m4's DSP kernels take them.
    pub fn m4(&self) -> kinglet_m4::Requant<'_> {
        kinglet_m4::Requant {
            multipliers: &self.multipliers,
            shifts: &self.shifts,
            output_offset: self.output_offset,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// Packed weights of a DSP convolution (kinglet-m4 `ConvWeights`).
#[derive(Clone, Debug, PartialEq)]
pub enum ConvWeights {
    /// Widened to `i16` in flash (kinglet-m4 `pack_weights`).
    Wide(Vec<i16>),
    /// int8 in flash, widened a block at a time (kinglet-m4 `pack_weights_narrow`).
    Narrow(Vec<i8>),
    /// Packed 4-bit weights of a w4a8 or mixed model, kept packed in flash (kinglet-m4
    /// `subbyte`).
    Int4(Vec<u8>),
    /// Packed 2-bit weights, as [`ConvWeights::Int4`].
    Int2(Vec<u8>),
}

impl ConvWeights {
    pub fn bytes(&self) -> usize {
        match self {
            ConvWeights::Wide(w) => 2 * w.len(),
            ConvWeights::Narrow(w) => w.len(),
            ConvWeights::Int4(w) | ConvWeights::Int2(w) => w.len(),
        }
    }

    /// Bits per stored weight, as kinglet-m4 `ConvWeights::bits` (16 for widened ones).
    pub fn bits(&self) -> u32 {
        match self {
            ConvWeights::Wide(_) => 16,
            ConvWeights::Narrow(_) => 8,
            ConvWeights::Int4(_) => 4,
            ConvWeights::Int2(_) => 2,
        }
    }

    /// The stored bytes of int8 and sub-byte weights (`None` for widened ones).
    pub fn packed_bytes(&self) -> Option<Vec<u8>> {
        match self {
            ConvWeights::Wide(_) => None,
            ConvWeights::Narrow(w) => Some(w.iter().map(|&v| v as u8).collect()),
            ConvWeights::Int4(w) | ConvWeights::Int2(w) => Some(w.clone()),
        }
    }
}

/// NHWC dimensions of a reference kernel operand.
pub type Dims = [usize; 4];

/// kinglet-micro's `ConvParams` from a step's geometry (strides, dilations, top/left padding).
pub fn micro_conv_params(g: &[usize; 6]) -> kinglet_micro::ConvParams {
    kinglet_micro::ConvParams {
        stride_h: g[0],
        stride_w: g[1],
        dilation_h: g[2],
        dilation_w: g[3],
        pad_top: g[4],
        pad_left: g[5],
    }
}

/// kinglet-micro's `PoolParams` from a pool step's window (filter h, filter w, stride h,
/// stride w, pad top, pad left).
pub fn micro_pool_params(w: &[usize; 6]) -> kinglet_micro::PoolParams {
    kinglet_micro::PoolParams {
        filter_h: w[0],
        filter_w: w[1],
        stride_h: w[2],
        stride_w: w[3],
        pad_top: w[4],
        pad_left: w[5],
    }
}

/// One kernel call.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// int8 → zero-point-padded int16 (kinglet-m4 `widen_padded_before`): `pad_before`
    /// positions of zero points, the signal, zero points to the end of the buffer.
    Widen {
        src: Loc,
        dst: Loc,
        in_ch: usize,
        zero_point: i8,
        pad_before: usize,
    },
    /// int8 channels-last → channel-major zero-point-padded int16 rows of `row_len` values
    /// (kinglet-m4 `widen_channel_major`), for the depthwise kernel.
    WidenChannelMajor {
        src: Loc,
        dst: Loc,
        channels: usize,
        zero_point: i8,
        pad_before: usize,
        row_len: usize,
    },
    /// kinglet-m4 `conv1d` (with the fused max pool when `pool`); `width` is the convolution
    /// output length before pooling.
    Conv1d {
        src: Loc,
        dst: Loc,
        width: usize,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        pool: bool,
        weights: ConvWeights,
        bias: Vec<i32>,
        requant: RequantData,
    },
    /// kinglet-m4 `depthwise1d` (multiplier 1) on a channel-major buffer; weights `Wide`,
    /// `Int4` or `Int2`.
    Depthwise1d {
        src: Loc,
        dst: Loc,
        width: usize,
        channels: usize,
        kernel: usize,
        weights: ConvWeights,
        bias: Vec<i32>,
        requant: RequantData,
    },
    /// kinglet-m4 `fully_connected`.
    FullyConnectedQ15 {
        src: Loc,
        dst: Loc,
        in_len: usize,
        out_len: usize,
        weights: ConvWeights,
        bias: Vec<i32>,
        requant: RequantData,
    },
    /// kinglet-micro `conv2d_i8`.
    RefConv2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        filter: Dims,
        /// stride h, stride w, dilation h, dilation w, pad top, pad left.
        geometry: [usize; 6],
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        input_offset: i32,
        requant: RequantData,
    },
    /// kinglet-micro `max_pool2d_i8`.
    RefMaxPool2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        /// filter h, filter w, stride h, stride w, pad top, pad left.
        window: [usize; 6],
        act_min: i32,
        act_max: i32,
    },
    /// kinglet-micro `fully_connected_i8`.
    RefFullyConnected {
        src: Loc,
        dst: Loc,
        batches: usize,
        in_len: usize,
        out_len: usize,
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        input_offset: i32,
        requant: RequantData,
    },
    /// Element copy (a reshape whose result is the graph output).
    Copy { src: Loc, dst: Loc, len: usize },
    /// kinglet-micro `depthwise_conv2d_i8`.
    RefDepthwiseConv2D {
        src: Loc,
        dst: Loc,
        input: Dims,
        output: Dims,
        filter: Dims,
        /// stride h, stride w, dilation h, dilation w, pad top, pad left.
        geometry: [usize; 6],
        depth_multiplier: usize,
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        input_offset: i32,
        requant: RequantData,
    },
    /// A step of a float model (float32, float16 weights or dynamic range): see
    /// [`crate::float`].
    Float(crate::float::FloatStep),
    /// An int8 fully-connected layer with pruned weights stored compressed: see
    /// [`crate::sparse`].
    SparseFc(crate::sparse::SparseFcStep),
    /// An int8 convolution with pruned filters stored compressed: see [`crate::sparse`].
    SparseConv(crate::sparse::SparseConvStep),
    /// An int8 2D convolution on kinglet-m4's DSP kernel: see [`crate::conv2d_dsp`].
    DspConv2D(crate::conv2d_dsp::DspConv2dStep),
    /// A step of an a16w8 model (int16 activations): see [`crate::s16`].
    S16(crate::s16::S16Step),
    /// kinglet-micro `mean_hw_i8` over the view `[outer, reduced, 1, channels]` (TFLite
    /// reference `QuantizedMeanOrSum`); the Cortex-M4 schedule calls kinglet-m4 `mean_i8`
    /// with the precomputed `multiplier` and `shift` instead.
    RefMean {
        src: Loc,
        dst: Loc,
        view: Dims,
        /// input scale, output scale (for the Rust kernel, which derives the multiplier).
        scales: [f32; 2],
        input_zero_point: i32,
        output_zero_point: i32,
        /// The integer requantisation the Rust kernel derives, precomputed for the C kernel:
        /// `mbqm(Σx − zp_in·count, multiplier, shift) + zp_out`.
        multiplier: i32,
        shift: i32,
    },
    /// One input of a CONCATENATION (same quantisation as the output, so a plain copy):
    /// for each of `outer` rows, `src_inner` values go to `dst[row·dst_inner + dst_offset ..]`.
    ConcatPart {
        src: Loc,
        dst: Loc,
        outer: usize,
        src_inner: usize,
        dst_inner: usize,
        dst_offset: usize,
    },
}

impl StepKind {
    pub fn src(&self) -> Loc {
        match self {
            StepKind::Widen { src, .. }
            | StepKind::WidenChannelMajor { src, .. }
            | StepKind::Conv1d { src, .. }
            | StepKind::Depthwise1d { src, .. }
            | StepKind::FullyConnectedQ15 { src, .. }
            | StepKind::RefConv2D { src, .. }
            | StepKind::RefMaxPool2D { src, .. }
            | StepKind::RefFullyConnected { src, .. }
            | StepKind::Copy { src, .. }
            | StepKind::RefDepthwiseConv2D { src, .. }
            | StepKind::RefMean { src, .. }
            | StepKind::ConcatPart { src, .. } => *src,
            StepKind::Float(f) => f.src(),
            StepKind::SparseFc(f) => f.src,
            StepKind::SparseConv(c) => c.src,
            StepKind::DspConv2D(c) => c.src,
            StepKind::S16(s) => s.src(),
        }
    }

    pub fn dst(&self) -> Loc {
        match self {
            StepKind::Widen { dst, .. }
            | StepKind::WidenChannelMajor { dst, .. }
            | StepKind::Conv1d { dst, .. }
            | StepKind::Depthwise1d { dst, .. }
            | StepKind::FullyConnectedQ15 { dst, .. }
            | StepKind::RefConv2D { dst, .. }
            | StepKind::RefMaxPool2D { dst, .. }
            | StepKind::RefFullyConnected { dst, .. }
            | StepKind::Copy { dst, .. }
            | StepKind::RefDepthwiseConv2D { dst, .. }
            | StepKind::RefMean { dst, .. }
            | StepKind::ConcatPart { dst, .. } => *dst,
            StepKind::Float(f) => f.dst(),
            StepKind::SparseFc(f) => f.dst,
            StepKind::SparseConv(c) => c.dst,
            StepKind::DspConv2D(c) => c.dst,
            StepKind::S16(s) => s.dst(),
        }
    }

    /// An arena buffer the step uses besides `src` and `dst` (a kernel's scratch).
    pub fn scratch(&self) -> Option<Loc> {
        match self {
            StepKind::Float(f) => f.scratch(),
            StepKind::DspConv2D(c) => Some(c.padded),
            _ => None,
        }
    }

    /// Bytes of the buffer this step's kernel call keeps on the stack, sized by the lowering:
    /// a block of narrow or sub-byte weights unpacked for a 1D convolution (kinglet-m4
    /// `conv1d`'s `SCRATCH`), a sparse convolution's per-pixel patch. Everything else runs in
    /// the arena or in fixed-size locals the runtime constants cover.
    pub fn stack_buffer_bytes(&self) -> usize {
        match self {
            StepKind::Conv1d {
                in_ch,
                out_ch,
                kernel,
                weights,
                ..
            } => match weights.bits() {
                16 => 0,
                bits => {
                    let row = kinglet_m4::conv1d_row_len(*in_ch, *kernel);
                    4 * kinglet_m4::subbyte::packed_scratch_words(bits, *out_ch, row)
                }
            },
            StepKind::SparseConv(c) => c.patch_len().next_multiple_of(4),
            _ => 0,
        }
    }

    /// Constant bytes this step puts in flash.
    pub fn constant_bytes(&self) -> usize {
        match self {
            StepKind::Conv1d {
                weights,
                bias,
                requant,
                ..
            }
            | StepKind::Depthwise1d {
                weights,
                bias,
                requant,
                ..
            }
            | StepKind::FullyConnectedQ15 {
                weights,
                bias,
                requant,
                ..
            } => weights.bytes() + 4 * bias.len() + requant.bytes(),
            StepKind::RefConv2D {
                weights,
                bias,
                requant,
                ..
            }
            | StepKind::RefFullyConnected {
                weights,
                bias,
                requant,
                ..
            }
            | StepKind::RefDepthwiseConv2D {
                weights,
                bias,
                requant,
                ..
            } => weights.len() + 4 * bias.as_ref().map_or(0, Vec::len) + requant.bytes(),
            StepKind::Float(f) => f.constant_bytes(),
            StepKind::SparseFc(f) => f.constant_bytes(),
            StepKind::SparseConv(c) => c.constant_bytes(),
            StepKind::DspConv2D(c) => c.constant_bytes(),
            StepKind::S16(s) => s.constant_bytes(),
            _ => 0,
        }
    }
}

/// A step and the layer (one or more fused graph ops) it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub layer: usize,
    pub kind: StepKind,
}

/// A layer as reported per inference: the graph ops it covers and their MACs.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// e.g. `CONV_2D+MAX_POOL_2D`.
    pub name: String,
    /// Graph op indices.
    pub ops: Vec<usize>,
    pub macs: usize,
}

/// A lowered, planned model.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub kernels: KernelSet,
    /// Total input values: the graph inputs laid end to end, in graph order.
    pub input_len: usize,
    /// Values of each graph input (one entry for single-input models).
    pub input_lens: Vec<usize>,
    pub output_len: usize,
    /// Element type of the caller's input and output arrays: `I8` for int8 models, `I16`
    /// for a16w8 ones, `F32` for float ones.
    pub io: Elem,
    pub buffers: Vec<Buffer>,
    pub steps: Vec<Step>,
    pub layers: Vec<Layer>,
    /// Arena size in bytes (multiple of 4).
    pub arena_bytes: usize,
    /// What the lowering wants the user to know, e.g. sub-byte weights it had to store as
    /// int8 because no packed kernel runs that layer.
    pub notes: Vec<String>,
    /// Steps (by index) that read a nested network's shared weight blob instead of weights
    /// of their own: see [`crate::nested`]. Empty for an ordinary model.
    pub blobs: std::collections::BTreeMap<usize, BlobRef>,
    /// Set when this one schedule serves every width of a nested network at the full width's
    /// shapes (kinglet-compile `nested`, full-stride layout); `None` for an ordinary model.
    pub per_width: Option<PerWidth>,
}

/// Per weighted step of a full-stride schedule ([`Program::per_width`]), each width's biases
/// (folded over the full width's rows) and the leading output channels it computes; the
/// schedule runs as a function of the width `w`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerWidth {
    pub steps: std::collections::BTreeMap<usize, Vec<WidthStep>>,
}

/// One width's part of a weighted step of a full-stride schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct WidthStep {
    /// Folded biases of the channels it computes.
    pub bias: Vec<i32>,
    /// Leading output channels it computes (the full width's count for the full width).
    pub active: usize,
}

/// Where a step of one width of a nested network finds its weights (and, when they agree,
/// its requantisation) in the blob the widths share; see [`crate::nested`].
#[derive(Clone, Debug, PartialEq)]
pub struct BlobRef {
    /// Prefix of the blob's constants in the generated source (`{name}_W`, `{name}_MULT`, …).
    pub name: String,
    /// The full width's input channels (input length of a fully-connected layer) and
    /// output channels.
    pub full_in: usize,
    pub full_out: usize,
    /// Output channels the blob interleaves (divides every width's count).
    pub block: usize,
    /// The blob holds widened (int16) weights rather than int8 ones.
    pub wide: bool,
    /// Whether this width's requantisation is the leading part of the blob's.
    pub shared_requant: bool,
    /// Call the kernels' run-time-shape variants (one schedule serving every width from
    /// tables) rather than the shape-specialised ones.
    pub runtime_shapes: bool,
}

impl Program {
    /// Bytes of constant data (weights, biases, requantisation tables).
    pub fn constant_bytes(&self) -> usize {
        self.steps.iter().map(|s| s.kind.constant_bytes()).sum()
    }

    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.macs).sum()
    }

    /// The stack bound `compile` states: the runtime's own frames for this kernel set
    /// ([`RUNTIME_STACK_BYTES_DSP`] / [`RUNTIME_STACK_BYTES_REFERENCE`]) plus the largest
    /// buffer one step puts on the stack ([`StepKind::stack_buffer_bytes`]). The largest, not
    /// the sum: each step's buffer lives in its own block of the schedule, so the optimiser
    /// gives them one slot; the arena-guard suite (`tests/arena_guard.rs`) checks the figure
    /// against the measured stack of every model it runs.
    pub fn stated_stack_bytes(&self) -> usize {
        let runtime = match self.kernels {
            KernelSet::CortexM4 => RUNTIME_STACK_BYTES_DSP,
            KernelSet::Reference => RUNTIME_STACK_BYTES_REFERENCE,
        };
        let buffers = (self.steps.iter().enumerate())
            .map(|(i, s)| self.step_stack_bytes(i, s))
            .max()
            .unwrap_or(0);
        runtime + buffers
    }

    /// [`StepKind::stack_buffer_bytes`], or for a step reading a blob of int8 weights the
    /// block of the blob's (full-width) rows its kernel widens.
    pub fn step_stack_bytes(&self, index: usize, step: &Step) -> usize {
        match (&step.kind, self.blobs.get(&index)) {
            (StepKind::Conv1d { kernel, .. }, Some(blob)) if !blob.wide => {
                let row = kinglet_m4::conv1d_row_len(blob.full_in, *kernel);
                4 * kinglet_m4::nested::nested_conv1d_scratch_words(blob.block, row)
            }
            (StepKind::Conv1d { .. }, Some(_)) => 0,
            _ => step.kind.stack_buffer_bytes(),
        }
    }

    /// [`Program::stated_stack_bytes`] for the C99 output of this (Cortex-M4) schedule, built
    /// by arm-none-eabi-gcc `-O2` for Cortex-M4: [`RUNTIME_STACK_BYTES_C`] plus the largest
    /// step buffer, which the C schedule declares in a block of its own.
    pub fn stated_c_stack_bytes(&self) -> usize {
        let buffers = (self.steps.iter())
            .map(|s| s.kind.stack_buffer_bytes())
            .max()
            .unwrap_or(0);
        RUNTIME_STACK_BYTES_C + buffers
    }
}

/// Stack the generated schedule and the kernels take below the caller of `infer` besides the
/// step buffers (frames, spills, the kernels' fixed-size locals), with the DSP kernel set.
/// Measured, not derived — it depends on how rustc inlines and allocates registers: the
/// largest `measured stack - largest step buffer` over 1,000 random models in QEMU was 796 B
/// (rustc 1.95, thumbv7em-none-eabihf, opt-level 3, LTO), plus a quarter for models and
/// compilers the sample missed, rounded up to 64 B. Measured with
/// `KINGLET_GUARD_MODELS=1000 cargo test --release -p kinglet-compile --test arena_guard -- --nocapture`
/// ("runtime share max" in its summary), which also checks the bound on every model.
pub const RUNTIME_STACK_BYTES_DSP: usize = 1024;

/// [`RUNTIME_STACK_BYTES_DSP`] for the reference kernel set (kinglet-micro's kernels, which
/// keep no step buffers on the stack): 1,056 B measured on the same 1,000 models, plus a
/// quarter, rounded up to 64 B.
pub const RUNTIME_STACK_BYTES_REFERENCE: usize = 1344;

/// [`RUNTIME_STACK_BYTES_DSP`] for the C99 output (`runtime-c`, arm-none-eabi-gcc -O2
/// `-mcpu=cortex-m4`, as the firmware harness builds it): 380 B measured on the 928 of the
/// 1,000 models C output takes (the float ones are Rust-only; 364 B on the suite's current
/// set, whose generated models now include a16w8 and pruned ones), plus a quarter, rounded up
/// to 64 B.
pub const RUNTIME_STACK_BYTES_C: usize = 512;
