//! `quire-sandbox`: Quire's local Powabase. It arrives with the sandbox issues.

fn main() {
    eprintln!("quire-sandbox: not built yet (it arrives with the sandbox issues)");
    std::process::exit(2);
}
