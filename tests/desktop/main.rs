//! End-to-end tests of the real Quire window: release or debug build, Xvfb, D-Bus, driven
//! through `tauri-driver` + WebKitWebDriver. `cargo xtask test` builds the app and runs these
//! under `xvfb-run` and `dbus-run-session`; every test saves screenshots under `artifacts/e2e/`.

mod driver;
mod window;
