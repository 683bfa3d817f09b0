//! 2D networks for images (`Task::Image`): the same block description as the 1D family
//! (convolution, optional batch norm, ReLU, max pool; full or depthwise-separable), read with
//! square `kernel × kernel` filters and `pool × pool` pooling over `[height, width]`.
//!
//! Inputs travel through training as one branch `[batch, channels, height·width]` (the
//! dataset's row-major pixels, channels first) and are reshaped to burn's `[batch, channels,
//! height, width]` here. Feature maps are flattened in `[height, width, channels]` order, as
//! Keras `Flatten` on NHWC, so dense weights lower to TFLite `FULLY_CONNECTED` unchanged.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use kinglet_graph::{Activation, Graph, Hw, OpKind, Padding, TensorId};

use crate::Error;
use crate::arch::{Architecture, Augment, Block, Head, Padding as ArchPadding, Schedule, Task};
use crate::lower::{folded_norm, get_values, graph_err, graph_padding, lower_depthwise};
use crate::model_file::TrainedModel;
use crate::network::{NamedTensor, TensorSource, batch_norm, grab};

/// The CNN of the multi-component optimisation seed (TensorFlow's post-training quantisation
/// example): Conv2D(12, 3×3, valid, ReLU) → MaxPool 2×2 → Flatten → Dense(10) on 28×28
/// grey images scaled to [0, 1]; Adam (learning rate 0.001), batch 64, 10 epochs.
pub fn mnist_cnn() -> Architecture {
    Architecture {
        name: "mnist-cnn".into(),
        task: Task::Image {
            height: 28,
            width: 28,
        },
        window: 28,
        branches: vec![crate::arch::Branch {
            name: "image".into(),
            channels: vec!["intensity".into()],
        }],
        blocks: vec![Block {
            filters: 12,
            kernel: 3,
            pool: 2,
            padding: ArchPadding::Valid,
            batch_norm: false,
            separable: false,
        }],
        head: Head::default(),
        training: Schedule {
            learning_rate: 0.001,
            batch_size: 64,
            epochs: 10,
            // Keras's Adam without a schedule: the rate never decays.
            constant_epochs: 10,
            decay: 0.0,
            // The pixels are already in [0, 1], as the seed feeds them.
            normalise: false,
            augment: Augment::default(),
            average_last: 0,
            label_smoothing: 0.0,
            balance_classes: false,
        },
        widths: Vec::new(),
        width_norm: Default::default(),
    }
}

/// Image height and width when `arch` is an image network.
fn image_size(arch: &Architecture) -> Option<(usize, usize)> {
    match arch.task {
        Task::Image { height, width } => Some((height, width)),
        _ => None,
    }
}

/// Output size of one block along one axis, or `None` when nothing is left.
fn block_axis(len: usize, block: &Block) -> Option<usize> {
    let len = match block.padding {
        ArchPadding::Same => len,
        ArchPadding::Valid => len.checked_sub(block.kernel)? + 1,
    };
    Some(len / block.pool).filter(|&l| l > 0)
}

/// Checks an image network's geometry, naming the block that fails.
pub(crate) fn validate_blocks(arch: &Architecture) -> Result<(), String> {
    let Some((mut h, mut w)) = image_size(arch) else {
        return Ok(());
    };
    if h == 0 || w == 0 {
        return Err("task image: height and width must be positive".into());
    }
    if arch.branches.len() != 1 {
        return Err("task `image` takes exactly one [[branch]]".into());
    }
    if arch.head.global_average_pool && arch.blocks.is_empty() {
        return Err("global average pooling needs at least one block".into());
    }
    for (i, b) in arch.blocks.iter().enumerate() {
        if b.filters == 0 || b.kernel == 0 || b.pool == 0 {
            return Err(format!(
                "block {i}: filters, kernel and pool must be positive"
            ));
        }
        match (block_axis(h, b), block_axis(w, b)) {
            (Some(nh), Some(nw)) => (h, w) = (nh, nw),
            _ => {
                return Err(format!(
                    "block {i}: a {k}×{k} kernel and {p}×{p} pool leave nothing of a {h}×{w} map",
                    k = b.kernel,
                    p = b.pool
                ));
            }
        }
    }
    Ok(())
}

/// Height, width and channels of the final feature map of an image network (`None` for the
/// 1D family); with global average pooling the spatial size is 1×1.
pub fn feature_map(arch: &Architecture) -> Option<(usize, usize, usize)> {
    let (mut h, mut w) = image_size(arch)?;
    let mut c = arch.branch_channels(0);
    for b in &arch.blocks {
        h = block_axis(h, b).unwrap_or(0);
        w = block_axis(w, b).unwrap_or(0);
        c = b.filters;
    }
    if arch.head.global_average_pool {
        (h, w) = (1, 1);
    }
    Some((h, w, c))
}

/// Trainable parameters of an image network's convolution blocks (0 for the 1D family).
pub(crate) fn block_parameters(arch: &Architecture) -> usize {
    if image_size(arch).is_none() {
        return 0;
    }
    let mut total = 0;
    let mut cin = arch.branch_channels(0);
    for b in &arch.blocks {
        let area = b.kernel * b.kernel;
        if b.separable {
            total += cin * area + cin; // depthwise
            total += cin * b.filters + b.filters; // pointwise
        } else {
            total += cin * area * b.filters + b.filters;
        }
        if b.batch_norm {
            total += 2 * b.filters;
        }
        cin = b.filters;
    }
    total
}

/// Initial convolution tensors of an image network (none for the 1D family) in canonical order (`branch0.block{i}.…`,
/// burn layouts `[out, in, k, k]`, depthwise `[in, 1, k, k]`); kernels come from `glorot(name,
/// shape, fan_in, fan_out)` as Keras initialises them, biases and shifts start at zero.
pub(crate) fn initial_block_tensors(
    arch: &Architecture,
    glorot: &mut dyn FnMut(String, Vec<usize>, usize, usize) -> NamedTensor,
) -> Vec<NamedTensor> {
    let filled = |name: String, n: usize, v: f32| NamedTensor {
        name,
        shape: vec![n],
        values: vec![v; n],
    };
    let mut out = Vec::new();
    if image_size(arch).is_none() {
        return out;
    }
    let mut cin = arch.branch_channels(0);
    for (i, block) in arch.blocks.iter().enumerate() {
        let p = format!("branch0.block{i}");
        let (k, f) = (block.kernel, block.filters);
        if block.separable {
            out.push(glorot(
                format!("{p}.depthwise.weight"),
                vec![cin, 1, k, k],
                k * k,
                k * k,
            ));
            out.push(filled(format!("{p}.depthwise.bias"), cin, 0.0));
            out.push(glorot(
                format!("{p}.conv.weight"),
                vec![f, cin, 1, 1],
                cin,
                f,
            ));
        } else {
            out.push(glorot(
                format!("{p}.conv.weight"),
                vec![f, cin, k, k],
                cin * k * k,
                f * k * k,
            ));
        }
        out.push(filled(format!("{p}.conv.bias"), f, 0.0));
        if block.batch_norm {
            out.push(filled(format!("{p}.norm.gamma"), f, 1.0));
            out.push(filled(format!("{p}.norm.beta"), f, 0.0));
            out.push(filled(format!("{p}.norm.running_mean"), f, 0.0));
            out.push(filled(format!("{p}.norm.running_var"), f, 1.0));
        }
        cin = f;
    }
    out
}

#[derive(Module, Debug)]
pub struct ImageBlock {
    /// Present for depthwise-separable blocks: per-channel `k × k` convolution.
    pub depthwise: Option<Conv2d>,
    /// The full convolution, or the pointwise (1×1) half of a separable block.
    pub conv: Conv2d,
    pub norm: Option<BatchNorm>,
    pub pool: usize,
}

/// The convolution stack of an image network, up to and including flattening.
#[derive(Module, Debug)]
pub struct ImageBody {
    pub blocks: Vec<ImageBlock>,
    pub height: usize,
    pub width: usize,
    pub global_average_pool: bool,
}

fn conv2d(
    src: &mut TensorSource,
    prefix: &str,
    out: usize,
    cin_per_group: usize,
    k: usize,
    groups: usize,
    padding: ArchPadding,
) -> Result<Conv2d, Error> {
    let (before, after) = padding.amounts(k);
    Ok(Conv2d {
        weight: src.param(&format!("{prefix}.weight"), [out, cin_per_group, k, k])?,
        bias: Some(src.param(&format!("{prefix}.bias"), [out])?),
        stride: [1, 1],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups,
        padding: PaddingConfig2d::Explicit(before, before, after, after),
    })
}

impl ImageBody {
    /// Takes the blocks' tensors from `src` (`None` for the 1D family).
    pub(crate) fn build(
        arch: &Architecture,
        src: &mut TensorSource,
    ) -> Result<Option<ImageBody>, Error> {
        let Some((height, width)) = image_size(arch) else {
            return Ok(None);
        };
        let mut cin = arch.branch_channels(0);
        let mut blocks = Vec::new();
        for (i, block) in arch.blocks.iter().enumerate() {
            let p = format!("branch0.block{i}");
            let (k, f) = (block.kernel, block.filters);
            let (depthwise, conv) = if block.separable {
                let dw = conv2d(
                    src,
                    &format!("{p}.depthwise"),
                    cin,
                    1,
                    k,
                    cin,
                    block.padding,
                )?;
                let pw = conv2d(src, &format!("{p}.conv"), f, cin, 1, 1, ArchPadding::Valid)?;
                (Some(dw), pw)
            } else {
                let c = conv2d(src, &format!("{p}.conv"), f, cin, k, 1, block.padding)?;
                (None, c)
            };
            let norm = if block.batch_norm {
                Some(batch_norm(src, &p, f)?)
            } else {
                None
            };
            blocks.push(ImageBlock {
                depthwise,
                conv,
                norm,
                pool: block.pool,
            });
            cin = f;
        }
        Ok(Some(ImageBody {
            blocks,
            height,
            width,
            global_average_pool: arch.head.global_average_pool,
        }))
    }

    /// Flattened features `[batch, h·w·c]` (or `[batch, c]` with global average pooling) of
    /// images given as `[batch, channels, height·width]`.
    pub fn features(&self, x: Tensor<3>) -> Tensor<2> {
        let [batch, channels, _] = x.dims();
        let mut x: Tensor<4> = x.reshape([batch, channels, self.height, self.width]);
        for block in &self.blocks {
            if let Some(dw) = &block.depthwise {
                x = dw.forward(x);
            }
            x = block.conv.forward(x);
            if let Some(norm) = &block.norm {
                x = norm.forward(x);
            }
            x = burn::tensor::activation::relu(x);
            if block.pool > 1 {
                let p = block.pool;
                x = max_pool2d(x, MaxPoolOptions::new([p, p]).with_stride([p, p]));
            }
        }
        let [batch, channels, h, w] = x.dims();
        if self.global_average_pool {
            x.reshape([batch, channels, h * w])
                .mean_dim(2)
                .reshape([batch, channels])
        } else {
            // NCHW → NHWC, then flatten: Keras order.
            x.permute([0, 2, 3, 1]).reshape([batch, h * w * channels])
        }
    }
}

impl ImageBody {
    /// Appends the blocks' tensors in canonical order and naming (see [`initial_block_tensors`]).
    pub(crate) fn named_tensors(&self, out: &mut Vec<NamedTensor>) {
        for (i, block) in self.blocks.iter().enumerate() {
            let p = format!("branch0.block{i}");
            if let Some(dw) = &block.depthwise {
                grab(out, format!("{p}.depthwise.weight"), dw.weight.val());
                if let Some(bias) = &dw.bias {
                    grab(out, format!("{p}.depthwise.bias"), bias.val());
                }
            }
            grab(out, format!("{p}.conv.weight"), block.conv.weight.val());
            if let Some(bias) = &block.conv.bias {
                grab(out, format!("{p}.conv.bias"), bias.val());
            }
            if let Some(norm) = &block.norm {
                grab(out, format!("{p}.norm.gamma"), norm.gamma.val());
                grab(out, format!("{p}.norm.beta"), norm.beta.val());
                grab(
                    out,
                    format!("{p}.norm.running_mean"),
                    norm.running_mean.value(),
                );
                grab(
                    out,
                    format!("{p}.norm.running_var"),
                    norm.running_var.value(),
                );
            }
        }
    }
}

/// Lowers an image network's blocks onto `input` (`[1, h, w, c]` NHWC): CONV_2D (or
/// DEPTHWISE_CONV_2D + 1×1 CONV_2D) with batch norm folded and ReLU fused, MAX_POOL_2D, and
/// with global average pooling a MEAN over height and width. Returns the tensor the dense
/// head reads.
pub(crate) fn lower_blocks(
    g: &mut Graph,
    model: &TrainedModel,
    input: TensorId,
) -> Result<TensorId, Error> {
    let arch = &model.architecture;
    let (mut h, mut w) = image_size(arch)
        .ok_or_else(|| Error::Model("lower_blocks needs an image network".into()))?;
    let mut cin = arch.branch_channels(0);
    let mut x = input;
    for (i, block) in arch.blocks.iter().enumerate() {
        let p = format!("branch0.block{i}");
        // Short op and tensor names: every byte counts against the seed's file sizes.
        let (dw_name, conv_name) = (format!("dw{i}"), format!("conv{i}"));
        let padding = graph_padding(block.padding);
        let (scale, shift) = folded_norm(model, &p, block.filters, block.batch_norm)?;
        let k = block.kernel;
        let conv_k = if block.separable {
            let names = (format!("{dw_name}/filter"), format!("{dw_name}/bias"));
            x = lower_depthwise(g, model, &p, x, [k, k], cin, padding, names, dw_name)?;
            1
        } else {
            k
        };
        // Conv [out, cin, kk, kk] → OHWI [out, kk, kk, cin], scaled by the folded batch norm.
        let out = block.filters;
        let area = conv_k * conv_k;
        let wt = get_values(model, &format!("{p}.conv.weight"), out * cin * area)?;
        let bias = get_values(model, &format!("{p}.conv.bias"), out)?;
        let mut filter = vec![0f32; out * area * cin];
        for o in 0..out {
            for c in 0..cin {
                for j in 0..area {
                    filter[(o * area + j) * cin + c] = wt[(o * cin + c) * area + j] * scale[o];
                }
            }
        }
        let folded_bias: Vec<f32> = (0..out).map(|o| bias[o] * scale[o] + shift[o]).collect();
        let wt = g
            .add_constant_f32(
                format!("{conv_name}/filter"),
                &[out, conv_k, conv_k, cin],
                &filter,
            )
            .map_err(graph_err)?;
        let bt = g
            .add_constant_f32(format!("{conv_name}/bias"), &[out], &folded_bias)
            .map_err(graph_err)?;
        let kind = OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: if block.separable {
                Padding::Valid
            } else {
                padding
            },
            activation: Activation::Relu,
        };
        x = g
            .add_op_inferred(kind, &[x, wt, bt], conv_name)
            .map_err(graph_err)?;
        if block.pool > 1 {
            let kind = OpKind::MaxPool2D {
                filter: Hw::new(block.pool, block.pool),
                stride: Hw::new(block.pool, block.pool),
                padding: Padding::Valid,
                activation: Activation::None,
            };
            x = g
                .add_op_inferred(kind, &[x], format!("pool{i}"))
                .map_err(graph_err)?;
        }
        h = block_axis(h, block).unwrap_or(0);
        w = block_axis(w, block).unwrap_or(0);
        cin = out;
    }
    if arch.head.global_average_pool {
        let kind = OpKind::Mean {
            axes: vec![1, 2],
            keep_dims: false,
        };
        g.add_op_inferred(kind, &[x], "gap").map_err(graph_err)
    } else {
        // FULLY_CONNECTED flattens its input itself (row-major NHWC, the Keras `Flatten`
        // order), so no RESHAPE: it would only cost file bytes and an op that the graph
        // passes remove again.
        debug_assert_eq!(g.tensor(x).elements(), h * w * cin);
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_cnn_has_the_seed_parameter_count() {
        let arch = Architecture::preset("mnist-cnn").unwrap();
        // Conv 12·(3·3·1) + 12 = 120; dense 13·13·12 = 2028 → 10: 20 290.
        assert_eq!(arch.parameter_count(10), 20_410);
        assert_eq!(feature_map(&arch), Some((13, 13, 12)));
        assert_eq!(arch.merged_features(), 2028);
    }

    #[test]
    fn separable_and_same_padding_geometry() {
        let mut arch = mnist_cnn();
        arch.blocks[0].separable = true;
        arch.blocks[0].padding = ArchPadding::Same;
        arch.blocks.push(Block {
            batch_norm: true,
            ..arch.blocks[0].clone()
        });
        // 28 → 14 → 7; depthwise 1·9+1, pointwise 1·12+12; then 12·9+12, 12·12+12, BN 24.
        assert_eq!(feature_map(&arch), Some((7, 7, 12)));
        let blocks = (10 + 24) + (120 + 156 + 24);
        assert_eq!(arch.parameter_count(10), blocks + 7 * 7 * 12 * 10 + 10);
    }

    #[test]
    fn impossible_geometry_names_the_block() {
        let mut arch = mnist_cnn();
        arch.blocks[0].kernel = 29;
        let err = Architecture::from_toml(&arch.to_toml(), "img.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("img.toml") && err.contains("block 0"), "{err}");
    }
}
