//! The schema cache: tables, columns, primary keys and functions of each
//! exposed schema, read from `pg_catalog` as PostgREST reads them.
//!
//! Every identifier the REST service puts into SQL comes from here: a name in
//! a request is only ever used to *look up* an entry, and the SQL is written
//! from the entry's own name. The cache is loaded per schema on first use.
//! When a request names something it does not know, the service asks
//! PostgreSQL for the schema's DDL [`fingerprint`] (one small query) and
//! reloads only if it changed since the load — this stands in for
//! PostgREST's `NOTIFY pgrst, 'reload schema'`, and a stream of unknown names
//! costs one cheap query each, never a reload each.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::Mutex;

/// A column of a table, view or function result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `timestamp with time zone`.
    #[serde(rename = "type")]
    pub(crate) sql_type: String,
    /// The type name, or a domain's base type name (`tsvector`, `jsonb`, …).
    pub(crate) base_type: String,
    /// The default expression (`pg_get_expr`), if any.
    #[serde(default)]
    pub(crate) default: Option<String>,
    /// A generated column (`GENERATED ALWAYS AS … STORED`).
    #[serde(default)]
    pub(crate) generated: bool,
}

impl Column {
    pub(crate) fn is_json(&self) -> bool {
        matches!(self.base_type.as_str(), "json" | "jsonb")
    }

    pub(crate) fn is_tsvector(&self) -> bool {
        self.base_type == "tsvector"
    }
}

/// A table, view, materialized view or foreign table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `relkind`: `r`, `p`, `v`, `m`, `f`.
    pub(crate) kind: char,
    pub(crate) columns: Vec<Column>,
    pub(crate) primary_key: Vec<String>,
}

impl Table {
    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A plain or partitioned table (has `xmax`, accepts `ON CONFLICT`).
    pub(crate) fn is_table(&self) -> bool {
        matches!(self.kind, 'r' | 'p')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

/// What a function returns, as PostgREST classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    Void,
    Scalar,
    Composite,
}

/// An input parameter of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutineParam {
    pub(crate) name: String,
    pub(crate) sql_type: String,
    /// No default: the call must name it.
    pub(crate) required: bool,
    pub(crate) variadic: bool,
}

/// A function callable as `/rpc/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Routine {
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) params: Vec<RoutineParam>,
    pub(crate) volatility: Volatility,
    pub(crate) returns_set: bool,
    pub(crate) return_kind: ReturnKind,
    /// `format_type` of the return type.
    pub(crate) return_type: String,
    /// Result columns (OUT/TABLE parameters or the returned row type); for a
    /// scalar, the single column `pgrst_scalar`.
    pub(crate) result_columns: Vec<Column>,
}

impl Routine {
    /// A single unnamed `json`/`jsonb` parameter that receives the whole body.
    pub(crate) fn single_unnamed_json(&self) -> Option<&RoutineParam> {
        match self.params.as_slice() {
            [p] if p.name.is_empty() && matches!(p.sql_type.as_str(), "json" | "jsonb") => Some(p),
            _ => None,
        }
    }

    pub(crate) fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("{} => {}", p.name, p.sql_type))
            .collect();
        format!("{}.{}({})", self.schema, self.name, params.join(", "))
    }
}

/// Everything the cache knows about one schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SchemaCache {
    pub(crate) tables: BTreeMap<String, Table>,
    pub(crate) routines: BTreeMap<String, Vec<Routine>>,
}

impl SchemaCache {
    /// PostgREST's fuzzy hint for an unknown table (similarity ≥ 0.75).
    pub(crate) fn table_hint(&self, schema: &str, name: &str) -> Option<String> {
        best_match(self.tables.keys().map(String::as_str), name, 0.75)
            .map(|t| format!("Perhaps you meant the table '{schema}.{t}'"))
    }

    /// PostgREST's hint for an unknown function: a similar name when there is
    /// no function of that name, else the closest parameter list.
    pub(crate) fn routine_hint(&self, schema: &str, name: &str, args: &[String]) -> Option<String> {
        match self.routines.get(name) {
            None => best_match(self.routines.keys().map(String::as_str), name, 0.75)
                .map(|f| format!("Perhaps you meant to call the function {schema}.{f}")),
            Some(overloads) => {
                let as_list = |names: Vec<&str>| {
                    let mut names = names;
                    names.sort_unstable();
                    format!("({})", names.join(", "))
                };
                let lists: Vec<String> = overloads
                    .iter()
                    .map(|r| as_list(r.params.iter().map(|p| p.name.as_str()).collect()))
                    .collect();
                let wanted = as_list(args.iter().map(String::as_str).collect());
                best_match(lists.iter().map(String::as_str), &wanted, 0.33)
                    .map(|l| format!("Perhaps you meant to call the function {schema}.{name}{l}"))
            }
        }
    }
}

/// The candidate most similar to `target` by normalised Levenshtein
/// distance, if at least `min` similar (FuzzySet's final scoring).
fn best_match<'a>(
    candidates: impl Iterator<Item = &'a str>,
    target: &str,
    min: f64,
) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = similarity(c, target);
        if score >= min && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    1.0 - prev[b.len()] as f64 / longest as f64
}

/// The per-server store of schema caches.
#[derive(Default)]
pub(crate) struct Catalog {
    schemas: Mutex<HashMap<String, (Arc<SchemaCache>, String)>>,
}

impl Catalog {
    /// The cache of `schema`, loading it on first use.
    pub(crate) async fn get(
        &self,
        client: &tokio_postgres::Client,
        schema: &str,
    ) -> Result<Arc<SchemaCache>, tokio_postgres::Error> {
        let mut schemas = self.schemas.lock().await;
        if let Some((cache, _)) = schemas.get(schema) {
            return Ok(cache.clone());
        }
        let print = fingerprint(client, schema).await?;
        let cache = Arc::new(load(client, schema).await?);
        schemas.insert(schema.to_string(), (cache.clone(), print));
        Ok(cache)
    }

    /// Reloads `schema` if its DDL changed since it was loaded; returns the
    /// (possibly new) cache.
    pub(crate) async fn refresh(
        &self,
        client: &tokio_postgres::Client,
        schema: &str,
    ) -> Result<Arc<SchemaCache>, tokio_postgres::Error> {
        let mut schemas = self.schemas.lock().await;
        let print = fingerprint(client, schema).await?;
        if let Some((cache, loaded)) = schemas.get(schema)
            && *loaded == print
        {
            return Ok(cache.clone());
        }
        let cache = Arc::new(load(client, schema).await?);
        schemas.insert(schema.to_string(), (cache.clone(), print));
        Ok(cache)
    }
}

/// Changes whenever a relation or function of `schema` is created, altered
/// (its `pg_class`/`pg_proc` row rewritten, as adding a column does) or
/// dropped: the count and newest `xmin` of those rows.
pub(crate) async fn fingerprint(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<String, tokio_postgres::Error> {
    let row = client.query_one(FINGERPRINT_SQL, &[&schema]).await?;
    Ok(row.get(0))
}

const FINGERPRINT_SQL: &str = "
select (select count(*)::text || ':' || coalesce(max(c.xmin::text::int8), 0)::text
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1)
    || '/' ||
       (select count(*)::text || ':' || coalesce(max(p.xmin::text::int8), 0)::text
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = $1)";

const COLUMNS_SQL: &str = "
select c.relname::text, c.relkind::text,
       a.attname::text,
       format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname)::text,
       case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
       coalesce(a.attgenerated <> '', false)
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
left join pg_catalog.pg_attribute a
  on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_catalog.pg_type t on t.oid = a.atttypid
left join pg_catalog.pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
left join pg_catalog.pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
where n.nspname = $1 and c.relkind in ('r', 'v', 'm', 'f', 'p')
order by c.relname, a.attnum";

const PRIMARY_KEYS_SQL: &str = "
select c.relname::text, array_agg(a.attname::text order by k.ord)
from pg_catalog.pg_index i
join pg_catalog.pg_class c on c.oid = i.indrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
cross join lateral unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
where i.indisprimary and n.nspname = $1
group by c.relname";

const ROUTINES_SQL: &str = "
select p.proname::text,
       p.provolatile::text,
       p.proretset,
       format_type(p.prorettype, null),
       rt.typtype::text,
       rt.typname::text,
       p.pronargs::int4,
       p.pronargdefaults::int4,
       coalesce(p.proargnames, array[]::text[]),
       array(select format_type(x.t, null)
             from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as x(t, i)
             order by x.i),
       array(select coalesce(bt.typname, ty.typname)::text
             from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as x(t, i)
             join pg_catalog.pg_type ty on ty.oid = x.t
             left join pg_catalog.pg_type bt on ty.typtype = 'd' and bt.oid = ty.typbasetype
             order by x.i),
       coalesce(p.proargmodes::text[], array[]::text[]),
       (select coalesce(json_agg(json_build_object(
                  'name', a.attname,
                  'type', format_type(a.atttypid, a.atttypmod),
                  'base_type', coalesce(bt.typname, t.typname)) order by a.attnum), '[]')
        from pg_catalog.pg_attribute a
        join pg_catalog.pg_type t on t.oid = a.atttypid
        left join pg_catalog.pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
        where a.attrelid = rt.typrelid and rt.typrelid <> 0 and a.attnum > 0 and not a.attisdropped)::text
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_type rt on rt.oid = p.prorettype
where n.nspname = $1 and p.prokind = 'f'
order by p.proname, p.oid";

/// Reads one schema's tables and functions.
pub(crate) async fn load(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<SchemaCache, tokio_postgres::Error> {
    let mut cache = SchemaCache::default();
    for row in client.query(COLUMNS_SQL, &[&schema]).await? {
        let name: String = row.get(0);
        let kind: String = row.get(1);
        let table = cache.tables.entry(name.clone()).or_insert_with(|| Table {
            schema: schema.to_string(),
            name,
            kind: kind.chars().next().unwrap_or('r'),
            columns: Vec::new(),
            primary_key: Vec::new(),
        });
        let column: Option<String> = row.get(2);
        if let Some(column) = column {
            table.columns.push(Column {
                name: column,
                sql_type: row.get(3),
                base_type: row.get(4),
                default: row.get(5),
                generated: row.get(6),
            });
        }
    }
    for row in client.query(PRIMARY_KEYS_SQL, &[&schema]).await? {
        let name: String = row.get(0);
        if let Some(t) = cache.tables.get_mut(&name) {
            t.primary_key = row.get(1);
        }
    }
    for row in client.query(ROUTINES_SQL, &[&schema]).await? {
        let routine = routine_from_row(schema, &row);
        cache
            .routines
            .entry(routine.name.clone())
            .or_default()
            .push(routine);
    }
    Ok(cache)
}

fn routine_from_row(schema: &str, row: &tokio_postgres::Row) -> Routine {
    let name: String = row.get(0);
    let volatility = match row.get::<_, String>(1).as_str() {
        "i" => Volatility::Immutable,
        "s" => Volatility::Stable,
        _ => Volatility::Volatile,
    };
    let returns_set: bool = row.get(2);
    let return_type: String = row.get(3);
    let ret_typtype: String = row.get(4);
    let ret_typname: String = row.get(5);
    let n_in: i32 = row.get(6);
    let n_defaults: i32 = row.get(7);
    let names: Vec<String> = row.get(8);
    let types: Vec<String> = row.get(9);
    let base_types: Vec<String> = row.get(10);
    let modes: Vec<String> = row.get(11);
    let row_columns: Vec<Column> =
        serde_json::from_str(&row.get::<_, String>(12)).unwrap_or_default();

    let mut params = Vec::new();
    let mut out_columns = Vec::new();
    for (i, sql_type) in types.iter().enumerate() {
        let mode = modes.get(i).map_or("i", String::as_str);
        let pname = names.get(i).cloned().unwrap_or_default();
        if matches!(mode, "i" | "b" | "v") {
            params.push(RoutineParam {
                name: pname.clone(),
                sql_type: sql_type.clone(),
                required: true,
                variadic: mode == "v",
            });
        }
        if matches!(mode, "o" | "b" | "t") {
            out_columns.push(Column {
                name: pname,
                sql_type: sql_type.clone(),
                base_type: base_types.get(i).cloned().unwrap_or_default(),
                default: None,
                generated: false,
            });
        }
    }
    // The last `pronargdefaults` input parameters have defaults.
    let n_in = usize::try_from(n_in)
        .unwrap_or(params.len())
        .min(params.len());
    let n_defaults = usize::try_from(n_defaults).unwrap_or(0).min(n_in);
    for p in params.iter_mut().skip(n_in - n_defaults) {
        p.required = false;
    }

    let (return_kind, result_columns) = if return_type == "void" {
        (ReturnKind::Void, vec![scalar_column(&return_type, "void")])
    } else if !out_columns.is_empty() {
        (ReturnKind::Composite, out_columns)
    } else if ret_typtype == "c" || ret_typname == "record" {
        (ReturnKind::Composite, row_columns)
    } else {
        (
            ReturnKind::Scalar,
            vec![scalar_column(&return_type, &ret_typname)],
        )
    };
    Routine {
        schema: schema.to_string(),
        name,
        params,
        volatility,
        returns_set,
        return_kind,
        return_type,
        result_columns,
    }
}

fn scalar_column(sql_type: &str, base: &str) -> Column {
    Column {
        name: "pgrst_scalar".into(),
        sql_type: sql_type.to_string(),
        base_type: base.to_string(),
        default: None,
        generated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_hints() {
        let mut cache = SchemaCache::default();
        for name in ["documents", "conversations"] {
            cache.tables.insert(
                name.into(),
                Table {
                    schema: "public".into(),
                    name: name.into(),
                    kind: 'r',
                    columns: vec![],
                    primary_key: vec![],
                },
            );
        }
        assert_eq!(
            cache.table_hint("public", "document").as_deref(),
            Some("Perhaps you meant the table 'public.documents'")
        );
        assert_eq!(cache.table_hint("public", "canary"), None);
    }
}
