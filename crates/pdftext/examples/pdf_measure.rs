//! Measures the extractors on the corpus in `tests/pdf-corpus`: per document
//! word recall and precision against pdftotext's per-page truth, page accuracy,
//! time per page (best of 3) and peak memory, beside pdftotext's own time per
//! page (best of 3).
//! Engines: `quire-pdftext` ([`quire_pdftext::page_texts`]) and `pdf-extract`
//! as published, for comparison.
//!
//! Run: `cargo xtask pdf-measure` (a release build; or `cargo run --release -p
//! quire-pdftext --example pdf_measure -- DIR`). Each document is extracted in
//! a child process of this binary so that its peak memory (VmHWM) is its own.
//! `-- --text ENGINE FILE` prints one engine's pages of one file, to read
//! beside `truth/`.
//!
//! Then long documents: the corpus PDFs joined by poppler's `pdfunite`,
//! again and again, into files of 100 and 500 pages, read by `quire-pdftext`
//! beside `pdftotext`: seconds per page and peak memory (pdftotext's through
//! `/usr/bin/time`; skipped without pdfunite). Printed, never asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use quire_pdftext::score::score;

const ENGINES: &[&str] = &["pdf-extract", "quire-pdftext"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        one(&args[1], Path::new(&args[2]));
        return;
    }
    if args.first().map(String::as_str) == Some("--text") {
        text(&args[1], Path::new(&args[2]));
        return;
    }
    let dir = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "tests/pdf-corpus".into()),
    );
    let mut pdfs: Vec<PathBuf> = std::fs::read_dir(dir.join("pdf"))
        .expect("the corpus has a pdf/ folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    pdfs.sort();
    println!(
        "| document | engine | pages | truth words | recall | precision | page accuracy | ms/page | pdftotext ms/page | × pdftotext | peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for pdf in &pdfs {
        let name = pdf.file_stem().unwrap().to_string_lossy().to_string();
        let truth = read_truth(&dir.join("truth").join(&name));
        let reference_ms = pdftotext_ms(pdf) / truth.len().max(1) as f64;
        for engine in ENGINES {
            let report = fastest_of(3, engine, pdf);
            let mut lines = report.split('\u{1e}');
            let header = lines.next().unwrap_or("");
            let pages: Vec<String> = lines.map(str::to_string).collect();
            let mut fields = header.split_whitespace();
            let status = fields.next().unwrap_or("crashed");
            let ms: f64 = fields
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            let kib: f64 = fields
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            if status != "ok" {
                println!(
                    "| {name} | {engine} | {} | | {status} | | | | {reference_ms:.1} | | |",
                    truth.len()
                );
                continue;
            }
            let s = score(&pages, &truth);
            let ms_per_page = ms / pages.len().max(1) as f64;
            println!(
                "| {name} | {engine} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.2} | {:.1} |",
                truth.len(),
                s.truth_words,
                s.recall,
                s.precision,
                s.page_accuracy,
                ms_per_page,
                reference_ms,
                ms_per_page / reference_ms,
                kib / 1024.0
            );
        }
    }
    long_documents(&dir, &pdfs);
}

/// The report of the fastest of `runs` child runs of `engine` on `pdf`.
fn fastest_of(runs: usize, engine: &str, pdf: &Path) -> String {
    let ms = |report: &str| -> f64 {
        report
            .split('\u{1e}')
            .next()
            .and_then(|header| header.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(f64::INFINITY)
    };
    (0..runs)
        .map(|_| {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--one", engine])
                .arg(pdf)
                .output()
                .expect("the measuring binary runs itself");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .min_by(|a, b| ms(a).total_cmp(&ms(b)))
        .unwrap_or_default()
}

/// Page counts of the long documents: peak memory independent of the page
/// count shows as equal peaks beyond the file's own bytes.
const LONG_PAGES: [usize; 2] = [100, 500];

/// Joins the corpus into one PDF per [`LONG_PAGES`] and times both readers on each.
fn long_documents(dir: &Path, pdfs: &[PathBuf]) {
    println!(
        "\nLong documents (the corpus PDFs joined with pdfunite, over and over); peak memory \
         includes the file's bytes, which the reader holds (pdftotext reads the file as it goes):\n"
    );
    println!(
        "| reader | pages | file MiB | pages read | s/page | total s | × pdftotext | peak MiB | peak beyond the file MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let out_dir = std::env::temp_dir().join(format!("quire-pdf-measure-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    for pages in LONG_PAGES {
        let long = out_dir.join(format!("long-{pages}.pdf"));
        if !join_corpus(dir, pdfs, pages, &long) {
            println!("  skipped: pdfunite (poppler-utils) is missing or failed");
            break;
        }
        long_document(&long, pages);
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Writes `pages` pages of the corpus, in turn, to `long`.
fn join_corpus(dir: &Path, pdfs: &[PathBuf], pages: usize, long: &Path) -> bool {
    let mut parts: Vec<&PathBuf> = Vec::new();
    let mut joined = 0;
    'fill: for _ in 0..pages {
        for pdf in pdfs {
            let name = pdf.file_stem().unwrap().to_string_lossy().to_string();
            let n = read_truth(&dir.join("truth").join(&name)).len();
            if n == 0 || joined + n > pages {
                continue;
            }
            parts.push(pdf);
            joined += n;
            if joined == pages {
                break 'fill;
            }
        }
    }
    Command::new("pdfunite")
        .args(&parts)
        .arg(long)
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs of each reader on a long document; each reader's best time counts.
const LONG_RUNS: usize = 5;

/// One row per reader for the joined file `long` of `pages` pages: the two
/// readers run in turn, [`LONG_RUNS`] times each, so that other work on the
/// machine weighs on both alike; each reader's best time.
fn long_document(long: &Path, pages: usize) {
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let size = mib(std::fs::metadata(long).map(|m| m.len()).unwrap_or(0) as f64);
    let mut ours: Option<(String, f64, f64)> = None;
    let mut reference_ms = f64::NAN;
    for _ in 0..LONG_RUNS {
        let run = read_long(long);
        if ours
            .as_ref()
            .is_none_or(|best| run.1 < best.1 || best.1.is_nan())
        {
            ours = Some(run);
        }
        reference_ms = reference_ms.min(pdftotext_run_ms(long).unwrap_or(f64::NAN));
    }
    let (read, ms, kib) = ours.expect("at least one run");
    println!(
        "| quire-pdftext | {pages} | {size:.1} | {read} | {:.4} | {:.2} | {:.2} | {:.1} | {:.1} |",
        ms / 1000.0 / pages as f64,
        ms / 1000.0,
        ms / reference_ms,
        kib / 1024.0,
        kib / 1024.0 - size
    );
    let kib = pdftotext_peak_kib(long);
    println!(
        "| pdftotext | {pages} | {size:.1} | {pages} | {:.4} | {:.2} | | {} | |",
        reference_ms / 1000.0 / pages as f64,
        reference_ms / 1000.0,
        kib.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
    );
}

/// One reading of `long` by `quire-pdftext` in a child process: pages read
/// (or why not), milliseconds and peak KiB.
fn read_long(long: &Path) -> (String, f64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--one", "quire-pdftext"])
        .arg(long)
        .output()
        .expect("the measuring binary runs itself");
    let report = String::from_utf8_lossy(&out.stdout);
    let mut lines = report.split('\u{1e}');
    let mut header = lines.next().unwrap_or("").split_whitespace();
    let read = lines.count();
    let status = header.next().unwrap_or("crashed");
    let ms: f64 = header
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    let kib: f64 = header
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    let read = if status == "ok" {
        read.to_string()
    } else {
        status.to_string()
    };
    (read, ms, kib)
}

/// Peak resident memory of one `pdftotext` run, through GNU time (None without it).
fn pdftotext_peak_kib(pdf: &Path) -> Option<u64> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "pdftotext"])
        .arg(pdf)
        .arg("/dev/null")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// Child: extracts one file with one engine, prints "ok MS PEAK_KIB" then the
/// pages, separated by U+001E.
fn one(engine: &str, pdf: &Path) {
    let bytes = std::fs::read(pdf).unwrap();
    let start = Instant::now();
    let pages = extract(engine, &bytes);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match pages {
        Ok(pages) => {
            print!("ok {ms:.3} {}", peak_kib());
            for p in pages {
                print!("\u{1e}{p}");
            }
        }
        Err(code) => print!("failed:{code} {ms:.3} {}", peak_kib()),
    }
}

/// Prints one engine's pages of one file, for reading next to the truth.
fn text(engine: &str, pdf: &Path) {
    let bytes = std::fs::read(pdf).unwrap();
    match extract(engine, &bytes) {
        Ok(pages) => {
            for (i, p) in pages.iter().enumerate() {
                println!("--- page {}\n{p}", i + 1);
            }
        }
        Err(e) => println!("failed: {e}"),
    }
}

fn extract(engine: &str, bytes: &[u8]) -> Result<Vec<String>, String> {
    match engine {
        "pdf-extract" => quire_pdftext::candidate::pdf_extract_stock(bytes),
        "quire-pdftext" => quire_pdftext::Pdf::open(bytes)
            .map_err(|e| e.to_string())
            .and_then(|pdf| {
                quire_pdftext::page_texts(&pdf, &quire_pdftext::Stop::default())
                    .map(|read| read.pages)
                    .map_err(|e| e.to_string())
            }),
        other => Err(format!("unknown engine {other}")),
    }
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn read_truth(dir: &Path) -> Vec<String> {
    let mut pages = Vec::new();
    for n in 1.. {
        match std::fs::read_to_string(dir.join(format!("{n}.txt"))) {
            Ok(text) => pages.push(text),
            Err(_) => break,
        }
    }
    pages
}

/// Wall time of the whole `pdftotext` process, best of 3 (NaN without poppler-utils).
fn pdftotext_ms(pdf: &Path) -> f64 {
    (0..3)
        .filter_map(|_| pdftotext_run_ms(pdf))
        .fold(f64::NAN, f64::min)
}

/// Wall time of one `pdftotext` process (None without poppler-utils).
fn pdftotext_run_ms(pdf: &Path) -> Option<f64> {
    let start = Instant::now();
    let ok = Command::new("pdftotext")
        .arg(pdf)
        .arg("/dev/null")
        .status()
        .ok()?
        .success();
    ok.then(|| start.elapsed().as_secs_f64() * 1000.0)
}
