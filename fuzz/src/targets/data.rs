//! Dataset readers on bytes. The first byte picks the reader; the rest is its input, cut
//! into files at each [`SEP`]:
//!
//! - 0: IDX (MNIST): images, labels → `idx::from_bytes` (and `parse_idx_u8` on each);
//! - 1: UCI-HAR text tables → `parse_label_names`, `parse_int_table`, `parse_float_table`
//!   (what `uci_har::load_official_split` runs on each file);
//! - 2: HAPT zip → `hapt::read_zip_bytes`;
//! - 3: WISDM: activity key, accelerometer file[, gyroscope file] → `wisdm::parse_subject`.

use kinglet_data::Split;
use kinglet_data::hapt::{self, Processing};
use kinglet_data::idx::{self, Flavour};
use kinglet_data::text::{parse_float_table, parse_int_table, parse_label_names};
use kinglet_data::uci_har::WINDOW;
use kinglet_data::wisdm::{self, Sensors, WisdmActivities, WisdmOptions};

/// Separates the files of one input.
pub const SEP: &[u8] = b"\n--8<--\n";

pub fn run(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let parts = split(rest);
    match which % 4 {
        0 => {
            for p in &parts {
                let _ = idx::parse_idx_u8(p, "f");
            }
            if let [images, labels, ..] = parts[..] {
                for s in [Split::Train, Split::Val, Split::Test] {
                    let _ = idx::from_bytes((images, "i"), (labels, "l"), s, Flavour::Mnist);
                }
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let _ = parse_label_names(text, "t");
            let _ = parse_int_table(text, "t", 1);
            let _ = parse_float_table(text, "t", 3);
            let _ = parse_float_table(text, "t", WINDOW);
        }
        2 => {
            let _ = hapt::read_zip_bytes(rest, |_| true, &Processing::default());
        }
        _ => {
            let texts: Option<Vec<&str>> =
                parts.iter().map(|p| std::str::from_utf8(p).ok()).collect();
            let Some(texts) = texts else { return };
            let (key, accel, gyro) = match texts[..] {
                [key, accel] => (key, accel, None),
                [key, accel, gyro, ..] => (key, accel, Some(gyro)),
                _ => return,
            };
            // The subject the file claims on its first line, so that mutated ids still
            // reach the per-line checks.
            let subject = accel
                .split(',')
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1600);
            for activities in [WisdmActivities::Locomotion, WisdmActivities::All] {
                let options = WisdmOptions {
                    activities,
                    sensors: if gyro.is_some() {
                        Sensors::AccelGyro
                    } else {
                        Sensors::Accel
                    },
                };
                let _ = wisdm::parse_subject(key, accel, gyro, subject, &options);
            }
        }
    }
}

fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    parts.push(rest);
    parts
}
