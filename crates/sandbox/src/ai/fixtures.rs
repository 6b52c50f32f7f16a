//! PDF files made in code, for tests and the demo: text with known words on
//! known pages, encrypted, truncated, image-only (no text layer), not a PDF.
//!
//! Text is laid out in Helvetica with `WinAnsiEncoding`, one `Td` line per
//! input line, so [`crate::ai::extract::extract_pdf`] gives back exactly the
//! lines given (Latin-1 text only).

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
