//! MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, …), for image models that share
//! the [`Dataset`] type with HAR windows.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{DataError, Dataset, Split};

/// Which class names to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Mnist,
    FashionMnist,
}

/// Training images kept for validation: the last this many of the training file (the last
/// twelfth of smaller files, so a small fixture still has training images).
pub const VAL_IMAGES: usize = 5_000;

/// Number of validation images taken from the end of an `n`-image training file.
pub fn val_images(n: usize) -> usize {
    VAL_IMAGES.min(n / 12)
}

const FASHION_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::MissingFile {
        path: dir.join(format!("{stem}[.gz]")).display().to_string(),
    })
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path.display(), e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::io(path.display(), e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes: returns dimensions and data.
pub fn parse_idx_u8(bytes: &[u8], name: &str) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bad = |reason: String| DataError::BadFormat {
        path: name.to_string(),
        reason,
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic number)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "element type 0x{:02x} is not unsigned byte",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    // Dimensions are untrusted u32s: their product can exceed any real file.
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= bytes.len())
        .ok_or_else(|| bad(format!("dimensions {dims:?} exceed the file")))?;
    if bytes.len() != header + count {
        return Err(bad(format!(
            "{} data bytes, dimensions {dims:?} need {count}",
            bytes.len() - header
        )));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Loads a split; pixels scaled to [0, 1], shape `[28, 28, 1]`.
pub fn load(dir: &Path, split: Split, flavour: Flavour) -> Result<Dataset, DataError> {
    let prefix = if split == Split::Test {
        "t10k"
    } else {
        "train"
    };
    let img_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lab_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let img_name = img_path.display().to_string();
    let lab_name = lab_path.display().to_string();
    from_bytes(
        (&read_maybe_gz(&img_path)?, &img_name),
        (&read_maybe_gz(&lab_path)?, &lab_name),
        split,
        flavour,
    )
}

/// [`load`] on the (uncompressed) image and label files already in memory, each as
/// `(bytes, name)`, the name only for errors.
pub fn from_bytes(
    images: (&[u8], &str),
    labels: (&[u8], &str),
    split: Split,
    flavour: Flavour,
) -> Result<Dataset, DataError> {
    let (img_name, lab_name) = (images.1.to_string(), labels.1.to_string());
    let (idims, pixels) = parse_idx_u8(images.0, &img_name)?;
    let (ldims, labels) = parse_idx_u8(labels.0, &lab_name)?;
    if idims.len() != 3 || ldims.len() != 1 {
        return Err(DataError::BadFormat {
            path: img_name,
            reason: format!("dimensions {idims:?} / {ldims:?}"),
        });
    }
    if idims[0] != ldims[0] {
        return Err(DataError::RowCountMismatch {
            path: lab_name,
            found: ldims[0],
            reference: img_name,
            expected: idims[0],
        });
    }
    if let Some(pos) = labels.iter().position(|&l| l > 9) {
        return Err(DataError::BadFormat {
            path: lab_name,
            reason: format!("label {} at index {pos} is not a digit", labels[pos]),
        });
    }
    let n = idims[0];
    let per = idims[1] * idims[2];
    let range = match split {
        Split::Test => 0..n,
        Split::Train => 0..n - val_images(n),
        Split::Val => n - val_images(n)..n,
    };
    let class_names = match flavour {
        Flavour::Mnist => (0..10).map(|d| d.to_string()).collect(),
        Flavour::FashionMnist => FASHION_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    Ok(Dataset {
        sample_shape: vec![idims[1], idims[2], 1],
        channel_names: vec!["intensity".to_string()],
        data: pixels[range.start * per..range.end * per]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect(),
        labels: labels[range.clone()].iter().map(|&l| l as u32).collect(),
        subjects: None,
        class_names,
        sample_rate_hz: None,
        stream: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_the_last_twelfth_up_to_5000_images() {
        assert_eq!(val_images(60_000), 5_000);
        assert_eq!(val_images(120_000), 5_000);
        assert_eq!(val_images(60), 5);
        assert_eq!(val_images(5), 0);
    }

    #[test]
    fn parses_header_and_rejects_truncation() {
        let mut b = vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9];
        assert_eq!(parse_idx_u8(&b, "x").unwrap(), (vec![3], vec![7, 8, 9]));
        b.pop();
        assert!(parse_idx_u8(&b, "x").is_err());
    }
}
