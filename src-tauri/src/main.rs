//! `quire`: the desktop shell. Every decision lives in `quire-core`; this
//! binary only starts [`quire_desktop::run`].

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    quire_desktop::run()
}
