//! Where the refresh token lives between runs: the OS keyring, and nowhere
//! else on disk.
//!
//! [`KeyringStore`] uses the platform's native store through the `keyring`
//! crate: Secret Service on Linux (gnome-keyring, KWallet), Keychain on macOS,
//! Credential Manager on Windows. One entry per project and profile: service
//! `quire`, account = the project's API URL for the profile `default`,
//! `<api_url>#<profile>` for any other (see [`Profile`]), so two projects, or
//! two profiles of one (two "devices" on one machine), keep two entries. The
//! desktop app and `quire-cli` use the same rule.
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

/// A named sign-in on one machine: its own keyring entry, and in the desktop
/// app its own window, window state and single-instance lock. `default`
/// unless `--profile` / `QUIRE_PROFILE` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profile(String);

impl Profile {
    /// The name of the profile used when none is given.
    pub const DEFAULT: &'static str = "default";

    /// A profile by name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, not
    /// starting with `.` (it names a directory, so nothing else is accepted).
    pub fn new(name: &str) -> Result<Profile, Error> {
        let valid = (1..=64).contains(&name.len())
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Profile(name.to_owned()))
        } else {
            Err(Error::NotConfigured(format!(
                "the profile name {name:?} is not valid: use 1 to 64 letters, digits, '-', '_' or '.'"
            )))
        }
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Whether this is the `default` profile.
    pub fn is_default(&self) -> bool {
        self.0 == Profile::DEFAULT
    }

    /// The keyring account of this profile for the project at `api_url`:
    /// `<api_url>` for `default`, `<api_url>#<name>` otherwise.
    pub fn keyring_account(&self, api_url: &url::Url) -> String {
        let base = api_url.as_str().trim_end_matches('/');
        if self.is_default() {
            base.to_owned()
        } else {
            format!("{base}#{}", self.0)
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile(Profile::DEFAULT.to_owned())
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The OS keyring.
pub struct KeyringStore {
    account: String,
}

impl KeyringStore {
    /// The entry for the project at `api_url` (profile `default`).
    pub fn new(api_url: &url::Url) -> KeyringStore {
        KeyringStore::for_profile(api_url, &Profile::default())
    }

    /// The entry of `profile` for the project at `api_url`.
    pub fn for_profile(api_url: &url::Url, profile: &Profile) -> KeyringStore {
        KeyringStore {
            account: profile.keyring_account(api_url),
        }
    }

    /// The keyring account this store uses (service [`KEYRING_SERVICE`]).
    pub fn account(&self) -> &str {
        &self.account
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_name_keyring_accounts_the_way_the_cli_and_app_share() {
        let url = url::Url::parse("http://127.0.0.1:54321/").unwrap();
        assert_eq!(KeyringStore::new(&url).account(), "http://127.0.0.1:54321");
        let second = Profile::new("A2").unwrap();
        assert_eq!(
            KeyringStore::for_profile(&url, &second).account(),
            "http://127.0.0.1:54321#A2"
        );
        assert_eq!(
            KeyringStore::for_profile(&url, &Profile::new("default").unwrap()).account(),
            "http://127.0.0.1:54321"
        );
    }

    #[test]
    fn profile_names_are_safe_directory_names() {
        for good in ["default", "A", "work-laptop", "b_2", "v1.2"] {
            assert!(Profile::new(good).is_ok(), "{good}");
        }
        let long = "x".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            long.as_str(),
        ] {
            assert_eq!(
                Profile::new(bad).unwrap_err().code(),
                crate::ErrorCode::NotConfigured,
                "{bad:?}"
            );
        }
    }
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
