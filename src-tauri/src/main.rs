//! `quire`: the desktop shell. Every decision lives in `quire-core`; this
//! binary only starts [`quire_desktop::run`].

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    #[cfg(target_os = "linux")]
    if compositing::off_in_software(
        |name| std::env::var_os(name),
        std::path::Path::new("/dev/dri"),
    ) {
        // SAFETY: the first thing the process does: no other thread exists yet to read the
        // environment while it changes.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(compositing::SWITCH, "1");
        }
    }
    quire_desktop::run()
}

/// WebKitGTK's accelerated compositing, turned off where it would run on the CPU
/// (docs/desktop-on-linux.md §8): there, Mesa's software renderer makes it cost memory and
/// frames instead of saving them.
#[cfg(target_os = "linux")]
mod compositing {
    use std::ffi::OsString;
    use std::path::Path;

    /// Read by WebKit's UI process when it starts: anything but `0` turns compositing off.
    pub const SWITCH: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

    /// Whether to turn compositing off: rendering would be in software (no GPU render node in
    /// `dri` this process can open, or Mesa told to render in software) and the person did not
    /// set [`SWITCH`] themselves (`0` keeps compositing on).
    pub fn off_in_software(env: impl Fn(&str) -> Option<OsString>, dri: &Path) -> bool {
        if env(SWITCH).is_some() {
            return false;
        }
        let set = |name: &str| env(name).is_some_and(|v| !v.is_empty() && v != "0");
        let software_driver = env("GALLIUM_DRIVER")
            .is_some_and(|d| d == "llvmpipe" || d == "softpipe" || d == "swrast");
        set("LIBGL_ALWAYS_SOFTWARE") || software_driver || !has_render_node(dri)
    }

    fn has_render_node(dri: &Path) -> bool {
        let Ok(nodes) = std::fs::read_dir(dri) else {
            return false;
        };
        nodes.flatten().any(|node| {
            node.file_name().to_string_lossy().starts_with("renderD")
                && std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(node.path())
                    .is_ok()
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
            move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
        }

        #[test]
        fn off_without_a_render_node_this_process_can_open() {
            let dri = tempfile::tempdir().unwrap();
            assert!(off_in_software(env(&[]), &dri.path().join("missing")));
            assert!(off_in_software(env(&[]), dri.path()));
            std::fs::write(dri.path().join("card0"), b"").unwrap();
            assert!(off_in_software(env(&[]), dri.path()));
        }

        #[test]
        fn on_with_a_render_node_unless_mesa_renders_in_software() {
            let dri = tempfile::tempdir().unwrap();
            std::fs::write(dri.path().join("renderD128"), b"").unwrap();
            assert!(!off_in_software(env(&[]), dri.path()));
            assert!(!off_in_software(
                env(&[("LIBGL_ALWAYS_SOFTWARE", "0")]),
                dri.path()
            ));
            assert!(off_in_software(
                env(&[("LIBGL_ALWAYS_SOFTWARE", "1")]),
                dri.path()
            ));
            assert!(off_in_software(
                env(&[("GALLIUM_DRIVER", "llvmpipe")]),
                dri.path()
            ));
        }

        #[test]
        fn the_persons_own_setting_is_left_alone() {
            let dri = tempfile::tempdir().unwrap();
            assert!(!off_in_software(env(&[(SWITCH, "0")]), dri.path()));
            assert!(!off_in_software(env(&[(SWITCH, "1")]), dri.path()));
        }
    }
}
