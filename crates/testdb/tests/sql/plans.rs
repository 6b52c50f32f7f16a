//! Plan shapes at scale: 1,000 users with 100 chunks each. Asserts which
//! indexes the executed plans use (never how long they take).

use quire_testdb::{Caller, TestDb};
use serde_json::Value;
use uuid::Uuid;

/// The id of generated user `n` (1..=1000).
fn user(n: u32) -> Uuid {
    format!("00000000-0000-4000-8000-{n:012x}").parse().unwrap()
}

/// 1,000 users, each with 4 documents (one still indexing), 100 chunks of
/// realistic length drawn from 20 sentences plus a 8,000-word vocabulary,
/// 3 conversations of 4 messages with 5 events each. Written by the
/// superuser with triggers off (`session_replication_role = replica`) and
/// the chunk indexes rebuilt after the load, which is what makes it take
/// seconds, not minutes; the indexes are recreated from their own
/// definitions and checked to be the same set.
async fn thousand_users() -> TestDb {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let indexes = "select indexname::text, indexdef from pg_indexes \
                   where schemaname = 'public' and tablename = 'document_chunks' \
                     and indexname <> all (select conname from pg_constraint) order by 1";
    let chunk_indexes: Vec<(String, String)> = admin
        .query(indexes, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let drop = chunk_indexes
        .iter()
        .map(|(name, _)| format!("public.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let create = chunk_indexes
        .iter()
        .map(|(_, def)| format!("{def};"))
        .collect::<Vec<_>>()
        .join("\n");

    admin
        .batch_execute(&format!(
            r#"
set session_replication_role = replica;
set maintenance_work_mem = '256MB';
drop index {drop};

create function pg_temp.uid(n int) returns uuid language sql immutable
  as $$ select ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$;
create function pg_temp.word(n int) returns text language sql immutable as $$
  select (array['ka','lo','mi','nu','pe','ra','si','to','va','ze','bo','du','fa','gi','ho','ju','ke','lu','ma','ne'])[1 + n % 20]
      || (array['ka','lo','mi','nu','pe','ra','si','to','va','ze','bo','du','fa','gi','ho','ju','ke','lu','ma','ne'])[1 + (n / 20) % 20]
      || (array['n','r','s','t','l','m','x','k','d','p','g','b','v','z','ch','sh','th','st','nd','rk'])[1 + (n / 400) % 20]
$$;
create temp table sentences as select array[
  'The committee reviewed the quarterly budget and approved funding for the new research laboratory.',
  'Photosynthesis converts light energy into chemical energy stored in glucose molecules.',
  'The treaty was signed in the spring after months of negotiation between the delegations.',
  'Regular maintenance of the turbine blades reduces the risk of fatigue cracks.',
  'Patients who received the treatment reported fewer symptoms after six weeks.',
  'The algorithm sorts the records by timestamp before merging the partitions.',
  'Heavy rainfall in the northern valley caused the river to overflow its banks.',
  'The novel follows a young cartographer who maps an island that keeps changing shape.',
  'Interest rates rose sharply, and mortgage applications fell to a ten-year low.',
  'The enzyme catalyses the hydrolysis of the peptide bond at neutral pH.',
  'Volunteers planted four thousand saplings along the eroded hillside.',
  'The orchestra rehearsed the symphony twice before the opening night.',
  'Tenants must give sixty days of written notice before terminating the lease.',
  'The satellite transmits telemetry every ninety minutes during its polar orbit.',
  'Coffee exports declined because of a prolonged drought in the highlands.',
  'The museum restored a medieval tapestry depicting a royal hunt.',
  'Engineers tested the bridge under loads exceeding twice the design limit.',
  'The vaccine trial enrolled eleven thousand participants across nine countries.',
  'A compiler translates source code into machine instructions for the processor.',
  'The glacier has retreated nearly two kilometres since the survey began.'
] s;

insert into auth.users (id, aud, role, email)
select pg_temp.uid(u), 'authenticated', 'authenticated', 'user' || u || '@example.com'
from generate_series(1, 1000) u;

insert into documents (id, owner_id, title, byte_size, status, page_count)
select pg_temp.uid(1000000 + u * 10 + d), pg_temp.uid(u), 'Report ' || d, 250000,
       case when d = 4 then 'indexing' else 'ready' end, 10
from generate_series(1, 1000) u, generate_series(1, 4) d;

insert into document_chunks (owner_id, document_id, chunk_id, page, ordinal, text)
select pg_temp.uid(u), pg_temp.uid(1000000 + u * 10 + 1 + c % 4), gen_random_uuid(), 1 + c / 10, c,
       s[1 + (u + c) % 20] || ' '
       || pg_temp.word((u * 7919 + c * 104729) % 8000) || ' ' || pg_temp.word((u * 31 + c * 977 + 13) % 8000) || ' '
       || pg_temp.word((u * 613 + c * 37 + 101) % 8000) || ' ' || pg_temp.word((u * c * 7) % 8000) || ' '
       || pg_temp.word((u * 11 + c * 5003) % 8000) || ' ' || pg_temp.word((u * 4271 + c * 19) % 8000) || '.'
from sentences, generate_series(1, 1000) u, generate_series(0, 99) c;

insert into conversations (id, owner_id, title)
select pg_temp.uid(2000000 + u * 10 + k), pg_temp.uid(u), 'Conversation ' || k
from generate_series(1, 1000) u, generate_series(1, 3) k;

insert into chat_messages (id, conversation_id, owner_id, seq, role, content)
select pg_temp.uid(3000000 + u * 100 + k * 10 + m), pg_temp.uid(2000000 + u * 10 + k), pg_temp.uid(u), m,
       case when m % 2 = 1 then 'user' else 'assistant' end, 'Message ' || m
from generate_series(1, 1000) u, generate_series(1, 3) k, generate_series(1, 4) m;

insert into chat_events (conversation_id, message_id, owner_id, seq, kind, payload)
select pg_temp.uid(2000000 + u * 10 + k), pg_temp.uid(3000000 + u * 100 + k * 10 + m), pg_temp.uid(u), e,
       'delta', jsonb_build_object('text', 'token ' || e)
from generate_series(1, 1000) u, generate_series(1, 3) k, generate_series(2, 4, 2) m, generate_series(1, 5) e;

{create}
set session_replication_role = origin;
analyze;
"#
        ))
        .await
        .expect("loading 1,000 users");

    let rebuilt: Vec<(String, String)> = admin
        .query(indexes, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rebuilt, chunk_indexes,
        "the load must leave the schema's indexes as they were"
    );
    db
}

/// Every node of an EXPLAIN (FORMAT JSON) plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = vec![plan];
    for child in plan["Plans"].as_array().into_iter().flatten() {
        out.extend(nodes(child));
    }
    out
}

fn uses_index(plan: &Value, index: &str) -> bool {
    nodes(plan).iter().any(|n| {
        n["Index Name"] == index
            && matches!(
                n["Node Type"].as_str(),
                Some("Index Scan" | "Index Only Scan" | "Bitmap Index Scan")
            )
    })
}

fn seq_scans(plan: &Value) -> Vec<String> {
    nodes(plan)
        .iter()
        .filter(|n| n["Node Type"] == "Seq Scan")
        .map(|n| n["Relation Name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The plan of `sql` as planned for the caller (role, claims, RLS).
async fn explain(caller: &Caller, sql: &str) -> Value {
    let row = caller
        .query_one(&format!("explain (format json) {sql}"), &[])
        .await
        .unwrap();
    row.get::<_, Value>(0)[0]["Plan"].clone()
}

/// A caller whose every statement, nested ones included, reports the plan
/// it really ran as a NOTICE (auto_explain). Logs in as the superuser only
/// to load the module; the statements still run as the caller's role with
/// its claims, exactly as over PostgREST.
fn explained(caller: Caller) -> Caller {
    caller.login("postgres").on_connect(
        "load 'auto_explain';
         set auto_explain.log_min_duration = 0;
         set auto_explain.log_nested_statements = on;
         set auto_explain.log_format = json;
         set auto_explain.log_level = notice;",
    )
}

/// The executed plans reported since the last call: (query text, plan).
fn executed_plans(caller: &Caller) -> Vec<(String, Value)> {
    caller
        .take_notices()
        .iter()
        .filter_map(|n| {
            let json = &n.message()[n.message().find('{')?..];
            let report: Value = serde_json::from_str(json).ok()?;
            Some((
                report["Query Text"].as_str()?.to_owned(),
                report["Plan"].clone(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn plans_at_scale() {
    let db = thousand_users().await;
    let (a, b) = (user(42), user(777));

    // Each owner-scoped table, read as A with no filter but the policy:
    // the policy's `owner_id = (select auth.uid())` must be an index scan.
    let tables = [
        ("documents", "documents_owner_id_idx"),
        (
            "document_chunks",
            "document_chunks_owner_id_document_id_idx",
        ),
        ("conversations", "conversations_owner_id_idx"),
        ("chat_messages", "chat_messages_owner_id_idx"),
        ("chat_events", "chat_events_owner_id_idx"),
    ];
    for (table, index) in tables {
        // Arrange
        let as_a = db.as_user(a);

        // Act
        let plan = explain(&as_a, &format!("select * from public.{table}")).await;
        let rows = as_a
            .query(&format!("select owner_id from public.{table}"), &[])
            .await
            .unwrap();

        // Assert
        assert!(
            uses_index(&plan, index),
            "{table}: policy should use {index}, plan: {plan:#}"
        );
        assert!(
            seq_scans(&plan).is_empty(),
            "{table}: sequential scan in {plan:#}"
        );
        assert!(
            !rows.is_empty() && rows.iter().all(|r| r.get::<_, Uuid>(0) == a),
            "{table}: A reads A's rows only"
        );
    }

    // search_chunks as A and as B, through PostgREST's path, with the plans
    // of the statements that really ran inside it.
    for (who, query) in [
        (a, "glacier retreated"),
        (b, "treaty negotiation"),
        (a, "glaicer retreat"),
    ] {
        // Arrange
        let caller = explained(db.as_user(who));

        // Act
        let hits = caller
            .query("select id from public.search_chunks($1)", &[&query])
            .await
            .unwrap();
        let plans = executed_plans(&caller);

        // Assert
        assert!(!hits.is_empty(), "{query}: finds something");
        let hit_ids: Vec<Uuid> = hits.iter().map(|r| r.get(0)).collect();
        let owners: Vec<Uuid> = db
            .admin()
            .await
            .query(
                "select distinct owner_id from document_chunks where id = any($1)",
                &[&hit_ids],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(owners, vec![who], "{query}: only the caller's chunks");

        // Stage 1 (every word, full text) answers the first two queries,
        // stage 2 (trigram) the misspelled one.
        let (stage, index) = if query == "glaicer retreat" {
            (
                "word_similarity(query, c.text)",
                "document_chunks_text_trgm_idx",
            )
        } else {
            ("ts_rank_cd(c.fts, words)", "document_chunks_fts_idx")
        };
        let (_, ranking) = plans
            .iter()
            .find(|(text, _)| text.contains(stage))
            .unwrap_or_else(|| panic!("{query}: no plan for `{stage}` among {plans:#?}"));
        assert!(
            uses_index(ranking, "document_chunks_owner_id_document_id_idx"),
            "{query}: ranking should use the owner index: {ranking:#}"
        );
        assert!(
            uses_index(ranking, index),
            "{query}: ranking should use {index}: {ranking:#}"
        );
        // Stage 1 also matches words in other languages, by their own index.
        // (The query as typed is matched on the caller's chunks that the
        // owner index finds: a hundred here, too few for the trigram index
        // to pay; no sequential scan, asserted below.)
        if index == "document_chunks_fts_idx" {
            assert!(
                uses_index(ranking, "document_chunks_fts_multilingual_idx"),
                "{query}: ranking should use document_chunks_fts_multilingual_idx: {ranking:#}"
            );
        }
        let (_, reread) = plans
            .iter()
            .find(|(text, _)| text.contains("from private.rank_own_chunks("))
            .expect("the search_chunks statement's plan");
        assert!(
            uses_index(reread, "document_chunks_pkey"),
            "{query}: re-read by primary key: {reread:#}"
        );
        for (text, plan) in &plans {
            assert!(
                seq_scans(plan).is_empty(),
                "sequential scan in `{text}`: {plan:#}"
            );
        }
    }

    // Arrange: A gets 20,000 more chunks, and B's chunks stay as they were.
    let a_report: Uuid = format!("00000000-0000-4000-8000-{:012x}", 1_000_000 + 42 * 10 + 1)
        .parse()
        .unwrap();
    db.admin()
        .await
        .batch_execute(&format!(
            "insert into document_chunks (owner_id, document_id, chunk_id, page, ordinal, text) \
             select '{a}', '{a_report}', gen_random_uuid(), 11, 100 + n, \
                    'Appendix ' || n || ': sample ' || md5(n::text) || ' logged at the weather station.' \
             from generate_series(1, 20000) n; \
             analyze document_chunks;"
        ))
        .await
        .unwrap();
    let caller = explained(db.as_user(a));

    // Act: a phrase as typed, among so many of the caller's chunks.
    let hits = caller
        .query(
            "select id from public.search_chunks($1)",
            &[&"glacier has retreated"],
        )
        .await
        .unwrap();
    let plans = executed_plans(&caller);

    // Assert: the query as typed is looked up in the trigram index.
    assert!(!hits.is_empty());
    let (_, ranking) = plans
        .iter()
        .find(|(text, _)| text.contains("ts_rank_cd(c.fts, words)"))
        .expect("the plan of stage 1");
    for index in [
        "document_chunks_fts_idx",
        "document_chunks_fts_multilingual_idx",
        "document_chunks_text_trgm_idx",
    ] {
        assert!(
            uses_index(ranking, index),
            "many chunks: stage 1 should use {index}: {ranking:#}"
        );
    }
    for (text, plan) in &plans {
        assert!(
            seq_scans(plan).is_empty(),
            "sequential scan in `{text}`: {plan:#}"
        );
    }
}
