//! The core's errors: one enum the desktop shell and the CLI branch on, each
//! variant with a small [`ErrorCode`] for the UI and a message written for the
//! person reading it (what happened, what to do).
//!
//! When a service answers something unexpected its raw body is kept in the
//! error (`body`), cut to a few kilobytes: debugging a platform quirk without
//! it is guesswork.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use ts_rs::TS;

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the UI switches on. Serialized in `snake_case` (`not_signed_in`, …);
/// never derived from message text. The one list of codes the UI knows
/// (`ui/src/lib/types.ts` is generated from it); the companion's own codes
/// reach the UI as one of these ([`ErrorCode::for_companion`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The API URL, anon key or companion URL is missing or malformed.
    NotConfigured,
    /// Nobody is signed in (or the session ended).
    NotSignedIn,
    /// Wrong email or password.
    InvalidCredentials,
    /// The person cancelled or failed the sign-in in the browser.
    SignInCancelled,
    /// A service could not be reached.
    Offline,
    /// A service answered with a server error.
    PlatformUnavailable,
    /// The signed-in person may not do this.
    Forbidden,
    /// The thing does not exist, or is not the person's.
    NotFound,
    /// The file's bytes are not a PDF.
    NotAPdf,
    /// The file is empty.
    EmptyFile,
    /// The file is over the size limit.
    TooLarge,
    /// The request conflicts with what is stored.
    Conflict,
    /// A service refused the request's content.
    BadInput,
    /// Too many requests; try again later.
    RateLimited,
    /// The OS keyring could not be used.
    KeyringUnavailable,
    /// The operation was cancelled.
    Cancelled,
    /// A file could not be read.
    FileUnreadable,
    /// A file could not be written.
    FileUnwritable,
    /// A service answered something the core does not understand.
    Unexpected,
    /// The server address typed is not a web address.
    InvalidAddress,
    /// The server address is plain http and not on this computer.
    InsecureServer,
    /// Nothing answered at the server address.
    ServerUnreachable,
    /// Something answered at the server address, but not a Quire server.
    NotAQuireServer,
    /// The project takes no new accounts.
    SignUpClosed,
    /// The address already has an account.
    AccountExists,
    /// The new password is too weak for the project.
    WeakPassword,
}

impl ErrorCode {
    /// The code as the UI sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::NotSignedIn => "not_signed_in",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::SignInCancelled => "sign_in_cancelled",
            ErrorCode::Offline => "offline",
            ErrorCode::PlatformUnavailable => "platform_unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotAPdf => "not_a_pdf",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BadInput => "bad_input",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::KeyringUnavailable => "keyring_unavailable",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::FileUnreadable => "file_unreadable",
            ErrorCode::FileUnwritable => "file_unwritable",
            ErrorCode::Unexpected => "unexpected",
            ErrorCode::InvalidAddress => "invalid_address",
            ErrorCode::InsecureServer => "insecure_server",
            ErrorCode::ServerUnreachable => "server_unreachable",
            ErrorCode::NotAQuireServer => "not_a_quire_server",
            ErrorCode::SignUpClosed => "sign_up_closed",
            ErrorCode::AccountExists => "account_exists",
            ErrorCode::WeakPassword => "weak_password",
        }
    }
}

impl ErrorCode {
    /// What a companion error (the `error` of its body,
    /// `crates/companion/EVENTS.md`) is for the UI. The companion's codes say
    /// what a request got wrong, for its clients; these say what to tell the
    /// person, so several map to one. Exhaustive: a new companion code does
    /// not compile until it is given one. `None` for a code this version does
    /// not know (its HTTP status decides).
    pub fn for_companion(code: &quire_protocol::ErrorCode) -> Option<ErrorCode> {
        use quire_protocol::ErrorCode as Companion;
        Some(match code {
            Companion::InvalidBody
            | Companion::EmptyMessage
            | Companion::TooManyChunks
            | Companion::InvalidTitle
            | Companion::InvalidSha256
            | Companion::EmptyFile
            | Companion::MessageTooLong
            | Companion::TooLarge
            | Companion::NotAPdf
            | Companion::SizeMismatch => ErrorCode::BadInput,
            Companion::Unauthorized => ErrorCode::NotSignedIn,
            Companion::AnonymousNotAllowed => ErrorCode::Forbidden,
            Companion::NotFound => ErrorCode::NotFound,
            Companion::NotRunning
            | Companion::AnswerInProgress
            | Companion::NotUploaded
            | Companion::LimitReached => ErrorCode::Conflict,
            Companion::RateLimited => ErrorCode::RateLimited,
            Companion::Misconfigured | Companion::Internal | Companion::PlatformUnavailable => {
                ErrorCode::PlatformUnavailable
            }
            Companion::Unknown(_) => return None,
        })
    }

    /// What an HTTP error status is for the UI, when the body names no code
    /// Quire knows.
    pub(crate) fn for_status(status: u16) -> ErrorCode {
        match status {
            401 => ErrorCode::NotSignedIn,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            429 => ErrorCode::RateLimited,
            400..=499 => ErrorCode::BadInput,
            500..=599 => ErrorCode::PlatformUnavailable,
            _ => ErrorCode::Unexpected,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which remote service an error came from, named for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// `/auth/v1`.
    Auth,
    /// `/rest/v1`.
    Database,
    /// `/storage/v1`.
    Storage,
    /// `/realtime/v1`.
    Realtime,
    /// The Quire companion.
    Companion,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Auth => "the sign-in service",
            Service::Database => "the Quire database",
            Service::Storage => "file storage",
            Service::Realtime => "live updates",
            Service::Companion => "the Quire companion",
        })
    }
}

/// Why a session ended without the person asking for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignOutReason {
    /// The server no longer accepts the saved session (revoked, expired,
    /// signed out elsewhere); `message` is the server's.
    SessionEnded {
        /// Why, in the server's words.
        message: String,
    },
    /// The saved sign-in is missing from the keyring.
    KeyringEmpty,
}

impl fmt::Display for SignOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignOutReason::SessionEnded { message } => write!(
                f,
                "your session ended ({message}); sign in again to continue"
            ),
            SignOutReason::KeyringEmpty => f.write_str(
                "the saved sign-in is no longer in the system keyring; sign in again to continue",
            ),
        }
    }
}

/// Everything the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is missing or unusable; says what is wrong.
    #[error("Quire is not set up: {0}")]
    NotConfigured(String),

    /// No session: nobody signed in, or the server refused the access token.
    #[error("You are not signed in. Sign in and try again.")]
    NotSignedIn,

    /// The session ended without the person asking for it.
    #[error("You were signed out: {0}.")]
    SignedOut(SignOutReason),

    /// The email and password match no account.
    #[error("That email and password do not match an account. Check them and try again.")]
    InvalidCredentials,

    /// Signing in in the browser did not finish; says why.
    #[error("Signing in did not finish in the browser: {0}")]
    SignInCancelled(String),

    /// A service could not be reached (connection refused, timeout, …).
    #[error("Could not reach {service}. Check your connection and try again.")]
    Offline {
        /// The service that was called.
        service: Service,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A service answered with a server error (HTTP 5xx).
    #[error("{service} is having trouble (HTTP {status}). Try again in a moment.")]
    PlatformUnavailable {
        /// The service that answered.
        service: Service,
        /// The HTTP status it answered with.
        status: u16,
        /// The raw body (cut to a few KB), for debugging.
        body: String,
    },

    /// A service refused the signed-in person this request.
    #[error("You are not allowed to do that: {message}")]
    Forbidden {
        /// The service that refused.
        service: Service,
        /// Its reason, in its words.
        message: String,
    },

    /// The thing does not exist, or row-level security hides it.
    #[error("That {what} was not found. It may have been deleted, or it is not yours.")]
    NotFound {
        /// What was looked for, for a person ("document", "file", …).
        what: String,
    },

    /// The file's first bytes are not a PDF's; nothing was sent.
    #[error("{} is not a PDF (its content does not start like one). Choose a PDF file.", file_name(.path))]
    NotAPdf {
        /// The file chosen.
        path: PathBuf,
    },

    /// The file has no bytes; nothing was sent.
    #[error("{} is empty. Choose a PDF that has content.", file_name(.path))]
    EmptyFile {
        /// The file chosen.
        path: PathBuf,
    },

    /// The file is over the upload limit; nothing was sent.
    #[error("{} is larger than {}, the largest PDF Quire can store. Choose a smaller PDF or split this one.", file_name(.path), megabytes(*.limit))]
    TooLarge {
        /// The file chosen.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The largest size allowed, in bytes.
        limit: u64,
    },

    /// The request conflicts with what is stored or running now (HTTP 409,
    /// a companion code such as `answer_in_progress`, or the core's own
    /// check).
    #[error("{service} refused this because it conflicts with what is already there: {message}")]
    Conflict {
        /// The service that refused.
        service: Service,
        /// What conflicts, in the service's words or the core's.
        message: String,
    },

    /// The request was refused as it stands: a service's other HTTP 4xx, or
    /// the core's own check (a name that several conversations or documents
    /// have, say).
    #[error("{service} refused the request: {message}")]
    BadInput {
        /// The service that refused.
        service: Service,
        /// Its reason, in its words or the core's.
        message: String,
    },

    /// A service asked to slow down (HTTP 429).
    #[error("{service} is busy. Wait a little and try again.")]
    RateLimited {
        /// The service that asked.
        service: Service,
    },

    /// The OS keyring, which keeps the refresh token, could not be used;
    /// says why.
    #[error(
        "The system keyring could not be used ({0}). Quire keeps your sign-in there; unlock or start your keyring and try again."
    )]
    KeyringUnavailable(String),

    /// The operation was cancelled by its caller (an upload's cancel token,
    /// say).
    #[error("Cancelled.")]
    Cancelled,

    /// A local file could not be read.
    #[error("Could not read {}: {source}", .path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },

    /// A local file could not be written.
    #[error("Could not write {}: {source}. Choose another place to save it.", .path.display())]
    FileUnwritable {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },

    /// A service answered something the core cannot read.
    #[error("{service} answered something Quire does not understand ({detail}).")]
    Unexpected {
        /// The service that answered.
        service: Service,
        /// What was wrong with the answer.
        detail: String,
        /// The raw body (cut to a few KB), for debugging.
        body: String,
    },

    /// The server address typed is not a web address.
    #[error(
        "{address:?} is not a web address. Type your Quire server's address, such as quire.example.com."
    )]
    InvalidAddress {
        /// The address, as typed or as parsed.
        address: String,
    },

    /// The server address is plain http and not a loopback host.
    #[error(
        "{address} does not use https, so what you send could be read on the way. Use its https:// address; plain http is only for a server on this computer."
    )]
    InsecureServer {
        /// The address, as parsed.
        address: String,
    },

    /// Nothing answered at the server address.
    #[error(
        "Could not reach {host}. Check the address and your connection; if they are right, the server may be down: ask its administrator."
    )]
    ServerUnreachable {
        /// The address's host.
        host: String,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Something answered at the server address, but not a Quire server of
    /// this app's version.
    #[error(
        "{address} is not a Quire server ({detail}). Check the address: it is the one your administrator gave you."
    )]
    NotAQuireServer {
        /// The address that was asked.
        address: String,
        /// What was wrong with its answer.
        detail: String,
        /// The raw body (cut to a few KB), for debugging.
        body: String,
    },

    /// The project takes no new accounts.
    #[error(
        "This server does not take new accounts. Ask its administrator for one, or sign in with an account you have."
    )]
    SignUpClosed,

    /// The address signing up already has an account.
    #[error(
        "{email} already has an account. Sign in, or use Forgot password if you do not remember it."
    )]
    AccountExists {
        /// The address.
        email: String,
    },

    /// The new password does not meet the project's rules.
    #[error("That password is too weak: {message}. Choose a longer one.")]
    WeakPassword {
        /// The sign-in service's reason.
        message: String,
    },

    /// Pasted as a password-reset code: a link that is not this server's
    /// reset link (Quire's own check; nothing was sent).
    #[error("{}", not_a_reset_link(.other_server.as_deref()))]
    NotAResetLink {
        /// The host of the server the link is a reset link of, when it is
        /// another server's.
        other_server: Option<String>,
    },

    /// The reset code or link is wrong, has expired, or was already used.
    #[error(
        "That reset code is wrong or has expired, or the link was already used (opening it in a browser uses it). Ask for a new reset email, then paste its link here without opening it, or type its six-digit code."
    )]
    ResetCodeExpired,
}

fn not_a_reset_link(other_server: Option<&str>) -> String {
    match other_server {
        Some(host) => format!(
            "That reset link is from another Quire server ({host}), not the one this app is connected to. Use it in the app connected to {host}, or ask for a reset email here and paste its link or type its six-digit code."
        ),
        None => "That is not the link of a password-reset email. Paste the link from the reset email, or type the six-digit code in it.".to_owned(),
    }
}

impl Error {
    /// The code the UI switches on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotConfigured(_) => ErrorCode::NotConfigured,
            Error::NotSignedIn | Error::SignedOut(_) => ErrorCode::NotSignedIn,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::SignInCancelled(_) => ErrorCode::SignInCancelled,
            Error::Offline { .. } => ErrorCode::Offline,
            Error::PlatformUnavailable { .. } => ErrorCode::PlatformUnavailable,
            Error::Forbidden { .. } => ErrorCode::Forbidden,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::NotAPdf { .. } => ErrorCode::NotAPdf,
            Error::EmptyFile { .. } => ErrorCode::EmptyFile,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::BadInput { .. } => ErrorCode::BadInput,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::KeyringUnavailable(_) => ErrorCode::KeyringUnavailable,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::FileUnreadable { .. } => ErrorCode::FileUnreadable,
            Error::FileUnwritable { .. } => ErrorCode::FileUnwritable,
            Error::Unexpected { .. } => ErrorCode::Unexpected,
            Error::InvalidAddress { .. } => ErrorCode::InvalidAddress,
            Error::InsecureServer { .. } => ErrorCode::InsecureServer,
            Error::ServerUnreachable { .. } => ErrorCode::ServerUnreachable,
            Error::NotAQuireServer { .. } => ErrorCode::NotAQuireServer,
            Error::SignUpClosed => ErrorCode::SignUpClosed,
            Error::AccountExists { .. } => ErrorCode::AccountExists,
            Error::WeakPassword { .. } => ErrorCode::WeakPassword,
            Error::NotAResetLink { .. } | Error::ResetCodeExpired => ErrorCode::BadInput,
        }
    }

    /// Whether trying the same thing again later may work (network trouble,
    /// server errors, rate limits).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Offline { .. } | Error::PlatformUnavailable { .. } | Error::RateLimited { .. }
        )
    }

    pub(crate) fn offline(
        service: Service,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Offline {
            service,
            source: Box::new(source),
        }
    }

    pub(crate) fn unexpected(
        service: Service,
        detail: impl Into<String>,
        body: impl AsRef<str>,
    ) -> Error {
        Error::Unexpected {
            service,
            detail: detail.into(),
            body: cut(body.as_ref()),
        }
    }

    /// The error as the UI receives it: `{code, message}`.
    pub fn to_view(&self) -> ErrorView {
        ErrorView {
            code: self.code(),
            message: self.to_string(),
        }
    }
}

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ErrorView {
    /// What the UI switches on.
    pub code: ErrorCode,
    /// What happened and what to do, for the person.
    pub message: String,
}

impl From<Error> for ErrorView {
    fn from(error: Error) -> ErrorView {
        error.to_view()
    }
}

/// Keeps at most 4 KB of a body (on a character boundary).
pub(crate) fn cut(body: &str) -> String {
    const MAX: usize = 4096;
    if body.len() <= MAX {
        return body.to_owned();
    }
    let mut end = MAX;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

/// A file as a person names it in a message: its name, not the whole path
/// (the path is still in the error's fields).
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A size limit as a person reads it: binary megabytes, one decimal when
/// not whole ("50 MB" for 52,428,800 bytes, as Storage's dashboard shows it).
pub fn megabytes(bytes: u64) -> String {
    let tenths = (bytes.saturating_mul(10) + 1024 * 1024 / 2) / (1024 * 1024);
    if tenths.is_multiple_of(10) {
        format!("{} MB", tenths / 10)
    } else {
        format!("{}.{} MB", tenths / 10, tenths % 10)
    }
}

/// A size as a person reads it, in decimal units with at most one decimal:
/// "12 bytes", "1.5 MB", "52 MB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        value /= 1000.0;
        unit = u;
        if value < 1000.0 {
            break;
        }
    }
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire() {
        let view = Error::NotSignedIn.to_view();
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            serde_json::json!({"code": "not_signed_in", "message": "You are not signed in. Sign in and try again."})
        );
        assert_eq!(ErrorCode::NotAPdf.as_str(), "not_a_pdf");
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(52_428_800), "52 MB");
        assert_eq!(megabytes(52_428_800), "50 MB");
        assert_eq!(megabytes(2_000_000), "1.9 MB");
        let error = Error::TooLarge {
            path: "/tmp/big.pdf".into(),
            size: 60_000_000,
            limit: 52_428_800,
        };
        assert_eq!(
            error.to_string(),
            "big.pdf is larger than 50 MB, the largest PDF Quire can store. \
             Choose a smaller PDF or split this one."
        );
    }

    #[test]
    fn bodies_are_cut_on_character_boundaries() {
        let long = "é".repeat(5000);
        let kept = cut(&long);
        assert!(kept.len() <= 4096 + "…".len());
        assert!(kept.ends_with('…'));
    }
}
