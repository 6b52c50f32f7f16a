//! Where Quire finds its project: `api_url`, `anon_key`, `companion_url`.
//!
//! Sources, later ones winning:
//! 1. built-in defaults (the local dev stack's URLs; no anon key);
//! 2. `config.toml` in the OS config directory (`directories`: on Linux
//!    `$XDG_CONFIG_HOME/quire/config.toml`), or the file named by
//!    `QUIRE_CONFIG`;
//! 3. `QUIRE_API_URL`, `QUIRE_ANON_KEY`, `QUIRE_COMPANION_URL`;
//! 4. a stack file (`--stack .quire/stack.json`, written by
//!    `cargo xtask stack up`), of which only those three fields are read: the
//!    file also holds the service key and JWT secret, which a client must
//!    never load.
//!
//! Both URLs must be https, or plain http to a loopback host (the local
//! stack): the rule of [`crate::discovery`], applied to configured values too.
//!
//! The anon key is a public key (every client ships it), but it is still
//! never logged.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};

/// Default API URL: the dev stack's sandbox.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:54321";
/// Default companion URL: the dev stack's companion.
pub const DEFAULT_COMPANION_URL: &str = "http://127.0.0.1:54380";

/// The project the core talks to.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the Powabase project (`/auth/v1`, `/rest/v1`, … below it).
    pub api_url: Url,
    /// The project's anon (publishable) key, sent as `apikey`.
    pub anon_key: String,
    /// Base URL of the Quire companion.
    pub companion_url: Url,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_url", &self.api_url.as_str())
            .field("anon_key", &"[hidden]")
            .field("companion_url", &self.companion_url.as_str())
            .finish()
    }
}

/// The fields a `config.toml` or stack file may set. Unknown fields are
/// ignored (the stack file has many).
#[derive(Debug, Default, Deserialize)]
struct Fields {
    api_url: Option<String>,
    anon_key: Option<String>,
    companion_url: Option<String>,
}

impl Config {
    /// A configuration from explicit values (tests, embedding).
    pub fn new(api_url: &str, anon_key: &str, companion_url: &str) -> Result<Config> {
        Ok(Config {
            api_url: parse_url("api_url", api_url)?,
            anon_key: anon_key.to_owned(),
            companion_url: parse_url("companion_url", companion_url)?,
        })
    }

    /// Loads the configuration from the OS config file, the environment and,
    /// when given, a stack file (see the module docs for the order).
    pub fn load(stack: Option<&Path>) -> Result<Config> {
        let file = match config_file() {
            Some(path) if path.exists() => Some(read(&path)?),
            _ => None,
        };
        let stack = stack.map(read).transpose()?;
        Config::from_sources(
            file.as_deref(),
            |name| std::env::var(name).ok().filter(|v| !v.is_empty()),
            stack.as_deref(),
        )
    }

    /// The pure part of [`Config::load`]: `config_toml` and `stack_json` are
    /// file contents, `env` looks up a variable.
    pub fn from_sources(
        config_toml: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        stack_json: Option<&str>,
    ) -> Result<Config> {
        let mut fields = Fields {
            api_url: Some(DEFAULT_API_URL.to_owned()),
            anon_key: None,
            companion_url: Some(DEFAULT_COMPANION_URL.to_owned()),
        };
        if let Some(text) = config_toml {
            let file: Fields = toml::from_str(text)
                .map_err(|e| Error::NotConfigured(format!("config.toml is not valid: {e}")))?;
            fields.merge(file);
        }
        fields.merge(Fields {
            api_url: env("QUIRE_API_URL"),
            anon_key: env("QUIRE_ANON_KEY"),
            companion_url: env("QUIRE_COMPANION_URL"),
        });
        if let Some(text) = stack_json {
            let stack: Fields = serde_json::from_str(text)
                .map_err(|e| Error::NotConfigured(format!("the stack file is not valid: {e}")))?;
            fields.merge(stack);
        }
        let anon_key = fields.anon_key.ok_or_else(|| {
            Error::NotConfigured(
                "no anon key. Set anon_key in config.toml, QUIRE_ANON_KEY, or pass --stack .quire/stack.json".into(),
            )
        })?;
        Ok(Config {
            api_url: parse_url(
                "api_url",
                fields.api_url.as_deref().unwrap_or(DEFAULT_API_URL),
            )?,
            anon_key,
            companion_url: parse_url(
                "companion_url",
                fields
                    .companion_url
                    .as_deref()
                    .unwrap_or(DEFAULT_COMPANION_URL),
            )?,
        })
    }

    /// `api_url` without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }

    /// `companion_url` without a trailing slash.
    pub fn companion_base(&self) -> &str {
        self.companion_url.as_str().trim_end_matches('/')
    }
}

impl Fields {
    fn merge(&mut self, other: Fields) {
        if other.api_url.is_some() {
            self.api_url = other.api_url;
        }
        if other.anon_key.is_some() {
            self.anon_key = other.anon_key;
        }
        if other.companion_url.is_some() {
            self.companion_url = other.companion_url;
        }
    }
}

/// The config file: `QUIRE_CONFIG` if set, else `config.toml` in the OS
/// config directory (`None` when the OS has no home directory).
pub fn config_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("QUIRE_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    directories::ProjectDirs::from("", "", "quire")
        .map(|dirs| dirs.config_dir().join("config.toml"))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::NotConfigured(format!("could not read {}: {e}", path.display())))
}

fn parse_url(field: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value)
        .map_err(|e| Error::NotConfigured(format!("{field} {value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::NotConfigured(format!(
            "{field} must be an http or https URL, not {value:?}"
        )));
    }
    // The rule of the connect screen's address (crate::discovery): passwords
    // and tokens go there.
    if !crate::discovery::is_secure_or_local(&url) {
        return Err(Error::NotConfigured(format!(
            "{field} {value:?} does not use https, so passwords and tokens sent there could be \
             read on the way. Use its https:// address; plain http is only for this computer \
             (localhost, 127.0.0.1, ::1)"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn defaults_need_only_an_anon_key() {
        let config = Config::from_sources(None, env(&[("QUIRE_ANON_KEY", "anon")]), None).unwrap();
        assert_eq!(config.api_base(), DEFAULT_API_URL);
        assert_eq!(config.companion_base(), DEFAULT_COMPANION_URL);
        assert_eq!(config.anon_key, "anon");
    }

    #[test]
    fn without_an_anon_key_the_message_says_where_to_put_one() {
        let error = Config::from_sources(None, env(&[]), None).unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::NotConfigured);
        assert!(error.to_string().contains("QUIRE_ANON_KEY"), "{error}");
    }

    #[test]
    fn env_overrides_the_file_and_the_stack_overrides_env() {
        let file = "api_url = \"https://file.example.com\"\nanon_key = \"file-key\"\ncompanion_url = \"http://127.0.0.2:2\"\n";
        let config = Config::from_sources(
            Some(file),
            env(&[("QUIRE_API_URL", "https://env.example.com:1")]),
            None,
        )
        .unwrap();
        assert_eq!(config.api_url.as_str(), "https://env.example.com:1/");
        assert_eq!(config.anon_key, "file-key");
        assert_eq!(config.companion_url.as_str(), "http://127.0.0.2:2/");

        let stack = r#"{"api_url":"http://localhost:1","anon_key":"stack-key","companion_url":"http://[::1]:2"}"#;
        let config = Config::from_sources(
            Some(file),
            env(&[("QUIRE_API_URL", "https://env.example.com:1")]),
            Some(stack),
        )
        .unwrap();
        assert_eq!(config.api_url.as_str(), "http://localhost:1/");
        assert_eq!(config.anon_key, "stack-key");
    }

    #[test]
    fn bad_urls_are_named() {
        let error = Config::from_sources(
            None,
            env(&[("QUIRE_ANON_KEY", "k"), ("QUIRE_COMPANION_URL", "ftp://x")]),
            None,
        )
        .unwrap_err();
        assert!(error.to_string().contains("companion_url"), "{error}");
    }

    #[test]
    fn plain_http_is_only_for_this_computer() {
        for (name, value) in [
            ("QUIRE_API_URL", "http://127.0.0.1:54321"),
            ("QUIRE_API_URL", "https://project.example.com"),
            ("QUIRE_COMPANION_URL", "http://localhost:54380"),
            ("QUIRE_COMPANION_URL", "https://quire.example.com"),
        ] {
            let config =
                Config::from_sources(None, env(&[("QUIRE_ANON_KEY", "k"), (name, value)]), None);
            assert!(config.is_ok(), "{name}={value}: {config:?}");
        }
        for (name, field, value) in [
            ("QUIRE_API_URL", "api_url", "http://project.example.com"),
            (
                "QUIRE_COMPANION_URL",
                "companion_url",
                "http://10.0.0.2:54380",
            ),
            (
                "QUIRE_COMPANION_URL",
                "companion_url",
                "http://localhost.example.com",
            ),
        ] {
            let error =
                Config::from_sources(None, env(&[("QUIRE_ANON_KEY", "k"), (name, value)]), None)
                    .unwrap_err();
            assert_eq!(error.code(), crate::ErrorCode::NotConfigured, "{value}");
            let said = error.to_string();
            assert!(said.contains(field) && said.contains(value), "{said}");
            assert!(said.contains("https://"), "{said}");
            assert!(said.contains("only for this computer"), "{said}");
        }
    }
}
