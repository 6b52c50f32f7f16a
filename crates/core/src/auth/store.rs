//! Where the refresh token lives between runs: the OS keyring, and nowhere
//! else on disk.
//!
//! [`KeyringStore`] uses the platform's native store through the `keyring`
//! crate: Secret Service on Linux (gnome-keyring, KWallet), Keychain on macOS,
//! Credential Manager on Windows. One entry per project: service `quire`,
//! account = the project's API URL, so signing in to two projects keeps two
//! entries.
//!
//! The `keyring` calls block (D-Bus round trips), so the core runs them on
//! tokio's blocking pool.

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// Keeps one refresh token. Implementations must not write it anywhere a
/// person's files or logs could pick it up.
pub trait TokenStore: Send + Sync + 'static {
    /// The saved token, if any.
    fn load(&self) -> Result<Option<SecretString>, Error>;
    /// Replaces the saved token.
    fn save(&self, token: &SecretString) -> Result<(), Error>;
    /// Removes the saved token (no error when there is none).
    fn clear(&self) -> Result<(), Error>;
}

/// The keyring service name of Quire's entries.
pub const KEYRING_SERVICE: &str = "quire";

/// The OS keyring.
pub struct KeyringStore {
    account: String,
}

impl KeyringStore {
    /// The entry for the project at `api_url`.
    pub fn new(api_url: &url::Url) -> KeyringStore {
        KeyringStore {
            account: api_url.as_str().trim_end_matches('/').to_owned(),
        }
    }

    fn entry(&self) -> Result<keyring::Entry, Error> {
        keyring::Entry::new(KEYRING_SERVICE, &self.account).map_err(keyring_error)
    }
}

impl TokenStore for KeyringStore {
    fn load(&self) -> Result<Option<SecretString>, Error> {
        match self.entry()?.get_password() {
            Ok(token) => Ok(Some(SecretString::from(token))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }

    fn save(&self, token: &SecretString) -> Result<(), Error> {
        self.entry()?
            .set_password(token.expose_secret())
            .map_err(keyring_error)
    }

    fn clear(&self) -> Result<(), Error> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(e)),
        }
    }
}

fn keyring_error(error: keyring::Error) -> Error {
    let detail = match &error {
        keyring::Error::PlatformFailure(e) => format!("the keyring service is not available: {e}"),
        keyring::Error::NoStorageAccess(e) => {
            format!("the keyring is locked or refused access: {e}")
        }
        other => other.to_string(),
    };
    Error::KeyringUnavailable(detail)
}

/// A store in memory, for the core's unit tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct MemoryStore(std::sync::Mutex<Option<String>>);

#[cfg(test)]
impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<SecretString>, Error> {
        Ok(self.0.lock().unwrap().clone().map(SecretString::from))
    }
    fn save(&self, token: &SecretString) -> Result<(), Error> {
        *self.0.lock().unwrap() = Some(token.expose_secret().to_owned());
        Ok(())
    }
    fn clear(&self) -> Result<(), Error> {
        *self.0.lock().unwrap() = None;
        Ok(())
    }
}
