//! MNIST-style IDX loading, on files written here (plain and gzip).

use std::io::Write;

use kinglet_data::{DataError, DataSpec, LoadOptions, load};

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn reads_gzip_and_plain_idx_and_scales_pixels() {
    let dir = tempfile::tempdir().unwrap();
    // Three 2×2 test images, gzip-compressed; labels plain.
    let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte.gz"),
        gz(&idx(&[3, 2, 2], &pixels)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte"),
        idx(&[3], &[7, 0, 9]),
    )
    .unwrap();
    let spec = DataSpec::parse(&format!("fashion-mnist:{}:test", dir.path().display())).unwrap();
    let d = load(&spec, &LoadOptions::default()).unwrap();
    assert_eq!(d.sample_shape, vec![2, 2, 1]);
    assert_eq!(d.labels, vec![7, 0, 9]);
    assert_eq!(d.class_names[9], "Ankle boot");
    assert_eq!(
        d.sample(1),
        &[80.0 / 255.0, 100.0 / 255.0, 120.0 / 255.0, 140.0 / 255.0]
    );
}

#[test]
fn mismatched_image_and_label_counts_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx(&[2, 1, 1], &[1, 2]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx(&[3], &[1, 2, 3]),
    )
    .unwrap();
    let spec = DataSpec::parse(&format!("mnist:{}:train", dir.path().display())).unwrap();
    let e = load(&spec, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::RowCountMismatch {
                found: 3,
                expected: 2,
                ..
            }
        ),
        "{e}"
    );
}
