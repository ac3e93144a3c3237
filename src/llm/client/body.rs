//! The request body of a chat completion, written straight into one buffer.

use super::CallSpec;

/// The request body: the same JSON as serde_json gives for
/// `{"model", "messages": [{"role": "user", "content"}], "temperature", "max_tokens"}` (as the
/// seed sent it; a system message comes first in `messages` when there is one), and `"grammar"`
/// last when there is one, written straight into one buffer. The prompt is most of it (kilobytes), and
/// finding the bytes to escape 16 at a time (`plain_until`) costs a fraction of serde_json's
/// byte-at-a-time loop.
pub fn request_body(call: &CallSpec) -> Vec<u8> {
    let grammar = call.grammar.as_deref().map_or(0, |g| g.len() + 16);
    let system = call.system.as_deref().map_or(0, |s| s.len() + 40);
    let mut out = Vec::with_capacity(call.prompt.len() + call.model.len() + grammar + system + 112);
    out.extend_from_slice(b"{\"model\":");
    push_json_str(&mut out, &call.model);
    out.extend_from_slice(b",\"messages\":[");
    if let Some(s) = &call.system {
        out.extend_from_slice(b"{\"role\":\"system\",\"content\":");
        push_json_str(&mut out, s);
        out.extend_from_slice(b"},");
    }
    out.extend_from_slice(b"{\"role\":\"user\",\"content\":");
    push_json_str(&mut out, &call.prompt);
    out.extend_from_slice(b"}],\"temperature\":");
    serde_json::to_writer(&mut out, &call.temperature).expect("a number serializes");
    out.extend_from_slice(b",\"max_tokens\":");
    out.extend_from_slice(call.max_tokens.to_string().as_bytes());
    if let Some(g) = &call.grammar {
        out.extend_from_slice(b",\"grammar\":");
        push_json_str(&mut out, g);
    }
    out.push(b'}');
    out
}

/// Appends `s` as a JSON string, escaped exactly as serde_json does: `"` and `\\`, the short
/// escapes of \b \f \n \r \t, and `\u00xx` for the other control characters; nothing else.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        i = plain_until(b, i);
        let Some(&c) = b.get(i) else { break };
        out.extend_from_slice(&b[run..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Where the first byte at or after `i` that JSON must escape is (`b.len()` if none).
fn plain_until(b: &[u8], mut i: usize) -> usize {
    let needs_escape = |c: u8| c < 0x20 || c == b'"' || c == b'\\';
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes inside `b` (i + 16 <= len).
        unsafe {
            let (quote, backslash, space) = (
                _mm_set1_epi8(b'"' as i8),
                _mm_set1_epi8(b'\\' as i8),
                _mm_set1_epi8(0x1f),
            );
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
                // a byte <= 0x1f is its own minimum with 0x1f (unsigned)
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, space), v);
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    control,
                );
                let mask = _mm_movemask_epi8(hits) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while i < b.len() && !needs_escape(b[i]) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde::Serialize;

    use super::*;

    #[test]
    fn the_request_body_is_what_serde_json_writes() {
        // every byte that needs an escape, at every offset within and across 16-byte blocks, among ASCII and
        // multi-byte UTF-8 text
        let specials = [
            "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", "\u{7f}", "/", "é", "€", "😀",
        ];
        let mut prompts = vec![
            String::new(),
            "plain text longer than one word of eight bytes".to_owned(),
        ];
        for s in specials {
            for pad in 0..40 {
                prompts.push(format!("{}{s}{}", "a".repeat(pad), "b".repeat(40 - pad)));
            }
        }
        prompts.push((0u8..0x80).map(char::from).collect::<String>().repeat(3));
        for prompt in prompts {
            for (temperature, max_tokens) in [(0.7, 8192), (0.0, 1), (1.25, 128)] {
                let call = CallSpec {
                    model: "vendor/model-\"x\":free".into(),
                    system: (temperature == 0.0).then(|| Arc::from(prompt.as_str())),
                    prompt: Arc::from(prompt.as_str()),
                    temperature,
                    max_tokens,
                    grammar: (max_tokens == 128).then(|| Arc::from(prompt.as_str())),
                };
                // field order as sent (json! would sort the keys)
                #[derive(Serialize)]
                struct Body<'a> {
                    model: &'a str,
                    messages: Vec<Message<'a>>,
                    temperature: f64,
                    max_tokens: u64,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    grammar: Option<&'a str>,
                }
                #[derive(Serialize)]
                struct Message<'a> {
                    role: &'a str,
                    content: &'a str,
                }
                let expected = serde_json::to_vec(&Body {
                    model: &call.model,
                    messages: call
                        .system
                        .as_deref()
                        .map(|s| Message {
                            role: "system",
                            content: s,
                        })
                        .into_iter()
                        .chain([Message {
                            role: "user",
                            content: &prompt,
                        }])
                        .collect(),
                    temperature,
                    max_tokens,
                    grammar: call.grammar.as_deref(),
                })
                .unwrap();
                assert_eq!(
                    String::from_utf8(request_body(&call)).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{prompt:?}"
                );
            }
        }
    }
}
