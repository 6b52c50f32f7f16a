//! The text of the real-world PDFs in `tests/pdf-corpus`, as a reader of
//! each page would type it.

use std::path::PathBuf;

use quire_pdftext::score::score;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/pdf-corpus")
}

fn pages(name: &str) -> Vec<String> {
    let bytes = std::fs::read(corpus().join("pdf").join(format!("{name}.pdf"))).unwrap();
    let pdf = quire_pdftext::Pdf::open(&bytes).unwrap();
    quire_pdftext::page_texts(&pdf, &quire_pdftext::Stop::default())
        .unwrap()
        .pages
}

fn truth(name: &str) -> Vec<String> {
    (1..)
        .map_while(|n| {
            std::fs::read_to_string(corpus().join("truth").join(name).join(format!("{n}.txt"))).ok()
        })
        .collect()
}

#[test]
fn every_line_ghostscript_writes_with_the_quote_operator_is_read() {
    let text = pages("ps2pdf").join("\n");
    assert!(
        text.contains("Ghostscript turns them into portable documents for printing."),
        "{text}"
    );
    assert!(
        text.contains("grep -rn pattern ./src | sort | uniq -c"),
        "{text}"
    );
}

#[test]
fn a_word_groff_breaks_at_a_line_end_is_found_whole() {
    let text = pages("groff").join("\n");
    assert!(
        text.contains("the given expression from left to right"),
        "{text}"
    );
    assert!(text.contains("must survive extraction"), "{text}");
}

#[test]
fn letters_chromium_positions_one_by_one_stay_one_word() {
    assert!(pages("chromium-de")[0].starts_with("Über die Wolken\n"));
    assert!(pages("chromium-pl")[0].starts_with("Zażółć gęślą jaźń\n"));
}

#[test]
fn arabic_reads_right_to_left_with_its_ligatures_in_order() {
    // pdftotext reverses the letters inside lam-alef ligatures ("إىل"), so
    // this document is checked against its source, not against pdftotext.
    let text = &pages("chromium-ar")[0];
    assert!(text.starts_with("رحلة إلى البحر\n"), "{text}");
    assert!(text.contains("الأطفال على الرمال"), "{text}");
}

#[test]
fn the_second_pages_of_chinese_and_arabic_keep_their_own_punctuation_and_order() {
    let zh = pages("chromium-zh");
    assert_eq!(zh.len(), 2);
    assert!(zh[1].starts_with("夏天的海边\n"), "{}", zh[1]);
    assert!(zh[1].contains("去海边度假，每天早上"), "{}", zh[1]);
    let ar = pages("chromium-ar");
    assert_eq!(ar.len(), 2);
    assert!(ar[1].starts_with("زيارة المدينة القديمة\n"), "{}", ar[1]);
    assert!(ar[1].contains("شربنا الشاي بالنعناع"), "{}", ar[1]);
}

#[test]
fn every_text_document_reads_like_pdftotext_on_the_same_pages() {
    let mut names: Vec<String> = std::fs::read_dir(corpus().join("truth"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "chromium-ar")
        .collect();
    names.sort();
    let below: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let s = score(&pages(name), &truth(name));
            (s.recall < 0.98 || s.precision < 0.98 || s.page_accuracy < 1.0)
                .then(|| format!("{name}: {s:?}"))
        })
        .collect();
    assert!(below.is_empty(), "below 0.98 or off their page: {below:#?}");
}

#[test]
fn an_image_only_page_has_no_text() {
    assert_eq!(pages("scan"), vec![String::new()]);
}
