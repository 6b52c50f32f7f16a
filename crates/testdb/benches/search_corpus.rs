//! `cargo xtask search-measure` (also part of `cargo xtask bench`): how often
//! `search_chunks` puts the right page first when asked for a distinctive
//! phrase of it, on every document of `tests/pdf-corpus`.
//!
//! Each page's ground truth (`truth/NAME/PAGE.txt`) becomes one chunk of a
//! `ready` document of user A; user B holds the same pages, so B's copies are
//! the closest possible distractors and must never be returned. A try is a
//! window of 4 whitespace-separated words (or, inside a run of CJK
//! characters, which has no spaces, of 4 and of 8 characters) that occurs on
//! that page only; it succeeds when the first hit is that page. Misses are
//! listed when `SEARCH_MEASURE_MISSES=1`.
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use quire_testdb::TestDb;
use uuid::Uuid;

struct Page {
    document: String,
    number: i32,
    text: String,
}

fn corpus() -> Vec<Page> {
    let truth = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/pdf-corpus/truth");
    let mut pages = Vec::new();
    let mut documents: Vec<_> = std::fs::read_dir(&truth)
        .unwrap_or_else(|e| panic!("reading {}: {e}", truth.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    documents.sort();
    for dir in documents {
        let document = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = file.path();
            let Some(number) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            pages.push(Page {
                document: document.clone(),
                number,
                text,
            });
        }
    }
    pages.sort_by(|a, b| (&a.document, a.number).cmp(&(&b.document, b.number)));
    pages
}

/// Han, kana, Hangul: scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff)
}

/// Lower case with every run of whitespace as one space: what "occurs on
/// that page only" compares.
fn normalized(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The phrases of one page: 4-word windows of words without CJK, and 4- and
/// 8-character windows of CJK runs.
fn phrases(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = words
        .windows(4)
        .filter(|w| w.iter().all(|word| !word.chars().any(is_cjk)))
        .filter(|w| w.iter().any(|word| word.chars().any(char::is_alphabetic)))
        .map(|w| w.join(" "))
        .collect();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_cjk(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_cjk(chars[i]) {
            i += 1;
        }
        let run = &chars[start..i];
        for len in [4, 8] {
            for w in run.windows(len).step_by(len / 2) {
                out.push(w.iter().collect());
            }
        }
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// The phrase as someone types it: lower case, punctuation as spaces.
fn typed(phrase: &str) -> String {
    let spaced: String = phrase
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    normalized(&spaced)
}

#[derive(Default)]
struct Tally {
    tries: usize,
    first: usize,
    top: usize,
}

#[derive(Default)]
struct Score {
    pasted: Tally,
    typed: Tally,
    misses: Vec<String>,
}

#[tokio::main]
async fn main() {
    let pages = corpus();
    let db = TestDb::new().await;
    let a = db.create_user("a@example.com").await;
    let b = db.create_user("b@example.com").await;
    let service = db.as_service();

    // (owner, document name) → document id; chunk id → (document name, page).
    let mut documents: BTreeMap<(Uuid, String), Uuid> = BTreeMap::new();
    let mut a_chunks: BTreeMap<Uuid, (String, i32)> = BTreeMap::new();
    for owner in [a, b] {
        for page in &pages {
            let key = (owner, page.document.clone());
            if !documents.contains_key(&key) {
                let id: Uuid = service
                    .query_one(
                        "insert into documents (owner_id, title, byte_size, status) \
                         values ($1, $2, 1000, 'ready') returning id",
                        &[&owner, &page.document],
                    )
                    .await
                    .unwrap()
                    .get(0);
                documents.insert(key.clone(), id);
            }
            let chunk: Uuid = service
                .query_one(
                    "insert into document_chunks (owner_id, document_id, chunk_id, page, page_end, ordinal, text) \
                     values ($1, $2, gen_random_uuid(), $3, $3, $3 - 1, $4) returning id",
                    &[&owner, &documents[&key], &page.number, &page.text],
                )
                .await
                .unwrap()
                .get(0);
            if owner == a {
                a_chunks.insert(chunk, (page.document.clone(), page.number));
            }
        }
    }
    db.admin().await.batch_execute("analyze").await.unwrap();

    let normalized_pages: Vec<String> = pages.iter().map(|p| normalized(&p.text)).collect();
    let as_a = db.as_user(a);
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut others_seen = 0;
    for page in &pages {
        let score = scores.entry(page.document.clone()).or_default();
        for phrase in phrases(&page.text) {
            let needle = normalized(&phrase);
            if normalized_pages
                .iter()
                .filter(|p| p.contains(&needle))
                .count()
                != 1
            {
                continue;
            }
            let want = (page.document.clone(), page.number);
            let typed = typed(&phrase);
            for (kind, query) in [("pasted", &phrase), ("typed", &typed)] {
                if kind == "typed" && typed == phrase {
                    continue;
                }
                let hits = as_a
                    .query("select id from search_chunks($1, 8)", &[query])
                    .await
                    .unwrap();
                let hits: Vec<Uuid> = hits.iter().map(|r| r.get(0)).collect();
                others_seen += hits.iter().filter(|id| !a_chunks.contains_key(id)).count();
                let found_at = hits.iter().position(|id| a_chunks.get(id) == Some(&want));
                let tally = if kind == "pasted" {
                    &mut score.pasted
                } else {
                    &mut score.typed
                };
                tally.tries += 1;
                tally.first += usize::from(found_at == Some(0));
                tally.top += usize::from(found_at.is_some());
                if found_at != Some(0) {
                    score.misses.push(format!(
                        "{}/{} {kind}: {query:?} ({})",
                        page.document,
                        page.number,
                        match found_at {
                            Some(i) => format!("at {}", i + 1),
                            None if hits.is_empty() => "nothing found".into(),
                            None => format!("not among {} hits", hits.len()),
                        }
                    ));
                }
            }
        }
    }

    println!(
        "search_chunks on tests/pdf-corpus: a distinctive phrase of a page (4 words; 4 or 8 CJK characters) finds that page first"
    );
    println!(
        "(pasted: as on the page; typed: lower case, punctuation as spaces, when that differs)\n"
    );
    println!(
        "  {:<18} {:>6} {:>7} {:>7} {:>9} {:>6} {:>7} {:>7} {:>9}",
        "document", "pasted", "first", "top 8", "first %", "typed", "first", "top 8", "first %"
    );
    let (mut all_pasted, mut all_typed) = (Tally::default(), Tally::default());
    for (document, s) in &scores {
        for (all, one) in [(&mut all_pasted, &s.pasted), (&mut all_typed, &s.typed)] {
            all.tries += one.tries;
            all.first += one.first;
            all.top += one.top;
        }
        row(document, &s.pasted, &s.typed);
    }
    row("all", &all_pasted, &all_typed);
    println!("\n  hits from B's copies returned to A: {others_seen}");
    if std::env::var_os("SEARCH_MEASURE_MISSES").is_some() {
        println!();
        for s in scores.values() {
            for miss in &s.misses {
                println!("  miss {miss}");
            }
        }
    }
}

fn row(name: &str, pasted: &Tally, typed: &Tally) {
    println!(
        "  {:<18} {:>6} {:>7} {:>7} {:>8.1}% {:>6} {:>7} {:>7} {:>8.1}%",
        name,
        pasted.tries,
        pasted.first,
        pasted.top,
        percent(pasted.first, pasted.tries),
        typed.tries,
        typed.first,
        typed.top,
        percent(typed.first, typed.tries)
    );
}

fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        return 100.0;
    }
    100.0 * n as f64 / of as f64
}
