//! Which profile this window is (`--profile NAME` or `QUIRE_PROFILE`,
//! default `default`) and where it keeps its files: the single-instance
//! lock, the window state and the paths of the files it uploaded, in
//! `<OS data dir>/quire/profiles/<NAME>/`. Its sign-in is its own keyring
//! entry ([`quire_core::Profile`]), which `quire-cli --profile NAME` shares.

use std::path::PathBuf;

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
}
