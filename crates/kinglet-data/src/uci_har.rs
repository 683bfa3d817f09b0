//! Reader for the official UCI-HAR layout:
//! `UCI HAR Dataset/{train,test}/Inertial Signals/<channel>_<split>.{txt,csv}`,
//! `y_<split>.txt`, `subject_<split>.txt`, `activity_labels.txt`. Signal files may also be
//! gzip-compressed (`.txt.gz`, `.csv.gz`), which keeps committed fixtures small.

use std::path::{Path, PathBuf};

use crate::hapt::VAL_SUBJECTS;
use crate::text::{parse_float_table, parse_int_table, parse_label_names, read_text};
use crate::{DataError, Dataset, Split};

/// Channel order of every HAR [`Dataset`] (the official file names without `_<split>`).
pub const HAR_CHANNELS: [&str; 9] = [
    "body_acc_x",
    "body_acc_y",
    "body_acc_z",
    "body_gyro_x",
    "body_gyro_y",
    "body_gyro_z",
    "total_acc_x",
    "total_acc_y",
    "total_acc_z",
];

/// Samples per window (2.56 s at 50 Hz).
pub const WINDOW: usize = 128;

/// The folder that holds `activity_labels.txt` and `train/`, `test/`.
pub fn dataset_root(dir: &Path) -> PathBuf {
    let nested = dir.join("UCI HAR Dataset");
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Loads one split. `val` is the official training split restricted to
/// [`VAL_SUBJECTS`]; `train` is the rest of it.
pub fn load(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let root = dataset_root(dir);
    let official = match split {
        Split::Test => "test",
        Split::Train | Split::Val => "train",
    };
    let dataset = load_official_split(&root, official)?;
    let subjects = dataset.subjects.clone().unwrap_or_default();
    Ok(match split {
        Split::Test => dataset,
        Split::Val => {
            let keep: Vec<usize> = (0..dataset.len())
                .filter(|&i| VAL_SUBJECTS.contains(&subjects[i]))
                .collect();
            dataset.select(&keep)
        }
        Split::Train => {
            let keep: Vec<usize> = (0..dataset.len())
                .filter(|&i| !VAL_SUBJECTS.contains(&subjects[i]))
                .collect();
            dataset.select(&keep)
        }
    })
}

/// Loads `train` or `test` exactly as published, in file order.
pub fn load_official_split(root: &Path, split: &str) -> Result<Dataset, DataError> {
    let labels_path = root.join("activity_labels.txt");
    let class_names = parse_label_names(
        &read_text(&labels_path)?,
        &labels_path.display().to_string(),
    )?;

    let split_dir = root.join(split);
    let y_path = split_dir.join(format!("y_{split}.txt"));
    let y_name = y_path.display().to_string();
    let y_rows = parse_int_table(&read_text(&y_path)?, &y_name, 1)?;
    let mut labels = Vec::with_capacity(y_rows.len());
    for (line, row) in &y_rows {
        let v = row[0];
        if v < 1 || v as usize > class_names.len() {
            return Err(DataError::BadValue {
                path: y_name.clone(),
                line: *line,
                reason: format!("label {v} outside 1..={}", class_names.len()),
            });
        }
        labels.push((v - 1) as u32);
    }

    let s_path = split_dir.join(format!("subject_{split}.txt"));
    let s_name = s_path.display().to_string();
    let s_rows = parse_int_table(&read_text(&s_path)?, &s_name, 1)?;
    if s_rows.len() != labels.len() {
        return Err(DataError::RowCountMismatch {
            path: s_name,
            found: s_rows.len(),
            reference: y_name,
            expected: labels.len(),
        });
    }
    let mut subjects = Vec::with_capacity(s_rows.len());
    for (line, row) in &s_rows {
        let v = u32::try_from(row[0]).map_err(|_| DataError::BadValue {
            path: s_name.clone(),
            line: *line,
            reason: format!("subject id {} is negative", row[0]),
        })?;
        subjects.push(v);
    }

    let signal_dir = split_dir.join("Inertial Signals");
    let signal_files: Vec<Option<PathBuf>> = HAR_CHANNELS
        .iter()
        .map(|ch| {
            ["txt", "csv", "txt.gz", "csv.gz"]
                .iter()
                .map(|ext| signal_dir.join(format!("{ch}_{split}.{ext}")))
                .find(|p| p.is_file())
        })
        .collect();
    if signal_files.iter().all(Option::is_none) {
        return Err(DataError::NoSignals {
            split: split.to_string(),
            dir: split_dir,
            expected: format!("Inertial Signals/<channel>_{split}.txt or .csv (optionally .gz)"),
        });
    }

    let n = labels.len();
    let channels = HAR_CHANNELS.len();
    let mut data = vec![0f32; n * WINDOW * channels];
    for (c, (ch, file)) in HAR_CHANNELS.iter().zip(&signal_files).enumerate() {
        let path = file.clone().ok_or_else(|| DataError::MissingFile {
            path: signal_dir
                .join(format!("{ch}_{split}.txt"))
                .display()
                .to_string(),
        })?;
        let name = path.display().to_string();
        let (values, rows) = parse_float_table(&read_text(&path)?, &name, WINDOW)?;
        if rows != n {
            return Err(DataError::RowCountMismatch {
                path: name,
                found: rows,
                reference: y_name,
                expected: n,
            });
        }
        for (i, row) in values.chunks_exact(WINDOW).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                data[(i * WINDOW + t) * channels + c] = v as f32;
            }
        }
    }
    if n == 0 {
        return Err(DataError::Empty(format!("{y_name} holds no windows")));
    }

    Ok(Dataset {
        sample_shape: vec![WINDOW, channels],
        channel_names: HAR_CHANNELS.iter().map(|s| s.to_string()).collect(),
        data,
        labels,
        subjects: Some(subjects),
        class_names,
        sample_rate_hz: Some(50.0),
        stream: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_signal_files_are_read_and_corrupt_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ok.txt.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, b"1 2 3\n").unwrap();
        std::fs::write(&good, encoder.finish().unwrap()).unwrap();
        assert_eq!(read_text(&good).unwrap(), "1 2 3\n");
        let bad = dir.path().join("body_acc_x_test.txt.gz");
        std::fs::write(&bad, b"not gzip at all").unwrap();
        let err = read_text(&bad).unwrap_err().to_string();
        assert!(err.contains("body_acc_x_test.txt.gz"), "{err}");
    }
}
