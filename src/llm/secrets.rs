//! The secrets of a run, and their removal from everything a provider sends back.
//!
//! A provider (or a proxy before it) may echo the request's `Authorization` header, or the key
//! itself, in an error message or even in an answer. Whatever daydream prints or stores of a
//! response comes from the bytes `llm::attempt` reads, so the [`Redactor`] is applied there, once,
//! before anything is parsed: no error, record, answer or file can hold a secret afterwards.
//!
//! The secrets are every configured provider's API key (from the environment or `.env`) and the
//! password of every base URL that carries one (`https://user:password@host/...`, declared or
//! from `<NAME>_BASE_URL`). Each is removed in the forms it can come back in: as is, JSON-escaped,
//! percent-decoded, and `user:password` also base64-encoded (a `Basic` Authorization header). A
//! secret shorter than [`MIN_BARE`] bytes would match ordinary words of an answer, so it is
//! removed only inside `user:password` and its encoding.

use std::borrow::Cow;

/// What a secret becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter secrets are removed only in context (see the module documentation).
pub const MIN_BARE: usize = 6;

/// Removes a fixed set of secrets from text.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is removed whole.
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.finders.len())
    }
}

impl Redactor {
    /// `keys`: API keys; `urls`: base URLs, whose userinfo (if any) is secret.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>, urls: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        let bare = |s: &str, forms: &mut Vec<Vec<u8>>| {
            if s.len() >= MIN_BARE {
                forms.extend(escaped_forms(s));
            }
        };
        for key in keys {
            bare(key, &mut forms);
        }
        for url in urls {
            let Some((user, password)) = userinfo(url) else {
                continue;
            };
            for (user, password) in [
                (user.to_owned(), password.to_owned()),
                (percent_decode(user), percent_decode(password)),
            ] {
                bare(&password, &mut forms);
                let pair = format!("{user}:{password}");
                forms.extend(escaped_forms(&pair));
                forms.push(base64(pair.as_bytes()).into_bytes());
            }
        }
        forms.retain(|f| !f.is_empty());
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor {
            finders: forms
                .into_iter()
                .map(|f| memchr::memmem::Finder::new(&f).into_owned())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// `bytes` with every secret replaced by [`REDACTED`]; borrowed when there is none (the
    /// usual case: one search per form, no copy).
    pub fn bytes<'b>(&self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        let mut out: Cow<'b, [u8]> = Cow::Borrowed(bytes);
        for f in &self.finders {
            if f.find(&out).is_none() {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut at = 0;
            for i in f.find_iter(&out) {
                // find_iter does not overlap: each match starts after the previous one's end
                next.extend_from_slice(&out[at..i]);
                next.extend_from_slice(REDACTED.as_bytes());
                at = i + f.needle().len();
            }
            next.extend_from_slice(&out[at..]);
            out = Cow::Owned(next);
        }
        out
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn text(&self, text: String) -> String {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => text,
            Cow::Owned(b) => String::from_utf8_lossy(&b).into_owned(),
        }
    }
}

/// `s`, and `s` as it stands inside a JSON string when that differs (also with `/` as `\/`).
fn escaped_forms(s: &str) -> Vec<Vec<u8>> {
    let mut out = vec![s.as_bytes().to_vec()];
    let json = serde_json::to_string(s).expect("a string serializes");
    let json = &json[1..json.len() - 1];
    for form in [json.to_owned(), json.replace('/', "\\/")] {
        if form != s {
            out.push(form.into_bytes());
        }
    }
    out
}

/// The (user, password) of a URL's userinfo, as written (percent-encoded); None without a password.
pub fn userinfo(url: &str) -> Option<(&str, &str)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (info, _) = authority.rsplit_once('@')?;
    let (user, password) = info.split_once(':')?;
    (!password.is_empty()).then_some((user, password))
}

/// `url` without its userinfo (`user:password@`), for anything that is shown or stored.
pub fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|&c| (c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding, as a `Basic` Authorization header carries `user:password`.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_key_and_a_url_password_goes() {
        let r = Redactor::new(
            ["sk-or-v1-abc/def\"x"],
            [
                "https://alice:s3cr%40t@proxy.example/v1",
                "https://openrouter.ai/api/v1",
            ],
        );
        let body = r#"{"error":{"message":"bad key Bearer sk-or-v1-abc\/def\"x or sk-or-v1-abc/def\"x; basic YWxpY2U6czNjckB0 for alice:s3cr@t and s3cr%40t"}}"#;
        let out = String::from_utf8(r.bytes(body.as_bytes()).into_owned()).unwrap();
        for gone in ["sk-or-v1", "s3cr", "YWxpY2U6czNjckB0"] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(out.contains("Bearer [REDACTED]"), "{out}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "still JSON: {out}"
        );
        // nothing to remove: the same bytes, not a copy
        assert!(matches!(r.bytes(b"a plain answer"), Cow::Borrowed(_)));
        assert!(Redactor::new([], ["https://openrouter.ai/api/v1"]).is_empty());
    }

    #[test]
    fn a_short_password_goes_only_in_context() {
        let r = Redactor::new([], ["http://u:pw@h/v1"]);
        assert_eq!(
            r.text("pw and u:pw and dTpwdw==".into()),
            "pw and [REDACTED] and [REDACTED]"
        );
    }

    #[test]
    fn userinfo_is_found_and_removed() {
        assert_eq!(userinfo("http://u:p@h:1/v1"), Some(("u", "p")));
        assert_eq!(userinfo("http://u@h/v1"), None);
        assert_eq!(userinfo("http://h/v1?x=a:b@c"), None);
        assert_eq!(without_userinfo("http://u:p@h:1/v1"), "http://h:1/v1");
        assert_eq!(without_userinfo("https://h/a@b"), "https://h/a@b");
        assert_eq!(without_userinfo("h/v1"), "h/v1");
    }

    #[test]
    fn base64_is_the_standard_one() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("user:s3cret", "dXNlcjpzM2NyZXQ="),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }
}
