//! `ui/src/lib/types.ts` is generated from the view models of the core
//! (`quire_core::typescript`) and of the shell. The test fails while the
//! committed file differs from what the Rust types say;
//! `QUIRE_WRITE_TYPES=1 cargo test -p quire-desktop --lib typescript`
//! writes it anew.

use quire_core::typescript::{config, declaration, declarations};

use quire_core::{SignInMethods, SignUp};

use crate::commands::{Page, SessionView, Snapshot};
use crate::events::{AuthView, LiveStateName, LiveView, MessageText, Numbered, UpdateView};
use crate::shell::ServerView;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/lib/types.ts");

const HEADER: &str = "\
// Generated from the Rust view models by `cargo test -p quire-desktop --lib typescript`
// (src-tauri/src/typescript.rs); do not edit. QUIRE_WRITE_TYPES=1 on that command writes it.
// The shapes that cross the IPC boundary (src-tauri/IPC.md), as the core and the shell
// serialize them (snake_case serde names). View models only: no token ever.

/** Ids are UUIDs in their usual text form. */
export type Uuid = string;
";

fn generated() -> String {
    let config = config();
    let mut all = declarations(&config);
    all.extend([
        declaration::<AuthView>(&config),
        declaration::<LiveStateName>(&config),
        declaration::<LiveView>(&config),
        declaration::<ServerView>(&config),
        declaration::<SessionView>(&config),
        declaration::<SignInMethods>(&config),
        declaration::<SignUp>(&config),
        declaration::<Snapshot>(&config),
        declaration::<Page>(&config),
        declaration::<UpdateView<'static>>(&config),
        declaration::<MessageText>(&config),
        declaration::<Numbered<'static>>(&config),
    ]);
    format!("{HEADER}\n{}\n", all.join("\n\n"))
}

#[test]
fn the_ui_types_are_generated_from_the_rust_view_models() {
    let wanted = generated();
    if std::env::var_os("QUIRE_WRITE_TYPES").is_some() {
        std::fs::write(PATH, &wanted).expect("ui/src/lib/types.ts can be written");
        return;
    }
    let committed = std::fs::read_to_string(PATH).expect("ui/src/lib/types.ts exists");
    assert!(
        committed == wanted,
        "ui/src/lib/types.ts is not what the Rust view models say: run \
         `QUIRE_WRITE_TYPES=1 cargo test -p quire-desktop --lib typescript` and commit it"
    );
}
