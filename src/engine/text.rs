//! Text conventions the seed inherited from Python, reproduced exactly (spec section 0).

use std::path::Path;

/// `bytes` as text, invalid UTF-8 replaced by U+FFFD (as `String::from_utf8_lossy`), checked
/// first by `str::from_utf8`, whose fast path for valid text is several times quicker.
pub fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Python's `str.strip()`: Rust's Unicode whitespace plus U+001C..U+001F, which Python also strips.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's universal newlines: `\r\n` and lone `\r` read as `\n`.
pub fn universal_newlines(s: String) -> String {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s
    }
}

/// Reads a UTF-8 text file as Python's `Path.read_text()` does. `Ok(None)` when it does not exist.
pub fn read_text(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => decode(bytes, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn decode(bytes: Vec<u8>, path: &Path) -> std::io::Result<String> {
    String::from_utf8(bytes).map(universal_newlines).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is not valid UTF-8 (byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_is_from_utf8_lossy() {
        for bytes in [&b"plain"[..], "é€😀".as_bytes(), b"bad \xff byte", b"cut \xe2\x82", b""] {
            assert_eq!(lossy(bytes), String::from_utf8_lossy(bytes));
        }
        assert!(matches!(lossy(b"valid"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn strip_matches_python() {
        assert_eq!(py_strip("\u{a0}\n x \t\u{1f}"), "x");
        assert_eq!(py_strip("\u{3000}y\u{2028}"), "y");
        assert_eq!(py_strip("   "), "");
    }

    #[test]
    fn newlines_are_universal() {
        assert_eq!(universal_newlines("a\r\nb\rc\n".into()), "a\nb\nc\n");
    }
}
