//! `cargo xtask fuzz` (the extractor's part): a time-bounded mutation fuzzer
//! for [`quire_pdftext::Pdf::open`] and [`quire_pdftext::page_texts`], seeded with the PDFs of
//! `tests/pdf-corpus`. Works offline and on a stable compiler (no
//! cargo-fuzz, no coverage guidance): each try takes a seed PDF, applies one
//! to four mutations (bit flips, PDF delimiters and numbers written over
//! bytes, ranges deleted, repeated or spliced in from another seed, a
//! truncation), opens it as the sandbox does and reads it.
//!
//! `Pdf::open` and `page_texts` promise never to panic (a panic of lopdf's
//! loader or of the decoder is caught); a panic that escapes either is saved
//! as `OUT/escaped-N.pdf` and fails the run.
//! Each input is written to `OUT/current.pdf` before it is read, so an abort
//! (a stack overflow, running out of memory) leaves it behind.
//!
//! Run: `cargo run --release -p quire-pdftext --example pdf_fuzz -- SECONDS
//! CORPUS_PDF_DIR OUT_DIR [SEED]`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one input may be read before page_texts gives up.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"(",
    b")",
    b"<",
    b">",
    b"<<",
    b">>",
    b"[",
    b"]",
    b"/",
    b"%",
    b"\\",
    b" ",
    b"\n",
    b"0",
    b"-1",
    b"4294967296",
    b"99999999",
    b"-0.0",
    b"1e308",
    b"R",
    b"obj",
    b"endobj",
    b"stream",
    b"endstream",
    b"null",
    b"/Type",
    b"/Pages",
    b"/Kids",
    b"/Parent",
    b"/Font",
    b"/ToUnicode",
    b"/Encoding",
    b"/W",
    b"/Length",
    b"/Filter",
    b"/FlateDecode",
    b"BT",
    b"ET",
    b"Tj",
    b"TJ",
    b"Tf",
    b"Tm",
    b"Td",
    b"'",
    b"\"",
    b"beginbfchar",
    b"beginbfrange",
    b"begincodespacerange",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    if input.is_empty() {
        input.push(b'%');
    }
    let at = rng.below(input.len());
    match rng.below(7) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let end = (at + token.len()).min(input.len());
            input.splice(at..end, token.iter().copied());
        }
        2 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        3 => {
            let len = rng.below(256.min(input.len() - at) + 1);
            input.drain(at..at + len);
        }
        4 => {
            let len = rng.below(1024.min(input.len() - at) + 1);
            let piece = input[at..at + len].to_vec();
            let to = rng.below(input.len() + 1);
            input.splice(to..to, piece);
        }
        5 => {
            let other = &seeds[rng.below(seeds.len())];
            if !other.is_empty() {
                let from = rng.below(other.len());
                let len = rng.below(4096.min(other.len() - from) + 1);
                let end = (at + len).min(input.len());
                input.splice(at..end, other[from..from + len].iter().copied());
            }
        }
        _ => input.truncate(at.max(1)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seconds, corpus, out, rest @ ..] = args.as_slice() else {
        eprintln!("usage: pdf_fuzz SECONDS CORPUS_PDF_DIR OUT_DIR [SEED]");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).expect("creating OUT_DIR");
    let seed = rest.first().map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        },
        |s| s.parse().expect("SEED is a number"),
    );
    let seeds = read_seeds(Path::new(corpus));
    assert!(!seeds.is_empty(), "no PDFs in {corpus}");

    // Panics are expected (page_texts catches its decoder's); keep the output to the summary.
    std::panic::set_hook(Box::new(|_| {}));

    let mut rng = Rng(seed);
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut tries, mut loaded, mut read_ok, mut escaped) = (0u64, 0u64, 0u64, 0u64);
    while Instant::now() < end {
        let mut input = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut input, &seeds);
        }
        tries += 1;
        std::fs::write(out.join("current.pdf"), &input).expect("writing current.pdf");
        let stop = quire_pdftext::Stop::at(Instant::now() + READ_LIMIT);
        match catch_unwind(AssertUnwindSafe(|| {
            let pdf = quire_pdftext::Pdf::open(&input).ok()?;
            Some(quire_pdftext::page_texts(&pdf, &stop))
        })) {
            Ok(None) => {}
            Ok(Some(read)) => {
                loaded += 1;
                read_ok += u64::from(read.is_ok());
            }
            Err(_) => {
                escaped += 1;
                save(&out, "escaped", escaped, &input);
            }
        }
    }
    let _ = std::fs::remove_file(out.join("current.pdf"));
    println!(
        "pdf_fuzz: seed {seed}, {tries} inputs in {seconds} s: {loaded} opened, {read_ok} read, \
         {escaped} panics escaping Pdf::open or page_texts (inputs in {})",
        out.display()
    );
    if escaped > 0 {
        std::process::exit(1);
    }
}

fn save(out: &Path, kind: &str, n: u64, input: &[u8]) {
    let path = out.join(format!("{kind}-{n}.pdf"));
    std::fs::write(&path, input).expect("saving a finding");
}

fn read_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}
