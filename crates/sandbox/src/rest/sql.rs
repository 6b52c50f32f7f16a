//! Builds the one SQL statement each REST request runs, in PostgREST's shapes
//! (`Query/QueryBuilder.hs`, `Query/SqlFragment.hs`, `Query/Statements.hs`).
//!
//! Two rules keep request input out of SQL text:
//!
//! * Identifiers (schemas, tables, columns, functions, argument names) are
//!   looked up in the [`catalog`](super::catalog) and written from the
//!   catalog's entry, quoted. A name the catalog does not know is an error
//!   before any SQL exists.
//! * Values are bound parameters. Like PostgREST's `unknown`-typed
//!   parameters, they are sent as text with no declared type, so PostgreSQL
//!   infers each one's type from where it appears (`"t"."id" = $1` makes `$1`
//!   a `uuid`) and parses it with that type's input function — exactly what
//!   it does with an untyped literal.
//!
//! Casts in `select` (`col::text`) come from a fixed allowlist.

use std::fmt::Write as _;

use super::catalog::{Column, ReturnKind, Routine, RoutineParam, Table};
use super::error::RestError;
use super::prefer::{MediaType, Resolution};
use super::query::{
    Field, Filter, JsonOperand, JsonOperation, LogicOperator, LogicTree, Operation, OrderDirection,
    OrderNulls, OrderTerm, RowRange, SelectItem, SimpleOperator,
};

/// Bound parameter values, in `$1…$n` order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) values: Vec<String>,
}

impl Params {
    /// Binds `v` and returns its placeholder.
    pub(crate) fn bind(&mut self, v: impl Into<String>) -> String {
        self.values.push(v.into());
        format!("${}", self.values.len())
    }
}

/// A statement ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<String>,
}

/// `"name"` with embedded quotes doubled and anything after a NUL dropped
/// (as PostgREST's `escapeIdent`). Only ever called on catalog names.
pub(crate) fn quote_ident(name: &str) -> String {
    let name = name.split('\0').next().unwrap_or("");
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` as a SQL string constant. Only ever called on catalog text.
fn quote_literal(s: &str) -> String {
    let s = s.split('\0').next().unwrap_or("");
    format!("'{}'", s.replace('\'', "''"))
}

/// PostgREST's `pgBuildArrayLiteral`: `{"a","b"}` for `= ANY($n)`.
pub(crate) fn array_literal(values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| {
            let v = v.split('\0').next().unwrap_or("");
            format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// The casts `select=col::type` may use, mapped to the SQL written.
pub(crate) fn allowed_cast(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "text" => "text",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "int" | "integer" | "int4" => "integer",
        "smallint" | "int2" => "smallint",
        "bigint" | "int8" => "bigint",
        "numeric" | "decimal" => "numeric",
        "real" | "float4" => "real",
        "double precision" | "float8" | "float" => "double precision",
        "bool" | "boolean" => "boolean",
        "uuid" => "uuid",
        "json" => "json",
        "jsonb" => "jsonb",
        "date" => "date",
        "time" => "time",
        "timestamp" => "timestamp",
        "timestamptz" => "timestamptz",
        "interval" => "interval",
        "tsvector" => "tsvector",
        _ => return None,
    })
}

/// A relation that columns are resolved against: a table, `pgrst_source`,
/// or a function's result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rel<'a> {
    /// SQL that qualifies a column: `"public"."documents"`, `"pgrst_source"`.
    pub(crate) qualifier: &'a str,
    /// The name PostgreSQL would use in `column <name>.<col> does not exist`.
    pub(crate) name: &'a str,
    pub(crate) columns: &'a [Column],
}

impl<'a> Rel<'a> {
    fn column(&self, name: &str) -> Result<&'a Column, RestError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| RestError::undefined_column(self.name, name))
    }

    fn column_sql(&self, c: &Column) -> String {
        format!("{}.{}", self.qualifier, quote_ident(&c.name))
    }
}

fn fmt_field(p: &mut Params, rel: &Rel, f: &Field) -> Result<(String, Column), RestError> {
    let col = rel.column(&f.name)?;
    let base = rel.column_sql(col);
    if f.json_path.is_empty() {
        return Ok((base, col.clone()));
    }
    let mut s = if col.is_json() {
        base
    } else {
        format!("to_jsonb({base})")
    };
    for op in &f.json_path {
        s.push_str(match op {
            JsonOperation::Arrow(_) => "->",
            JsonOperation::DoubleArrow(_) => "->>",
        });
        match op.operand() {
            JsonOperand::Key(k) => s.push_str(&p.bind(k.as_str())),
            JsonOperand::Idx(i) => {
                let _ = write!(s, "{}::int", p.bind(i.as_str()));
            }
        }
    }
    Ok((s, col.clone()))
}

/// One filter, as `pgFmtFilter`.
pub(crate) fn fmt_filter(p: &mut Params, rel: &Rel, f: &Filter) -> Result<String, RestError> {
    let (field, col) = fmt_field(p, rel, &f.field)?;
    let cond = match &f.expr.operation {
        Operation::Simple(op, v) => {
            let v = match op {
                SimpleOperator::Like | SimpleOperator::ILike => v.replace('*', "%"),
                _ => v.clone(),
            };
            format!("{field} {} {}", op.sql(), p.bind(v))
        }
        Operation::Quantified(op, q, v) => {
            let v = match op {
                SimpleOperator::Like | SimpleOperator::ILike => v.replace('*', "%"),
                _ => v.clone(),
            };
            format!("{field} {} {}({})", op.sql(), q.sql(), p.bind(v))
        }
        Operation::IsDistinct(v) => format!("{field} IS DISTINCT FROM {}", p.bind(v.as_str())),
        Operation::In(vals) => {
            if vals.len() == 1 && vals[0].is_empty() {
                format!("{field} = ANY('{{}}')")
            } else {
                format!("{field} = ANY ({})", p.bind(array_literal(vals)))
            }
        }
        Operation::Is(v) => format!("{field} IS {}", v.sql()),
        Operation::Fts(op, lang, v) => {
            let lhs = if col.is_tsvector() && f.field.json_path.is_empty() {
                field
            } else {
                match lang {
                    Some(l) => format!("to_tsvector({}, {field})", p.bind(l.as_str())),
                    None => format!("to_tsvector({field})"),
                }
            };
            let lang = match lang {
                Some(l) => format!("{}, ", p.bind(l.as_str())),
                None => String::new(),
            };
            format!(
                "{lhs} @@ {}({lang}{})",
                op.sql_function(),
                p.bind(v.as_str())
            )
        }
    };
    Ok(if f.expr.negated {
        format!("NOT ({cond})")
    } else {
        cond
    })
}

/// An `and`/`or` tree, as `pgFmtLogicTree`.
pub(crate) fn fmt_logic(p: &mut Params, rel: &Rel, t: &LogicTree) -> Result<String, RestError> {
    match t {
        LogicTree::Stmt(f) => fmt_filter(p, rel, f),
        LogicTree::Expr {
            negated,
            op,
            children,
        } => {
            let sep = match op {
                LogicOperator::And => " AND ",
                LogicOperator::Or => " OR ",
            };
            let parts = children
                .iter()
                .map(|c| fmt_logic(p, rel, c))
                .collect::<Result<Vec<_>, _>>()?;
            let inner = format!("({})", parts.join(sep));
            Ok(if *negated {
                format!("NOT {inner}")
            } else {
                inner
            })
        }
    }
}

/// `WHERE …` for the root filters and logic trees (empty when none).
pub(crate) fn fmt_where(
    p: &mut Params,
    rel: &Rel,
    filters: &[Filter],
    logic: &[LogicTree],
) -> Result<String, RestError> {
    let mut conds = Vec::new();
    for f in filters {
        conds.push(fmt_filter(p, rel, f)?);
    }
    for t in logic {
        conds.push(fmt_logic(p, rel, t)?);
    }
    Ok(if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    })
}

/// `ORDER BY …` (empty when none).
pub(crate) fn fmt_order(
    p: &mut Params,
    rel: &Rel,
    terms: &[OrderTerm],
) -> Result<String, RestError> {
    if terms.is_empty() {
        return Ok(String::new());
    }
    let mut out = Vec::new();
    for t in terms {
        if let Some(r) = &t.relation {
            return Err(RestError::not_embedded(r));
        }
        let (field, _) = fmt_field(p, rel, &t.field)?;
        let mut s = field;
        match t.direction {
            Some(OrderDirection::Asc) => s.push_str(" ASC"),
            Some(OrderDirection::Desc) => s.push_str(" DESC"),
            None => {}
        }
        match t.nulls {
            Some(OrderNulls::First) => s.push_str(" NULLS FIRST"),
            Some(OrderNulls::Last) => s.push_str(" NULLS LAST"),
            None => {}
        }
        out.push(s);
    }
    Ok(format!("ORDER BY {}", out.join(", ")))
}

/// `LIMIT … OFFSET …` (empty for all rows).
pub(crate) fn fmt_limit_offset(p: &mut Params, range: RowRange) -> String {
    if range.is_all() {
        return String::new();
    }
    let limit = match range.limit() {
        Some(l) => p.bind(l.max(0).to_string()),
        None => "ALL".to_string(),
    };
    format!(
        "LIMIT {limit} OFFSET {}",
        p.bind(range.offset().to_string())
    )
}

/// The select list, and the base columns it reads (`None` = all, for `*`).
pub(crate) fn fmt_select(
    p: &mut Params,
    rel: &Rel,
    items: &[SelectItem],
    parent: (&str, &str),
) -> Result<(String, Option<Vec<String>>), RestError> {
    let mut out = Vec::new();
    let mut used: Option<Vec<String>> = Some(Vec::new());
    for item in items {
        match item {
            SelectItem::Star => {
                out.push(format!("{}.*", rel.qualifier));
                used = None;
            }
            SelectItem::Field { field, cast, alias } => {
                let (mut s, col) = fmt_field(p, rel, field)?;
                if let Some(cast) = cast {
                    let ty = allowed_cast(cast).ok_or_else(|| RestError::undefined_type(cast))?;
                    s = format!("CAST({s} AS {ty})");
                }
                let alias = alias.clone().or_else(|| json_path_alias(field));
                if let Some(a) = alias {
                    let _ = write!(s, " AS {}", quote_ident(&a));
                }
                out.push(s);
                if let Some(u) = used.as_mut()
                    && !u.contains(&col.name)
                {
                    u.push(col.name.clone());
                }
            }
            SelectItem::Relation { name, .. } => {
                return Err(RestError::no_relationship(parent.1, name, parent.0));
            }
            SelectItem::Aggregate { .. } => return Err(RestError::aggregates_not_allowed()),
        }
    }
    Ok((out.join(", "), used))
}

/// PostgREST names `data->a->>b` after its last key (`b`), and an index step
/// after the last key before it, or the column.
fn json_path_alias(f: &Field) -> Option<String> {
    let last = f.json_path.last()?;
    Some(match last.operand() {
        JsonOperand::Key(k) => k.clone(),
        JsonOperand::Idx(_) => f
            .json_path
            .iter()
            .rev()
            .find_map(|op| match op.operand() {
                JsonOperand::Key(k) => Some(k.clone()),
                JsonOperand::Idx(_) => None,
            })
            .unwrap_or_else(|| f.name.clone()),
    })
}

fn body_agg(media: MediaType) -> &'static str {
    match media {
        MediaType::Json => "coalesce(json_agg(_postgrest_t), '[]')",
        MediaType::SingleObject => "coalesce(json_agg(_postgrest_t)->0, 'null')",
    }
}

const RESPONSE_GUCS: &str = "nullif(current_setting('response.headers', true), '') AS response_headers, \
     nullif(current_setting('response.status', true), '') AS response_status";

/// What a read selects, filters and orders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSpec<'a> {
    pub(crate) select: &'a [SelectItem],
    pub(crate) filters: &'a [Filter],
    pub(crate) logic: &'a [LogicTree],
    pub(crate) order: &'a [OrderTerm],
    pub(crate) range: RowRange,
    pub(crate) count: bool,
    pub(crate) media: MediaType,
}

/// `GET /table`: columns `total_result_set, page_total, body,
/// response_headers, response_status`.
pub(crate) fn read(table: &Table, spec: &ReadSpec) -> Result<Statement, RestError> {
    let qualifier = format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    let rel = Rel {
        qualifier: &qualifier,
        name: &table.name,
        columns: &table.columns,
    };
    let mut p = Params::default();
    let (select, _) = fmt_select(&mut p, &rel, spec.select, (&table.schema, &table.name))?;
    let where_ = fmt_where(&mut p, &rel, spec.filters, spec.logic)?;
    let order = fmt_order(&mut p, &rel, spec.order)?;
    let limit = fmt_limit_offset(&mut p, spec.range);
    let (count_cte, count) = if spec.count {
        (
            format!(", pgrst_source_count AS (SELECT 1 FROM {qualifier} {where_})"),
            "(SELECT pg_catalog.count(*) FROM pgrst_source_count)",
        )
    } else {
        (String::new(), "null::bigint")
    };
    let sql = format!(
        "WITH pgrst_source AS ( SELECT {select} FROM {qualifier} {where_} {order} {limit} ){count_cte} \
         SELECT {count} AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, \
         {}::text AS body, {RESPONSE_GUCS} \
         FROM ( SELECT * FROM pgrst_source ) _postgrest_t",
        body_agg(spec.media)
    );
    Ok(Statement {
        sql,
        params: p.values,
    })
}

/// What a write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returning<'a> {
    /// `return=minimal`: `RETURNING 1`, no body.
    Minimal,
    /// `return=headers-only`: the primary key, for `Location`.
    HeadersOnly,
    /// `return=representation`: the `select` over the written rows.
    Full(&'a [SelectItem]),
}

/// The JSON body of an insert/update/RPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonBody {
    /// The body text, passed as one bound parameter.
    pub(crate) text: String,
    /// An object (`json_to_record`) rather than an array (`json_to_recordset`).
    pub(crate) is_object: bool,
}

/// An insert (`POST /table`).
#[derive(Debug, Clone)]
pub(crate) struct InsertSpec<'a> {
    /// The columns to insert: the payload keys or `?columns=`, resolved.
    pub(crate) columns: Vec<&'a Column>,
    pub(crate) body: JsonBody,
    /// `Prefer: resolution=…` with the conflict target (`on_conflict` or the
    /// primary key).
    pub(crate) on_conflict: Option<(Resolution, Vec<&'a Column>)>,
    /// `Prefer: missing=default`
    pub(crate) apply_defaults: bool,
    pub(crate) returning: Returning<'a>,
    pub(crate) media: MediaType,
}

/// An update (`PATCH /table`).
#[derive(Debug, Clone)]
pub(crate) struct UpdateSpec<'a> {
    pub(crate) columns: Vec<&'a Column>,
    pub(crate) body: JsonBody,
    pub(crate) filters: &'a [Filter],
    pub(crate) logic: &'a [LogicTree],
    pub(crate) order: &'a [OrderTerm],
    pub(crate) range: RowRange,
    pub(crate) returning: Returning<'a>,
    pub(crate) media: MediaType,
}

/// A delete (`DELETE /table`).
#[derive(Debug, Clone)]
pub(crate) struct DeleteSpec<'a> {
    pub(crate) filters: &'a [Filter],
    pub(crate) logic: &'a [LogicTree],
    pub(crate) order: &'a [OrderTerm],
    pub(crate) range: RowRange,
    pub(crate) returning: Returning<'a>,
    pub(crate) media: MediaType,
}

/// PostgREST's `fromJsonBodyF`: the body as rows of typed columns.
fn from_json_body(
    p: &mut Params,
    body: &JsonBody,
    columns: &[&Column],
    include_select: bool,
    limit_one: bool,
    defaults: bool,
) -> String {
    let named: Vec<String> = columns
        .iter()
        .map(|c| format!("pgrst_body.{}", quote_ident(&c.name)))
        .collect();
    let parsed: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let typed: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type))
        .collect();
    let placeholder = p.bind(body.text.as_str());
    let mut s = String::new();
    if include_select {
        let _ = write!(s, "SELECT {} ", named.join(", "));
    }
    let json_type = if defaults { "jsonb" } else { "json" };
    let _ = write!(
        s,
        "FROM (SELECT {placeholder}::{json_type} AS json_data) pgrst_payload, "
    );
    let with_defaults: Vec<String> = columns
        .iter()
        .filter_map(|c| {
            c.default
                .as_ref()
                .map(|d| format!("{}, {d}", quote_literal(&c.name)))
        })
        .collect();
    if defaults {
        let defs = format!("jsonb_build_object({})", with_defaults.join(","));
        if body.is_object {
            let _ = write!(
                s,
                "LATERAL (SELECT {defs} || pgrst_payload.json_data AS val) pgrst_json_defs, "
            );
        } else {
            let _ = write!(
                s,
                "LATERAL (SELECT jsonb_agg({defs} || elem) AS val FROM jsonb_array_elements(pgrst_payload.json_data) elem) pgrst_json_defs, "
            );
        }
    }
    let source = if defaults {
        "pgrst_json_defs.val"
    } else {
        "pgrst_payload.json_data"
    };
    let prefix = if defaults { "jsonb" } else { "json" };
    if columns.is_empty() {
        if body.is_object {
            s.push_str("LATERAL (SELECT FROM (values(1)) _ ) pgrst_body ");
        } else {
            let _ = write!(
                s,
                "LATERAL (SELECT FROM {prefix}_array_elements({source}) _ ) pgrst_body "
            );
        }
    } else {
        let func = if body.is_object {
            format!("{prefix}_to_record")
        } else {
            format!("{prefix}_to_recordset")
        };
        let _ = write!(
            s,
            "LATERAL (SELECT {} FROM {func}({source}) AS _({}) {}) pgrst_body ",
            parsed.join(", "),
            typed.join(", "),
            if limit_one { "LIMIT 1" } else { "" }
        );
    }
    s
}

/// The `RETURNING` list and the outer select over `pgrst_source`.
fn returning(
    p: &mut Params,
    table: &Table,
    qualifier: &str,
    ret: Returning,
    inserted_flag: bool,
) -> Result<(String, String), RestError> {
    let flag = if inserted_flag {
        format!(", ({qualifier}.xmax = 0) AS pgrst_inserted")
    } else {
        String::new()
    };
    match ret {
        Returning::Minimal => Ok((
            format!("RETURNING 1{flag}"),
            "SELECT * FROM pgrst_source".into(),
        )),
        Returning::HeadersOnly => {
            let cols: Vec<String> = table
                .primary_key
                .iter()
                .map(|c| format!("{qualifier}.{}", quote_ident(c)))
                .collect();
            let list = if cols.is_empty() {
                "1".to_string()
            } else {
                cols.join(", ")
            };
            Ok((
                format!("RETURNING {list}{flag}"),
                "SELECT * FROM pgrst_source".into(),
            ))
        }
        Returning::Full(items) => {
            let source = Rel {
                qualifier: "\"pgrst_source\"",
                name: "pgrst_source",
                columns: &table.columns,
            };
            // `*` is spelled out so that `pgrst_inserted` stays out of the body.
            let expanded: Vec<SelectItem> = items
                .iter()
                .flat_map(|i| match i {
                    SelectItem::Star => table
                        .columns
                        .iter()
                        .map(|c| SelectItem::Field {
                            field: Field {
                                name: c.name.clone(),
                                json_path: vec![],
                            },
                            cast: None,
                            alias: None,
                        })
                        .collect(),
                    other => vec![other.clone()],
                })
                .collect();
            let (select, used) = fmt_select(p, &source, &expanded, (&table.schema, &table.name))?;
            let list = match used {
                None => format!("{qualifier}.*"),
                Some(cols) if cols.is_empty() => "1".to_string(),
                Some(cols) => cols
                    .iter()
                    .map(|c| format!("{qualifier}.{}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let select = if select.is_empty() {
                "SELECT FROM pgrst_source".to_string()
            } else {
                format!("SELECT {select} FROM pgrst_source")
            };
            Ok((format!("RETURNING {list}{flag}"), select))
        }
    }
}

/// Wraps a mutation: columns `page_total, header (text[]), body,
/// response_headers, response_status, inserted`.
fn wrap_mutation(
    p: &mut Params,
    mutation: &str,
    select: &str,
    ret: Returning,
    media: MediaType,
    location_pk: Option<&[String]>,
    inserted_flag: bool,
) -> String {
    let body = match ret {
        Returning::Full(_) => format!("{}::text", body_agg(media)),
        _ => "''".to_string(),
    };
    let header = match location_pk {
        Some(pk) if !pk.is_empty() => {
            let keys = p.bind(array_literal(pk));
            format!(
                "CASE WHEN pg_catalog.count(_postgrest_t) = 1 THEN coalesce((\
                 WITH data AS (SELECT row_to_json(_) AS row FROM pgrst_source AS _ LIMIT 1) \
                 SELECT array_agg(json_data.key || '=' || coalesce('eq.' || json_data.value, 'is.null')) \
                 FROM data CROSS JOIN json_each_text(data.row) AS json_data \
                 WHERE json_data.key = ANY ({keys}::text[])), array[]::text[]) \
                 ELSE array[]::text[] END"
            )
        }
        _ => "array[]::text[]".to_string(),
    };
    let inserted = if inserted_flag {
        "(SELECT pg_catalog.count(*) FROM pgrst_source WHERE pgrst_inserted)"
    } else {
        "null::bigint"
    };
    format!(
        "WITH pgrst_source AS ({mutation}) \
         SELECT pg_catalog.count(_postgrest_t) AS page_total, {header} AS header, {body} AS body, \
         {RESPONSE_GUCS}, {inserted} AS inserted \
         FROM ({select}) _postgrest_t"
    )
}

/// `POST /table`.
pub(crate) fn insert(table: &Table, spec: &InsertSpec) -> Result<Statement, RestError> {
    let qualifier = format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    let mut p = Params::default();
    let cols: Vec<String> = spec.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let body = from_json_body(
        &mut p,
        &spec.body,
        &spec.columns,
        true,
        false,
        spec.apply_defaults,
    );
    let mut mutation = format!(
        "INSERT INTO {qualifier}{} {body}",
        if cols.is_empty() {
            String::new()
        } else {
            format!("({})", cols.join(", "))
        }
    );
    let mut inserted_flag = false;
    if let Some((resolution, target)) = &spec.on_conflict
        && !target.is_empty()
    {
        let target: Vec<String> = target.iter().map(|c| quote_ident(&c.name)).collect();
        let _ = write!(mutation, " ON CONFLICT({}) ", target.join(", "));
        match resolution {
            Resolution::IgnoreDuplicates => mutation.push_str("DO NOTHING"),
            Resolution::MergeDuplicates => {
                if cols.is_empty() {
                    mutation.push_str("DO NOTHING");
                } else {
                    let sets: Vec<String> =
                        cols.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                    let _ = write!(mutation, "DO UPDATE SET {}", sets.join(", "));
                }
                inserted_flag = table.is_table();
            }
        }
    }
    let (ret, select) = returning(&mut p, table, &qualifier, spec.returning, inserted_flag)?;
    let _ = write!(mutation, " {ret}");
    let location =
        (spec.returning == Returning::HeadersOnly).then_some(table.primary_key.as_slice());
    let sql = wrap_mutation(
        &mut p,
        &mutation,
        &select,
        spec.returning,
        spec.media,
        location,
        inserted_flag,
    );
    Ok(Statement {
        sql,
        params: p.values,
    })
}

/// `mutRangeF`: rows picked by `ctid` when a write has `limit`/`offset`.
fn affected_rows_cte(
    p: &mut Params,
    qualifier: &str,
    where_: &str,
    order: &str,
    range: RowRange,
) -> String {
    let limit = fmt_limit_offset(p, range);
    format!(
        "pgrst_affected_rows AS (SELECT {qualifier}.ctid FROM {qualifier} {where_} {order} {limit})"
    )
}

/// `PATCH /table`.
pub(crate) fn update(table: &Table, spec: &UpdateSpec) -> Result<Statement, RestError> {
    let qualifier = format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    let rel = Rel {
        qualifier: &qualifier,
        name: &table.name,
        columns: &table.columns,
    };
    let mut p = Params::default();
    let where_ = fmt_where(&mut p, &rel, spec.filters, spec.logic)?;
    let (ret, select) = returning(&mut p, table, &qualifier, spec.returning, false)?;
    let mutation = if spec.columns.is_empty() {
        // Nothing to set: an empty result with the right columns.
        let short = quote_ident(&table.name);
        let cols = match spec.returning {
            Returning::Minimal => "NULL".to_string(),
            _ => format!("{short}.*"),
        };
        format!("SELECT {cols} FROM {qualifier} AS {short} WHERE false")
    } else if spec.range.is_all() {
        let sets: Vec<String> = spec
            .columns
            .iter()
            .map(|c| {
                let q = quote_ident(&c.name);
                format!("{q} = pgrst_body.{q}")
            })
            .collect();
        let body = from_json_body(&mut p, &spec.body, &spec.columns, false, false, false);
        format!(
            "UPDATE {qualifier} SET {} {body}{where_} {ret}",
            sets.join(", ")
        )
    } else {
        let order = fmt_order(&mut p, &rel, spec.order)?;
        let cte = affected_rows_cte(&mut p, &qualifier, &where_, &order, spec.range);
        let body = from_json_body(&mut p, &spec.body, &spec.columns, true, true, false);
        let sets: Vec<String> = spec
            .columns
            .iter()
            .map(|c| {
                let q = quote_ident(&c.name);
                format!("{q} = (SELECT {q} FROM pgrst_update_body)")
            })
            .collect();
        format!(
            "WITH pgrst_update_body AS ({body}), {cte} UPDATE {qualifier} SET {} \
             FROM pgrst_affected_rows WHERE {qualifier}.ctid = pgrst_affected_rows.ctid {ret}",
            sets.join(", ")
        )
    };
    let sql = wrap_mutation(
        &mut p,
        &mutation,
        &select,
        spec.returning,
        spec.media,
        None,
        false,
    );
    Ok(Statement {
        sql,
        params: p.values,
    })
}

/// `DELETE /table`.
pub(crate) fn delete(table: &Table, spec: &DeleteSpec) -> Result<Statement, RestError> {
    let qualifier = format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    let rel = Rel {
        qualifier: &qualifier,
        name: &table.name,
        columns: &table.columns,
    };
    let mut p = Params::default();
    let where_ = fmt_where(&mut p, &rel, spec.filters, spec.logic)?;
    let (ret, select) = returning(&mut p, table, &qualifier, spec.returning, false)?;
    let mutation = if spec.range.is_all() {
        format!("DELETE FROM {qualifier} {where_} {ret}")
    } else {
        let order = fmt_order(&mut p, &rel, spec.order)?;
        let cte = affected_rows_cte(&mut p, &qualifier, &where_, &order, spec.range);
        format!(
            "WITH {cte} DELETE FROM {qualifier} USING pgrst_affected_rows \
             WHERE {qualifier}.ctid = pgrst_affected_rows.ctid {ret}"
        )
    };
    let sql = wrap_mutation(
        &mut p,
        &mutation,
        &select,
        spec.returning,
        spec.media,
        None,
        false,
    );
    Ok(Statement {
        sql,
        params: p.values,
    })
}

/// How a function receives its arguments.
#[derive(Debug, Clone)]
pub(crate) enum CallArgs<'a> {
    /// Named arguments from a JSON object (the body, or the query string of a
    /// `GET`), for exactly these parameters.
    Named {
        params: Vec<&'a RoutineParam>,
        body: JsonBody,
    },
    /// The whole body to a single unnamed `json`/`jsonb` parameter.
    Single {
        param: &'a RoutineParam,
        body: String,
    },
}

/// `POST /rpc/fn` (or `GET`): the call, then `select`, filters, order and
/// range over its result. Columns as [`read`].
pub(crate) fn call(
    routine: &Routine,
    args: &CallArgs,
    spec: &ReadSpec,
) -> Result<Statement, RestError> {
    let fn_sql = format!(
        "{}.{}",
        quote_ident(&routine.schema),
        quote_ident(&routine.name)
    );
    let scalar = routine.return_kind != ReturnKind::Composite;
    let mut p = Params::default();
    let call_it = |argument: String| {
        if scalar {
            format!("(SELECT {fn_sql}({argument}) pgrst_scalar) pgrst_call")
        } else {
            format!("{fn_sql}({argument}) pgrst_call")
        }
    };
    let from = match args {
        CallArgs::Named { params, .. } if params.is_empty() => {
            format!("FROM {}", call_it(String::new()))
        }
        CallArgs::Named { params, body } => {
            let columns: Vec<Column> = params
                .iter()
                .map(|prm| Column {
                    name: prm.name.clone(),
                    sql_type: prm.sql_type.clone(),
                    base_type: String::new(),
                    default: None,
                    generated: false,
                })
                .collect();
            let refs: Vec<&Column> = columns.iter().collect();
            let json = from_json_body(&mut p, body, &refs, false, true, false);
            let named: Vec<String> = params
                .iter()
                .map(|prm| {
                    let q = quote_ident(&prm.name);
                    format!(
                        "{}{q} := pgrst_body.{q}",
                        if prm.variadic { "VARIADIC " } else { "" }
                    )
                })
                .collect();
            format!("{json}, LATERAL {}", call_it(named.join(", ")))
        }
        CallArgs::Single { param, body } => {
            let v = p.bind(body.as_str());
            format!("FROM {}", call_it(format!("{v}::{}", param.sql_type)))
        }
    };
    let call_select = if scalar {
        "pgrst_call.pgrst_scalar"
    } else {
        "pgrst_call.*"
    };
    let call_sql = format!("SELECT {call_select} {from}");

    let rel = Rel {
        qualifier: "\"pgrst_source\"",
        name: "pgrst_source",
        columns: &routine.result_columns,
    };
    let select = if scalar {
        "\"pgrst_source\".\"pgrst_scalar\"".to_string()
    } else {
        fmt_select(&mut p, &rel, spec.select, (&routine.schema, &routine.name))?.0
    };
    let where_ = fmt_where(&mut p, &rel, spec.filters, spec.logic)?;
    let order = fmt_order(&mut p, &rel, spec.order)?;
    let limit = fmt_limit_offset(&mut p, spec.range);
    let (count_cte, count) = if spec.count {
        (
            format!(", pgrst_source_count AS (SELECT 1 FROM pgrst_source {where_})"),
            "(SELECT pg_catalog.count(*) FROM pgrst_source_count)",
        )
    } else {
        (String::new(), "null::bigint")
    };
    let body = match (scalar, routine.returns_set, spec.media) {
        (true, _, MediaType::SingleObject) | (true, false, _) => {
            "coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')"
        }
        (true, true, MediaType::Json) => "coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')",
        (false, false, MediaType::Json) => "coalesce(json_agg(_postgrest_t)->0, 'null')",
        (false, _, media) => body_agg(media),
    };
    let sql = format!(
        "WITH pgrst_source AS ({call_sql}){count_cte} \
         SELECT {count} AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, \
         {body}::text AS body, {RESPONSE_GUCS} \
         FROM (SELECT {select} FROM pgrst_source {where_} {order} {limit}) _postgrest_t"
    );
    Ok(Statement {
        sql,
        params: p.values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::query::{self, parse};

    fn col(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            sql_type: ty.into(),
            base_type: ty.into(),
            default: None,
            generated: false,
        }
    }

    fn documents() -> Table {
        Table {
            schema: "public".into(),
            name: "documents".into(),
            kind: 'r',
            columns: vec![
                col("id", "uuid"),
                col("title", "text"),
                col("meta", "jsonb"),
                col("fts", "tsvector"),
            ],
            primary_key: vec!["id".into()],
        }
    }

    fn read_sql(qs: &str) -> Result<Statement, RestError> {
        let q = parse(qs, false).unwrap();
        let filters: Vec<Filter> = q.filters.iter().map(|(_, f)| f.clone()).collect();
        let logic: Vec<LogicTree> = q.logic.iter().map(|(_, t)| t.clone()).collect();
        let order: Vec<OrderTerm> = q.order.iter().flat_map(|(_, o)| o.clone()).collect();
        read(
            &documents(),
            &ReadSpec {
                select: &q.select,
                filters: &filters,
                logic: &logic,
                order: &order,
                range: q.root_range(),
                count: true,
                media: MediaType::Json,
            },
        )
    }

    #[test]
    fn values_are_parameters() {
        let s = read_sql("title=eq.'%3B drop table canary%3B --&id=in.(a,\"b,c\")").unwrap();
        assert!(!s.sql.contains("drop table"), "{}", s.sql);
        assert_eq!(
            s.params,
            vec!["'; drop table canary; --", "{\"a\",\"b,c\"}"]
        );
        assert!(s.sql.contains("\"public\".\"documents\".\"title\" = $1"));
        assert!(s.sql.contains("\"public\".\"documents\".\"id\" = ANY ($2)"));
    }

    #[test]
    fn unknown_names_are_refused_before_any_sql() {
        let e = read_sql("select=id,\"x\\\"%3B drop table canary%3B --\"").unwrap_err();
        assert_eq!(e.code, "42703");
        let e = read_sql("nope=eq.1").unwrap_err();
        assert_eq!(e.message, "column documents.nope does not exist");
        let e = read_sql("order=nope.desc").unwrap_err();
        assert_eq!(e.code, "42703");
        let e = read_sql("or=(id.eq.1,nope.eq.2)").unwrap_err();
        assert_eq!(e.code, "42703");
        let e = read_sql("select=id::regclass").unwrap_err();
        assert_eq!(e.code, "42704");
        let e = read_sql("select=id,author(name)").unwrap_err();
        assert_eq!(e.code, "PGRST200");
    }

    #[test]
    fn like_stars_and_fts() {
        let s = read_sql("title=like.*abc*&fts=fts(english).cat&title=wfts.dog").unwrap();
        assert_eq!(s.params[0], "%abc%");
        assert!(
            s.sql
                .contains("\"public\".\"documents\".\"fts\" @@ to_tsquery($2, $3)"),
            "{}",
            s.sql
        );
        assert!(
            s.sql.contains(
                "to_tsvector(\"public\".\"documents\".\"title\") @@ websearch_to_tsquery($4)"
            ),
            "{}",
            s.sql
        );
    }

    #[test]
    fn json_paths_are_bound_and_aliased() {
        let s = read_sql("select=meta->a->>b,t:title&meta->>k=eq.v").unwrap();
        assert!(
            s.sql
                .contains("\"public\".\"documents\".\"meta\"->$1->>$2 AS \"b\""),
            "{}",
            s.sql
        );
        assert!(
            s.sql
                .contains("\"public\".\"documents\".\"title\" AS \"t\"")
        );
    }

    #[test]
    fn logic_and_order_and_range() {
        let s = read_sql("or=(title.eq.a,not.and(id.is.null,title.neq.b))&order=title.desc.nullslast,id&limit=5&offset=10").unwrap();
        assert!(s.sql.contains("(\"public\".\"documents\".\"title\" = $1 OR NOT (\"public\".\"documents\".\"id\" IS NULL AND \"public\".\"documents\".\"title\" <> $2))"), "{}", s.sql);
        assert!(s.sql.contains("ORDER BY \"public\".\"documents\".\"title\" DESC NULLS LAST, \"public\".\"documents\".\"id\""));
        assert!(s.sql.contains("LIMIT $3 OFFSET $4"));
        assert_eq!(&s.params[2..], ["5", "10"]);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("a\0b"), "\"a\"");
        assert_eq!(
            array_literal(&["a\"b".into(), "c\\d".into()]),
            "{\"a\\\"b\",\"c\\\\d\"}"
        );
    }

    #[test]
    fn inserts_bind_the_body() {
        let t = documents();
        let cols: Vec<&Column> = t.columns.iter().take(2).collect();
        let s = insert(
            &t,
            &InsertSpec {
                columns: cols.clone(),
                body: JsonBody {
                    text: "{\"title\":\"x'); drop table canary; --\"}".into(),
                    is_object: true,
                },
                on_conflict: Some((Resolution::MergeDuplicates, vec![cols[0]])),
                apply_defaults: false,
                returning: Returning::Full(&[SelectItem::Star]),
                media: MediaType::Json,
            },
        )
        .unwrap();
        assert!(!s.sql.contains("drop table"));
        assert!(s.sql.contains("ON CONFLICT(\"id\") DO UPDATE SET \"id\" = EXCLUDED.\"id\", \"title\" = EXCLUDED.\"title\""), "{}", s.sql);
        assert!(
            s.sql.contains(
                "json_to_record(pgrst_payload.json_data) AS _(\"id\" uuid, \"title\" text)"
            )
        );
        assert!(s.sql.contains("xmax = 0"));
    }

    #[test]
    fn calls_pass_named_arguments() {
        let r = Routine {
            schema: "public".into(),
            name: "search_chunks".into(),
            params: vec![RoutineParam {
                name: "query".into(),
                sql_type: "text".into(),
                required: true,
                variadic: false,
            }],
            volatility: crate::rest::catalog::Volatility::Stable,
            returns_set: true,
            return_kind: ReturnKind::Composite,
            return_type: "record".into(),
            result_columns: vec![col("id", "uuid"), col("score", "real")],
        };
        let q = query::parse("score=gt.0.5", false).unwrap();
        let filters: Vec<Filter> = q.filters.iter().map(|(_, f)| f.clone()).collect();
        let s = call(
            &r,
            &CallArgs::Named {
                params: r.params.iter().collect(),
                body: JsonBody {
                    text: "{\"query\":\"x\"}".into(),
                    is_object: true,
                },
            },
            &ReadSpec {
                select: &q.select,
                filters: &filters,
                logic: &[],
                order: &[],
                range: RowRange::ALL,
                count: false,
                media: MediaType::Json,
            },
        )
        .unwrap();
        assert!(
            s.sql.contains(
                "LATERAL \"public\".\"search_chunks\"(\"query\" := pgrst_body.\"query\") pgrst_call"
            ),
            "{}",
            s.sql
        );
        assert!(s.sql.contains("WHERE \"pgrst_source\".\"score\" > $2"));
    }
}
