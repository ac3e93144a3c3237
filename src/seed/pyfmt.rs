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

/// Reads a number the way pandas' `read_csv` does by default (its C parser's `precise_xstrtod`):
/// up to 17 significant digits accumulated in a double, then scaled by a power of ten. It is not
/// always the nearest double (`2.3333333333333335` reads as `2.333333333333333`), and the seed's
/// summaries computed on what it read back, so ours do too. `None` for text that is no number.
pub fn pandas_float(text: &str) -> Option<f64> {
    const MAX_DIGITS: u32 = 17;
    let b = text.trim_matches(|c: char| c.is_ascii_whitespace()).as_bytes();
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let (mut number, mut exponent, mut digits) = (0.0f64, 0i32, 0u32);
    while i < b.len() && b[i].is_ascii_digit() {
        if digits < MAX_DIGITS {
            number = number * 10.0 + f64::from(b[i] - b'0');
            digits += 1;
        } else {
            exponent += 1;
        }
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let mut decimals = 0;
        while digits < MAX_DIGITS && i < b.len() && b[i].is_ascii_digit() {
            number = number * 10.0 + f64::from(b[i] - b'0');
            digits += 1;
            decimals += 1;
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        exponent -= decimals;
    }
    if digits == 0 {
        return text.trim().parse().ok().filter(|x: &f64| !x.is_finite());
    }
    if negative {
        number = -number;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        let neg = b.get(j) == Some(&b'-');
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let (mut n, mut nd) = (0i32, 0u32);
        while nd < MAX_DIGITS && j < b.len() && b[j].is_ascii_digit() {
            n = n.saturating_mul(10).saturating_add(i32::from(b[j] - b'0'));
            nd += 1;
            j += 1;
        }
        if nd > 0 {
            exponent += if neg { -n } else { n };
            i = j;
        }
    }
    if i != b.len() {
        return None;
    }
    let pow10 = |e: i32| -> f64 { format!("1e{e}").parse().expect("a power of ten") };
    Some(if exponent > 308 {
        f64::INFINITY.copysign(number)
    } else if exponent > 0 {
        number * pow10(exponent)
    } else if exponent < -616 {
        0.0
    } else if exponent < -308 {
        number / pow10(-308 - exponent) / pow10(308)
    } else {
        number / pow10(-exponent)
    })
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

    #[test]
    fn reads_numbers_as_pandas_read_csv() {
        // (text, Python repr of what pandas 2.3.1 read_csv gave for it)
        for (text, want) in [
            ("2.3333333333333335", "2.333333333333333"),
            ("8.666666666666666", "8.666666666666666"),
            ("0.1", "0.1"),
            ("7.0", "7.0"),
            ("1e-05", "1e-05"),
            ("1.5e+16", "1.5e+16"),
            ("123.456", "123.456"),
            ("9.999999999999998", "9.999999999999998"),
            ("6.333333333333333", "6.333333333333333"),
            ("0.30000000000000004", "0.3"),
            ("3.3333333333333335", "3.333333333333333"),
            ("5.666666666666667", "5.666666666666667"),
            ("-2.5", "-2.5"),
            ("12345678901234567890", "1.2345678901234567e+19"),
            ("4.35e-310", "4.35e-310"),
            ("1.3436424411240122", "1.3436424411240122"),
            ("2.0", "2.0"),
            ("4.954350870919409", "4.954350870919409"),
            ("6.666666666666667", "6.666666666666667"),
            ("7.887233511355132", "7.887233511355132"),
            ("2.6666666666666665", "2.6666666666666665"),
            ("8.933170425576352", "8.933170425576352"),
            ("7.0", "7.0"),
            ("7.62280082457942", "7.62280082457942"),
            ("3.6666666666666665", "3.6666666666666665"),
            ("7.215400323407826", "7.215400323407826"),
            ("4.333333333333333", "4.333333333333333"),
            ("9.014274576114836", "9.014274576114836"),
            ("0.0", "0.0"),
            ("6.495461355254983", "6.495461355254983"),
            ("3.0", "3.0"),
            ("9.690406502940995", "9.690406502940997"),
            ("3.6666666666666665", "3.6666666666666665"),
            ("7.637009951314894", "7.637009951314894"),
            ("6.0", "6.0"),
            ("3.457004147087525", "3.457004147087525"),
            ("4.666666666666667", "4.666666666666667"),
            ("9.26506623785866", "9.26506623785866"),
            ("5.0", "5.0"),
        ] {
            assert_eq!(float_repr(pandas_float(text).unwrap()), want, "{text}");
        }
        assert_eq!(pandas_float("x"), None);
        assert_eq!(pandas_float("1.5x"), None);
    }
}
