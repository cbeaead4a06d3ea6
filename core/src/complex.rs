//! Python `complex` numbers travel as their `repr()` text (`"(1+2j)"`); this
//! module prints and parses that text exactly as CPython does.

/// Format a float the way CPython's `repr` does inside a complex number
/// (shortest round-trip digits, no trailing `.0`, exponent form outside
/// 1e-4 ..= 1e16).
fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // position of the decimal point relative to the digits
    let body = if (-3..=16).contains(&decpt) {
        if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt as usize >= digits.len() {
            format!("{}{}", digits, "0".repeat(decpt as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(decpt as usize);
            format!("{a}.{b}")
        }
    } else {
        let (a, b) = digits.split_at(1);
        let frac = if b.is_empty() {
            String::new()
        } else {
            format!(".{b}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{a}{frac}e{esign}{:02}", exp.abs())
    };
    format!("{sign}{body}")
}

/// `repr(complex(re, im))` as CPython prints it.
pub fn python_repr(re: f64, im: f64) -> String {
    let imag = float_repr(im);
    if re == 0.0 && re.is_sign_positive() {
        return format!("{imag}j");
    }
    let sign = if imag.starts_with('-') { "" } else { "+" };
    format!("({}{sign}{imag}j)", float_repr(re))
}

/// Parse the text of a Python complex repr (`"(1+2j)"`, `"1j"`, `"(-0-0j)"`, `"(nan+infj)"`).
pub fn parse(text: &str) -> Option<(f64, f64)> {
    let t = text.trim();
    let t = t
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(t);
    let body = t.strip_suffix('j').or_else(|| t.strip_suffix('J'));
    let Some(body) = body else {
        return parse_float(t).map(|re| (re, 0.0));
    };
    // Split at the last sign that is not at the start and not after an 'e'.
    let bytes = body.as_bytes();
    let split = (1..bytes.len())
        .rev()
        .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    match split {
        Some(i) => Some((parse_float(&body[..i])?, parse_float(&body[i..])?)),
        None => Some((0.0, parse_float(body)?)),
    }
}

fn parse_float(s: &str) -> Option<f64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    match s {
        "nan" | "-nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ if s.is_empty() || s.contains(|c: char| c.is_alphabetic() && c != 'e' && c != 'E') => {
            None
        }
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython() {
        // Expected strings printed by CPython 3.11.
        let cases = [
            (1.0, 2.0, "(1+2j)"),
            (0.0, 1.0, "1j"),
            (-0.0, -1.0, "(-0-1j)"),
            (-0.0, -0.0, "(-0-0j)"),
            (1.5, -2.25, "(1.5-2.25j)"),
            (1e20, 1e-7, "(1e+20+1e-07j)"),
            (1e16, 1e15, "(1e+16+1000000000000000j)"),
            (0.0001, 0.00001, "(0.0001+1e-05j)"),
            (1.2345678901234568e17, 0.0, "(1.2345678901234568e+17+0j)"),
            (f64::NAN, f64::INFINITY, "(nan+infj)"),
            (1.0, f64::NEG_INFINITY, "(1-infj)"),
        ];
        for (re, im, want) in cases {
            assert_eq!(python_repr(re, im), want);
            let (r, i) = parse(want).unwrap();
            assert_eq!(python_repr(r, i), want);
        }
        assert_eq!(parse("garbage"), None);
        // The longest reprs fit the codec's size bound (19 + 2 * 24 + 4).
        let longest = python_repr(-1.2345678901234567e-308, -1.2345678901234567e-308);
        assert_eq!(
            longest,
            "(-1.2345678901234567e-308-1.2345678901234567e-308j)"
        );
        assert!(longest.len() <= 2 * 24 + 4);
    }
}
