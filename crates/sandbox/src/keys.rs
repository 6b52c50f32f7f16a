//! The project's keys: the JWT secret (one per data directory) and the anon
//! and service-role API keys signed with it, as a Powabase project has.
//!
//! The secret lives in `<data_dir>/jwt_secret` (0600), created with 64
//! random URL-safe characters on first start and reused afterwards, so keys
//! handed out to clients survive a restart. The API keys are HS256 JWTs like
//! the Supabase CLI's: `{"iss":"supabase-demo","role":"anon"|"service_role","iat","exp"}`,
//! valid for ten years. Their `iat` is the secret file's modification time,
//! so a data directory always yields the very same keys.

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::jwt::JwtKeys;

/// Name of the secret's file inside the data directory.
pub const JWT_SECRET_FILE: &str = "jwt_secret";
/// The shortest secret allowed on a non-loopback listen address, in bytes.
pub const MIN_PUBLIC_SECRET_BYTES: usize = 32;
/// `iss` of the API keys, as the Supabase CLI mints them.
pub const API_KEY_ISSUER: &str = "supabase-demo";
/// `iat` of the API keys when the secret comes from the configuration (no file).
const FIXED_IAT: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const TEN_YEARS_SECS: i64 = 10 * 365 * 24 * 60 * 60;

/// What can go wrong while loading or creating the keys.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The data directory could not be created.
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The JWT secret file could not be read or created.
    #[error("could not read or create the JWT secret {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The JWT secret file is empty.
    #[error("the JWT secret in {path} is empty; delete the file to get a new one")]
    EmptySecret {
        /// The file.
        path: PathBuf,
    },
    /// A secret too short for a non-loopback address.
    #[error(
        "refusing to listen on {addr}: a non-loopback address needs a JWT secret of at least \
         {MIN_PUBLIC_SECRET_BYTES} bytes (this one has {len}); listen on 127.0.0.1 or use a longer secret"
    )]
    WeakSecretOnPublicAddress {
        /// The address asked for.
        addr: SocketAddr,
        /// The secret's length in bytes.
        len: usize,
    },
    /// The keys file (`--keys-file`) could not be written.
    #[error("could not write the keys file {path}: {source}")]
    KeysFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The JWT secret and the two API keys signed with it.
#[derive(Clone)]
pub struct ProjectKeys {
    jwt_secret: SecretString,
    anon_key: SecretString,
    service_role_key: SecretString,
}

impl std::fmt::Debug for ProjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProjectKeys([REDACTED])")
    }
}

#[derive(Serialize)]
struct ApiKeyClaims<'a> {
    iss: &'a str,
    role: &'a str,
    iat: i64,
    exp: i64,
}

/// The keys file `--keys-file` and `quire-sandbox keys` write, for `cargo xtask`.
#[derive(Serialize)]
struct KeysFile<'a> {
    api_url: &'a str,
    anon_key: &'a str,
    service_role_key: &'a str,
    jwt_secret: &'a str,
}

impl ProjectKeys {
    /// Loads the data directory's secret, creating the directory (0700) and the
    /// secret (0600) when missing, or uses `configured` when given.
    pub fn load_or_create(
        data_dir: &Path,
        configured: Option<&SecretString>,
    ) -> Result<Self, KeysError> {
        let (secret, iat) = match configured {
            Some(secret) => (secret.clone(), FIXED_IAT),
            None => read_or_create_secret(data_dir)?,
        };
        Ok(Self::from_secret(secret, iat))
    }

    fn from_secret(jwt_secret: SecretString, iat: i64) -> Self {
        let signer = JwtKeys::new(&jwt_secret);
        let key = |role: &str| {
            SecretString::from(signer.sign(&ApiKeyClaims {
                iss: API_KEY_ISSUER,
                role,
                iat,
                exp: iat + TEN_YEARS_SECS,
            }))
        };
        ProjectKeys {
            anon_key: key("anon"),
            service_role_key: key("service_role"),
            jwt_secret,
        }
    }

    /// The HS256 secret every token of the project is signed with.
    pub fn jwt_secret(&self) -> &SecretString {
        &self.jwt_secret
    }

    /// The anon (publishable) API key: a JWT with `role: anon`.
    pub fn anon_key(&self) -> &SecretString {
        &self.anon_key
    }

    /// The service-role (secret) API key: a JWT with `role: service_role`.
    pub fn service_role_key(&self) -> &SecretString {
        &self.service_role_key
    }

    /// Refuses a secret shorter than [`MIN_PUBLIC_SECRET_BYTES`] on an address
    /// other machines can reach.
    pub fn check_listen_address(&self, addr: SocketAddr) -> Result<(), KeysError> {
        let len = self.jwt_secret.expose_secret().len();
        if !addr.ip().is_loopback() && len < MIN_PUBLIC_SECRET_BYTES {
            return Err(KeysError::WeakSecretOnPublicAddress { addr, len });
        }
        Ok(())
    }

    /// Writes `{"api_url","anon_key","service_role_key","jwt_secret"}` to
    /// `path` with mode 0600, atomically (a temporary file renamed into place),
    /// so a reader that sees the file sees all of it.
    pub fn write_keys_file(&self, path: &Path, api_url: &Url) -> Result<(), KeysError> {
        let body = serde_json::to_vec_pretty(&KeysFile {
            api_url: api_url.as_str().trim_end_matches('/'),
            anon_key: self.anon_key.expose_secret(),
            service_role_key: self.service_role_key.expose_secret(),
            jwt_secret: self.jwt_secret.expose_secret(),
        })
        .expect("keys serialize");
        write_private_atomically(path, &body).map_err(|source| KeysError::KeysFile {
            path: path.to_owned(),
            source,
        })
    }
}

fn read_or_create_secret(data_dir: &Path) -> Result<(SecretString, i64), KeysError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| KeysError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
    let path = data_dir.join(JWT_SECRET_FILE);
    let file_error = |source| KeysError::SecretFile {
        path: path.clone(),
        source,
    };

    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            let mut bytes = [0u8; 48];
            getrandom::fill(&mut bytes).map_err(|e| file_error(io::Error::other(e.to_string())))?;
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            file.write_all(secret.as_bytes()).map_err(file_error)?;
            file.sync_all().map_err(file_error)?;
            tracing::info!(path = %path.display(), "created a new JWT secret");
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(file_error(e)),
    }

    let metadata = fs::metadata(&path).map_err(file_error)?;
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the JWT secret file is readable by other users; `chmod 600` it"
        );
    }
    let text = fs::read_to_string(&path).map_err(file_error)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(KeysError::EmptySecret { path });
    }
    Ok((SecretString::from(secret.to_owned()), metadata.mtime()))
}

fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_keeps_its_secret_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let first = ProjectKeys::load_or_create(&data, None).unwrap();
        let second = ProjectKeys::load_or_create(&data, None).unwrap();

        assert_eq!(
            first.jwt_secret().expose_secret(),
            second.jwt_secret().expose_secret()
        );
        assert_eq!(
            first.anon_key().expose_secret(),
            second.anon_key().expose_secret()
        );
        assert!(first.jwt_secret().expose_secret().len() >= MIN_PUBLIC_SECRET_BYTES);

        let mode = fs::metadata(data.join(JWT_SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn two_data_directories_get_different_secrets() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ka = ProjectKeys::load_or_create(a.path(), None).unwrap();
        let kb = ProjectKeys::load_or_create(b.path(), None).unwrap();
        assert_ne!(
            ka.jwt_secret().expose_secret(),
            kb.jwt_secret().expose_secret()
        );
    }

    #[test]
    fn api_keys_carry_their_role() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ProjectKeys::load_or_create(dir.path(), None).unwrap();
        let verifier = JwtKeys::new(keys.jwt_secret());
        let anon = verifier.verify(keys.anon_key().expose_secret()).unwrap();
        let service = verifier
            .verify(keys.service_role_key().expose_secret())
            .unwrap();
        assert_eq!(anon.role(), Some("anon"));
        assert_eq!(service.role(), Some("service_role"));
        assert_eq!(anon.claims()["iss"], API_KEY_ISSUER);
        let exp = anon.claims()["exp"].as_i64().unwrap();
        let iat = anon.claims()["iat"].as_i64().unwrap();
        assert_eq!(exp - iat, TEN_YEARS_SECS);
    }

    #[test]
    fn a_short_secret_is_refused_off_loopback_only() {
        let keys = ProjectKeys::from_secret(SecretString::from("short".to_owned()), FIXED_IAT);
        assert!(
            keys.check_listen_address("127.0.0.1:54321".parse().unwrap())
                .is_ok()
        );
        assert!(
            keys.check_listen_address("[::1]:54321".parse().unwrap())
                .is_ok()
        );
        assert!(matches!(
            keys.check_listen_address("0.0.0.0:54321".parse().unwrap()),
            Err(KeysError::WeakSecretOnPublicAddress { len: 5, .. })
        ));
        let long = ProjectKeys::from_secret(SecretString::from("x".repeat(32)), FIXED_IAT);
        assert!(
            long.check_listen_address("0.0.0.0:54321".parse().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn the_keys_file_is_private_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ProjectKeys::load_or_create(dir.path(), None).unwrap();
        let path = dir.path().join("out/keys.json");
        let api_url = Url::parse("http://127.0.0.1:54321").unwrap();
        keys.write_keys_file(&path, &api_url).unwrap();

        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["api_url"], "http://127.0.0.1:54321");
        assert_eq!(json["anon_key"], keys.anon_key().expose_secret());
        assert_eq!(
            json["service_role_key"],
            keys.service_role_key().expose_secret()
        );
        assert_eq!(json["jwt_secret"], keys.jwt_secret().expose_secret());
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_output_hides_keys() {
        let keys =
            ProjectKeys::from_secret(SecretString::from("s3cr3t-value".to_owned()), FIXED_IAT);
        let shown = format!("{keys:?}");
        assert!(!shown.contains("s3cr3t"));
        assert!(!shown.contains(keys.anon_key().expose_secret()));
    }
}
