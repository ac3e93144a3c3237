//! Numbers written the way Python and pandas write them (spec section 0): float repr and numpy's
//! round-half-to-even `DataFrame.round(n)`.

/// Python's `repr(float)`: the shortest text that reads back as the same float, always with a
/// decimal point or an exponent (`7.0`, `8.666666666666666`, `1e-05`, `1e+16`, `inf`, `nan`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Python switches to exponent form outside [1e-4, 1e16): mantissa shortest, exponent
        // signed and at least two digits.
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').expect("{:e} has an exponent");
        let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// numpy's `round(x, decimals)`, which `DataFrame.round` uses: scale, round half to even, unscale.
pub fn round_half_even(x: f64, decimals: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(decimals);
    (x * scale).round_ties_even() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        for (x, want) in [
            (7.0, "7.0"),
            (8.666666666666666, "8.666666666666666"),
            (0.3, "0.3"),
            (-2.5, "-2.5"),
            (12.0, "12.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (0.0001, "0.0001"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (1.0 / 3.0, "0.3333333333333333"),
        ] {
            assert_eq!(float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn rounds_like_numpy() {
        assert_eq!(round_half_even(9.166666, 2), 9.17);
        assert_eq!(round_half_even(0.125, 2), 0.12);
        assert_eq!(round_half_even(0.375, 2), 0.38);
        assert_eq!(round_half_even(2.5, 0), 2.0);
        assert_eq!(round_half_even(33.333333, 1), 33.3);
        assert_eq!(float_repr(round_half_even(8.5, 2)), "8.5");
        assert!(round_half_even(f64::NAN, 2).is_nan());
    }
}
