//! Where the remote answer cache is: the URL of `cache: remote:` in `pipeline.yaml` or of
//! `DAYDREAM_REMOTE`, checked and typed (`llm::remote` reaches it; `llm::remote::credentials`
//! reads the AWS credentials).
//!
//! Accepted forms:
//! - `s3://BUCKET[/PREFIX][?OPTIONS]`, options `endpoint=URL`, `region=NAME`,
//!   `addressing=path|virtual`, `allow-http=true`, `timeout=SECONDS`, `connect-timeout=SECONDS`,
//!   `retries=N` (each may also be set by name with [`RemoteConfig::set`], as a YAML map gives them);
//! - `file:///ABSOLUTE/DIR` (a shared disk; the same timeout options).
//!
//! Credentials are never part of the configuration: a URL that carries any is refused, and they
//! are read from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else from the
//! profile `AWS_PROFILE` (or `default`) of `~/.aws/credentials` and `~/.aws/config`. Nothing here
//! prints a credential or echoes the part of a URL that could hold one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable that names the remote when `pipeline.yaml` does not.
pub const ENV_VAR: &str = "DAYDREAM_REMOTE";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: usize = 2;
const OPTIONS: &str = "endpoint, region, addressing, allow-http, timeout, connect-timeout, retries";

/// A configuration the remote cannot be opened with; the message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// How requests name the bucket: `https://ENDPOINT/BUCKET/key` or `https://BUCKET.ENDPOINT/key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    Path,
    Virtual,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    S3 {
        bucket: String,
        /// `None`: AWS itself, from the region.
        endpoint: Option<String>,
        region: Option<String>,
        /// `None`: path-style with a custom endpoint (MinIO, Ceph, moto), virtual-hosted on AWS.
        addressing: Option<Addressing>,
        allow_http: bool,
    },
    Dir(PathBuf),
}

/// The remote cache's configuration: no credentials, so it may be printed and compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    pub location: Location,
    /// Object-name prefix under the bucket (S3 only): `/`-separated, no empty, `.` or `..` part.
    pub prefix: String,
    /// How long one request may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// How often a request that failed for a reason that can pass (connection, timeout, 5xx) is
    /// tried again.
    pub retries: usize,
}

impl RemoteConfig {
    /// Parses `s3://…` or `file:///…`. Errors never repeat a credential the text may carry.
    pub fn parse(text: &str) -> Result<RemoteConfig, ConfigError> {
        let shown = without_userinfo(text);
        let url = url::Url::parse(text.trim()).map_err(|e| {
            ConfigError(format!(
                "the remote `{shown}` is not a URL ({e}); write s3://BUCKET/PREFIX or file:///ABSOLUTE/DIR"
            ))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError(format!(
                "the remote `{shown}` carries credentials; remove them from the URL and set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment instead"
            )));
        }
        if url.fragment().is_some() {
            return Err(ConfigError(format!("the remote `{shown}` has a `#` part; remove it")));
        }
        let (location, prefix) = match url.scheme() {
            "s3" => {
                let bucket = url.host_str().unwrap_or("");
                check_bucket(bucket, &shown)?;
                // from the text: the URL parser would resolve `..` and hide what was written
                let prefix = raw_path(text).trim_matches('/').to_owned();
                let loc = Location::S3 {
                    bucket: bucket.to_owned(),
                    endpoint: None,
                    region: None,
                    addressing: None,
                    allow_http: false,
                };
                (loc, prefix)
            }
            "file" => {
                if !matches!(url.host_str(), None | Some("") | Some("localhost")) {
                    return Err(ConfigError(format!(
                        "the remote `{shown}` names a host; a directory is written file:///ABSOLUTE/DIR (three slashes)"
                    )));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| ConfigError(format!("the remote `{shown}` is not an absolute directory path")))?;
                (Location::Dir(path), String::new())
            }
            other => {
                return Err(ConfigError(format!(
                    "the remote `{shown}` has the scheme `{other}:`; daydream reaches s3://BUCKET/PREFIX and file:///ABSOLUTE/DIR"
                )));
            }
        };
        check_prefix(&prefix, &shown)?;
        let mut config = RemoteConfig {
            location,
            prefix,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retries: DEFAULT_RETRIES,
        };
        for (name, value) in url.query_pairs() {
            config.set(&name, &value)?;
        }
        Ok(config)
    }

    /// The remote named by `DAYDREAM_REMOTE`, if set and not empty.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Option<Result<RemoteConfig, ConfigError>> {
        let text = var(ENV_VAR).filter(|v| !v.trim().is_empty())?;
        Some(RemoteConfig::parse(&text).map_err(|e| ConfigError(format!("{ENV_VAR}: {e}"))))
    }

    /// The remote a run uses: `DAYDREAM_REMOTE` when set (`off` or `none`: no remote, whatever
    /// pipeline.yaml says), else `declared` (pipeline.yaml's `cache: remote:`).
    pub fn chosen(
        declared: Option<&RemoteConfig>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RemoteConfig>, ConfigError> {
        if var(ENV_VAR).is_some_and(|v| matches!(v.trim(), "off" | "none")) {
            return Ok(None);
        }
        match RemoteConfig::from_env(var) {
            Some(env) => env.map(Some),
            None => Ok(declared.cloned()),
        }
    }

    /// Sets one option by name (`timeout`, `endpoint`…; `_` may stand for `-`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let name = name.replace('_', "-");
        let value = value.trim();
        let bad = |what: &str| ConfigError(format!("the remote option `{name}` {what}"));
        let seconds = |v: &str| -> Result<Duration, ConfigError> {
            let s: f64 = v
                .trim_end_matches('s')
                .parse()
                .map_err(|_| bad("takes a number of seconds, e.g. 10"))?;
            if !(s > 0.0 && s <= 3600.0) {
                return Err(bad("takes a number of seconds between 0 and 3600"));
            }
            Ok(Duration::from_secs_f64(s))
        };
        match name.as_str() {
            "timeout" => self.timeout = seconds(value)?,
            "connect-timeout" => self.connect_timeout = seconds(value)?,
            "retries" => {
                self.retries = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= 10)
                    .ok_or_else(|| bad("takes a whole number from 0 to 10"))?;
            }
            "endpoint" | "region" | "addressing" | "allow-http" | "path-style" => {
                let Location::S3 {
                    endpoint,
                    region,
                    addressing,
                    allow_http,
                    ..
                } = &mut self.location
                else {
                    return Err(bad("applies to s3:// remotes only"));
                };
                match name.as_str() {
                    "endpoint" => *endpoint = Some(check_endpoint(value)?),
                    "region" => {
                        if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                            return Err(bad("takes an AWS region name such as eu-west-1"));
                        }
                        *region = Some(value.to_owned());
                    }
                    "addressing" => {
                        *addressing = Some(match value {
                            "path" => Addressing::Path,
                            "virtual" => Addressing::Virtual,
                            _ => return Err(bad("is `path` or `virtual`")),
                        })
                    }
                    "path-style" => {
                        *addressing = Some(if parse_bool(value).ok_or_else(|| bad("is true or false"))? {
                            Addressing::Path
                        } else {
                            Addressing::Virtual
                        })
                    }
                    _ => *allow_http = parse_bool(value).ok_or_else(|| bad("is true or false"))?,
                }
            }
            // the value is not repeated: an unknown option may be a credential put in the wrong place
            _ => {
                return Err(ConfigError(format!(
                    "the remote has an unknown option `{name}`; the options are {OPTIONS} (credentials come from \
                     the AWS environment variables or profile, never from the URL)"
                )));
            }
        }
        Ok(())
    }

    /// The remote as printed in messages: `s3://bucket/prefix` or `file:///dir`, without options.
    pub fn display(&self) -> String {
        match &self.location {
            Location::S3 { bucket, .. } if self.prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, .. } => format!("s3://{bucket}/{}", self.prefix),
            Location::Dir(dir) => format!("file://{}", dir.display()),
        }
    }
}

impl fmt::Display for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// `text` with anything between `://` and a following `@` (before the path) replaced by `***`.
fn without_userinfo(text: &str) -> String {
    let text = text.trim();
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let rest = &text[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &rest[at..]),
        None => text.to_owned(),
    }
}

/// The path of a `scheme://authority/path?query` text, as written.
fn raw_path(text: &str) -> &str {
    let text = text.trim();
    let rest = text.find("://").map_or(text, |i| &text[i + 3..]);
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    rest.find('/').map_or("", |i| &rest[i..])
}

fn check_bucket(bucket: &str, shown: &str) -> Result<(), ConfigError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "the remote `{shown}` names the bucket `{bucket}`; a bucket name has 3 to 63 lower-case letters, digits, \
             `-` and `.`: write s3://BUCKET/PREFIX"
        )))
    }
}

fn check_prefix(prefix: &str, shown: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() {
        return Ok(());
    }
    for part in prefix.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', '#', '%']) {
            return Err(ConfigError(format!(
                "the remote `{shown}` has the prefix `{prefix}`; each part between `/` must be a plain name (no empty, \
                 `.` or `..` part, no `\\`, `#` or `%`)"
            )));
        }
    }
    Ok(())
}

pub fn check_endpoint(value: &str) -> Result<String, ConfigError> {
    let shown = without_userinfo(value);
    let url = url::Url::parse(value).map_err(|e| {
        ConfigError(format!(
            "the remote option `endpoint` is `{shown}`, not a URL ({e}); write e.g. http://127.0.0.1:9000"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError(format!(
            "the remote option `endpoint` `{shown}` carries credentials; remove them and set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment instead"
        )));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError(format!(
            "the remote option `endpoint` is `{shown}`; write http(s)://HOST[:PORT]"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.path().trim_matches('/').is_empty() {
        return Err(ConfigError(format!(
            "the remote option `endpoint` is `{shown}`; write only the scheme, host and port: the bucket and prefix \
             belong in s3://BUCKET/PREFIX"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// True for 127.0.0.0/8, ::1 and `localhost`: plain HTTP is allowed there without `allow-http`.
pub fn is_loopback(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(text: &str) -> (String, Option<String>, Option<String>, Option<Addressing>, bool, String) {
        let c = RemoteConfig::parse(text).unwrap();
        match c.location {
            Location::S3 {
                bucket,
                endpoint,
                region,
                addressing,
                allow_http,
            } => (bucket, endpoint, region, addressing, allow_http, c.prefix),
            other => panic!("{other:?}"),
        }
    }

    fn err(text: &str) -> String {
        RemoteConfig::parse(text).unwrap_err().0
    }

    #[test]
    fn s3_url_with_prefix_and_options() {
        let (bucket, endpoint, region, addressing, allow_http, prefix) =
            s3("s3://team-cache/exp/daydream?endpoint=http://127.0.0.1:9000/&region=eu-west-1&addressing=path");
        assert_eq!(bucket, "team-cache");
        assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(region.as_deref(), Some("eu-west-1"));
        assert_eq!(addressing, Some(Addressing::Path));
        assert!(!allow_http);
        assert_eq!(prefix, "exp/daydream");
        let (bucket, endpoint, _, addressing, _, prefix) = s3("s3://b12/");
        assert_eq!(
            (bucket.as_str(), endpoint, addressing, prefix.as_str()),
            ("b12", None, None, "")
        );
        let (.., addressing, allow_http, _) = s3("s3://abc?path_style=false&allow-http=true");
        assert_eq!((addressing, allow_http), (Some(Addressing::Virtual), true));
    }

    #[test]
    fn timeouts_and_retries() {
        let c = RemoteConfig::parse("s3://abc?timeout=2.5&connect-timeout=1s&retries=0").unwrap();
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.retries, 0);
        let d = RemoteConfig::parse("s3://abc").unwrap();
        assert_eq!(
            (d.timeout, d.connect_timeout, d.retries),
            (DEFAULT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, 2)
        );
        assert!(err("s3://abc?timeout=0").contains("between 0 and 3600"));
        assert!(err("s3://abc?timeout=soon").contains("seconds"));
        assert!(err("s3://abc?retries=99").contains("0 to 10"));
    }

    #[test]
    fn file_url() {
        let c = RemoteConfig::parse("file:///srv/shared/cache").unwrap();
        assert_eq!(c.location, Location::Dir(PathBuf::from("/srv/shared/cache")));
        assert_eq!(c.display(), "file:///srv/shared/cache");
        assert_eq!(
            RemoteConfig::parse("file://localhost/srv/x%20y").unwrap().location,
            Location::Dir(PathBuf::from("/srv/x y"))
        );
        assert!(err("file://server/share").contains("three slashes"));
        assert!(err("file:///srv?region=x").contains("s3:// remotes only"));
    }

    #[test]
    fn bad_urls_are_explained() {
        assert!(err("s3:/").contains("bucket"));
        assert!(err("s3://Bad_Bucket/x").contains("bucket name"));
        assert!(err("gs://bucket").contains("scheme `gs:`"));
        assert!(err("bucket/prefix").contains("not a URL"));
        assert!(err("s3://abc/a//b").contains("plain name"));
        assert!(err("s3://abc/a/../b").contains("plain name"));
        assert!(err("s3://abc?addressing=sideways").contains("`path` or `virtual`"));
        assert!(err("s3://abc?endpoint=ftp://x").contains("http(s)://HOST"));
        assert!(err("s3://abc?endpoint=http://h:9000/bucket").contains("only the scheme, host and port"));
    }

    #[test]
    fn credentials_in_a_url_are_refused_and_never_repeated() {
        for text in [
            "s3://AKIDSECRETID:wJalrSECRETKEY@bucket/p",
            "s3://bucket/p?endpoint=http://AKIDSECRETID:wJalrSECRETKEY@127.0.0.1:9000",
            "s3://bucket/p?aws_secret_access_key=wJalrSECRETKEY",
            "s3://AKIDSECRETID:wJalrSECRETKEY@bad bucket",
        ] {
            let e = err(text);
            assert!(!e.contains("AKIDSECRETID") && !e.contains("wJalrSECRETKEY"), "{e}");
            assert!(e.contains("credentials") || e.contains("not a URL"), "{e}");
        }
        assert_eq!(without_userinfo("s3://a:b@c/d@e"), "s3://***@c/d@e");
        assert_eq!(without_userinfo("s3://c/d@e"), "s3://c/d@e");
    }

    #[test]
    fn from_env_var() {
        assert!(RemoteConfig::from_env(|_| None).is_none());
        assert!(RemoteConfig::from_env(|_| Some("  ".into())).is_none());
        let c = RemoteConfig::from_env(|v| (v == ENV_VAR).then(|| "s3://abc/p".to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!(c.display(), "s3://abc/p");
        let e = RemoteConfig::from_env(|_| Some("nope".into())).unwrap().unwrap_err();
        assert!(e.0.starts_with("DAYDREAM_REMOTE: "), "{e}");
    }

    #[test]
    fn loopback() {
        assert!(is_loopback("http://127.0.0.1:9000"));
        assert!(is_loopback("http://127.3.2.1"));
        assert!(is_loopback("http://[::1]:80"));
        assert!(is_loopback("http://localhost:1"));
        assert!(!is_loopback("http://10.0.0.1:9000"));
        assert!(!is_loopback("http://minio.internal"));
    }
}
