//! TLS to the project's database, as libpq reads a URL's `sslmode` and
//! `sslrootcert` (DEPLOY.md §5, step 1):
//!
//! - `disable`: no TLS.
//! - `prefer` (the default) and `require`: TLS, without checking who
//!   answers, as libpq does; `prefer` goes on without TLS when the server
//!   offers none, `require` refuses. With `sslrootcert`, the certificate's
//!   chain is checked too (libpq's `require` with a root file is `verify-ca`).
//! - `verify-ca`: TLS, the chain checked against the roots, not the name.
//! - `verify-full`: TLS, the chain and the host name checked.
//!
//! The roots are the `sslrootcert` file's certificates, or with
//! `sslrootcert=system` or none given, the system's and the Mozilla roots
//! built in (libpq's own default file, `~/.postgresql/root.crt`, is not
//! read). A Supabase project's database certificate comes from the
//! project's own CA, which the dashboard hands out: checking it needs
//! `sslrootcert`.
//!
//! tokio-postgres knows `disable`, `prefer` and `require` only, so the two
//! parameters are taken out of the URL here and the rest is its to parse.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;

/// What a URL's `sslmode` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or nothing.
    Require,
    /// TLS, the certificate's chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Option<Mode> {
        Some(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    /// As written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's and the built-in Mozilla roots.
    System,
    /// A PEM file's certificates (`sslrootcert=<path>`).
    File(PathBuf),
}

/// A database URL read: what tokio-postgres connects with, and how TLS goes.
#[derive(Debug)]
pub struct Settings {
    /// The URL without `sslmode` and `sslrootcert`, `ssl_mode` set from them.
    pub config: tokio_postgres::Config,
    /// `sslmode`.
    pub mode: Mode,
    /// `sslrootcert`, if given.
    pub root_cert: Option<Roots>,
}

impl Settings {
    /// Reads `url` (a `postgresql://` URL or libpq's `key=value` pairs).
    /// `Err` is a sentence for the person who wrote the URL.
    pub fn parse(url: &str) -> Result<Settings, String> {
        let (rest, mode, root_cert) = take_tls_params(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
        let mode = match (mode, &root_cert) {
            (Some(mode), _) => mode,
            // libpq: a system root store means verify-full unless told otherwise.
            (None, Some(Roots::System)) => Mode::VerifyFull,
            (None, _) => Mode::Prefer,
        };
        if root_cert == Some(Roots::System) && mode != Mode::VerifyFull {
            return Err(format!(
                "sslrootcert=system checks certificates against public roots, which means \
                 nothing without the host name: use it with sslmode=verify-full, not {mode}"
            ));
        }
        config.ssl_mode(match mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        });
        Ok(Settings {
            config,
            mode,
            root_cert,
        })
    }

    /// How much of the server's certificate is checked.
    fn check(&self) -> Check {
        match (self.mode, &self.root_cert) {
            (Mode::VerifyFull, _) => Check::ChainAndName,
            (Mode::VerifyCa, _) | (Mode::Prefer | Mode::Require, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        }
    }

    /// The rustls client for this URL, or `None` for `sslmode=disable`.
    /// `Err` names an unreadable `sslrootcert`.
    pub fn client_config(&self) -> Result<Option<ClientConfig>, String> {
        if self.mode == Mode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check = self.check();
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(Unchecked(provider.signature_verification_algorithms)),
            Check::Chain | Check::ChainAndName => {
                let roots = self.roots()?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| e.to_string())?;
                if check == Check::Chain {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(config))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(Roots::File(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("sslrootcert {} cannot be read: {e}", path.display()))?;
                let mut found = 0;
                for cert in rustls_pemfile_certs(&pem) {
                    let cert = cert.map_err(|e| {
                        format!(
                            "sslrootcert {} is not PEM certificates: {e}",
                            path.display()
                        )
                    })?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                    found += 1;
                }
                if found == 0 {
                    return Err(format!(
                        "sslrootcert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    ));
                }
            }
            Some(Roots::System) | None => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let system = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(system.certs);
            }
        }
        Ok(roots)
    }
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(
    pem: &[u8],
) -> impl Iterator<Item = Result<CertificateDer<'static>, rustls::pki_types::pem::Error>> + '_ {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// `url` without `sslmode` and `sslrootcert`, and their values.
fn take_tls_params(url: &str) -> Result<(String, Option<Mode>, Option<Roots>), String> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                mode = Some(Mode::parse(value).ok_or_else(|| {
                    format!(
                        "sslmode={value} is not one Quire knows: use disable, prefer, require, \
                         verify-ca or verify-full"
                    )
                })?);
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(if value == "system" {
                    Roots::System
                } else {
                    Roots::File(PathBuf::from(value))
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = url::form_urlencoded::parse(part.as_bytes())
                .next()
                .unwrap_or_default();
            if !take(&key, &value)? {
                kept.push(part);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let pairs = conninfo_pairs(url)
            .ok_or_else(|| "it is neither a postgresql:// URL nor key=value pairs".to_owned())?;
        let mut kept = Vec::new();
        for (key, value) in pairs {
            if !take(&key, &value)? {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push(format!("{key}='{quoted}'"));
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root_cert))
}

/// libpq's `key = value` pairs, values optionally single-quoted with
/// backslash escapes; `None` when malformed.
fn conninfo_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut chars = text.chars().peekable();
    let mut pairs = Vec::new();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        skip_space(&mut chars);
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(if c == '\\' { chars.next()? } else { c });
            }
        }
        pairs.push((key, value));
    }
}

/// `require`/`prefer` without roots: any certificate, as libpq accepts; the
/// handshake's signatures are still checked, so the session is the
/// certificate holder's.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain checked against the roots, any host name. The
/// web PKI verifier checks the chain before the name, so a name error means
/// the chain held.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Why a connection failed at TLS, read from tokio-postgres's error: the
/// server offered no TLS, or its certificate was refused (rustls's words).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server answered the TLS request with "no".
    NotOffered,
    /// The certificate was not accepted.
    Certificate(String),
}

impl Failure {
    /// Reads `err`; `None` when it is not about TLS.
    pub fn of(err: &tokio_postgres::Error) -> Option<Failure> {
        let cause = std::error::Error::source(err)?;
        if let Some(rustls_err) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return matches!(rustls_err, rustls::Error::InvalidCertificate(_))
                .then(|| Failure::Certificate(rustls_err.to_string()));
        }
        // tokio-postgres's own words (connect_tls.rs) when the server says 'N'.
        (cause.to_string() == "server does not support TLS").then_some(Failure::NotOffered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Settings {
        Settings::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_as_libpq_reads_them() {
        let s = parsed("postgresql://postgres:pw@db.example.com:5432/postgres");
        assert_eq!((s.mode, s.check()), (Mode::Prefer, Check::Nothing));
        assert_eq!(s.config.get_ssl_mode(), SslMode::Prefer);

        let s = parsed("postgresql://u@h:6543/postgres?sslmode=require");
        assert_eq!((s.mode, s.check()), (Mode::Require, Check::Nothing));
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);

        let s = parsed("postgresql://u@h/postgres?sslmode=require&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(s.root_cert, Some(Roots::File("/etc/ca.pem".into())));
        assert_eq!(s.check(), Check::Chain);

        let s =
            parsed("postgresql://u@h/db?application_name=x&sslmode=verify-full&connect_timeout=5");
        assert_eq!((s.mode, s.check()), (Mode::VerifyFull, Check::ChainAndName));
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(s.config.get_application_name(), Some("x"));
        assert_eq!(s.config.get_dbname(), Some("db"));

        let s = parsed("postgresql://u@h/db?sslmode=verify-ca");
        assert_eq!(s.check(), Check::Chain);

        let s = parsed("postgresql://u@h/db?sslrootcert=system");
        assert_eq!(
            (s.mode, s.root_cert),
            (Mode::VerifyFull, Some(Roots::System))
        );

        let s = parsed("postgresql://u@h/db?sslmode=disable");
        assert!(s.client_config().unwrap().is_none());
    }

    #[test]
    fn key_value_pairs_carry_the_same_parameters() {
        let s = parsed(
            "host=db.example.com port=6543 user=postgres password=secret sslmode = verify-full \
             sslrootcert='/etc/my ca.pem' dbname=postgres",
        );
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root_cert, Some(Roots::File("/etc/my ca.pem".into())));
        assert_eq!(s.config.get_ports(), &[6543]);
        assert_eq!(s.config.get_dbname(), Some("postgres"));

        let s = parsed(r"host=h user=u password='a\'b c'");
        assert_eq!(s.config.get_password(), Some(&b"a'b c"[..]));
    }

    #[test]
    fn what_quire_cannot_honour_is_refused_with_its_reason() {
        for (url, words) in [
            (
                "postgresql://u@h/db?sslmode=allow",
                "sslmode=allow is not one Quire knows",
            ),
            (
                "postgresql://u@h/db?sslmode=require&sslrootcert=system",
                "use it with sslmode=verify-full",
            ),
            (
                "host=h user='unterminated",
                "neither a postgresql:// URL nor key=value pairs",
            ),
        ] {
            let err = Settings::parse(url).unwrap_err();
            assert!(err.contains(words), "{url}: {err}");
        }
        let s = parsed("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let err = s.client_config().unwrap_err();
        assert!(
            err.contains("sslrootcert /nonexistent/ca.pem cannot be read"),
            "{err}"
        );
    }
}
