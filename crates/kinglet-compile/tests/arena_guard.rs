//! Firmware invariants on random models (issue 17): in QEMU, the generated code writes nothing
//! outside its arena (guard bytes around it and the unused rest of the arena area keep their
//! pattern), its measured stack stays within the `STACK_BYTES` `compile` states, its outputs
//! do not depend on what the arena held and equal the host interpreter's — with both kernel
//! sets. Models: the random-model bundle of kinglet-compress (TensorFlow-generated int8,
//! float-I/O int8 and float32 models), those `compile` accepts; refusals are counted by reason.
//!
//! By default 40 models spread over the bundle (one image per kernel set); with
//! `KINGLET_GUARD_MODELS=1000` (or `all`) that many, `KINGLET_GUARD_BATCH` models per image
//! (default 50). Needs qemu-system-arm and the thumbv7em-none-eabihf target.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kinglet_compile::firmware::Lang;
use kinglet_compile::guard::{GuardModel, GuardResult, run_guard_batch};
use kinglet_compile::program::StepKind;
use kinglet_compile::qemu::FirmwareKernels;
use kinglet_graph::Graph;

mod common;
use common::Lcg;

#[path = "../../kinglet-compress/tests/common/mod.rs"]
mod bundle;

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kinglet-guard")
}

fn wanted_models() -> usize {
    match std::env::var("KINGLET_GUARD_MODELS").as_deref() {
        // As many models as the bundle holds: every one `compile` accepts, generated ones for
        // the rest.
        Ok("all") => usize::MAX,
        Ok(n) => n.parse().expect("KINGLET_GUARD_MODELS: a count or `all`"),
        Err(_) => 40,
    }
}

/// A random float HAR-style network (seeded), quantised by kinglet-compress — int8 with a
/// random weight width per layer, int8 with most weights pruned, or a16w8: what the bundle
/// lacks — layers whose int8 or sub-byte weights the DSP kernels unpack into an on-stack
/// buffer, sparse weights (a sparse convolution keeps its patch on the stack), int16
/// activations, 2D inputs, deeper stacks. Input [1, h, w, c];
/// one to three blocks of convolution (kernel 1–7, SAME or VALID, optionally pooled),
/// depthwise convolution or max pool; then flatten or global mean, and one or two fully
/// connected layers.
fn generated_model(seed: u32) -> Result<Graph, String> {
    use kinglet_graph::{Activation, DType, Hw, OpKind, Padding};
    let mut r = Lcg(seed.wrapping_mul(7919).wrapping_add(17));
    // 0: a16w8 (int16 activations); 1, 2: int8 with three quarters of the convolution and
    // fully connected weights pruned (stored sparse where that saves flash); else int8.
    let mode = Lcg(seed ^ 0x5eed).range(0, 7);
    let prune = |r: &mut Lcg, v: Vec<f32>| -> Vec<f32> {
        match mode {
            1 | 2 => v
                .into_iter()
                .map(|x| if r.range(0, 3) == 0 { x } else { 0.0 })
                .collect(),
            _ => v,
        }
    };
    fn pick<T: Copy>(r: &mut Lcg, xs: &[T]) -> T {
        xs[r.range(0, xs.len() as i32 - 1) as usize]
    }
    let act = |r: &mut Lcg| pick(r, &[Activation::None, Activation::Relu, Activation::Relu6]);
    let h = if r.range(0, 3) == 0 {
        pick(&mut r, &[2, 3, 4])
    } else {
        1
    };
    let w = pick(&mut r, &[8, 16, 24, 32, 48, 64, 96, 128]);
    let c = r.range(1, 9) as usize;
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, h, w, c], DType::F32, None);
    let mut cur = x;
    let mut weighted = 0;
    let e = |e: kinglet_graph::GraphError| e.to_string();
    for layer in 0..r.range(1, 3) {
        let [_, ch, cw, cc] = g.tensor(cur).shape[..] else {
            return Err("rank".into());
        };
        match r.range(0, 9) {
            0..=5 => {
                let out = r.range(2, 24) as usize;
                let kw = pick(&mut r, &[1, 3, 3, 5, 7]).min(cw);
                let kh = if ch > 1 {
                    pick(&mut r, &[1, 3]).min(ch)
                } else {
                    1
                };
                let padding = pick(&mut r, &[Padding::Same, Padding::Same, Padding::Valid]);
                let weights = r.units(out * kh * kw * cc);
                let weights = prune(&mut r, weights);
                let fw = g
                    .add_constant_f32(format!("w{layer}"), &[out, kh, kw, cc], &weights)
                    .map_err(e)?;
                let fb = g
                    .add_constant_f32(format!("b{layer}"), &[out], &r.units(out))
                    .map_err(e)?;
                let kind = OpKind::Conv2D {
                    stride: Hw::ONE,
                    dilation: Hw::ONE,
                    padding,
                    activation: act(&mut r),
                };
                cur = g
                    .add_op_inferred(kind, &[cur, fw, fb], format!("conv{layer}"))
                    .map_err(e)?;
                weighted += 1;
                let width = g.tensor(cur).shape[2];
                if width >= 4 && width.is_multiple_of(2) && r.range(0, 1) == 0 {
                    let pool = OpKind::MaxPool2D {
                        filter: Hw::new(1, 2),
                        stride: Hw::new(1, 2),
                        padding: Padding::Valid,
                        activation: Activation::None,
                    };
                    cur = g
                        .add_op_inferred(pool, &[cur], format!("pool{layer}"))
                        .map_err(e)?;
                }
            }
            6..=8 => {
                let kw = pick(&mut r, &[3, 5]).min(cw);
                let fw = g
                    .add_constant_f32(format!("dw{layer}"), &[1, 1, kw, cc], &r.units(kw * cc))
                    .map_err(e)?;
                let fb = g
                    .add_constant_f32(format!("db{layer}"), &[cc], &r.units(cc))
                    .map_err(e)?;
                let kind = OpKind::DepthwiseConv2D {
                    stride: Hw::ONE,
                    dilation: Hw::ONE,
                    padding: Padding::Same,
                    depth_multiplier: 1,
                    activation: act(&mut r),
                };
                cur = g
                    .add_op_inferred(kind, &[cur, fw, fb], format!("dw{layer}"))
                    .map_err(e)?;
                weighted += 1;
            }
            _ if cw >= 4 => {
                let pool = OpKind::MaxPool2D {
                    filter: Hw::new(1, 2),
                    stride: Hw::new(1, 2),
                    padding: Padding::Valid,
                    activation: Activation::None,
                };
                cur = g
                    .add_op_inferred(pool, &[cur], format!("pool{layer}"))
                    .map_err(e)?;
            }
            _ => {}
        }
    }
    let [_, ch, cw, cc] = g.tensor(cur).shape[..] else {
        return Err("rank".into());
    };
    let features = if r.range(0, 1) == 0 {
        let kind = OpKind::Reshape {
            new_shape: vec![1, ch * cw * cc],
        };
        cur = g.add_op_inferred(kind, &[cur], "flat").map_err(e)?;
        ch * cw * cc
    } else {
        let kind = OpKind::Mean {
            axes: vec![1, 2],
            keep_dims: false,
        };
        cur = g.add_op_inferred(kind, &[cur], "mean").map_err(e)?;
        cc
    };
    let mut inputs = features;
    let dense = if r.range(0, 1) == 0 { 1 } else { 2 };
    for k in 0..dense {
        let out = if k + 1 == dense {
            r.range(2, 12) as usize
        } else {
            r.range(8, 32) as usize
        };
        let weights = r.units(out * inputs);
        let weights = prune(&mut r, weights);
        let fw = g
            .add_constant_f32(format!("fw{k}"), &[out, inputs], &weights)
            .map_err(e)?;
        let fb = g
            .add_constant_f32(format!("fb{k}"), &[out], &r.units(out))
            .map_err(e)?;
        let kind = OpKind::FullyConnected {
            activation: if k + 1 == dense {
                Activation::None
            } else {
                act(&mut r)
            },
            keep_num_dims: false,
        };
        cur = g
            .add_op_inferred(kind, &[cur, fw, fb], format!("fc{k}"))
            .map_err(e)?;
        weighted += 1;
        inputs = out;
    }
    g.outputs = vec![cur];
    g.validate().map_err(e)?;
    let samples: Vec<Vec<Vec<f32>>> = (0..16)
        .map(|_| vec![r.units(h * w * c).iter().map(|v| 4.0 * v).collect()])
        .collect();
    let quantised = match mode {
        0 => kinglet_compress::quantize_a16w8(&g, &samples, &Default::default()),
        1 | 2 => kinglet_compress::quantize_int8(&g, &samples, &Default::default()),
        _ => {
            let config = kinglet_compress::PtqConfig {
                weight_bits: (0..weighted)
                    .map(|_| pick(&mut r, &[8, 8, 8, 8, 8, 4, 4, 2]))
                    .collect(),
                ..kinglet_compress::PtqConfig::default()
            };
            kinglet_compress::quantize_int8(&g, &samples, &config)
        }
    };
    quantised
        .map(|q| q.graph)
        .map_err(|e| format!("quantize: {e}"))
}

/// A refusal's reason without its numbers (op indices, sizes), so like refusals group.
fn reason(e: &str) -> String {
    let mut s: String = e
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    s.truncate(100);
    s
}

#[test]
fn generated_code_stays_in_its_arena_and_stated_stack() {
    let started = Instant::now();
    let wanted = wanted_models();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kinglet-compress/tests/goldens/random_models.kgd.gz");
    let (_, cases) = bundle::read_diff_bundle(path.to_str().expect("UTF-8 path"));
    assert!(cases.len() >= 1000, "bundle has only {} cases", cases.len());
    // Evenly spread over the bundle (it is ordered by family), all of it when asked for more.
    // A quarter of the models are generated; past half the bundle, every bundle model
    // `compile` accepts is taken, and generated ones (at least a quarter of the count) make up
    // the rest.
    let wanted = wanted.min(cases.len());
    let from_bundle = if wanted >= cases.len() / 2 {
        usize::MAX
    } else {
        wanted - wanted / 4
    };
    let order: Vec<usize> = if from_bundle >= cases.len() {
        (0..cases.len()).collect()
    } else {
        let stride = cases.len() / from_bundle.max(1);
        // Every index once: offset 0, stride, 2·stride, …, then offset 1, …
        (0..stride)
            .flat_map(|offset| (offset..cases.len()).step_by(stride))
            .collect()
    };
    let mut models = Vec::new();
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &order {
        if models.len() == from_bundle {
            break;
        }
        let case = &cases[i];
        let compiled = Graph::from_tflite_bytes(&case.model)
            .map_err(|e| format!("read: {e}"))
            .and_then(|g| GuardModel::new(&g, &case.name).map_err(|e| e.to_string()));
        match compiled {
            Ok(m) => {
                *families
                    .entry(case.info["family"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
                models.push(m);
            }
            Err(e) => refused
                .entry(reason(&e))
                .or_default()
                .push(case.name.clone()),
        }
    }
    let target = wanted.max(models.len() + wanted / 4);
    let mut seed = 0;
    while models.len() < target && seed < 4 * target as u32 + 100 {
        let name = format!("generated/{seed:04}");
        seed += 1;
        let model = generated_model(seed)
            .and_then(|g| GuardModel::new(&g, &name).map_err(|e| e.to_string()));
        match model {
            Ok(m) => {
                *families.entry("generated".into()).or_default() += 1;
                models.push(m);
            }
            Err(e) => refused.entry(reason(&e)).or_default().push(name),
        }
    }
    let batch: usize = std::env::var("KINGLET_GUARD_BATCH")
        .ok()
        .map(|b| b.parse().expect("KINGLET_GUARD_BATCH: a count"))
        .unwrap_or(50);
    let compiled_at = started.elapsed();
    // The Rust output with each kernel set, and the C output of the models it covers.
    let targets = [
        (FirmwareKernels::Dsp, Lang::Rust),
        (FirmwareKernels::Reference, Lang::Rust),
        (FirmwareKernels::Dsp, Lang::C),
    ];
    let c_models: Vec<usize> = (0..models.len())
        .filter(|&i| models[i].c_supported())
        .collect();
    let mut results: Vec<GuardResult> = Vec::new();
    for (kernels, lang) in targets {
        // Batches of model indices: every model for Rust, the C-capable ones for C.
        let indices: Vec<usize> = match lang {
            Lang::Rust => (0..models.len()).collect(),
            Lang::C => c_models.clone(),
        };
        for chunk in indices.chunks(batch) {
            let t = Instant::now();
            let batch_models: Vec<&GuardModel> = chunk.iter().map(|&i| &models[i]).collect();
            let r = run_guard_batch(&batch_models, kernels, lang, &work_dir())
                .expect("guard image runs");
            eprintln!(
                "guard image: {} models, {lang:?} {kernels:?}, {:.1} s",
                chunk.len(),
                t.elapsed().as_secs_f64()
            );
            results.extend(r);
        }
    }

    // The runtime's own share of each measurement (measured stack less the largest per-step
    // buffer), from which the RUNTIME_STACK_BYTES_* constants were set.
    let by_name: BTreeMap<&str, &GuardModel> =
        models.iter().map(|m| (m.name.as_str(), m)).collect();
    for (kernels, lang) in targets {
        let mine: Vec<&GuardResult> = (results.iter())
            .filter(|r| r.kernels == kernels && r.lang == lang)
            .collect();
        let runtime_share = |r: &GuardResult| {
            let program = by_name[r.name.as_str()].program(kernels, lang);
            let buffers = (program.steps.iter())
                .map(|s| s.kind.stack_buffer_bytes())
                .max()
                .unwrap_or(0) as u64;
            r.stack_bytes.saturating_sub(buffers)
        };
        let deepest = mine.iter().max_by_key(|r| r.stack_bytes);
        let runtime = mine.iter().map(|r| runtime_share(r)).max().unwrap_or(0);
        let min_headroom = mine
            .iter()
            .map(|r| r.stated_stack_bytes as i64 - r.stack_bytes as i64)
            .min()
            .unwrap_or(0);
        let buffer_steps = |r: &&GuardResult| {
            let program = by_name[r.name.as_str()].program(kernels, lang);
            (program.steps.iter())
                .filter(|s| s.kind.stack_buffer_bytes() > 0)
                .count()
        };
        let with_buffers = mine.iter().filter(|r| buffer_steps(r) > 0).count();
        // Where the bound's "largest buffer, not the sum" is put to the test.
        let with_several = mine.iter().filter(|r| buffer_steps(r) > 1).count();
        eprintln!(
            "arena guard {lang:?} {kernels:?}: {} models checked, {} guard violations, {} over the stated stack; deepest stack {} B (stated {} B, {}), runtime share max {} B, least headroom {} B; {} models with on-stack step buffers ({} with several)",
            mine.len(),
            mine.iter().filter(|r| r.bad_bytes > 0).count(),
            mine.iter()
                .filter(|r| r.stack_bytes > r.stated_stack_bytes)
                .count(),
            deepest.map_or(0, |r| r.stack_bytes),
            deepest.map_or(0, |r| r.stated_stack_bytes),
            deepest.map_or("-", |r| r.name.as_str()),
            runtime,
            min_headroom,
            with_buffers,
            with_several,
        );
    }
    let with_steps = |f: fn(&StepKind) -> bool| {
        (models.iter())
            .filter(|m| m.compiled.dsp.steps.iter().any(|s| f(&s.kind)))
            .count()
    };
    eprintln!(
        "arena guard: {} models per kernel set ({}; {} a16w8, {} with sparse weights), {} refused by compile, {:.0} s ({:.0} s compiling and host runs)",
        models.len(),
        families
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        with_steps(|k| matches!(k, StepKind::S16(_))),
        with_steps(|k| matches!(k, StepKind::SparseConv(_) | StepKind::SparseFc(_))),
        refused.values().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64(),
        compiled_at.as_secs_f64()
    );
    for (why, names) in &refused {
        eprintln!("  refused {:>4}: {why} (e.g. {})", names.len(), names[0]);
    }
    assert!(
        models.len() >= target.min(20),
        "only {} models compiled",
        models.len()
    );
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} model runs broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The check itself can fail: models whose `infer_in` is altered to write one byte just past
/// its arena, one byte before it, or 255 bytes past it (the trailing guard's last byte), and
/// one whose stated stack is set to nothing, are each caught — with the offset of the stray
/// byte — while an unaltered copy passes.
#[test]
fn guard_catches_stray_writes_and_stack_overruns() {
    let case = {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../kinglet-compress/tests/goldens/random_models.kgd.gz");
        let (_, cases) = bundle::read_diff_bundle(path.to_str().expect("UTF-8 path"));
        cases
            .into_iter()
            .find(|c| c.name.starts_with("conv1d/"))
            .expect("a conv1d case")
    };
    let graph = Graph::from_tflite_bytes(&case.model).expect("parse");
    let head = "pub fn infer_in(arena: &mut [u8], input: &[InputElem; INPUT_LEN], output: &mut [OutputElem; OUTPUT_LEN]) -> Result<(), ShapeError> {\n";
    let stray = |name: &str, offset: &str| {
        let mut m = GuardModel::new(&graph, name).expect("compiles");
        assert!(m.compiled.rust_module.contains(head));
        // SAFETY (of the generated line): the guard region surrounds the arena with 256 bytes on
        // each side, so these addresses are inside it.
        m.compiled.rust_module = m.compiled.rust_module.replace(
            head,
            &format!("{head}    unsafe {{ core::ptr::write_volatile(arena.as_mut_ptr().offset({offset}), 0x5a) }};\n"),
        );
        m
    };
    let mut deep = GuardModel::new(&graph, "stated-zero").expect("compiles");
    let stated = "pub const STACK_BYTES: usize = if USE_DSP";
    assert!(deep.compiled.rust_module.contains(stated));
    deep.compiled.rust_module = deep.compiled.rust_module.replace(
        stated,
        "pub const STACK_BYTES: usize = 0;\nconst _STATED: usize = if USE_DSP",
    );
    let clean = GuardModel::new(&graph, "clean").expect("compiles");
    let models = [
        clean,
        stray("past-end", "arena.len() as isize"),
        stray("before", "-1"),
        stray("far-end", "arena.len() as isize + 255"),
        deep,
    ];
    let refs: Vec<&GuardModel> = models.iter().collect();
    let r = run_guard_batch(
        &refs,
        FirmwareKernels::Dsp,
        Lang::Rust,
        &work_dir().join("self-test"),
    )
    .expect("guard image runs");
    eprintln!("{r:#?}");
    let arena = r[0].arena_bytes as i64;
    assert!(r[0].passed(), "{:?}", r[0]);
    assert_eq!((r[1].bad_bytes, r[1].first_bad_offset), (1, arena));
    assert_eq!((r[2].bad_bytes, r[2].first_bad_offset), (1, -1));
    assert_eq!((r[3].bad_bytes, r[3].first_bad_offset), (1, arena + 255));
    assert!(r[1..4].iter().all(|r| !r.passed() && r.matches_host));
    assert_eq!(r[4].bad_bytes, 0);
    assert!(r[4].stack_bytes > 0 && r[4].stated_stack_bytes == 0 && !r[4].passed());
}
