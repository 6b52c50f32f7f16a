//! Arbitrary query strings into the PostgREST query-string parser: it must
//! never panic, and whatever filter it reads must read back the same after
//! rendering (so that a filter means one thing only).

#![no_main]

use libfuzzer_sys::fuzz_target;
use quire_sandbox::rest::query;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let _ = query::parse(&raw, false);
    let _ = query::parse(&raw, true);
    let _ = query::parse_select(&raw);
    for key in [
        "x",
        "and",
        "not.or",
        "order",
        "columns",
        "on_conflict",
        "limit",
    ] {
        let Ok(q) = query::parse_pairs(&[(key.to_owned(), Some(raw.to_string()))], false) else {
            continue;
        };
        for (_, filter) in &q.filters {
            let rendered = query::render_op_expr(&filter.expr);
            let again = query::parse_pairs(&[("x".to_owned(), Some(rendered))], false)
                .expect("a rendered filter parses");
            assert_eq!(again.filters[0].1.expr, filter.expr);
        }
    }
});
