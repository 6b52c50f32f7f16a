//! Embeds `db/app/*.sql` in the binary, in file-name order, so `quire-companion migrate`
//! applies the schema this companion was built with wherever it runs
//! (`crates/companion/src/migrate.rs`).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../../db/app")
        .canonicalize()
        .expect("db/app exists beside the companion");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("db/app is readable")
        .map(|entry| entry.expect("a db/app entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    let mut code =
        String::from("/// `db/app`'s files: (file name, contents), in file-name order.\n");
    code.push_str("pub(crate) const DB_APP: &[(&str, &str)] = &[\n");
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 file name");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("db_app.rs");
    std::fs::write(out, code).expect("writing db_app.rs");
}
