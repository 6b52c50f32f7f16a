//! search_chunks: ranking on a small library of realistic documents, and
//! that it searches only the caller's chunks of `ready` documents.

use crate::fixtures::{TwoUsers, assert_denied, chunk, document};
use quire_testdb::Caller;
use quire_testdb::tokio_postgres::error::SqlState;
use uuid::Uuid;

/// A's library (three ready documents and one still indexing) and B's.
struct Library {
    t: TwoUsers,
    glacier: [Uuid; 3],
    sourdough: [Uuid; 3],
    lease: [Uuid; 3],
    lease_doc: Uuid,
    trial_doc: Uuid,
    falcon_doc: Uuid,
}

async fn library() -> Library {
    let t = TwoUsers::new().await;
    let (db, a, b) = (&t.db, t.a, t.b);

    let doc = document(db, a, "Rhône Glacier field report", "ready").await;
    let glacier = [
        chunk(db, a, doc, 1, "The Rhône Glacier has retreated nearly two kilometres since the first survey in 1856. \
            Meltwater now forms a proglacial lake at the former terminus, and the ice front loses about ten metres a year.").await,
        chunk(db, a, doc, 2, "Field teams measured ice thickness with ground-penetrating radar along six transects. \
            The thickest ice, 420 metres, lies beneath the upper accumulation basin.").await,
        chunk(db, a, doc, 3, "Summer temperatures at the weather station averaged 6.4 °C, two degrees warmer than the \
            1961–1990 baseline, which explains most of the accelerated melt.").await,
    ];
    let doc = document(db, a, "Sourdough notes", "ready").await;
    let sourdough = [
        chunk(db, a, doc, 1, "Feed the starter twice a day with equal weights of flour and water; a healthy starter \
            doubles within six hours at 24 °C.").await,
        chunk(db, a, doc, 1, "Bulk fermentation ends when the dough has grown by half and shows bubbles at the edges. \
            Shape gently, then proof overnight in the refrigerator.").await,
        chunk(db, a, doc, 2, "Bake at 250 °C in a preheated Dutch oven: twenty minutes with the lid on, then \
            twenty-five without, until the crust is deep brown.").await,
    ];
    let lease_doc = document(db, a, "Apartment lease", "ready").await;
    let lease = [
        chunk(
            db,
            a,
            lease_doc,
            1,
            "The tenant must give sixty days of written notice before terminating this lease. \
            Notice sent by email is valid if the landlord acknowledges receipt.",
        )
        .await,
        chunk(
            db,
            a,
            lease_doc,
            2,
            "The security deposit of two months' rent is returned within thirty days after the \
            keys are handed back, minus the cost of repairing damage beyond normal wear.",
        )
        .await,
        chunk(
            db,
            a,
            lease_doc,
            3,
            "Pets are allowed with the landlord's written consent; the tenant is liable for any \
            damage they cause.",
        )
        .await,
    ];
    let trial_doc = document(db, a, "Vaccine trial summary", "indexing").await;
    chunk(
        db,
        a,
        trial_doc,
        1,
        "Participants received two doses of the candidate vaccine four weeks apart; \
        neutralising antibody titres peaked fourteen days after the second dose.",
    )
    .await;
    let falcon_doc = document(db, b, "Falcon roadmap", "ready").await;
    chunk(
        db,
        b,
        falcon_doc,
        1,
        "Project Falcon will launch the orbital telescope in March; the mirror segments \
        are polished in Jena.",
    )
    .await;

    Library {
        t,
        glacier,
        sourdough,
        lease,
        lease_doc,
        trial_doc,
        falcon_doc,
    }
}

/// The ids of the hits, best first.
async fn search(caller: &Caller, query: &str) -> Vec<Uuid> {
    caller
        .query("select id from search_chunks($1)", &[&query])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_question_with_a_known_answer_returns_that_chunk_first() {
    // Arrange
    let lib = library().await;
    let a = lib.t.as_a();

    // Act / Assert: every word present, then questions worded unlike the text.
    assert_eq!(
        search(&a, "How thick is the ice?").await.first(),
        Some(&lib.glacier[1])
    );
    assert_eq!(
        search(&a, "security deposit returned").await.first(),
        Some(&lib.lease[1])
    );
    assert_eq!(
        search(
            &a,
            "How much notice must the tenant give before ending the lease?"
        )
        .await
        .first(),
        Some(&lib.lease[0])
    );
    assert_eq!(
        search(&a, "How long does bulk fermentation take?")
            .await
            .first(),
        Some(&lib.sourdough[1])
    );
    assert_eq!(
        search(&a, "Is my dog allowed in the flat?").await.first(),
        Some(&lib.lease[2])
    );
}

#[tokio::test]
async fn match_count_keeps_the_best_hits() {
    // Arrange: "ice" is in two glacier chunks, twice in the second.
    let lib = library().await;

    // Act
    let best = lib
        .t
        .as_a()
        .query("select id from search_chunks('ice', 1)", &[])
        .await
        .unwrap();

    // Assert
    assert_eq!(
        best.iter().map(|r| r.get::<_, Uuid>(0)).collect::<Vec<_>>(),
        vec![lib.glacier[1]]
    );
}

#[tokio::test]
async fn a_misspelled_query_still_finds_the_answer() {
    // Arrange
    let lib = library().await;
    let a = lib.t.as_a();

    // Act / Assert
    assert_eq!(
        search(&a, "securty deposit").await.first(),
        Some(&lib.lease[1])
    );
    assert_eq!(
        search(&a, "glaicer retreat").await.first(),
        Some(&lib.glacier[0])
    );
    assert_eq!(
        search(&a, "dutch ovn").await.first(),
        Some(&lib.sourdough[2])
    );
    assert_eq!(
        search(&a, "fermentat").await.first(),
        Some(&lib.sourdough[1]),
        "a fragment of a word"
    );
}

#[tokio::test]
async fn hits_carry_the_document_title_page_platform_chunk_and_score() {
    // Arrange
    let lib = library().await;

    // Act
    let row = lib.t.as_a()
        .query_one("select id, document_id, chunk_id, title, page, text, score from search_chunks('radar transects')", &[])
        .await
        .unwrap();

    // Assert
    assert_eq!(row.get::<_, Uuid>("id"), lib.glacier[1]);
    assert_eq!(row.get::<_, String>("title"), "Rhône Glacier field report");
    assert_eq!(row.get::<_, i32>("page"), 2);
    assert!(
        row.get::<_, String>("text")
            .starts_with("Field teams measured")
    );
    assert!(row.get::<_, f32>("score") > 0.0);
    let platform_chunk: Uuid = lib
        .t
        .db
        .admin()
        .await
        .query_one(
            "select chunk_id from document_chunks where id = $1",
            &[&lib.glacier[1]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(row.get::<_, Uuid>("chunk_id"), platform_chunk);
}

#[tokio::test]
async fn a_user_never_finds_another_users_text() {
    // Arrange
    let lib = library().await;

    // Act
    let a_asks_about_b = search(&lib.t.as_a(), "orbital telescope mirror").await;
    let a_misspells_b = search(&lib.t.as_a(), "Falcon telescop").await;
    let a_names_bs_document = lib
        .t
        .as_a()
        .query(
            "select id from search_chunks('telescope', 8, array[$1]::uuid[])",
            &[&lib.falcon_doc],
        )
        .await
        .unwrap();
    let b_asks_about_a = search(&lib.t.as_b(), "security deposit").await;
    let b_finds_own = search(&lib.t.as_b(), "orbital telescope mirror").await;

    // Assert
    assert!(a_asks_about_b.is_empty());
    assert!(a_misspells_b.is_empty());
    assert!(a_names_bs_document.is_empty());
    assert!(b_asks_about_a.is_empty());
    assert_eq!(b_finds_own.len(), 1);
}

#[tokio::test]
async fn documents_that_are_not_ready_are_not_searched() {
    // Arrange
    let lib = library().await;
    let a = lib.t.as_a();

    // Act
    let while_indexing = search(&a, "neutralising antibody titres").await;
    lib.t
        .db
        .as_service()
        .execute(
            "update documents set status = 'ready' where id = $1",
            &[&lib.trial_doc],
        )
        .await
        .unwrap();
    let once_ready = search(&a, "neutralising antibody titres").await;

    // Assert
    assert!(while_indexing.is_empty());
    assert_eq!(once_ready.len(), 1);
}

#[tokio::test]
async fn document_ids_and_match_count_narrow_the_search() {
    // Arrange
    let lib = library().await;
    let a = lib.t.as_a();

    // Act
    let in_lease = a
        .query(
            "select document_id from search_chunks('written', 8, array[$1]::uuid[])",
            &[&lib.lease_doc],
        )
        .await
        .unwrap();
    let two = a
        .query("select id from search_chunks('the tenant', 2)", &[])
        .await
        .unwrap();
    let clamped = a
        .query("select id from search_chunks('tenant', 100000)", &[])
        .await
        .unwrap();

    // Assert
    assert_eq!(in_lease.len(), 2);
    assert!(
        in_lease
            .iter()
            .all(|r| r.get::<_, Uuid>(0) == lib.lease_doc)
    );
    assert_eq!(two.len(), 2);
    assert_eq!(clamped.len(), 2);
}

#[tokio::test]
async fn only_signed_in_users_may_search() {
    // Arrange
    let lib = library().await;

    // Act
    let anon = lib
        .t
        .db
        .as_anon()
        .query("select * from search_chunks('tenant')", &[])
        .await;
    let service = lib
        .t
        .db
        .as_service()
        .query("select * from search_chunks('tenant')", &[])
        .await;
    let anon_ranks = lib
        .t
        .db
        .as_anon()
        .query(
            "select * from private.rank_own_chunks('tenant', 8, null)",
            &[],
        )
        .await;
    let b_ranks = lib
        .t
        .as_b()
        .query(
            "select id from private.rank_own_chunks('tenant', 8, null)",
            &[],
        )
        .await
        .unwrap();
    let a_ranks = lib
        .t
        .as_a()
        .query(
            "select id from private.rank_own_chunks('tenant', 8, null)",
            &[],
        )
        .await
        .unwrap();

    let privileges = lib.t.db.admin().await
        .query_one(
            "select has_function_privilege('anon', 'public.search_chunks(text, integer, uuid[])', 'execute'), \
                    has_function_privilege('service_role', 'public.search_chunks(text, integer, uuid[])', 'execute'), \
                    has_function_privilege('authenticated', 'public.search_chunks(text, integer, uuid[])', 'execute')",
            &[],
        )
        .await
        .unwrap();

    // Assert
    assert_denied(anon);
    assert_denied(service);
    assert_eq!(
        (
            privileges.get::<_, bool>(0),
            privileges.get::<_, bool>(1),
            privileges.get::<_, bool>(2)
        ),
        (false, false, true)
    );
    assert_denied(anon_ranks);
    assert!(
        b_ranks.is_empty(),
        "the ranking helper only ever ranks the caller's chunks"
    );
    assert_eq!(a_ranks.len(), 2);
}

/// One ready document per user, each with these chunks (page 1, 2, …):
/// A's chunk ids, B's chunk ids.
async fn both_users_hold(t: &TwoUsers, title: &str, texts: &[&str]) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut ids = (Vec::new(), Vec::new());
    for (owner, out) in [(t.a, &mut ids.0), (t.b, &mut ids.1)] {
        let doc = document(&t.db, owner, title, "ready").await;
        for (page, text) in (1..).zip(texts) {
            out.push(chunk(&t.db, owner, doc, page, text).await);
        }
    }
    ids
}

/// Asks as A and as B; asserts that neither sees a chunk of the other and
/// returns A's hits, best first.
async fn a_finds(t: &TwoUsers, ids: &(Vec<Uuid>, Vec<Uuid>), query: &str) -> Vec<Uuid> {
    let a_hits = search(&t.as_a(), query).await;
    let b_hits = search(&t.as_b(), query).await;
    assert!(
        a_hits.iter().all(|id| ids.0.contains(id)),
        "{query}: A got a chunk that is not A's: {a_hits:?}"
    );
    assert!(
        b_hits.iter().all(|id| ids.1.contains(id)),
        "{query}: B got a chunk that is not B's: {b_hits:?}"
    );
    assert_eq!(
        a_hits.len(),
        b_hits.len(),
        "{query}: A and B hold the same text"
    );
    a_hits
}

#[tokio::test]
async fn a_chinese_phrase_finds_the_chunk_that_holds_it() {
    // Arrange: Chinese has no spaces. The second chunk shares more
    // character trigrams with the query ("小河" ends a clause, "照在" starts
    // the next) without holding the phrase.
    let t = TwoUsers::new().await;
    let ids = both_users_hold(
        &t,
        "春天",
        &[
            "春天的早晨，阳光照在小河上，岸边的柳树发出了新芽。",
            "夜里的小河，照在窗上的月光很美。",
            "市场上的人越来越多，卖菜的声音此起彼伏。",
        ],
    )
    .await;

    // Act
    let hits = a_finds(&t, &ids, "照在小河").await;
    let one_character = a_finds(&t, &ids, "菜").await;

    // Assert
    assert_eq!(hits.first(), Some(&ids.0[0]));
    assert_eq!(one_character, vec![ids.0[2]]);
}

#[tokio::test]
async fn a_russian_word_finds_its_other_forms() {
    // Arrange: книгу (accusative) on page 2; книга and книге on pages 1 and 3.
    let t = TwoUsers::new().await;
    let ids = both_users_hold(
        &t,
        "Книги",
        &[
            "Книга лежала на столе у окна.",
            "Я читаю интересную книгу каждый вечер.",
            "В этой книге много картинок.",
            "Погода сегодня хорошая.",
        ],
    )
    .await;

    // Act
    let hits = a_finds(&t, &ids, "книгу").await;

    // Assert: the form asked for first, then the other forms; never the weather.
    assert_eq!(hits.first(), Some(&ids.0[1]));
    let mut found = hits.clone();
    found.sort();
    let mut want = ids.0[..3].to_vec();
    want.sort();
    assert_eq!(found, want);
}

#[tokio::test]
async fn an_arabic_phrase_finds_its_words_with_and_without_the_article() {
    // Arrange: "the new library" on page 1; "a new library" (no ال, so
    // different words as written) on page 2.
    let t = TwoUsers::new().await;
    let ids = both_users_hold(
        &t,
        "المدينة",
        &[
            "افتتحت المكتبة الجديدة في وسط المدينة",
            "زرنا مكتبة جديدة قرب النهر",
            "الطقس جميل اليوم في المدينة",
        ],
    )
    .await;

    // Act
    let hits = a_finds(&t, &ids, "المكتبة الجديدة").await;

    // Assert
    assert_eq!(hits, vec![ids.0[0], ids.0[1]]);
}

#[tokio::test]
async fn a_german_word_finds_the_compounds_built_on_it() {
    // Arrange: "Brunnen" alone on page 1, inside "Dorfbrunnen" on page 2.
    let t = TwoUsers::new().await;
    let ids = both_users_hold(
        &t,
        "Dorfchronik",
        &[
            "Der Brunnen im Hof ist sehr alt.",
            "Niemand wusste, warum der Dorfbrunnen plötzlich wieder Wasser führte.",
            "Die Bäckerei öffnete früh am Morgen.",
        ],
    )
    .await;

    // Act
    let part = a_finds(&t, &ids, "Brunnen").await;
    let compound = a_finds(&t, &ids, "dorfbrunnen").await;

    // Assert: the word itself first, then the compound.
    assert_eq!(part, vec![ids.0[0], ids.0[1]]);
    assert_eq!(compound, vec![ids.0[1]]);
}

/// A chunk as the companion copies it: its first and last page (either may
/// be NULL).
async fn chunk_on_pages(
    t: &TwoUsers,
    owner: Uuid,
    document: Uuid,
    pages: (Option<i32>, Option<i32>),
    text: &str,
) -> Uuid {
    t.db.as_service()
        .query_one(
            "insert into document_chunks (owner_id, document_id, chunk_id, page, page_end, ordinal, text) \
             values ($1, $2, gen_random_uuid(), $3, $4, \
               (select count(*) from document_chunks where document_id = $2)::int, $5) \
             returning id",
            &[&owner, &document, &pages.0, &pages.1, &text],
        )
        .await
        .expect("service role inserts a chunk")
        .get(0)
}

/// (id, page, page_end) of each hit, best first.
async fn pages_found(caller: &Caller, query: &str) -> Vec<(Uuid, Option<i32>, Option<i32>)> {
    caller
        .query(
            "select id, page, page_end from search_chunks($1)",
            &[&query],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id"), r.get("page"), r.get("page_end")))
        .collect()
}

#[tokio::test]
async fn hits_carry_the_range_of_pages_their_chunk_spans() {
    // Arrange: A's chunk crosses from page 3 to page 4, one stays on page 5,
    // one has no pages (an extraction without page texts); B has a chunk
    // with the same words on pages 1-2.
    let t = TwoUsers::new().await;
    let doc = document(&t.db, t.a, "Boiler manual", "ready").await;
    let across = chunk_on_pages(
        &t,
        t.a,
        doc,
        (Some(3), Some(4)),
        "Bleed the radiators before the heating season: open each valve until water runs.",
    )
    .await;
    let one_page = chunk_on_pages(
        &t,
        t.a,
        doc,
        (Some(5), Some(5)),
        "Descale the heat exchanger every two years; radiators need no descaling.",
    )
    .await;
    let unpaged = document(&t.db, t.a, "Boiler notes", "ready").await;
    let nowhere = chunk_on_pages(
        &t,
        t.a,
        unpaged,
        (None, None),
        "The radiators in the attic were replaced in 2019.",
    )
    .await;
    let b_doc = document(&t.db, t.b, "B's boiler manual", "ready").await;
    let bs = chunk_on_pages(
        &t,
        t.b,
        b_doc,
        (Some(1), Some(2)),
        "Radiators: bleed them every autumn.",
    )
    .await;

    // Act
    let mut a_found = pages_found(&t.as_a(), "radiators").await;
    let b_found = pages_found(&t.as_b(), "radiators").await;

    // Assert: each of A's hits with its own range, none of B's; B sees only theirs.
    a_found.sort();
    let mut want = vec![
        (across, Some(3), Some(4)),
        (one_page, Some(5), Some(5)),
        (nowhere, None, None),
    ];
    want.sort();
    assert_eq!(a_found, want);
    assert_eq!(b_found, vec![(bs, Some(1), Some(2))]);
}

#[tokio::test]
async fn a_chunk_never_ends_before_it_begins() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc = document(&t.db, t.a, "Boiler manual", "ready").await;

    // Act: a last page before the first, and a last page without a first.
    let backwards = t.db.as_service()
        .execute(
            "insert into document_chunks (owner_id, document_id, chunk_id, page, page_end, ordinal, text) \
             values ($1, $2, gen_random_uuid(), 4, 3, 0, 'x')",
            &[&t.a, &doc],
        )
        .await;
    let no_first = t.db.as_service()
        .execute(
            "insert into document_chunks (owner_id, document_id, chunk_id, page, page_end, ordinal, text) \
             values ($1, $2, gen_random_uuid(), null, 3, 1, 'y')",
            &[&t.a, &doc],
        )
        .await;

    // Assert
    for result in [backwards, no_first] {
        assert_eq!(result.unwrap_err().code(), Some(&SqlState::CHECK_VIOLATION));
    }
}
