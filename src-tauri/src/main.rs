//! `quire`: the desktop shell. Every decision lives in `quire-core`; this crate builds the
//! window and wires commands. The window shows a placeholder until the desktop issue.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    tauri::Builder::default()
        .run(tauri::generate_context!("../tauri.conf.json"))
        .expect("error while running the Quire window");
}
