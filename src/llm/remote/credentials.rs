//! The AWS credentials of the environment or a profile, for the remote answer cache: only ever
//! handed to the S3 client, never printed.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::engine::cache::{ConfigError, check_endpoint};
use crate::llm::client::Secret;

/// AWS credentials: only ever handed to the S3 client; `Debug` shows where they came from.
pub(crate) struct Credentials {
    pub key_id: Secret,
    pub secret: Secret,
    pub token: Option<Secret>,
    /// `environment`, or `profile NAME of FILE`.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials(*** from {})", self.source)
    }
}

impl Credentials {
    /// Every credential string, for scrubbing from messages.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.key_id.expose().to_owned(), self.secret.expose().to_owned()];
        out.extend(self.token.as_ref().map(|t| t.expose().to_owned()));
        out.retain(|s| !s.is_empty());
        out
    }
}

/// What the AWS environment says: credentials, and the region and endpoint a URL may leave out.
#[derive(Debug)]
pub(crate) struct AwsEnv {
    pub credentials: Credentials,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

/// Reads the AWS environment through `var` (the process's, or a test's).
pub(crate) fn aws_env(var: &dyn Fn(&str) -> Option<String>) -> Result<AwsEnv, ConfigError> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned());
    let home = get("HOME").map(PathBuf::from);
    let file_of = |env: &str, name: &str| {
        get(env)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let profile = get("AWS_PROFILE").or_else(|| get("AWS_DEFAULT_PROFILE"));
    let profile_name = profile.clone().unwrap_or_else(|| "default".to_owned());
    let config_file = file_of("AWS_CONFIG_FILE", "config");
    let config_section = if profile_name == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile_name}")
    };
    let config = config_file.as_deref().and_then(|p| ini_section(p, &config_section));
    let region = get("AWS_REGION")
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .or_else(|| config.as_ref().and_then(|c| lookup(c, "region")));
    let endpoint = match get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")) {
        Some(e) => Some(check_endpoint(&e).map_err(|e| ConfigError(format!("AWS_ENDPOINT_URL: {e}")))?),
        None => None,
    };
    let credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Credentials {
            key_id: Secret::new(id),
            secret: Secret::new(secret),
            token: get("AWS_SESSION_TOKEN").map(Secret::new),
            source: "environment".to_owned(),
        },
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError(
                "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both, or neither to use a profile"
                    .to_owned(),
            ));
        }
        (None, None) => from_profile(
            &file_of("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            &profile_name,
            config_file.as_deref(),
            &config_section,
            profile.is_some(),
        )?,
    };
    Ok(AwsEnv {
        credentials,
        region,
        endpoint,
    })
}

fn from_profile(
    credentials_file: &Option<PathBuf>,
    name: &str,
    config_file: Option<&Path>,
    config_section: &str,
    named: bool,
) -> Result<Credentials, ConfigError> {
    let sources = [
        credentials_file.as_deref().map(|p| (p, name.to_owned())),
        config_file.map(|p| (p, config_section.to_owned())),
    ];
    let mut found_section = None;
    for (file, section) in sources.into_iter().flatten() {
        let Some(entries) = ini_section(file, &section) else {
            continue;
        };
        let (id, secret) = (
            lookup(&entries, "aws_access_key_id"),
            lookup(&entries, "aws_secret_access_key"),
        );
        if let (Some(id), Some(secret)) = (id, secret) {
            return Ok(Credentials {
                key_id: Secret::new(id),
                secret: Secret::new(secret),
                token: lookup(&entries, "aws_session_token").map(Secret::new),
                source: format!("profile {name} of {}", file.display()),
            });
        }
        found_section.get_or_insert_with(|| file.display().to_string());
    }
    Err(ConfigError(match found_section {
        Some(file) => format!(
            "the AWS profile `{name}` of {file} has no aws_access_key_id and aws_secret_access_key (SSO and \
             credential_process profiles are not read: export the credentials, e.g. \
             `eval \"$(aws configure export-credentials --format env)\"`)"
        ),
        None if named => {
            format!("the AWS profile `{name}` (AWS_PROFILE) is in neither ~/.aws/credentials nor ~/.aws/config")
        }
        None => "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if \
                 temporary), or AWS_PROFILE naming a profile of ~/.aws/credentials"
            .to_owned(),
    }))
}

fn lookup(entries: &[(String, String)], key: &str) -> Option<String> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// The `key = value` lines of `[section]` in an AWS INI file; `None` if the file or section is
/// missing. Comment lines start with `#` or `;`.
fn ini_section(path: &Path, section: &str) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut inside = false;
    let mut found = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            found |= inside;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn credentials_from_the_environment() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENVKEY".into()),
            ("AWS_SECRET_ACCESS_KEY", "envsecretvalue".into()),
            ("AWS_SESSION_TOKEN", "envtokenvalue".into()),
            ("AWS_DEFAULT_REGION", "eu-north-1".into()),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566".into()),
        ]);
        let aws = aws_env(&env).unwrap();
        assert_eq!(aws.credentials.key_id.expose(), "AKIDENVKEY");
        assert_eq!(aws.credentials.token.as_ref().unwrap().expose(), "envtokenvalue");
        assert_eq!(aws.region.as_deref(), Some("eu-north-1"));
        assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        let shown = format!("{aws:?}");
        for s in aws.credentials.secrets() {
            assert!(!shown.contains(&s), "{shown}");
        }
        let half = aws_env(&env_of(&[("AWS_ACCESS_KEY_ID", "AKIDENVKEY".into())])).unwrap_err();
        assert!(half.0.contains("set both") && !half.0.contains("AKIDENVKEY"), "{half}");
        let none = aws_env(&env_of(&[("HOME", "/nonexistent-home".into())])).unwrap_err();
        assert!(none.0.contains("no AWS credentials"), "{none}");
    }

    #[test]
    fn credentials_from_a_profile() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = defaultsecret\n\n\
             # team\n[team]\naws_access_key_id=AKIDTEAM\naws_secret_access_key=teamsecret\n[sso]\nsso_session = x\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = us-west-2\n[profile team]\nregion = ap-south-1\n",
        )
        .unwrap();
        let home = dir.path().display().to_string();
        let a = aws_env(&env_of(&[("HOME", home.clone())])).unwrap();
        assert_eq!(a.credentials.key_id.expose(), "AKIDDEFAULT");
        assert_eq!(a.region.as_deref(), Some("us-west-2"));
        let t = aws_env(&env_of(&[("HOME", home.clone()), ("AWS_PROFILE", "team".into())])).unwrap();
        assert_eq!(t.credentials.secret.expose(), "teamsecret");
        assert_eq!(t.region.as_deref(), Some("ap-south-1"));
        assert!(
            t.credentials.source.starts_with("profile team of "),
            "{}",
            t.credentials.source
        );
        let sso = aws_env(&env_of(&[("HOME", home.clone()), ("AWS_PROFILE", "sso".into())])).unwrap_err();
        assert!(sso.0.contains("export-credentials"), "{sso}");
        let missing = aws_env(&env_of(&[("HOME", home), ("AWS_PROFILE", "nobody".into())])).unwrap_err();
        assert!(missing.0.contains("`nobody`"), "{missing}");
    }
}
