//! Signal filters used to rebuild UCI-HAR windows from raw recordings: a median filter and
//! Butterworth IIR low-pass filters designed by the bilinear transform, run causally
//! (as `scipy.signal.lfilter` / MATLAB `filter`), which is what the official windows match.

/// An IIR filter in transfer-function form, `a[0] == 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Iir {
    pub b: Vec<f64>,
    pub a: Vec<f64>,
}

#[derive(Clone, Copy)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    fn mul(self, o: Complex) -> Complex {
        Complex {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn div(self, o: Complex) -> Complex {
        let d = o.re * o.re + o.im * o.im;
        Complex {
            re: (self.re * o.re + self.im * o.im) / d,
            im: (self.im * o.re - self.re * o.im) / d,
        }
    }
}

/// Coefficients of `prod (z - r_i)` in descending powers, from complex roots.
fn poly(roots: &[Complex]) -> Vec<Complex> {
    let mut coeffs = vec![Complex { re: 1.0, im: 0.0 }];
    for &r in roots {
        let mut next = vec![Complex { re: 0.0, im: 0.0 }; coeffs.len() + 1];
        for (i, &c) in coeffs.iter().enumerate() {
            next[i].re += c.re;
            next[i].im += c.im;
            let t = c.mul(r);
            next[i + 1].re -= t.re;
            next[i + 1].im -= t.im;
        }
        coeffs = next;
    }
    coeffs
}

impl Iir {
    /// Butterworth low-pass of `order` with -3 dB point at `cutoff_hz`, for signals
    /// sampled at `sample_rate_hz`: analogue prototype poles, frequency pre-warping and
    /// the bilinear transform (the design `scipy.signal.butter` uses).
    ///
    /// Panics unless `order >= 1` and `0 < cutoff_hz < sample_rate_hz / 2`; callers pass
    /// constants, never user input.
    pub fn butterworth_lowpass(order: usize, cutoff_hz: f64, sample_rate_hz: f64) -> Iir {
        assert!(order >= 1 && cutoff_hz > 0.0 && cutoff_hz < sample_rate_hz / 2.0);
        let fs2 = 2.0 * sample_rate_hz;
        let warped = fs2 * (std::f64::consts::PI * cutoff_hz / sample_rate_hz).tan();
        let n = order as f64;
        let z_poles: Vec<Complex> = (0..order)
            .map(|k| {
                let theta = std::f64::consts::PI * (2.0 * k as f64 + n + 1.0) / (2.0 * n);
                let p = Complex {
                    re: warped * theta.cos(),
                    im: warped * theta.sin(),
                };
                Complex {
                    re: fs2 + p.re,
                    im: p.im,
                }
                .div(Complex {
                    re: fs2 - p.re,
                    im: -p.im,
                })
            })
            .collect();
        let a: Vec<f64> = poly(&z_poles).iter().map(|c| c.re).collect();
        let zeros = vec![Complex { re: -1.0, im: 0.0 }; order];
        let b_unscaled: Vec<f64> = poly(&zeros).iter().map(|c| c.re).collect();
        // Unit gain at DC, as every Butterworth low-pass has.
        let gain = a.iter().sum::<f64>() / b_unscaled.iter().sum::<f64>();
        let b = b_unscaled.iter().map(|v| v * gain).collect();
        Iir { b, a }
    }

    /// Causal filtering from a zero initial state (transposed direct form II).
    pub fn filter(&self, x: &[f64]) -> Vec<f64> {
        let n = self.a.len().max(self.b.len());
        let b: Vec<f64> = (0..n)
            .map(|i| self.b.get(i).copied().unwrap_or(0.0) / self.a[0])
            .collect();
        let a: Vec<f64> = (0..n)
            .map(|i| self.a.get(i).copied().unwrap_or(0.0) / self.a[0])
            .collect();
        let mut state = vec![0.0; n];
        let mut y = Vec::with_capacity(x.len());
        for &xi in x {
            let yi = b[0] * xi + state[0];
            for k in 1..n {
                let next = if k + 1 < n { state[k] } else { 0.0 };
                state[k - 1] = b[k] * xi - a[k] * yi + next;
            }
            y.push(yi);
        }
        y
    }
}

/// Median over a centred odd-length window, zero-padded at both ends (the default of
/// MATLAB `medfilt1` and `scipy.signal.medfilt`).
pub fn median_filter(x: &[f64], window: usize) -> Vec<f64> {
    assert!(window % 2 == 1, "median window must be odd");
    let half = window / 2;
    let mut buf = vec![0.0; window];
    (0..x.len())
        .map(|i| {
            for (j, slot) in buf.iter_mut().enumerate() {
                let k = i as isize + j as isize - half as isize;
                *slot = if k >= 0 && (k as usize) < x.len() {
                    x[k as usize]
                } else {
                    0.0
                };
            }
            buf.sort_by(f64::total_cmp);
            buf[half]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected coefficients from scripts/butterworth_reference.py (scipy 1.17.1,
    // `scipy.signal.butter(N, fc, fs=50)`), committed once.
    fn assert_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn matches_scipy_butter_20hz_order3() {
        let f = Iir::butterworth_lowpass(3, 20.0, 50.0);
        assert_close(&f.b, &crate::filter::reference::B_3_20);
        assert_close(&f.a, &crate::filter::reference::A_3_20);
    }

    #[test]
    fn matches_scipy_butter_0_3hz_order3() {
        let f = Iir::butterworth_lowpass(3, 0.3, 50.0);
        assert_close(&f.b, &crate::filter::reference::B_3_03);
        assert_close(&f.a, &crate::filter::reference::A_3_03);
    }

    #[test]
    fn matches_scipy_butter_0_1hz_order2() {
        let f = Iir::butterworth_lowpass(2, 0.1, 50.0);
        assert_close(&f.b, &crate::filter::reference::B_2_01);
        assert_close(&f.a, &crate::filter::reference::A_2_01);
    }

    #[test]
    fn matches_scipy_lfilter_and_medfilt() {
        let x: Vec<f64> = (0..32)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.1)
            .collect();
        let y = Iir::butterworth_lowpass(3, 20.0, 50.0).filter(&median_filter(&x, 3));
        for (g, w) in y.iter().zip(crate::filter::reference::LFILTER_MEDFILT) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn median_is_zero_padded() {
        assert_eq!(
            median_filter(&[5.0, 1.0, 9.0, 2.0], 3),
            vec![1.0, 5.0, 2.0, 2.0]
        );
    }
}

#[cfg(test)]
#[path = "filter_reference.rs"]
mod reference;
