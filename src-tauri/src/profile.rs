//! Which profile this window is (`--profile NAME` or `QUIRE_PROFILE`,
//! default `default`) and where it keeps its files: the single-instance
//! lock, the window state and the paths of the files it uploaded, in
//! `<OS data dir>/quire/profiles/<NAME>/`. Its sign-in is its own keyring
//! entry ([`quire_core::Profile`]), which `quire-cli --profile NAME` shares.
//! The other arguments are files to upload ([`opened_files`]). Its Quire
//! server is kept in `server.json` there ([`Start`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use quire_core::{Config, Profile, Server, SignInMethods};
use serde::{Deserialize, Serialize};

/// The server an organisation's build connects to without asking: the
/// address given as `QUIRE_DEFAULT_SERVER` when the app was built.
pub const DEFAULT_SERVER: Option<&str> = option_env!("QUIRE_DEFAULT_SERVER");

/// Where the window's project comes from, at start.
#[derive(Debug)]
pub enum Start {
    /// `QUIRE_API_URL`, `QUIRE_ANON_KEY`, `QUIRE_COMPANION_URL` or
    /// `config.toml` name it (a developer's stack, the demo, the tests, a
    /// managed install): used as it is, and not changed from the window.
    Configured(Config),
    /// The server this profile connected to earlier.
    Saved(Server),
    /// Nothing saved: the build's default server, to discover.
    Default(String),
    /// Nothing at all: the window asks for the server's address.
    Ask,
}

/// The first of: an explicit configuration, the profile's saved server, the
/// build's default server; else [`Start::Ask`].
pub fn start(
    configured: Result<Config, quire_core::Error>,
    saved: Option<Server>,
    default: Option<&str>,
) -> Start {
    match (
        configured,
        saved,
        default.map(str::trim).filter(|d| !d.is_empty()),
    ) {
        (Ok(config), _, _) => Start::Configured(config),
        (Err(_), Some(server), _) => Start::Saved(server),
        (Err(_), None, Some(address)) => Start::Default(address.to_owned()),
        (Err(_), None, None) => Start::Ask,
    }
}

/// `server.json`: the server as discovered, so the window starts offline
/// too. The anon key is the project's public key.
#[derive(Serialize, Deserialize)]
struct SavedServer {
    address: String,
    api_url: String,
    anon_key: String,
    sign_in: SignInMethods,
}

const SERVER_FILE: &str = "server.json";

/// The server saved in the profile's directory, if any (a file that cannot
/// be read is as none: the window asks again).
pub fn saved_server(dir: &Path) -> Option<Server> {
    let bytes = std::fs::read(dir.join(SERVER_FILE)).ok()?;
    let saved: SavedServer = serde_json::from_slice(&bytes).ok()?;
    let config = Config::new(&saved.api_url, &saved.anon_key, &saved.address).ok()?;
    Some(Server {
        address: config.companion_url.clone(),
        config,
        sign_in: saved.sign_in,
    })
}

/// Saves `server` as the profile's server.
pub fn save_server(dir: &Path, server: &Server) -> std::io::Result<()> {
    let saved = SavedServer {
        address: server.address.to_string(),
        api_url: server.config.api_url.to_string(),
        anon_key: server.config.anon_key.clone(),
        sign_in: server.sign_in.clone(),
    };
    let path = dir.join(SERVER_FILE);
    let partial = dir.join(format!("{SERVER_FILE}.partial"));
    std::fs::write(&partial, serde_json::to_vec_pretty(&saved)?)?;
    std::fs::rename(partial, path)
}

/// The profile named on the command line (`--profile NAME` or
/// `--profile=NAME`), else by `QUIRE_PROFILE`, else `default`.
pub fn from_args(
    args: impl IntoIterator<Item = String>,
    env: Option<String>,
) -> Result<Profile, quire_core::Error> {
    let mut args = args.into_iter();
    let mut named = None;
    while let Some(arg) = args.next() {
        if arg == "--profile" {
            named = args.next();
        } else if let Some(value) = arg.strip_prefix("--profile=") {
            named = Some(value.to_owned());
        }
    }
    match named.or(env.filter(|v| !v.is_empty())) {
        Some(name) => Profile::new(&name),
        None => Ok(Profile::default()),
    }
}

/// The profile's own directory (created when missing).
pub fn data_dir(profile: &Profile) -> std::io::Result<PathBuf> {
    let base = directories::ProjectDirs::from("", "", "quire")
        .map(|dirs| dirs.data_local_dir().to_path_buf())
        .ok_or_else(|| {
            std::io::Error::other("this system has no home directory for Quire's data")
        })?;
    let dir = base.join("profiles").join(profile.name());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The files named on the command line, which "Open with Quire" passes
/// (the desktop entry's `Exec=quire %F`, docs/packaging.md §3): every
/// argument after the program's name but `--profile NAME` and other `--`
/// options, a relative one taken from `cwd`, the launcher's directory. Not
/// UTF-8 is fine: a file's name is whatever bytes it has.
pub fn opened_files(args: impl IntoIterator<Item = OsString>, cwd: &Path) -> Vec<PathBuf> {
    let mut args = args.into_iter().skip(1);
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--profile" {
            args.next();
        } else if !arg.to_string_lossy().starts_with("--") {
            files.push(cwd.join(arg));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(address: &str) -> Server {
        let config = Config::new("https://project.example.com", "anon", address).unwrap();
        Server {
            address: config.companion_url.clone(),
            config,
            sign_in: SignInMethods {
                password: true,
                signup: true,
                confirm_email: false,
                providers: vec!["gitlab".into()],
            },
        }
    }

    #[test]
    fn an_explicit_configuration_wins_then_the_saved_server_then_the_builds_default() {
        let configured = || Config::new("http://127.0.0.1:1", "k", "http://127.0.0.1:2");
        let none = || Err(quire_core::Error::NotConfigured("no anon key".into()));
        let saved = || Some(server("https://quire.example.com"));
        assert!(matches!(
            start(configured(), saved(), Some("https://org.example")),
            Start::Configured(_)
        ));
        assert!(matches!(
            start(none(), saved(), Some("https://org.example")),
            Start::Saved(s) if s.address.as_str() == "https://quire.example.com/"
        ));
        assert!(matches!(
            start(none(), None, Some(" https://org.example ")),
            Start::Default(a) if a == "https://org.example"
        ));
        assert!(matches!(start(none(), None, Some("")), Start::Ask));
        assert!(matches!(start(none(), None, None), Start::Ask));
    }

    #[test]
    fn the_saved_server_comes_back_as_it_was_discovered() {
        let dir = tempfile::tempdir().unwrap();
        assert!(saved_server(dir.path()).is_none());
        let saved = server("https://quire.example.com/team");
        save_server(dir.path(), &saved).unwrap();
        assert_eq!(saved_server(dir.path()), Some(saved));
        std::fs::write(dir.path().join(SERVER_FILE), b"{not json").unwrap();
        assert!(saved_server(dir.path()).is_none());
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_flag_wins_over_the_environment_which_wins_over_the_default() {
        let from = |list: &[&str], env: Option<&str>| {
            from_args(args(list), env.map(str::to_owned))
                .unwrap()
                .name()
                .to_owned()
        };
        assert_eq!(from(&["quire"], None), "default");
        assert_eq!(from(&["quire"], Some("")), "default");
        assert_eq!(from(&["quire"], Some("B")), "B");
        assert_eq!(from(&["quire", "--profile", "A2"], Some("B")), "A2");
        assert_eq!(from(&["quire", "--profile=A2"], None), "A2");
        assert!(from_args(args(&["quire", "--profile", "../x"]), None).is_err());
    }

    #[test]
    fn the_files_opened_with_quire_are_the_arguments_that_are_not_options() {
        let cwd = Path::new("/home/a/Downloads");
        let opened = |list: &[&str]| opened_files(list.iter().map(OsString::from), cwd);
        assert_eq!(
            opened(&[
                "quire",
                "--profile",
                "work.pdf",
                "/home/a/Lease.pdf",
                "Tax 2024.pdf",
                "--profile=x.pdf",
                "../b.pdf",
            ]),
            [
                "/home/a/Lease.pdf",
                "/home/a/Downloads/Tax 2024.pdf",
                "/home/a/Downloads/../b.pdf"
            ]
            .map(PathBuf::from)
        );
        assert!(opened(&["quire"]).is_empty());
        assert!(opened(&["quire", "--profile", "work"]).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_whose_name_is_not_utf8_is_opened_as_it_is() {
        use std::os::unix::ffi::OsStringExt;
        let name = OsString::from_vec(b"/home/a/caf\xe9.pdf".to_vec());
        assert_eq!(
            opened_files([OsString::from("quire"), name.clone()], Path::new("/")),
            [PathBuf::from(name)]
        );
    }
}
