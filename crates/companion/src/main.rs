//! `quire-companion`: verified users, safe agent runs, persisted streams and ingestion.
//! It arrives with the companion issue.

fn main() {
    eprintln!("quire-companion: not built yet (it arrives with the companion issue)");
    std::process::exit(2);
}
