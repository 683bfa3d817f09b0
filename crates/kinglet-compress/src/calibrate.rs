//! Calibration: choosing the real-valued range each activation tensor is quantised over,
//! from the values it takes on a representative dataset.
//!
//! `MinMax` is what the TensorFlow Lite converter does (global min and max over every
//! sample) and is the one that reproduces its parameters. `Percentile` and `Mse` clip rare
//! outliers so the common values get finer steps; both work from a per-tensor histogram
//! filled in a second pass over the data, once the min/max bounds are known.

use crate::params::{INT8_MAX, INT8_MIN, activation_params};

/// How an activation range is chosen from the observed values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Calibration {
    /// Smallest and largest value seen (the TFLite converter's choice).
    MinMax,
    /// The given lower/upper percentiles, e.g. `99.99` keeps the central 99.98 %.
    Percentile(f64),
    /// The clipping range minimising the mean squared quantisation error over the observed
    /// distribution (searched independently for each end on a grid of the min/max range).
    Mse,
}

impl Calibration {
    /// Parses `minmax`, `percentile`, `percentile:99.9` or `mse`.
    pub fn parse(text: &str) -> Result<Calibration, String> {
        match text {
            "minmax" | "min-max" => Ok(Calibration::MinMax),
            "mse" => Ok(Calibration::Mse),
            "percentile" => Ok(Calibration::Percentile(DEFAULT_PERCENTILE)),
            other => match other.strip_prefix("percentile:") {
                Some(p) => match p.parse::<f64>() {
                    Ok(v) if v > 50.0 && v <= 100.0 => Ok(Calibration::Percentile(v)),
                    _ => Err(format!(
                        "percentile must be a number in (50, 100], got '{p}'"
                    )),
                },
                None => Err(format!(
                    "unknown calibration '{other}' (expected minmax, percentile[:P] or mse)"
                )),
            },
        }
    }

    /// True when the method needs a histogram (a second pass over the data).
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Calibration::MinMax)
    }
}

/// Default percentile for `Calibration::Percentile`.
pub const DEFAULT_PERCENTILE: f64 = 99.99;

/// Number of histogram bins per tensor; fine enough that bin-centre rounding error is far
/// below one int8 step (255 steps over the same range).
pub const HISTOGRAM_BINS: usize = 2048;

/// Values seen by one tensor: running bounds, and optionally a histogram over those bounds.
#[derive(Clone, Debug)]
pub struct TensorObserver {
    pub min: f32,
    pub max: f32,
    pub count: u64,
    histogram: Option<Histogram>,
}

#[derive(Clone, Debug)]
struct Histogram {
    lo: f32,
    hi: f32,
    bins: Vec<u64>,
}

impl Default for TensorObserver {
    fn default() -> Self {
        TensorObserver {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0,
            histogram: None,
        }
    }
}

impl TensorObserver {
    /// First pass: widens the bounds to cover `values`. Errors on NaN or infinity, which
    /// would make every range meaningless.
    pub fn observe_bounds(&mut self, values: &[f32]) -> Result<(), usize> {
        for (i, v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(i);
            }
            self.min = self.min.min(*v);
            self.max = self.max.max(*v);
        }
        self.count += values.len() as u64;
        Ok(())
    }

    /// Second pass: counts `values` into a histogram spanning the first-pass bounds.
    pub fn observe_histogram(&mut self, values: &[f32]) {
        let (lo, hi) = (self.min, self.max);
        let h = self.histogram.get_or_insert_with(|| Histogram {
            lo,
            hi,
            bins: vec![0; HISTOGRAM_BINS],
        });
        let width = (h.hi - h.lo) / HISTOGRAM_BINS as f32;
        for v in values {
            let b = if width > 0.0 {
                (((v - h.lo) / width) as usize).min(HISTOGRAM_BINS - 1)
            } else {
                0
            };
            h.bins[b] += 1;
        }
    }

    /// The range this tensor is quantised over under `method`. Before any observation it
    /// is `(0, 0)`.
    pub fn range(&self, method: Calibration) -> (f32, f32) {
        if self.count == 0 {
            return (0.0, 0.0);
        }
        let Some(h) = &self.histogram else {
            return (self.min, self.max);
        };
        match method {
            Calibration::MinMax => (self.min, self.max),
            Calibration::Percentile(p) => h.percentile_range(p),
            Calibration::Mse => h.mse_range(),
        }
    }
}

impl Histogram {
    fn bin_width(&self) -> f64 {
        (f64::from(self.hi) - f64::from(self.lo)) / HISTOGRAM_BINS as f64
    }

    fn centre(&self, b: usize) -> f64 {
        f64::from(self.lo) + (b as f64 + 0.5) * self.bin_width()
    }

    fn edge(&self, b: usize) -> f32 {
        (f64::from(self.lo) + b as f64 * self.bin_width()) as f32
    }

    fn percentile_range(&self, p: f64) -> (f32, f32) {
        let total: u64 = self.bins.iter().sum();
        if total == 0 || self.hi <= self.lo {
            return (self.lo, self.hi);
        }
        let tail = ((100.0 - p) / 100.0 * total as f64).floor() as u64;
        let mut seen = 0u64;
        let mut lo_bin = 0;
        for (b, c) in self.bins.iter().enumerate() {
            if seen + c > tail {
                lo_bin = b;
                break;
            }
            seen += c;
        }
        seen = 0;
        let mut hi_bin = HISTOGRAM_BINS - 1;
        for (b, c) in self.bins.iter().enumerate().rev() {
            if seen + c > tail {
                hi_bin = b;
                break;
            }
            seen += c;
        }
        (self.edge(lo_bin), self.edge(hi_bin + 1).min(self.hi))
    }

    /// Squared quantisation error of the histogram under the int8 parameters for `[lo, hi]`.
    fn quantisation_error(&self, lo: f32, hi: f32) -> f64 {
        let (scale, zp) = activation_params(lo, hi);
        let scale = f64::from(scale);
        let (qmin, qmax) = (f64::from(INT8_MIN), f64::from(INT8_MAX));
        let zp = f64::from(zp);
        let mut err = 0.0;
        for (b, c) in self.bins.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let x = self.centre(b);
            let q = (x / scale + zp).round().clamp(qmin, qmax);
            let d = x - (q - zp) * scale;
            err += *c as f64 * d * d;
        }
        err
    }

    fn mse_range(&self) -> (f32, f32) {
        if self.hi <= self.lo {
            return (self.lo, self.hi);
        }
        const STEPS: usize = 64;
        // Candidate ends: the bounds pulled towards 0 in 1/STEPS steps, down to 10 %.
        let shrink = |v: f32, k: usize| v * (1.0 - 0.9 * k as f32 / STEPS as f32);
        let (mut best_lo, mut best_hi) = (self.lo, self.hi);
        let mut best = self.quantisation_error(best_lo, best_hi);
        // Two rounds of coordinate descent: upper end, then lower end.
        for _ in 0..2 {
            for k in 0..=STEPS {
                let hi = shrink(self.hi, k);
                let e = self.quantisation_error(best_lo, hi);
                if e < best {
                    best = e;
                    best_hi = hi;
                }
            }
            for k in 0..=STEPS {
                let lo = shrink(self.lo, k);
                let e = self.quantisation_error(lo, best_hi);
                if e < best {
                    best = e;
                    best_lo = lo;
                }
            }
        }
        (best_lo, best_hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observer(values: &[f32]) -> TensorObserver {
        let mut o = TensorObserver::default();
        o.observe_bounds(values).unwrap();
        o.observe_histogram(values);
        o
    }

    /// Gaussian-ish values with one large outlier.
    fn with_outlier() -> Vec<f32> {
        let mut s = 1u32;
        let mut v: Vec<f32> = (0..20_000)
            .map(|_| {
                let mut acc = 0.0;
                for _ in 0..4 {
                    s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    acc += (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                }
                acc
            })
            .collect();
        v.push(40.0);
        v
    }

    #[test]
    fn parse_names() {
        assert_eq!(Calibration::parse("minmax"), Ok(Calibration::MinMax));
        assert_eq!(
            Calibration::parse("percentile"),
            Ok(Calibration::Percentile(99.99))
        );
        assert_eq!(
            Calibration::parse("percentile:99.9"),
            Ok(Calibration::Percentile(99.9))
        );
        assert!(Calibration::parse("percentile:3").is_err());
        assert!(Calibration::parse("kl").is_err());
    }

    #[test]
    fn minmax_keeps_outlier_others_clip_it() {
        let o = observer(&with_outlier());
        assert_eq!(o.range(Calibration::MinMax).1, 40.0);
        let (_, p_hi) = o.range(Calibration::Percentile(99.9));
        assert!(p_hi < 3.0, "percentile upper end {p_hi}");
        let (m_lo, m_hi) = o.range(Calibration::Mse);
        assert!(m_hi < 40.0 && m_lo < 0.0, "mse range {m_lo}..{m_hi}");
    }

    #[test]
    fn mse_never_worse_than_minmax() {
        let v = with_outlier();
        let o = observer(&v);
        let h = o.histogram.as_ref().unwrap();
        let (lo, hi) = o.range(Calibration::Mse);
        assert!(h.quantisation_error(lo, hi) <= h.quantisation_error(o.min, o.max));
    }

    #[test]
    fn non_finite_values_are_reported() {
        let mut o = TensorObserver::default();
        assert_eq!(o.observe_bounds(&[1.0, f32::NAN]), Err(1));
    }

    #[test]
    fn constant_tensor_range() {
        let o = observer(&[0.5; 10]);
        assert_eq!(o.range(Calibration::Mse), (0.5, 0.5));
        assert_eq!(o.range(Calibration::Percentile(99.0)), (0.5, 0.5));
    }
}
