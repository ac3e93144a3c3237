//! The remote answer cache: paid LLM answers shared through an object store (S3 or a directory),
//! so that a team, several machines and CI never pay twice for one call.
//!
//! # Object layout, version 1
//!
//! Under the remote's prefix (`s3://BUCKET/PREFIX`, or the directory of `file:///DIR`):
//!
//! - `daydream/v1/blobs/<hash>`: an answer's content (the response text), named by the blake3 of
//!   its bytes (64 lower-case hex digits);
//! - `daydream/v1/answers/<key>.json`: the record of the call whose key is `<key>` (the blake3 of
//!   its manifest), a JSON object:
//!   `{"layout": "daydream/v1", "key": KEY, "output": HASH, "size": BYTES, "created_at": RFC3339,
//!   "manifest": {…}, "info": {…} | null}`, where `manifest` is the manifest JSON byte for byte as
//!   the store holds it (`actions.manifest`), so its blake3 is `key`, and `info` the call record
//!   (`actions.info`);
//! - `daydream/v1/packs/<id>.pack` and `<id>.idx`: copies of many answers in one object, so that a
//!   fresh clone reads thousands in a few requests (see `pack.rs`; an accelerator only: every
//!   answer of a pack is also stored as above, and a broken pack is read around).
//!
//! A later layout goes under `daydream/v2/`; this one is never changed in place.
//!
//! # Why concurrent writers are safe
//!
//! Content goes up before its record, so a record that can be read names content that is there.
//! Both are written with a conditional create (`If-None-Match: *`); "already exists" counts as done:
//! - two writers of one blob write the same bytes (the name is their hash), so either copy is it;
//! - two writers of one record (two machines paid for the same call at once) each hold a complete,
//!   valid answer to the same manifest; the first one written is kept and the other writer's
//!   record is dropped (its content stays as an unreferenced blob). Readers see no record or one
//!   whole record (an S3 PUT replaces an object atomically; a directory write is a rename), never
//!   a mix of two. On a store that ignores the condition the last writer wins instead, which is
//!   as safe for the same reasons.
//!
//! A reader trusts nothing it downloads: `get` checks that the record is for the key asked, that
//! the manifest hashes to that key, and that the content hashes to the recorded hash; anything
//! else is a [`ErrorKind::Corrupt`] error naming the object, and the content is not returned.
//! `put` finds such a broken object when it meets it ("already exists") and replaces it.
//!
//! Every request is bounded by the configured timeouts and retries; an error says which remote,
//! which object and what to do, and never carries a credential (see [`RemoteError`]).

mod batch;
mod credentials;
mod error;
mod pack;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::engine::cache::{Addressing, ConfigError, Location, RemoteConfig};
pub use batch::{UploadReport, Uploader};
pub use error::{ErrorKind, RemoteError};
use error::{bucket_missing, redact};

use crate::engine::keys::Hash;

/// The layout this daydream reads and writes (see the module documentation).
pub const LAYOUT: &str = "daydream/v1";

/// No answer, record or index comes near this; a bigger object is not downloaded.
const MAX_OBJECT_BYTES: usize = 64 << 20;

/// One paid answer as it travels: what the store's `actions` row and blob hold for one call.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteAnswer {
    /// The call key: blake3 of `manifest`.
    pub key: Hash,
    /// The manifest JSON, as in `actions.manifest`.
    pub manifest: String,
    /// blake3 of `content`.
    pub output: Hash,
    /// The call record JSON (`actions.info`), if the store has one.
    pub info: Option<String>,
    /// When the answer was first stored (`actions.created_at`).
    pub created_at: String,
    /// The response text.
    pub content: String,
}

impl RemoteAnswer {
    /// An answer with its key and output hash computed from `manifest` and `content`.
    pub fn new(manifest: String, info: Option<String>, created_at: String, content: String) -> RemoteAnswer {
        RemoteAnswer {
            key: Hash::of(manifest.as_bytes()),
            output: Hash::of(content.as_bytes()),
            manifest,
            info,
            created_at,
            content,
        }
    }
}

impl std::fmt::Debug for RemoteAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RemoteAnswer(key {}, output {}, {} bytes, {})",
            self.key.short(),
            self.output.short(),
            self.content.len(),
            self.created_at
        )
    }
}

#[derive(Serialize)]
struct RecordOut<'a> {
    layout: &'static str,
    key: Hash,
    output: Hash,
    size: usize,
    created_at: &'a str,
    manifest: &'a RawValue,
    info: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    layout: String,
    key: Hash,
    output: Hash,
    size: u64,
    created_at: String,
    #[serde(borrow)]
    manifest: &'a RawValue,
    #[serde(borrow)]
    info: Option<&'a RawValue>,
    /// In a pack's entry only.
    #[serde(default)]
    content: Option<String>,
}

impl RecordIn<'_> {
    fn into_answer(self, key: Hash, content: String) -> RemoteAnswer {
        RemoteAnswer {
            key,
            manifest: self.manifest.get().to_owned(),
            output: self.output,
            info: self.info.map(|i| i.get().to_owned()),
            created_at: self.created_at,
            content,
        }
    }
}

/// How a `put` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The record was written now.
    Uploaded,
    /// The remote already had a valid record of this key (this one or another writer's).
    Present,
    /// A corrupt object of this answer was found and replaced.
    Repaired,
}

/// An open remote cache. Cheap to clone; usable from any tokio runtime (a current-thread one
/// included).
#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket/prefix` or `file:///dir`, for messages.
    url: String,
    /// Where requests go (the S3 endpoint, or the directory), for messages.
    endpoint: String,
    /// `<prefix>/daydream/v1`.
    root: ObjectPath,
    /// Credential strings, scrubbed from anything a message quotes from an error.
    secrets: Vec<String>,
    timeout: Duration,
    /// A bound on one operation, retries included, in case a layer below does not keep its own.
    deadline: Duration,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({} via {})", self.inner.url, self.inner.endpoint)
    }
}

impl Remote {
    /// Opens the remote with the process's environment (AWS credentials, region, endpoint).
    pub fn open(config: &RemoteConfig) -> Result<Remote, RemoteError> {
        Remote::open_with_env(config, &|name: &str| std::env::var(name).ok())
    }

    /// Opens the remote with the environment given by `var`. Sends no request.
    pub fn open_with_env(config: &RemoteConfig, var: &dyn Fn(&str) -> Option<String>) -> Result<Remote, RemoteError> {
        let url = config.display();
        let config_error = |e: ConfigError| RemoteError::new(ErrorKind::Config, format!("remote cache {url}: {e}"));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: config.retries,
            retry_timeout: config.timeout * (config.retries as u32 + 1),
        };
        let deadline = (config.timeout + config.connect_timeout + Duration::from_secs(2)) * (config.retries as u32 + 1);
        let (store, endpoint, secrets, prefix): (Arc<dyn ObjectStore>, String, Vec<String>, &str) = match &config
            .location
        {
            Location::Dir(dir) => {
                if !dir.is_dir() {
                    return Err(RemoteError::new(
                        ErrorKind::NotFound,
                        format!(
                            "remote cache {url}: the directory {} does not exist (or is not mounted); create it, or fix the URL",
                            dir.display()
                        ),
                    ));
                }
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    RemoteError::new(
                        ErrorKind::Config,
                        format!("remote cache {url}: cannot use {}: {e}", dir.display()),
                    )
                })?;
                (Arc::new(fs), dir.display().to_string(), Vec::new(), "")
            }
            Location::S3 {
                bucket,
                endpoint,
                region,
                addressing,
                allow_http,
            } => {
                let aws = credentials::aws_env(var).map_err(config_error)?;
                let secrets = aws.credentials.secrets();
                let region = region.clone().or(aws.region).unwrap_or_else(|| "us-east-1".to_owned());
                let endpoint = endpoint.clone().or(aws.endpoint);
                let virtual_hosted = match addressing {
                    Some(a) => *a == Addressing::Virtual,
                    // a bucket with dots does not match the certificate of `*.s3.amazonaws.com`
                    None => endpoint.is_none() && !bucket.contains('.'),
                };
                let shown_endpoint = match (&endpoint, virtual_hosted) {
                    (Some(e), false) => e.clone(),
                    (Some(e), true) => bucket_subdomain(e, bucket).ok_or_else(|| {
                        config_error(ConfigError(format!(
                            "cannot put the bucket in front of the endpoint {e}"
                        )))
                    })?,
                    (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
                    (None, false) => format!("https://s3.{region}.amazonaws.com"),
                };
                let plain_http = shown_endpoint.starts_with("http://");
                if plain_http && !allow_http && !crate::engine::cache::is_loopback(&shown_endpoint) {
                    return Err(config_error(ConfigError(format!(
                        "the endpoint {shown_endpoint} is plain HTTP; use https, or add `allow-http=true` to the remote's \
                         options if this network is trusted"
                    ))));
                }
                let client = ClientOptions::new()
                    .with_timeout(config.timeout)
                    .with_connect_timeout(config.connect_timeout)
                    .with_allow_http(plain_http);
                let creds = &aws.credentials;
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&region)
                    .with_access_key_id(creds.key_id.expose())
                    .with_secret_access_key(creds.secret.expose())
                    .with_virtual_hosted_style_request(virtual_hosted)
                    .with_client_options(client)
                    .with_retry(retry);
                if let Some(token) = &creds.token {
                    b = b.with_token(token.expose());
                }
                if endpoint.is_some() {
                    b = b.with_endpoint(&shown_endpoint);
                }
                crate::llm::client::install_crypto_provider();
                let s3 = b.build().map_err(|e| {
                    RemoteError::new(
                        ErrorKind::Config,
                        redact(
                            &format!("remote cache {url}: cannot set up the S3 client: {e}"),
                            &secrets,
                        ),
                    )
                })?;
                (Arc::new(s3), shown_endpoint, secrets, config.prefix.as_str())
            }
        };
        let root = prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .chain(LAYOUT.split('/'))
            .collect::<ObjectPath>();
        Ok(Remote {
            inner: Arc::new(Inner {
                store,
                url,
                endpoint,
                root,
                secrets,
                timeout: config.timeout,
                deadline,
            }),
        })
    }

    /// `s3://bucket/prefix` or `file:///dir`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn answer_path(&self, key: &Hash) -> ObjectPath {
        self.inner
            .root
            .clone()
            .join("answers")
            .join(format!("{}.json", key.hex()))
    }

    fn blob_path(&self, hash: &Hash) -> ObjectPath {
        self.inner.root.clone().join("blobs").join(hash.hex())
    }

    /// An object's full name for messages: `s3://bucket/prefix/daydream/v1/…`.
    pub fn object_url(&self, path: &ObjectPath) -> String {
        let under = path
            .as_ref()
            .strip_prefix(self.inner.root.as_ref())
            .unwrap_or(path.as_ref());
        format!("{}/{LAYOUT}{under}", self.inner.url.trim_end_matches('/'))
    }

    /// The answer of `key`, downloaded and verified; `None` if the remote has no record of it.
    pub async fn get(&self, key: &Hash) -> Result<Option<RemoteAnswer>, RemoteError> {
        let rec_path = self.answer_path(key);
        let Some(bytes) = self.read(&rec_path).await? else {
            return Ok(None);
        };
        let rec = self.check_record(key, &bytes, &rec_path)?;
        let blob_path = self.blob_path(&rec.output);
        let Some(blob) = self.read(&blob_path).await? else {
            let why = format!("it names the content {}, which is missing", self.object_url(&blob_path));
            return Err(self.corrupt(&rec_path, &why));
        };
        let content = self.check_content(key, &rec, &blob, &blob_path)?;
        Ok(Some(rec.into_answer(*key, content)))
    }

    /// A record read from `at`, checked to be the record of `key` (see the module documentation).
    fn check_record<'a>(&self, key: &Hash, bytes: &'a [u8], at: &ObjectPath) -> Result<RecordIn<'a>, RemoteError> {
        let corrupt = |why: String| self.corrupt(at, &why);
        let rec: RecordIn<'_> =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a daydream record: {e}")))?;
        if rec.layout != LAYOUT {
            return Err(corrupt(format!("its layout is `{}`, expected `{LAYOUT}`", rec.layout)));
        }
        if rec.key != *key {
            return Err(corrupt(format!("it is the record of {}", rec.key)));
        }
        if Hash::of(rec.manifest.get().as_bytes()) != *key {
            return Err(corrupt("its manifest does not hash to its key".to_owned()));
        }
        Ok(rec)
    }

    /// The content of `rec`, from `bytes` read at `at`, if it is what the record says.
    fn check_content(
        &self,
        key: &Hash,
        rec: &RecordIn<'_>,
        bytes: &[u8],
        at: &ObjectPath,
    ) -> Result<String, RemoteError> {
        let actual = Hash::of(bytes);
        if actual != rec.output || bytes.len() as u64 != rec.size {
            let why = format!(
                "its blake3 is {} ({} bytes), the record of {} says {} ({} bytes)",
                actual.short(),
                bytes.len(),
                key.short(),
                rec.output.short(),
                rec.size
            );
            return Err(self.corrupt(at, &why));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt(at, "it is not UTF-8 text"))
    }

    /// Uploads an answer: its content, then its record, each created only if absent (see the
    /// module documentation). Idempotent.
    pub async fn put(&self, answer: &RemoteAnswer) -> Result<PutOutcome, RemoteError> {
        let record = self.record_json(answer, false)?;
        let blob_path = self.blob_path(&answer.output);
        let mut repaired = false;
        if !self.create(&blob_path, answer.content.clone().into_bytes()).await? {
            let intact = self
                .read(&blob_path)
                .await?
                .is_some_and(|b| Hash::of(&b) == answer.output);
            if !intact {
                self.overwrite(&blob_path, answer.content.clone().into_bytes()).await?;
                repaired = true;
            }
        }
        let rec_path = self.answer_path(&answer.key);
        if self.create(&rec_path, record.clone()).await? {
            return Ok(if repaired {
                PutOutcome::Repaired
            } else {
                PutOutcome::Uploaded
            });
        }
        match self.get(&answer.key).await {
            Ok(Some(_)) => Ok(if repaired {
                PutOutcome::Repaired
            } else {
                PutOutcome::Present
            }),
            Ok(None) => {
                // deleted since the create found it: ours is as good as any
                self.overwrite(&rec_path, record).await?;
                Ok(PutOutcome::Uploaded)
            }
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                self.overwrite(&rec_path, record).await?;
                Ok(PutOutcome::Repaired)
            }
            Err(e) => Err(e),
        }
    }

    /// The keys of every answer the remote holds (for `cache status`).
    pub async fn list(&self) -> Result<Vec<Hash>, RemoteError> {
        self.list_hashes("answers", ".json").await
    }

    /// The hashes that name the objects `<root>/<dir>/<hash><suffix>`.
    async fn list_hashes(&self, dir: &str, suffix: &str) -> Result<Vec<Hash>, RemoteError> {
        use futures_util::TryStreamExt;
        let prefix = self.inner.root.clone().join(dir);
        let listing = self
            .inner
            .store
            .list(Some(&prefix))
            .try_fold(Vec::new(), |mut keys, meta| async move {
                let name = meta.location.filename().unwrap_or("");
                keys.extend(name.strip_suffix(suffix).and_then(Hash::from_hex));
                Ok(keys)
            });
        // not `bounded`: a listing is one request per 1,000 names, each bounded by the client
        match listing.await {
            Ok(keys) => Ok(keys),
            Err(object_store::Error::NotFound { .. }) if self.is_dir() => Ok(Vec::new()),
            Err(e) => Err(self.classify("listing", &prefix, e)),
        }
    }

    fn is_dir(&self) -> bool {
        self.inner.url.starts_with("file://")
    }

    /// The record of `a` as uploaded; with `inline`, its content too (a pack's entry).
    fn record_json(&self, a: &RemoteAnswer, inline: bool) -> Result<Vec<u8>, RemoteError> {
        let bug = |why: &str| {
            RemoteError::new(
                ErrorKind::Other,
                format!(
                    "remote cache {}: not uploading the answer of {}: {why}",
                    self.inner.url, a.key
                ),
            )
        };
        if Hash::of(a.manifest.as_bytes()) != a.key {
            return Err(bug("its manifest does not hash to its key"));
        }
        if Hash::of(a.content.as_bytes()) != a.output {
            return Err(bug("its content does not hash to its output hash"));
        }
        let manifest = RawValue::from_string(a.manifest.clone()).map_err(|_| bug("its manifest is not JSON"))?;
        let info = match &a.info {
            Some(i) => Some(RawValue::from_string(i.clone()).map_err(|_| bug("its call record is not JSON"))?),
            None => None,
        };
        let rec = RecordOut {
            layout: LAYOUT,
            key: a.key,
            output: a.output,
            size: a.content.len(),
            created_at: &a.created_at,
            manifest: &manifest,
            info: info.as_deref(),
            content: inline.then_some(a.content.as_str()),
        };
        Ok(serde_json::to_vec(&rec).expect("a record always serializes"))
    }

    /// An object's bytes; `None` if it does not exist.
    async fn read(&self, path: &ObjectPath) -> Result<Option<bytes::Bytes>, RemoteError> {
        self.read_at_most(path, MAX_OBJECT_BYTES).await
    }

    /// An object's bytes if it has at most `limit` of them (else a corrupt object: a remote is
    /// not trusted with this process's memory); `None` if it does not exist.
    async fn read_at_most(&self, path: &ObjectPath, limit: usize) -> Result<Option<bytes::Bytes>, RemoteError> {
        let op = async {
            let got = self.inner.store.get(path).await?;
            if got.meta.size > limit as u64 {
                return Ok(Err(got.meta.size));
            }
            got.bytes().await.map(Ok)
        };
        match self.bounded("reading", path, op).await? {
            Ok(Ok(b)) => Ok(Some(b)),
            Ok(Err(size)) => Err(self.corrupt(
                path,
                &format!("it has {size} bytes, more than the {limit} expected at most"),
            )),
            Err(object_store::Error::NotFound { source, .. }) if !bucket_missing(source.as_ref()) => Ok(None),
            Err(e) => Err(self.classify("reading", path, e)),
        }
    }

    /// Creates `path` unless it exists; true if this call created it.
    async fn create(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<bool, RemoteError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let op = self.inner.store.put_opts(path, PutPayload::from(bytes), opts);
        match self.bounded("writing", path, op).await? {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.classify("writing", path, e)),
        }
    }

    async fn overwrite(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<(), RemoteError> {
        let op = self.inner.store.put(path, PutPayload::from(bytes));
        match self.bounded("writing", path, op).await? {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify("writing", path, e)),
        }
    }

    async fn bounded<T>(
        &self,
        op: &str,
        path: &ObjectPath,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, RemoteError> {
        tokio::time::timeout(self.inner.deadline, fut)
            .await
            .map_err(|_| self.timeout_error(op, path))
    }
}

/// `scheme://bucket.host:port` from `scheme://host:port`.
fn bucket_subdomain(endpoint: &str, bucket: &str) -> Option<String> {
    let mut url = url::Url::parse(endpoint).ok()?;
    let host = format!("{bucket}.{}", url.host_str()?);
    url.set_host(Some(&host)).ok()?;
    Some(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoint() {
        assert_eq!(
            bucket_subdomain("https://s3.example.com:8443", "team").as_deref(),
            Some("https://team.s3.example.com:8443")
        );
    }

    fn open(url: &str, env: &[(&str, &str)]) -> Result<Remote, RemoteError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let var = move |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        Remote::open_with_env(&RemoteConfig::parse(url).unwrap(), &var)
    }

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDOPEN"),
        ("AWS_SECRET_ACCESS_KEY", "opensecret"),
    ];

    #[test]
    fn endpoints_and_addressing() {
        let r = open("s3://team/p?region=eu-west-1", &KEYS).unwrap();
        assert_eq!(r.inner.endpoint, "https://team.s3.eu-west-1.amazonaws.com");
        let r = open("s3://team.dots/p?region=eu-west-1", &KEYS).unwrap();
        assert_eq!(r.inner.endpoint, "https://s3.eu-west-1.amazonaws.com");
        let r = open("s3://team/p?endpoint=http://127.0.0.1:9000", &KEYS).unwrap();
        assert_eq!(r.inner.endpoint, "http://127.0.0.1:9000");
        assert_eq!(
            r.object_url(&r.blob_path(&Hash::of(b"x"))),
            format!("s3://team/p/daydream/v1/blobs/{}", Hash::of(b"x"))
        );
        let r = open("s3://team?endpoint=https://minio.lan&addressing=virtual", &KEYS).unwrap();
        assert_eq!(r.inner.endpoint, "https://team.minio.lan");
        let e = open("s3://team?endpoint=http://minio.lan", &KEYS).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("allow-http=true"), "{e}");
        assert!(open("s3://team?endpoint=http://minio.lan&allow-http=true", &KEYS).is_ok());
        let env_endpoint = [KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", "http://localhost:4566")];
        assert_eq!(
            open("s3://team", &env_endpoint).unwrap().inner.endpoint,
            "http://localhost:4566"
        );
    }

    #[test]
    fn no_credentials_is_a_config_error_naming_the_remote() {
        let e = open("s3://team/p", &[("HOME", "/nonexistent-home")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().starts_with("remote cache s3://team/p: no AWS credentials"),
            "{e}"
        );
        let r = open("s3://team/p", &KEYS).unwrap();
        let shown = format!("{r:?}");
        assert!(!shown.contains("AKIDOPEN") && !shown.contains("opensecret"), "{shown}");
    }

    #[test]
    fn a_missing_directory_is_not_found() {
        let e = open("file:///nonexistent/daydream-remote", &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(
            e.message().contains("/nonexistent/daydream-remote does not exist"),
            "{e}"
        );
    }
}
