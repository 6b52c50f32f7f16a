// The Tauri config lives at the repository top level (see README, "Developing").
fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("failed to run tauri-build");
}
