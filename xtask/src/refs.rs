//! `cargo xtask refs`: every reference to a document in the repo's code and docs resolves inside
//! the repo. `cargo xtask test` runs it before anything else.
//!
//! Scanned: the files git knows (tracked, plus new files not ignored) ending in `.rs`, `.sql`,
//! `.md`, `.toml`, `.ts`, `.svelte`, `.sh`, `.mjs` or `.yml`.
//!
//! A reference is a path ending in `.md`, optionally followed by one section:
//!
//! | Form | Example | Resolves when |
//! |---|---|---|
//! | path | `crates/companion/EVENTS.md` | the file exists (see below) |
//! | `#anchor` | `ARCHITECTURE.md#the-four-paths` | a heading has that GitHub anchor |
//! | `§N`, `§N.M`, lists and ranges | `docs/platform/supabase.md §2.4`, `docs/platform/supabase.md §2.2–2.4, §2.7` | a heading of the file starts with each number (`## 2.`, `### 2.4`) |
//! | `, invariant N` / `, invariants N and M` | `ARCHITECTURE.md, invariant 3` | a numbered item `N.` under a heading that says "invariant" |
//! | `, "Heading"` | `src-tauri/IPC.md, "Events"` | a heading reads so (case and backticks ignored; the heading may go on after the name, as in "Events (…)") |
//!
//! A section may start on the next line of the same comment (after `//!`, `///`, `//`, `--`,
//! `#` or `*`). The path is taken relative to the citing file's directory, then to each of its
//! parent directories up to the repo root; a bare file name (`IPC.md`) may also name the one file
//! of that name in the repo. A Markdown link's target must resolve relative to its file, as
//! GitHub resolves it. A path right after `:` (a URL, `github:owner/repo`) is not a
//! reference.
//!
//! In a Markdown file, a `§` and number with no path before it is a section of that file.
//!
//! Fails, with file:line, on: a path that does not exist in the repo; a section it does not
//! have; any mention of the out-of-repo notes folder (`shared` + `/reference`) or of the
//! machine's work folder (`/work` + `/`);
//! and a `§` and number that follow neither a document path nor an RFC number
//! ("RFC 6455 §5.5.1"), since a newcomer cannot tell which document they mean.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::util;

/// The section sign, spelled out so this file does not trip its own bare-section rule.
const SECTION: char = '\u{a7}';

const EXTENSIONS: &[&str] = &[
    "rs", "sql", "md", "toml", "ts", "svelte", "sh", "mjs", "yml",
];

/// Runs the check over the repo and fails with every reference that does not resolve.
pub fn check() -> Result<()> {
    util::step("references in code and docs resolve inside the repo (cargo xtask refs)");
    let root = util::repo_root();
    let listed = util::cmd("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(&root)
        .read()?;
    let files: Vec<String> = listed
        .lines()
        .filter(|f| {
            Path::new(f)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e))
        })
        .filter(|f| root.join(f).is_file())
        .map(str::to_owned)
        .collect();
    let repo = Repo::new(&root, &files);
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        problems.extend(repo.check_file(file, &text));
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if !problems.is_empty() {
        bail!(
            "{} reference(s) do not resolve inside the repo (syntax: xtask/src/refs.rs)",
            problems.len()
        );
    }
    println!("    {} files, every reference resolves", files.len());
    Ok(())
}

/// One reference found in a file, before resolution.
#[derive(Debug, PartialEq)]
struct Reference {
    line: usize,
    path: String,
    /// Inside a Markdown link target: resolved relative to the file only.
    link: bool,
    section: Section,
}

#[derive(Debug, PartialEq)]
enum Section {
    None,
    Anchor(String),
    Numbers(Vec<String>),
    Invariants(Vec<u32>),
    Heading(String),
}

/// Everything found in one file: the references and the `§`s that belong to none.
#[derive(Debug, Default)]
struct Found {
    references: Vec<Reference>,
    /// Each `§` with no document before it: its line and the numbers it names.
    bare: Vec<(usize, Vec<String>)>,
    /// Lines naming a place outside the repo.
    outside: Vec<(usize, String)>,
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/')
}

/// Strips a comment marker and the spaces around it from the start of a line.
fn strip_comment_marker(line: &str) -> &str {
    let t = line.trim_start();
    for marker in ["//!", "///", "//", "--", "/*", "#", "*"] {
        if let Some(rest) = t.strip_prefix(marker) {
            return rest.trim_start();
        }
    }
    t
}

/// Parses `§A, §B.C–D.E and §F` at the start of `s`; returns the numbers and the bytes used.
fn parse_numbers(s: &str) -> (Vec<String>, usize) {
    let mut numbers = Vec::new();
    let mut i = 0;
    let b = s.as_bytes();
    let number_at = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
            j += 1;
        }
        let n = s[i..j].trim_end_matches('.').to_owned();
        (n.clone(), i + n.len())
    };
    while let Some(rest) = s[i..].strip_prefix(SECTION) {
        let start = s.len() - rest.len();
        let (n, end) = number_at(start);
        if n.is_empty() {
            break;
        }
        numbers.push(n);
        i = end;
        // A range: "–N.M" or "-§N.M".
        for dash in ["\u{2013}", "-"] {
            if let Some(rest) = s[i..].strip_prefix(dash) {
                let rest = rest.strip_prefix(SECTION).unwrap_or(rest);
                let start = s.len() - rest.len();
                let (n, end) = number_at(start);
                if !n.is_empty() {
                    numbers.push(n);
                    i = end;
                }
            }
        }
        // A list goes on with ", §", " and §", ", and §".
        let mut next = None;
        for sep in [", and ", ", ", " and "] {
            if s[i..].starts_with(sep) && s[i + sep.len()..].starts_with(SECTION) {
                next = Some(i + sep.len());
                break;
            }
        }
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    (numbers, i)
}

/// Parses `N`, `N and M`, `N, M and P`, `N–M` at the start of `s`.
fn parse_invariants(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u32>() else {
            break;
        };
        rest = &rest[digits.len()..];
        if let Some(r) = rest
            .strip_prefix('\u{2013}')
            .or_else(|| rest.strip_prefix('-'))
        {
            let to: String = r.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(m) = to.parse::<u32>() {
                out.extend(n..=m);
                rest = &r[to.len()..];
            } else {
                out.push(n);
            }
        } else {
            out.push(n);
        }
        let mut more = false;
        for sep in [", and ", ", ", " and "] {
            if let Some(r) = rest.strip_prefix(sep)
                && r.starts_with(|c: char| c.is_ascii_digit())
            {
                rest = r;
                more = true;
                break;
            }
        }
        if !more {
            break;
        }
    }
    out
}

/// Finds the references, the bare `§`s and the outside mentions in one file's text.
fn scan(text: &str) -> Found {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Found::default();
    // `§`s consumed by a reference: (line index, byte offset).
    let mut consumed: Vec<(usize, usize)> = Vec::new();
    let outside_folder = concat!("shared", "/reference");
    for (idx, line) in lines.iter().enumerate() {
        if line.contains(outside_folder) || line.contains(concat!("/work", "/")) {
            found.outside.push((idx + 1, line.trim().to_owned()));
        }
        let b = line.as_bytes();
        let mut from = 0;
        while let Some(pos) = line[from..].find(".md") {
            let dot = from + pos;
            let end = dot + 3;
            from = end;
            if end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                continue; // `.mdx`, `.mdown`, a method call
            }
            let mut start = dot;
            while start > 0 && is_path_byte(b[start - 1]) {
                start -= 1;
            }
            let path = &line[start..end];
            let stem = path.trim_end_matches(".md");
            if stem.is_empty() || stem.ends_with('/') || path.starts_with("//") {
                continue; // the extension itself, a glob, a URL's host part
            }
            if start > 0 && matches!(b[start - 1], b':' | b'@' | b'$' | b'{' | b'}') {
                continue; // a URL, `github:owner/repo/…`, a template
            }
            let link = line[..start].ends_with("](");
            let after = &line[end..];
            let (section, used) = parse_section(after, lines.get(idx + 1).copied());
            for (l, off) in used {
                consumed.push(if l == 0 {
                    (idx, end + off)
                } else {
                    (idx + 1, off)
                });
            }
            found.references.push(Reference {
                line: idx + 1,
                path: path.trim_start_matches("./").to_owned(),
                link,
                section,
            });
        }
    }
    for (idx, line) in lines.iter().enumerate() {
        for (off, _) in line.match_indices(SECTION) {
            if consumed.contains(&(idx, off)) {
                continue;
            }
            let number_follows =
                line[off + SECTION.len_utf8()..].starts_with(|c: char| c.is_ascii_digit());
            if !number_follows || follows_rfc(&line[..off]) {
                continue;
            }
            let (numbers, used) = parse_numbers(&line[off..]);
            for (o, _) in line[off..off + used].match_indices(SECTION) {
                consumed.push((idx, off + o));
            }
            found.bare.push((idx + 1, numbers));
        }
    }
    found
}

/// Whether the text before a `§` ends with `"RFC <number> "` (or a list of its sections).
fn follows_rfc(before: &str) -> bool {
    let Some(at) = before.rfind("RFC ") else {
        return false;
    };
    let tail = &before[at + 4..];
    tail.trim_end()
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == ',' || c == '.' || c == SECTION)
}

/// Parses the section after a path. Returns it and the positions of the `§`s it used:
/// (0, offset in `after`) on the same line, (1, offset in `next`) on the next line.
fn parse_section(after: &str, next: Option<&str>) -> (Section, Vec<(usize, usize)>) {
    if let Some(anchor) = after.strip_prefix('#') {
        let a: String = anchor
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !a.is_empty() {
            return (Section::Anchor(a), Vec::new());
        }
    }
    let rest = after.trim_start_matches(['`', '*']);
    let skipped = after.len() - rest.len();
    if let Some(r) = rest.strip_prefix(", ") {
        let r = r.trim_start_matches(['`', '*']);
        for word in ["invariants ", "invariant "] {
            if let Some(nums) = r.strip_prefix(word) {
                let ns = parse_invariants(nums);
                if !ns.is_empty() {
                    return (Section::Invariants(ns), Vec::new());
                }
            }
        }
        if let Some(q) = r.strip_prefix('"')
            && let Some(close) = q.find('"')
        {
            return (Section::Heading(q[..close].to_owned()), Vec::new());
        }
        return (Section::None, Vec::new());
    }
    let trimmed = rest.trim_start();
    let offset = skipped + (rest.len() - trimmed.len());
    if trimmed.starts_with(SECTION) {
        let (ns, used) = parse_numbers(trimmed);
        let uses = trimmed[..used]
            .match_indices(SECTION)
            .map(|(o, _)| (0, offset + o))
            .collect();
        return (Section::Numbers(ns), uses);
    }
    // The section may open the next comment line, as in a wrapped doc comment.
    if trimmed.trim_end_matches(['(', ')', ',', ';']).is_empty()
        && let Some(next) = next
    {
        let body = strip_comment_marker(next);
        if body.starts_with(SECTION) {
            let offset = next.len() - body.len();
            let (ns, used) = parse_numbers(body);
            let uses = body[..used]
                .match_indices(SECTION)
                .map(|(o, _)| (1, offset + o))
                .collect();
            return (Section::Numbers(ns), uses);
        }
    }
    (Section::None, Vec::new())
}

/// A heading of a Markdown file.
#[derive(Debug)]
struct Heading {
    level: usize,
    text: String,
    line: usize,
}

/// The headings of a Markdown text, outside fenced code blocks.
fn headings(text: &str) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let level = line.bytes().take_while(|b| *b == b'#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            out.push(Heading {
                level,
                text: line[level..].trim().trim_end_matches('#').trim().to_owned(),
                line: i,
            });
        }
    }
    out
}

/// The heading as a reader sees it: no backticks or emphasis, lower case.
fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '`' | '*'))
        .collect::<String>()
        .trim()
        .to_lowercase()
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation but `-` and `_` dropped.
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c)
            } else if c == ' ' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The section number a heading starts with: "2.4" for "### 2.4 Joining", "3" for "## 3. Agents".
fn heading_number(text: &str) -> Option<String> {
    let n: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let n = n.trim_end_matches('.');
    (!n.is_empty() && n.starts_with(|c: char| c.is_ascii_digit())).then(|| n.to_owned())
}

/// A Markdown document's sections, as references name them.
struct Doc {
    anchors: Vec<String>,
    numbers: Vec<String>,
    headings: Vec<String>,
    invariants: Vec<u32>,
}

impl Doc {
    fn parse(text: &str) -> Doc {
        let hs = headings(text);
        let mut anchors = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for h in &hs {
            let base = slug(&h.text);
            let n = seen.entry(base.clone()).or_insert(0);
            anchors.push(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        let lines: Vec<&str> = text.lines().collect();
        let mut invariants = Vec::new();
        for (k, h) in hs.iter().enumerate() {
            if !h.text.to_lowercase().contains("invariant") {
                continue;
            }
            let end = hs[k + 1..]
                .iter()
                .find(|n| n.level <= h.level)
                .map_or(lines.len(), |n| n.line);
            for line in &lines[h.line + 1..end] {
                let t = line.trim_start();
                let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
                if !digits.is_empty() && t[digits.len()..].starts_with(". ") {
                    invariants.extend(digits.parse::<u32>().ok());
                }
            }
        }
        Doc {
            anchors,
            numbers: hs.iter().filter_map(|h| heading_number(&h.text)).collect(),
            headings: hs.iter().map(|h| plain(&h.text)).collect(),
            invariants,
        }
    }

    /// What of `section` this document lacks, if anything.
    fn missing(&self, section: &Section) -> Option<String> {
        match section {
            Section::None => None,
            Section::Anchor(a) => (!self.anchors.iter().any(|x| x == a))
                .then(|| format!("no heading with anchor #{a}")),
            Section::Numbers(ns) => {
                let gone: Vec<_> = ns
                    .iter()
                    .filter(|n| !self.numbers.contains(n))
                    .map(|n| format!("{SECTION}{n}"))
                    .collect();
                (!gone.is_empty()).then(|| format!("no section {}", gone.join(", ")))
            }
            Section::Invariants(ns) => {
                let gone: Vec<_> = ns
                    .iter()
                    .filter(|n| !self.invariants.contains(n))
                    .map(u32::to_string)
                    .collect();
                (!gone.is_empty()).then(|| format!("no invariant {}", gone.join(", ")))
            }
            Section::Heading(h) => {
                let want = plain(h);
                let hit = self.headings.iter().any(|x| {
                    let x = x.as_str();
                    let unnumbered = x.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
                    [x, unnumbered.trim_start()].iter().any(|x| {
                        x.strip_prefix(want.as_str()).is_some_and(|rest| {
                            rest.is_empty() || !rest.starts_with(char::is_alphanumeric)
                        })
                    })
                });
                (!hit).then(|| format!("no heading \"{h}\""))
            }
        }
    }
}

/// The repo: where files are, which names are unique, and the parsed documents.
struct Repo {
    root: PathBuf,
    by_name: BTreeMap<String, Vec<String>>,
    docs: std::cell::RefCell<HashMap<PathBuf, Option<std::rc::Rc<Doc>>>>,
}

impl Repo {
    fn new(root: &Path, files: &[String]) -> Repo {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in files {
            if let Some(name) = Path::new(f).file_name().and_then(|n| n.to_str()) {
                by_name.entry(name.to_owned()).or_default().push(f.clone());
            }
        }
        Repo {
            root: root.to_path_buf(),
            by_name,
            docs: Default::default(),
        }
    }

    /// The repo-relative path a reference names, if it exists.
    fn resolve(&self, citing: &str, r: &Reference) -> Option<PathBuf> {
        if r.path.starts_with('/') {
            return None;
        }
        let mut dir = Path::new(citing).parent().map(Path::to_path_buf);
        let mut first = true;
        while let Some(d) = dir {
            let candidate = normalize(&d.join(&r.path))?;
            if self.root.join(&candidate).is_file() {
                return Some(candidate);
            }
            if r.link && first {
                return None;
            }
            first = false;
            dir = d.parent().map(Path::to_path_buf);
        }
        if !r.path.contains('/')
            && let Some([only]) = self.by_name.get(&r.path).map(Vec::as_slice)
        {
            return Some(PathBuf::from(only));
        }
        None
    }

    fn doc(&self, path: &Path) -> Option<std::rc::Rc<Doc>> {
        self.docs
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                std::fs::read_to_string(self.root.join(path))
                    .ok()
                    .map(|t| std::rc::Rc::new(Doc::parse(&t)))
            })
            .clone()
    }

    /// Every problem of one file, as `file:line: what`.
    fn check_file(&self, file: &str, text: &str) -> Vec<String> {
        let found = scan(text);
        let mut out = Vec::new();
        for (line, text) in &found.outside {
            out.push(format!(
                "{file}:{line}: names a place outside the repo: {text}"
            ));
        }
        for r in &found.references {
            let shown = &r.path;
            if shown.contains(concat!("shared", "/reference")) {
                continue; // reported above as outside the repo
            }
            match self.resolve(file, r) {
                None => out.push(format!(
                    "{file}:{}: {shown}: no such file in the repo{}",
                    r.line,
                    if r.link {
                        " (a Markdown link resolves relative to its file)"
                    } else {
                        ""
                    }
                )),
                Some(target) => {
                    if r.section == Section::None {
                        continue;
                    }
                    if let Some(why) = self.doc(&target).and_then(|d| d.missing(&r.section)) {
                        out.push(format!(
                            "{file}:{}: {shown} ({}): {why}",
                            r.line,
                            target.display()
                        ));
                    }
                }
            }
        }
        let own = file.ends_with(".md").then(|| Doc::parse(text));
        for (line, numbers) in &found.bare {
            match &own {
                // In a Markdown file a bare section is one of its own.
                Some(doc) => {
                    if let Some(why) = doc.missing(&Section::Numbers(numbers.clone())) {
                        out.push(format!("{file}:{line}: this file has {why}"));
                    }
                }
                None => out.push(format!(
                    "{file}:{line}: a section ({SECTION}) with no document: name the file before it"
                )),
            }
        }
        out
    }
}

/// `a/b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: &str) -> String {
        format!("{SECTION}{n}")
    }

    /// A repo in a temporary directory with the given files.
    fn repo(files: &[(&str, &str)]) -> (Repo, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "xtask-refs-{}-{}",
            std::process::id(),
            util::random_hex(6).unwrap()
        ));
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let names: Vec<String> = files.iter().map(|(n, _)| (*n).to_owned()).collect();
        (Repo::new(&dir, &names), dir)
    }

    const ARCH: &str = "# Architecture\n\n## The four paths\n\n### Ask\n\n## Security invariants\n\n1. One.\n2. Two.\n3. Three.\n\n## Other\n\n4. Not an invariant.\n";
    const PLATFORM: &str = "# P\n\n## 2. Realtime\n\n### 2.4 Joining\n\n### 2.7 Heartbeat\n\n```\n## 9. not a heading\n```\n";

    #[test]
    fn good_references_resolve() {
        let (repo, dir) = repo(&[
            ("ARCHITECTURE.md", ARCH),
            ("docs/platform/supabase.md", PLATFORM),
            ("src-tauri/IPC.md", "# IPC\n\n## Events (`listen(name)`)\n"),
        ]);
        let code = format!(
            "//! See ARCHITECTURE.md, invariant 3 and ARCHITECTURE.md, invariants 1 and 2.\n\
             //! (docs/platform/supabase.md {}, {}–2.7) and `ARCHITECTURE.md#the-four-paths`.\n\
             //! IPC.md, \"Events\"; ARCHITECTURE.md, \"Ask\"; RFC 6455 {}.\n\
             //! The join (`docs/platform/supabase.md`\n//! {}).\n",
            s("2.4"),
            s("2"),
            s("5.5.1"),
            s("2.7"),
        );
        let problems = repo.check_file("crates/core/src/lib.rs", &code);
        std::fs::remove_dir_all(dir).ok();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_missing_file_fails() {
        let (repo, dir) = repo(&[("ARCHITECTURE.md", ARCH)]);
        let name = "DESIGN";
        let problems = repo.check_file("src/a.rs", &format!("// (`{name}.md`, \"Ask\")\n"));
        std::fs::remove_dir_all(dir).ok();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("src/a.rs:1: DESIGN"));
        assert!(problems[0].ends_with(": no such file in the repo"));
    }

    #[test]
    fn a_missing_section_fails() {
        let (repo, dir) = repo(&[
            ("ARCHITECTURE.md", ARCH),
            ("docs/platform/supabase.md", PLATFORM),
        ]);
        let code = format!(
            "// docs/platform/supabase.md {}\n// ARCHITECTURE.md, invariant 4\n\
             // `{a}.md#nowhere`\n// ARCHITECTURE.md, \"Upload\"\n// docs/platform/supabase.md {}\n",
            s("2.5"),
            s("9"),
            a = "ARCHITECTURE",
        );
        let problems = repo.check_file("a.rs", &code);
        std::fs::remove_dir_all(dir).ok();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].ends_with("no section \u{a7}2.5"));
        assert!(problems[1].ends_with("no invariant 4"));
        assert!(problems[2].ends_with("no heading with anchor #nowhere"));
        assert!(problems[3].ends_with("no heading \"Upload\""));
        assert!(
            problems[4].ends_with("no section \u{a7}9"),
            "fenced headings do not count"
        );
    }

    #[test]
    fn outside_paths_and_bare_sections_fail() {
        let (repo, dir) = repo(&[("ARCHITECTURE.md", ARCH)]);
        let outside = format!(
            "// ({}/POWABASE.md {})\n",
            concat!("shared", "/reference"),
            s("5.4")
        );
        let bare = format!("// The session routes ({}; end-user routes).\n", s("5.2"));
        let problems = repo.check_file("a.rs", &format!("{outside}{bare}"));
        std::fs::remove_dir_all(dir).ok();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with("a.rs:1: names a place outside the repo"));
        assert!(problems[1].starts_with("a.rs:2: a section"));
    }

    #[test]
    fn a_bare_section_in_markdown_is_one_of_its_own() {
        let own = concat!("docs/a", ".md");
        let (repo, dir) = repo(&[(own, PLATFORM)]);
        let text = format!("{PLATFORM}\nSee {} and {}.\n", s("2.4"), s("3"));
        let problems = repo.check_file(own, &text);
        std::fs::remove_dir_all(dir).ok();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].ends_with("this file has no section \u{a7}3"));
    }

    #[test]
    fn markdown_links_resolve_relative_to_their_file() {
        let (repo, dir) = repo(&[
            ("ARCHITECTURE.md", ARCH),
            ("docs/platform/ai-api.md", "# AI\n"),
        ]);
        let ok = repo.check_file(
            "docs/platform/ai-api.md",
            "[a](../../ARCHITECTURE.md#ask)\n",
        );
        let a = "ARCHITECTURE";
        let bad = repo.check_file("docs/platform/ai-api.md", &format!("[a]({a}.md)\n"));
        std::fs::remove_dir_all(dir).ok();
        assert!(ok.is_empty(), "{ok:#?}");
        assert_eq!(bad.len(), 1, "{bad:#?}");
    }

    #[test]
    fn urls_extensions_and_globs_are_not_references() {
        let found = scan(
            "see https://github.com/o/r/blob/main/README.md and github:o/r/x.md\n\
             let exts = [\".md\", \".txt\"]; for f in docs/*.md; \"{name}.md\"; x.mdx\n",
        );
        assert!(found.references.is_empty(), "{:#?}", found.references);
    }

    #[test]
    fn section_lists_and_ranges_parse() {
        let text = format!("{}–2.4, {} and {}: done", s("2.2"), s("2.7"), s("3"));
        let (ns, _) = parse_numbers(&text);
        assert_eq!(ns, ["2.2", "2.4", "2.7", "3"]);
        assert_eq!(parse_invariants("1, 2 and 4"), [1, 2, 4]);
        assert_eq!(parse_invariants("1–3."), [1, 2, 3]);
    }
}
