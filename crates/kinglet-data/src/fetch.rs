//! `kinglet data fetch`: download a published archive, check its SHA-256, unpack it.
//! Unpacking goes to a temporary folder beside the destination and is renamed into place,
//! so an interrupted fetch never leaves a half-unpacked dataset behind.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::DataError;

/// A dataset archive kinglet knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// UCI-HAR (windows; the zip holds a second zip, `UCI HAR Dataset.zip`).
    UciHar,
    /// HAPT (raw recordings; flat zip with `RawData/`).
    Hapt,
}

impl Archive {
    pub fn parse(name: &str) -> Option<Archive> {
        match name {
            "uci-har" => Some(Archive::UciHar),
            "hapt" => Some(Archive::Hapt),
            _ => None,
        }
    }

    /// The UCI Machine Learning Repository address.
    pub fn url(self) -> &'static str {
        match self {
            Archive::UciHar => {
                "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"
            }
            Archive::Hapt => {
                "https://archive.ics.uci.edu/static/public/341/smartphone+based+recognition+of+human+activities+and+postural+transitions.zip"
            }
        }
    }

    /// SHA-256 of the archive at [`Archive::url`], as published alongside pinned copies of
    /// it in public projects (not verified against a download from here: no network).
    pub fn sha256(self) -> &'static str {
        match self {
            Archive::UciHar => "c00b803081a5c797cd5e4b83700a9810b38d53d9d84e01917e090e1fdbc81031",
            Archive::Hapt => "4ac4ae064227c07045a99551876b54d204837e995e298b6488559e209b3deb09",
        }
    }

    /// Folder created inside the destination, ready for a data spec.
    pub fn folder(self) -> &'static str {
        match self {
            Archive::UciHar => "UCI HAR Dataset",
            Archive::Hapt => "hapt",
        }
    }
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path.display(), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| DataError::io(path.display(), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Fails with [`DataError::ChecksumMismatch`] unless the file's SHA-256 is `expected`.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<(), DataError> {
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DataError::ChecksumMismatch {
            path: path.display().to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Copies `url` (https://, http:// or file://) into `dest`.
pub fn download(url: &str, dest: &Path) -> Result<(), DataError> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let mut out = std::fs::File::create(dest).map_err(|e| DataError::io(dest.display(), e))?;
    if let Some(local) = url.strip_prefix("file://") {
        let mut input = std::fs::File::open(local).map_err(|e| DataError::io(local, e))?;
        std::io::copy(&mut input, &mut out).map_err(|e| fail(e.to_string()))?;
    } else {
        let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
        let mut reader = response.into_body().into_reader();
        std::io::copy(&mut reader, &mut out).map_err(|e| fail(e.to_string()))?;
    }
    out.flush().map_err(|e| DataError::io(dest.display(), e))?;
    Ok(())
}

fn extract(zip_path: &Path, into: &Path) -> Result<(), DataError> {
    let zip_err = |source| DataError::Zip {
        path: zip_path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(zip_path).map_err(|e| DataError::io(zip_path.display(), e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    archive.extract(into).map_err(zip_err)
}

/// Unpacks a verified archive into `dir/<archive folder>` atomically.
pub fn unpack(archive: Archive, zip_path: &Path, dir: &Path) -> Result<PathBuf, DataError> {
    let target = dir.join(archive.folder());
    let staging = tempfile::Builder::new()
        .prefix(".kinglet-unpack-")
        .tempdir_in(dir)
        .map_err(|e| DataError::io(dir.display(), e))?;
    let content = staging.path().join("content");
    extract(zip_path, &content)?;
    let ready = match archive {
        Archive::UciHar => {
            let inner_zip = content.join("UCI HAR Dataset.zip");
            if inner_zip.is_file() {
                extract(&inner_zip, &content)?;
            }
            let folder = content.join("UCI HAR Dataset");
            if !folder.join("activity_labels.txt").is_file() {
                return Err(DataError::MissingFile {
                    path: format!("{}!UCI HAR Dataset/activity_labels.txt", zip_path.display()),
                });
            }
            folder
        }
        Archive::Hapt => {
            if !content.join("RawData").join("labels.txt").is_file() {
                return Err(DataError::MissingFile {
                    path: format!("{}!RawData/labels.txt", zip_path.display()),
                });
            }
            content
        }
    };
    std::fs::rename(&ready, &target).map_err(|e| DataError::io(target.display(), e))?;
    Ok(target)
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Unpacked(PathBuf),
    AlreadyPresent(PathBuf),
}

/// Downloads `archive` (from `from` — a local file or URL — instead of the official
/// address when given), verifies its SHA-256 against `expected_sha256` (default: the
/// pinned [`Archive::sha256`]) and unpacks it into `dir`. Does nothing when the unpacked
/// folder already exists.
pub fn fetch(
    archive: Archive,
    dir: &Path,
    from: Option<&str>,
    expected_sha256: Option<&str>,
) -> Result<Fetched, DataError> {
    let target = dir.join(archive.folder());
    if target.exists() {
        return Ok(Fetched::AlreadyPresent(target));
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir.display(), e))?;
    let url = match from {
        Some(f) if f.contains("://") => f.to_string(),
        Some(f) => format!(
            "file://{}",
            std::fs::canonicalize(f)
                .map_err(|e| DataError::io(f, e))?
                .display()
        ),
        None => archive.url().to_string(),
    };
    let download_file = tempfile::Builder::new()
        .prefix(".kinglet-download-")
        .suffix(".zip")
        .tempfile_in(dir)
        .map_err(|e| DataError::io(dir.display(), e))?;
    download(&url, download_file.path())?;
    verify_sha256(
        download_file.path(),
        expected_sha256.unwrap_or(archive.sha256()),
    )
    .map_err(|e| match e {
        DataError::ChecksumMismatch {
            expected, actual, ..
        } => DataError::ChecksumMismatch {
            path: url.clone(),
            expected,
            actual,
        },
        other => other,
    })?;
    unpack(archive, download_file.path(), dir).map(Fetched::Unpacked)
}
