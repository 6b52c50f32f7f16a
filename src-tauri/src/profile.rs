//! Which profile this window is (`--profile NAME` or `QUIRE_PROFILE`,
//! default `default`) and where it keeps its files: the single-instance
//! lock, the window state and the paths of the files it uploaded, in
//! `<OS data dir>/quire/profiles/<NAME>/`. Its sign-in is its own keyring
//! entry ([`quire_core::Profile`]), which `quire-cli --profile NAME` shares.
//! The other arguments are files to upload ([`opened_files`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use quire_core::Profile;

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
