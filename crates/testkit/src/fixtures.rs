//! PDF files made in code, for tests and benches: text with known words on
//! known pages, encrypted, truncated, image-only (no text layer), not a PDF.
//!
//! Text is laid out in Helvetica with `WinAnsiEncoding`, one `Td` line per
//! input line, so the sandbox's source extraction (`quire_sandbox::ai::extract`)
//! gives back exactly the lines given (Latin-1 text only).

use lopdf::content::{Content, Operation};
use lopdf::{
    Document, EncryptionState, EncryptionVersion, Object, Permissions, Stream, dictionary,
};

const PAGE_WIDTH: i64 = 612;
const PAGE_HEIGHT: i64 = 792;
const FONT_SIZE: i64 = 11;
const LEADING: i64 = 14;

/// A PDF with one page per entry of `pages`; each `\n` starts a new line.
/// Lines past the bottom of the page are still written (and extracted).
pub fn text_pdf(pages: &[&str]) -> Vec<u8> {
    save(text_document(pages))
}

/// A PDF whose pages read like a real document's: each entry of `pages` is set
/// in the middle of a full page of placeholder prose (see [`full_pages`]).
pub fn document_pdf(pages: &[&str]) -> Vec<u8> {
    let pages = full_pages(pages);
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    text_pdf(&pages)
}

/// Characters of placeholder prose before and after a page's own text: a
/// whole chunk of the platform's default chunking (1,000 characters), so a
/// chunk that holds any of the page's own text cannot reach another page.
const PAGE_PADDING_CHARS: usize = 1000;

/// `pages` as a real document's pages: a test document's few sentences make
/// pages far shorter than real ones, so under the platform's chunking (chunks
/// cut from the joined pages) several pages would fall into one chunk and be
/// cited as the first of them. Each page's text is put between paragraphs of
/// pseudo-Latin placeholder prose (no English word, so it answers no
/// question), different on every page (so a passage of it is found on its own
/// page only), of [`PAGE_PADDING_CHARS`] or more before and after.
pub fn full_pages(pages: &[&str]) -> Vec<String> {
    pages
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut words = Placeholder::new(i as u64 + 1);
            let before = words.paragraphs(PAGE_PADDING_CHARS);
            let after = words.paragraphs(PAGE_PADDING_CHARS);
            format!("{before}\n\n{text}\n\n{after}")
        })
        .collect()
}

/// Deterministic pseudo-Latin prose (a linear congruential generator over a
/// word list), wrapped at 88 characters a line as on paper.
struct Placeholder(u64);

impl Placeholder {
    const WORDS: &[&str] = &[
        "lorem",
        "ipsum",
        "dolor",
        "consectetur",
        "adipiscing",
        "elit",
        "eiusmod",
        "tempor",
        "incididunt",
        "labore",
        "dolore",
        "magna",
        "aliqua",
        "enim",
        "minim",
        "veniam",
        "quis",
        "nostrud",
        "exercitation",
        "ullamco",
        "laboris",
        "nisi",
        "aliquip",
        "commodo",
        "consequat",
        "duis",
        "aute",
        "irure",
        "reprehenderit",
        "voluptate",
        "velit",
        "esse",
        "cillum",
        "fugiat",
        "nulla",
        "pariatur",
        "excepteur",
        "sint",
        "occaecat",
        "cupidatat",
        "proident",
        "sunt",
        "culpa",
        "officia",
        "deserunt",
        "mollit",
        "anim",
        "laborum",
    ];

    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }

    /// Paragraphs of three sentences, `at_least` characters in all.
    fn paragraphs(&mut self, at_least: usize) -> String {
        let mut paragraphs: Vec<String> = Vec::new();
        let mut total = 0;
        while total < at_least {
            let sentences: Vec<String> = (0..3).map(|_| self.sentence()).collect();
            let paragraph = wrap(&sentences.join(" "), 88);
            total += paragraph.chars().count() + 2;
            paragraphs.push(paragraph);
        }
        paragraphs.join("\n\n")
    }

    fn sentence(&mut self) -> String {
        let count = 8 + self.next(7);
        let words: Vec<&str> = (0..count)
            .map(|_| Self::WORDS[self.next(Self::WORDS.len())])
            .collect();
        let sentence = words.join(" ");
        let mut chars = sentence.chars();
        let first = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_default();
        format!("{first}{}.", chars.as_str())
    }
}

/// `text` wrapped at `width` bytes a line, breaking between words, as on paper.
pub fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join("\n")
}

/// Like [`text_pdf`], encrypted (RC4, 128-bit key) with `user_password`.
/// An empty user password gives a file any reader opens without asking.
pub fn encrypted_pdf(pages: &[&str], user_password: &str) -> Vec<u8> {
    let mut doc = text_document(pages);
    let state = EncryptionState::try_from(EncryptionVersion::V2 {
        document: &doc,
        owner_password: "quire-fixture-owner",
        user_password,
        key_length: 128,
        permissions: Permissions::all(),
    })
    .expect("encryption parameters are valid");
    doc.encrypt(&state).expect("a fresh document encrypts");
    save(doc)
}

/// A PDF of `page_count` pages that each show only an image: what a scanner
/// produces without OCR. It has no text layer at all.
pub fn image_only_pdf(page_count: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    // An 8×8 grey-level checkerboard.
    let pixels: Vec<u8> = (0..64u8)
        .map(|i| if (i / 8 + i % 8) % 2 == 0 { 0x30 } else { 0xd0 })
        .collect();
    let image_id = doc.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Image",
            "Width" => 8,
            "Height" => 8,
            "ColorSpace" => "DeviceGray",
            "BitsPerComponent" => 8,
        },
        pixels,
    ));
    let kids = (0..page_count)
        .map(|_| {
            let content = Content {
                operations: vec![
                    Operation::new("q", vec![]),
                    Operation::new(
                        "cm",
                        vec![
                            400.into(),
                            0.into(),
                            0.into(),
                            400.into(),
                            100.into(),
                            200.into(),
                        ],
                    ),
                    Operation::new("Do", vec!["Im1".into()]),
                    Operation::new("Q", vec![]),
                ],
            };
            let content_id = doc.add_object(Stream::new(
                dictionary! {},
                content.encode().expect("content encodes"),
            ));
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
                "Resources" => dictionary! { "XObject" => dictionary! { "Im1" => image_id } },
            })
            .into()
        })
        .collect();
    finish(&mut doc, pages_id, kids, page_count);
    save(doc)
}

/// The first 60 % of `pdf`: the cross-reference table and trailer are gone,
/// as after an interrupted download.
pub fn truncated(pdf: &[u8]) -> Vec<u8> {
    pdf[..pdf.len() * 6 / 10].to_vec()
}

/// Bytes that are not a PDF (a PNG signature and some text), to be uploaded
/// under a `.pdf` name.
pub fn not_a_pdf() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(b"this is not a PDF, only named like one\n");
    bytes
}

fn text_document(pages: &[&str]) -> Document {
    document_from_operations(
        pages
            .iter()
            .map(|text| {
                let mut operations = vec![
                    Operation::new("BT", vec![]),
                    Operation::new("Tf", vec!["F1".into(), FONT_SIZE.into()]),
                    Operation::new("TL", vec![LEADING.into()]),
                    Operation::new("Td", vec![72.into(), (PAGE_HEIGHT - 72).into()]),
                ];
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        operations.push(Operation::new("T*", vec![]));
                    }
                    operations.push(Operation::new(
                        "Tj",
                        vec![Object::string_literal(latin1(line))],
                    ));
                }
                operations.push(Operation::new("ET", vec![]));
                operations
            })
            .collect(),
    )
}

/// A PDF whose pages run the given content-stream operations, with
/// Helvetica (`WinAnsiEncoding`) available as font `F1`: for tests of text
/// layouts [`text_pdf`] does not produce.
pub fn pdf_from_operations(pages: Vec<Vec<Operation>>) -> Vec<u8> {
    save(document_from_operations(pages))
}

fn document_from_operations(pages: Vec<Vec<Operation>>) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let count = pages.len();
    let kids = pages
        .into_iter()
        .map(|operations| {
            let content_id = doc.add_object(Stream::new(
                dictionary! {},
                Content { operations }.encode().expect("content encodes"),
            ));
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            })
            .into()
        })
        .collect();
    finish(&mut doc, pages_id, kids, count);
    doc
}

fn finish(doc: &mut Document, pages_id: lopdf::ObjectId, kids: Vec<Object>, count: usize) {
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count as i64,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_WIDTH.into(), PAGE_HEIGHT.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    // Encryption keys are derived from the first file identifier.
    let id = Object::string_literal(b"quire-fixture-id".to_vec());
    doc.trailer.set("ID", vec![id.clone(), id]);
}

fn save(mut doc: Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("saving to memory cannot fail");
    out
}

fn latin1(line: &str) -> Vec<u8> {
    line.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Three pages of a blender's manual with known facts on known pages: the
/// motor's power on page 1, cleaning on page 2, the warranty on page 3.
pub const MANUAL: [&str; 3] = [
    "The X200 blender has a 1200 W motor.\nIt ships with two glass jars.",
    "Cleaning: rinse the jars with warm water after every use.\nNever put the motor base in water.",
    "Warranty: the motor is covered for five years.\nThe jars are covered for one year only.",
];
