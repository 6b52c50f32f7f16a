//! `cargo xtask demo-pdfs`: writes the demo's PDFs (`demo/*.pdf`) from their text sources
//! (`demo/src/*.txt`), in plain PDF syntax with the standard Helvetica fonts, so that the files
//! are reproducible byte for byte and have a real text layer (what the sandbox extracts).
//!
//! Source markup, one directive per line:
//! - `title: …` and `subtitle: …` (the first page's heading);
//! - `=== page` starts a new page (every fact lives on the page written here, so a citation's
//!   page number is known in advance);
//! - `# …` a section heading, `- …` a bullet, anything else paragraph text (lines join until a
//!   blank line).
//!
//! Text is Latin-1 plus – — ‘ ’ “ ” • (written in WinAnsiEncoding); a page that overflows is an
//! error, not a silent second page.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::util;

const PAGE_W: f32 = 612.0;
const PAGE_H: f32 = 792.0;
const MARGIN: f32 = 64.0;
const BODY: f32 = 10.5;
const LEADING: f32 = 14.5;
const BOTTOM: f32 = 72.0;

/// Regenerates every `demo/src/NAME.txt` into `demo/NAME.pdf`.
pub fn generate() -> Result<()> {
    let root = util::repo_root();
    let src = root.join("demo/src");
    let mut sources: Vec<_> = std::fs::read_dir(&src)
        .with_context(|| format!("reading {}", src.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    sources.sort();
    for source in sources {
        let text = std::fs::read_to_string(&source)?;
        let stem = source.file_stem().unwrap_or_default().to_string_lossy();
        let out = root.join("demo").join(format!("{stem}.pdf"));
        let pdf = render(&text).with_context(|| format!("rendering {}", source.display()))?;
        std::fs::write(&out, pdf)?;
        println!(
            "wrote {}",
            out.strip_prefix(&root).unwrap_or(&out).display()
        );
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Font {
    Regular,
    Bold,
}

/// One positioned run of text, or a bullet dot.
enum Mark {
    Text {
        font: Font,
        size: f32,
        x: f32,
        y: f32,
        grey: bool,
        text: String,
    },
    Dot {
        x: f32,
        y: f32,
    },
    Rule {
        y: f32,
    },
}

struct Layout {
    pages: Vec<Vec<Mark>>,
    y: f32,
}

impl Layout {
    fn page(&mut self) -> &mut Vec<Mark> {
        self.pages.last_mut().expect("a page exists")
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = PAGE_H - MARGIN;
    }

    fn line(&mut self, font: Font, size: f32, x: f32, text: String) -> Result<()> {
        if self.y < BOTTOM {
            bail!(
                "page {} overflows at {text:?}: move text to the next page",
                self.pages.len()
            );
        }
        let y = self.y;
        self.page().push(Mark::Text {
            font,
            size,
            x,
            y,
            grey: false,
            text,
        });
        Ok(())
    }

    /// Wraps `text` into lines no wider than `width` and sets them from `x`.
    fn paragraph(&mut self, text: &str, x: f32, bullet: bool) -> Result<()> {
        let width = PAGE_W - MARGIN - x;
        let mut first = true;
        for line in wrap(text, Font::Regular, BODY, width) {
            if bullet && first {
                let y = self.y;
                self.page().push(Mark::Dot { x: x - 10.0, y });
            }
            first = false;
            self.line(Font::Regular, BODY, x, line)?;
            self.y -= LEADING;
        }
        self.y -= if bullet { 3.0 } else { 7.0 };
        Ok(())
    }
}

fn render(source: &str) -> Result<Vec<u8>> {
    let mut title = String::new();
    let mut subtitle = String::new();
    let mut layout = Layout {
        pages: Vec::new(),
        y: 0.0,
    };
    // Paragraph text gathered until a blank line or another directive.
    let mut para = String::new();
    let mut bullet = false;
    let flush = |layout: &mut Layout, para: &mut String, bullet: bool| -> Result<()> {
        if !para.is_empty() {
            let x = if bullet { MARGIN + 16.0 } else { MARGIN };
            layout.paragraph(para, x, bullet)?;
            para.clear();
        }
        Ok(())
    };
    for raw in source.lines() {
        let line = raw.trim_end();
        if let Some(t) = line.strip_prefix("title:") {
            title = t.trim().to_owned();
        } else if let Some(t) = line.strip_prefix("subtitle:") {
            subtitle = t.trim().to_owned();
        } else if line.starts_with("=== page") {
            flush(&mut layout, &mut para, bullet)?;
            bullet = false;
            layout.new_page();
            if layout.pages.len() == 1 {
                layout.y -= 8.0;
                layout.line(Font::Bold, 22.0, MARGIN, title.clone())?;
                layout.y -= 20.0;
                layout.line(Font::Regular, 12.0, MARGIN, subtitle.clone())?;
                layout.y -= 12.0;
                let y = layout.y;
                layout.page().push(Mark::Rule { y });
                layout.y -= 26.0;
            }
        } else if let Some(h) = line.strip_prefix("# ") {
            flush(&mut layout, &mut para, bullet)?;
            bullet = false;
            layout.y -= 6.0;
            layout.line(Font::Bold, 13.0, MARGIN, h.trim().to_owned())?;
            layout.y -= LEADING + 4.0;
        } else if let Some(b) = line.strip_prefix("- ") {
            flush(&mut layout, &mut para, bullet)?;
            bullet = true;
            para.push_str(b.trim());
        } else if line.trim().is_empty() {
            flush(&mut layout, &mut para, bullet)?;
            bullet = false;
        } else {
            if layout.pages.is_empty() {
                bail!("text before the first `=== page`: {line:?}");
            }
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(line.trim());
        }
    }
    flush(&mut layout, &mut para, bullet)?;
    if title.is_empty() || layout.pages.is_empty() {
        bail!("a demo source needs a `title:` and at least one `=== page`");
    }
    let count = layout.pages.len();
    for (i, page) in layout.pages.iter_mut().enumerate() {
        page.push(Mark::Text {
            font: Font::Regular,
            size: 8.5,
            x: MARGIN,
            y: 40.0,
            grey: true,
            text: format!("{title} \u{2014} page {} of {count}", i + 1),
        });
    }
    write_pdf(&title, &layout.pages)
}

/// Greedy word wrap with Helvetica's metrics.
fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_width(&candidate, font, size) > width {
            lines.push(std::mem::replace(&mut line, word.to_owned()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Helvetica advance widths (AFM, thousandths of an em) for ASCII 32..=126.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278,
    278, // ' '..'/'
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584,
    556, // '0'..'?'
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722,
    778, // '@'..'O'
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
    556, // 'P'..'_'
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556,
    556, // '`'..'o'
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // 'p'..'~'
];

fn text_width(text: &str, font: Font, size: f32) -> f32 {
    let units: u32 = text
        .chars()
        .map(|c| match c {
            ' '..='~' => u32::from(HELVETICA[c as usize - 32]),
            '\u{2014}' => 1000,
            _ => 556,
        })
        .sum();
    // Helvetica-Bold runs about 6 % wider; headings are short enough for an estimate.
    let scale = if font == Font::Bold { 1.06 } else { 1.0 };
    units as f32 * scale * size / 1000.0
}

/// `text` as a PDF literal string in WinAnsiEncoding.
fn pdf_string(text: &str) -> Result<String> {
    let mut out = String::from("(");
    for c in text.chars() {
        let byte: u32 = match c {
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201C}' => 0x93,
            '\u{201D}' => 0x94,
            '\u{2022}' => 0x95,
            c if (c as u32) < 0x100 => c as u32,
            c => bail!("{c:?} has no WinAnsiEncoding code"),
        };
        match byte {
            0x28 | 0x29 | 0x5c => {
                out.push('\\');
                out.push(char::from_u32(byte).expect("ASCII"));
            }
            0x20..=0x7e => out.push(char::from_u32(byte).expect("ASCII")),
            _ => write!(out, "\\{byte:03o}").expect("writing to a String"),
        }
    }
    out.push(')');
    Ok(out)
}

fn content_stream(marks: &[Mark]) -> Result<String> {
    let mut s = String::new();
    for mark in marks {
        match mark {
            Mark::Text {
                font,
                size,
                x,
                y,
                grey,
                text,
            } => {
                let f = if *font == Font::Bold { "F2" } else { "F1" };
                let colour = if *grey { "0.45 g" } else { "0.1 g" };
                writeln!(
                    s,
                    "BT {colour} /{f} {size} Tf {x:.1} {y:.1} Td {} Tj ET",
                    pdf_string(text)?
                )?;
            }
            Mark::Dot { x, y } => {
                writeln!(s, "0.3 g {:.1} {:.1} 3.2 3.2 re f", x, y + 2.6)?;
            }
            Mark::Rule { y } => {
                writeln!(
                    s,
                    "0.55 0.35 0.2 RG 1.2 w {MARGIN:.1} {y:.1} m {:.1} {y:.1} l S",
                    PAGE_W - MARGIN
                )?;
            }
        }
    }
    Ok(s)
}

/// A classic PDF 1.4 file: catalog, page tree, two standard fonts, one uncompressed content
/// stream per page, the document info (title) and an exact cross-reference table. Everything
/// after the header is ASCII (strings are octal-escaped), so lengths and offsets are in bytes.
fn write_pdf(title: &str, pages: &[Vec<Mark>]) -> Result<Vec<u8>> {
    // Object numbers: 1 catalog, 2 pages, 3 Helvetica, 4 Helvetica-Bold, 5 info, then a
    // (page, content) pair per page.
    let mut objects: Vec<String> = Vec::new();
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 6 + 2 * i))
        .collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {} /MediaBox [0 0 {PAGE_W} {PAGE_H}] >>",
        kids.join(" "),
        pages.len()
    ));
    for base in ["Helvetica", "Helvetica-Bold"] {
        objects.push(format!(
            "<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>"
        ));
    }
    objects.push(format!(
        "<< /Title {} /Producer (cargo xtask demo-pdfs) >>",
        pdf_string(title)?
    ));
    for (i, marks) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /Contents {} 0 R \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>",
            7 + 2 * i
        ));
        let stream = content_stream(marks)?;
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}endstream",
            stream.len()
        ));
    }
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        writeln!(tail, "{offset:010} 00000 n ")?;
    }
    write!(
        tail,
        "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    )?;
    out.extend(tail.as_bytes());
    Ok(out)
}

/// Whether `demo/NAME.pdf` is what `demo/src/NAME.txt` renders to (for `cargo xtask test`).
pub fn check_committed(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir.join("src"))?.flatten() {
        let source = entry.path();
        if source.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let stem = source.file_stem().unwrap_or_default().to_string_lossy();
        let pdf = dir.join(format!("{stem}.pdf"));
        let expected = render(&std::fs::read_to_string(&source)?)?;
        if std::fs::read(&pdf).ok().as_deref() != Some(expected.as_slice()) {
            bail!(
                "{} is not what {} renders to: run `cargo xtask demo-pdfs` and commit both",
                pdf.display(),
                source.display()
            );
        }
    }
    Ok(())
}
