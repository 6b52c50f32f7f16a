//! `quire-cli`: the Quire core in a terminal. Its commands arrive with the core issue.

fn main() {
    eprintln!("quire-cli: no commands yet (they arrive with the core issue)");
    std::process::exit(2);
}
