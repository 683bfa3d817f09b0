//! Float helpers `core` lacks without `std`: rounding as C's `round` (half away from zero),
//! truncating float-to-int casts, and `expf`.

/// `round()` for `f64`: nearest integer, ties away from zero (C `round`, `TfLiteRound`).
pub fn round_f64(x: f64) -> f64 {
    // Beyond 2^52 every f64 is already an integer; NaN/inf pass through.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let t = x as i64 as f64; // truncation toward zero, exact in this range
    let frac = x - t; // exact: the fractional part of a float is representable
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// `roundf()` for `f32`: nearest integer, ties away from zero.
pub fn round_f32(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = x as i32 as f32;
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// Nearest integer, ties to even (`rintf`/`lrintf` in the default rounding mode).
pub fn round_half_even_f32(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = x as i32; // toward zero
    let frac = x - t as f32;
    let (up, down) = (t + 1, t - 1);
    let r = if frac > 0.5 || (frac == 0.5 && t % 2 != 0) {
        up
    } else if frac < -0.5 || (frac == -0.5 && t % 2 != 0) {
        down
    } else {
        t
    };
    r as f32
}

/// `static_cast<int32_t>(round(x))`, saturating where C would be undefined (NaN gives 0).
pub fn round_to_i32(x: f32) -> i32 {
    round_f32(x) as i32
}

/// Natural exponential in single precision, computed in double precision and rounded once,
/// so it agrees with a correctly rounded `expf` except on rare near-ties. Host code that must
/// match the platform `expf` bit for bit (e.g. a softmax table) can pass `f32::exp` instead.
pub fn expf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.8 {
        return f32::INFINITY;
    }
    if x < -104.0 {
        return 0.0;
    }
    const LOG2E: f64 = core::f64::consts::LOG2_E;
    // ln 2 split so that k * LN2_HI is exact for |k| < 2^20.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let xd = x as f64;
    let k = round_f64(xd * LOG2E);
    let r = (xd - k * LN2_HI) - k * LN2_LO; // |r| <= ~0.35
    // Taylor series to r^13: truncation error < 1e-17 relative for |r| <= 0.35.
    let mut p = 1.0f64;
    let mut term = 1.0f64;
    let mut i = 1.0f64;
    while i <= 13.0 {
        term *= r / i;
        p += term;
        i += 1.0;
    }
    // Scale by 2^k; k is in [-151, 129], which stays within f64's normal exponent range.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    (p * scale) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_ties_away_from_zero() {
        assert_eq!(round_f32(0.5), 1.0);
        assert_eq!(round_f32(-0.5), -1.0);
        assert_eq!(round_f32(1.49999), 1.0);
        assert_eq!(round_f32(-2.5), -3.0);
        assert_eq!(round_f32(0.49999997), 0.0);
        assert_eq!(round_f64(2.5), 3.0);
        assert_eq!(round_f64(-1073741823.5), -1073741824.0);
        assert_eq!(round_to_i32(f32::NAN), 0);
        assert_eq!(round_to_i32(1e20), i32::MAX);
        assert_eq!(round_half_even_f32(0.5), 0.0);
        assert_eq!(round_half_even_f32(1.5), 2.0);
        assert_eq!(round_half_even_f32(2.5), 2.0);
        assert_eq!(round_half_even_f32(-0.5), 0.0);
        assert_eq!(round_half_even_f32(-1.5), -2.0);
        assert_eq!(round_half_even_f32(-2.5), -2.0);
        assert_eq!(round_half_even_f32(-2.6), -3.0);
        assert_eq!(round_half_even_f32(2.4999998), 2.0);
    }

    #[test]
    fn expf_matches_std_closely() {
        let mut worst = 0u32;
        let mut x = -100.0f32;
        while x < 88.0 {
            let a = expf(x);
            let b = x.exp();
            let ulps = (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32;
            worst = worst.max(ulps);
            x += 0.0173;
        }
        assert!(worst <= 1, "expf differs from libm by {worst} ulp");
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(100.0), f32::INFINITY);
    }
}
