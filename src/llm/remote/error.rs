//! Errors of the remote cache: what kind (what to do next), and a one-line message that names
//! the remote and the object, says what to do, and never carries a credential.

use object_store::path::Path as ObjectPath;

use super::Remote;

/// What went wrong, as far as deciding what to do next goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration or the environment (credentials, directory) cannot work.
    Config,
    /// No connection: refused, reset, no route, DNS.
    Unreachable,
    /// A request got no (complete) answer within the timeout, retries included.
    Timeout,
    /// The remote refused the credentials or the access (HTTP 401/403).
    Forbidden,
    /// The bucket or the directory does not exist.
    NotFound,
    /// An object's bytes are not what its name or its record promise.
    Corrupt,
    /// Anything else (a 5xx that persisted, a full disk…).
    Other,
}

/// An error of the remote cache: a one-line message naming the remote (never a credential) and
/// what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    kind: ErrorKind,
    message: String,
    /// False when the request was not even sent because an earlier one had shown the remote
    /// unusable (see [`RemoteError::stops_remote`]).
    tried: bool,
}

impl RemoteError {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn was_tried(&self) -> bool {
        self.tried
    }

    /// Whether further requests to this remote are pointless for now: it is down, slow, refuses
    /// us, or does not exist. A corrupt object or a one-off failure does not stop the others.
    pub fn stops_remote(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Config
                | ErrorKind::Unreachable
                | ErrorKind::Timeout
                | ErrorKind::Forbidden
                | ErrorKind::NotFound
        )
    }

    /// The same failure, for a request that was not sent because of it.
    pub(crate) fn not_tried(&self) -> RemoteError {
        RemoteError {
            tried: false,
            ..self.clone()
        }
    }

    pub(super) fn new(kind: ErrorKind, message: String) -> RemoteError {
        RemoteError {
            kind,
            message: one_line(&message),
            tried: true,
        }
    }
}

impl Remote {
    pub(super) fn timeout_error(&self, op: &str, path: &ObjectPath) -> RemoteError {
        RemoteError::new(
            ErrorKind::Timeout,
            format!(
                "remote cache {}: no answer from {} within {:.0} s ({op} {}); the remote is slow or unreachable: check \
                 the network, or raise `timeout=` in the remote's options",
                self.inner.url,
                self.inner.endpoint,
                self.inner.timeout.as_secs_f64(),
                self.object_url(path)
            ),
        )
    }

    pub(super) fn corrupt(&self, path: &ObjectPath, why: &str) -> RemoteError {
        RemoteError::new(
            ErrorKind::Corrupt,
            format!(
                "remote cache {}: the object {} is corrupt: {why}; it was not used, and the next upload of this answer \
                 replaces it",
                self.inner.url,
                self.object_url(path)
            ),
        )
    }

    /// Turns an object_store error into a [`RemoteError`]: which kind, and a message that names
    /// the remote and the object, quotes no response body but an S3 error code, and carries no
    /// credential.
    pub(super) fn classify(&self, op: &str, path: &ObjectPath, e: object_store::Error) -> RemoteError {
        use object_store::Error as E;
        let url = &self.inner.url;
        let object = self.object_url(path);
        let detail = e.to_string(); // scrubbed with the whole message below
        let (status, code) = response_of(&e);
        let (kind, message) = match &e {
            // a listing's errors are all `Generic`: the status tells
            _ if matches!(e, E::PermissionDenied { .. } | E::Unauthenticated { .. })
                || matches!(status, Some(401 | 403)) =>
            {
                (
                    ErrorKind::Forbidden,
                    format!(
                        "remote cache {url}: access denied ({op} {object}: HTTP {}{}); check the AWS credentials \
                     (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and the bucket's policy",
                        status.map_or("403".to_owned(), |s| s.to_string()),
                        code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
                    ),
                )
            }
            _ if code.as_deref() == Some("NoSuchBucket") => (
                ErrorKind::NotFound,
                format!(
                    "remote cache {url}: the bucket does not exist at {}; create it, or fix the URL",
                    self.inner.endpoint
                ),
            ),
            E::NotFound { .. } if self.is_dir() => (
                ErrorKind::NotFound,
                format!("remote cache {url}: {object} is missing ({detail}); check that the directory is mounted"),
            ),
            _ => match transport_of(&e) {
                Some(Transport::Timeout) => return self.timeout_error(op, path),
                Some(Transport::Unreachable) => (
                    ErrorKind::Unreachable,
                    format!(
                        "remote cache {url}: cannot reach {} ({op} {object}: {}); check the endpoint and the \
                         network, or work without the remote",
                        self.inner.endpoint,
                        root_cause(&e)
                    ),
                ),
                None => (
                    ErrorKind::Other,
                    format!("remote cache {url}: {op} {object} failed: {detail}"),
                ),
            },
        };
        RemoteError::new(kind, redact(&message, &self.inner.secrets))
    }
}

enum Transport {
    Timeout,
    Unreachable,
}

/// Whether a request failed for want of a connection or of time, from the error's chain.
fn transport_of(e: &(dyn std::error::Error + 'static)) -> Option<Transport> {
    use object_store::client::HttpErrorKind as K;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
            match h.kind() {
                K::Timeout => return Some(Transport::Timeout),
                K::Connect | K::Request | K::Interrupted => return Some(Transport::Unreachable),
                _ => {}
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            match io.kind() {
                Io::TimedOut => return Some(Transport::Timeout),
                Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted | Io::NotConnected => {
                    return Some(Transport::Unreachable);
                }
                _ => {}
            }
        }
        cur = err.source();
    }
    None
}

/// The innermost error's message ("Connection refused (os error 111)"): the wrappers above it
/// repeat the URL and the retry counts.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The HTTP status and S3 error code (`<Code>…</Code>`) of the response behind an error, if any.
/// object_store keeps its response error type private; its text is
/// `Server returned non-2xx status code: 403 Forbidden: <body>` (`tests/remote.rs` pins it).
fn response_of(e: &(dyn std::error::Error + 'static)) -> (Option<u16>, Option<String>) {
    const STATUS: &str = "Server returned non-2xx status code: ";
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if let Some(rest) = text.strip_prefix(STATUS) {
            let status = rest.get(..3).and_then(|s| s.parse().ok());
            return (status, s3_code(rest).map(str::to_owned));
        }
        cur = err.source();
    }
    (None, None)
}

fn s3_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    let code = &body[start..start + len];
    code.chars().all(|c| c.is_ascii_alphanumeric()).then_some(code)
}

pub(super) fn bucket_missing(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    response_of(source).1.as_deref() == Some("NoSuchBucket")
}

/// `text` with every secret replaced by `***`.
pub(super) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// One line, at most 600 characters: messages end up in a terminal line and a warning count.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(600) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_one_line() {
        let s = vec!["AKIDX".to_owned(), "sekret".to_owned()];
        assert_eq!(redact("key AKIDX secret sekret sekret", &s), "key *** secret *** ***");
        assert_eq!(one_line("a\n  b\tc "), "a b c");
        assert_eq!(one_line(&"x".repeat(700)).chars().count(), 601);
    }

    #[test]
    fn s3_error_codes() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKID</AWSAccessKeyId></Error>";
        assert_eq!(s3_code(body), Some("SignatureDoesNotMatch"));
        assert_eq!(s3_code("<Code>a b</Code>"), None);
        assert_eq!(s3_code("no xml"), None);
    }
}
