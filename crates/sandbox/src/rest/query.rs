//! The PostgREST query-string grammar: `select`, filters, `and`/`or` trees,
//! `order`, `limit`/`offset`, `columns`, `on_conflict`.
//!
//! A pure parser, written after PostgREST's `ApiRequest/QueryParams.hs`
//! (v12–v14): the same split of parameters into filters, logic trees,
//! orders and RPC arguments, the same grammar (including its leniency about
//! trailing input after a complete `in.(…)`, `is.…`, `select` or `order`),
//! and errors in its `PGRST100` shape: message
//! `"failed to parse filter (eq1)" (line 1, column 4)` and Parsec-like
//! details. It never panics, whatever the input (see the fuzz target and the
//! property tests).
//!
//! Nothing here knows the database: names are checked against the catalog
//! later, and values are never put into SQL text.

use std::fmt::Write as _;

/// A `PGRST100` parse error: PostgREST's `QPError message details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// `"failed to parse <what> (<input>)" (line l, column c)`.
    pub message: String,
    /// What the parser expected, e.g. `unknown single value operator noop`.
    pub details: String,
}

/// A column with an optional JSON path (`data->a->>b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column's name.
    pub name: String,
    /// The JSON path into it, empty for the column itself.
    pub json_path: Vec<JsonOperation>,
}

/// One `->` or `->>` step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonOperation {
    /// `->`
    Arrow(JsonOperand),
    /// `->>`
    DoubleArrow(JsonOperand),
}

impl JsonOperation {
    pub(crate) fn operand(&self) -> &JsonOperand {
        match self {
            JsonOperation::Arrow(o) | JsonOperation::DoubleArrow(o) => o,
        }
    }
}

/// A JSON key or array index (kept as PostgREST keeps it: `+1`, `-2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonOperand {
    /// An object key.
    Key(String),
    /// An array index, signed as written.
    Idx(String),
}

/// One item of `select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`
    Star,
    /// `alias:field->path::cast`
    Field {
        /// The column and its JSON path.
        field: Field,
        /// `::cast`
        cast: Option<String>,
        /// `alias:`
        alias: Option<String>,
    },
    /// `count()`, `col.sum()`, …: aggregates, which PostgREST refuses unless
    /// `db-aggregates-enabled` (it is not on the platform).
    Aggregate {
        /// `count`, `sum`, …
        function: String,
        /// The column aggregated (`None` for `count()`).
        field: Option<Field>,
        /// `alias:`
        alias: Option<String>,
        /// `::cast`
        cast: Option<String>,
    },
    /// `alias:relation!hint!inner(...)` or `...relation(...)`: resource
    /// embedding, which the sandbox parses but does not resolve.
    Relation {
        /// The embedded relation.
        name: String,
        /// `alias:`
        alias: Option<String>,
        /// `!hint`: the foreign key or column to embed through.
        hint: Option<String>,
        /// `!inner` or `!left`.
        join: Option<JoinType>,
        /// `...relation(...)`: the columns spread into the parent.
        spread: bool,
        /// The embedded `select`.
        children: Vec<SelectItem>,
    },
}

/// How an embedded relation joins (`!left`, `!inner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// `!left`
    Left,
    /// `!inner`
    Inner,
}

/// Operators taking one value (`eq.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimpleOperator {
    /// `eq` (`=`)
    Eq,
    /// `neq` (`<>`)
    Neq,
    /// `gt` (`>`)
    Gt,
    /// `gte` (`>=`)
    Gte,
    /// `lt` (`<`)
    Lt,
    /// `lte` (`<=`)
    Lte,
    /// `like` (`like`)
    Like,
    /// `ilike` (`ilike`)
    ILike,
    /// `match` (`~`)
    Match,
    /// `imatch` (`~*`)
    IMatch,
    /// `cs` (`@>`)
    Contains,
    /// `cd` (`<@`)
    Contained,
    /// `ov` (`&&`)
    Overlap,
    /// `sl` (`<<`)
    StrictlyLeft,
    /// `sr` (`>>`)
    StrictlyRight,
    /// `nxr` (`&<`)
    NotExtendsRight,
    /// `nxl` (`&>`)
    NotExtendsLeft,
    /// `adj` (`-|-`)
    Adjacent,
}

impl SimpleOperator {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Like => "like",
            Self::ILike => "ilike",
            Self::Match => "match",
            Self::IMatch => "imatch",
            Self::Contains => "cs",
            Self::Contained => "cd",
            Self::Overlap => "ov",
            Self::StrictlyLeft => "sl",
            Self::StrictlyRight => "sr",
            Self::NotExtendsRight => "nxr",
            Self::NotExtendsLeft => "nxl",
            Self::Adjacent => "adj",
        }
    }

    /// The SQL operator (a fixed string, never input).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Neq => "<>",
            Self::Gt => ">",
            Self::Gte => ">=",
            Self::Lt => "<",
            Self::Lte => "<=",
            Self::Like => "like",
            Self::ILike => "ilike",
            Self::Match => "~",
            Self::IMatch => "~*",
            Self::Contains => "@>",
            Self::Contained => "<@",
            Self::Overlap => "&&",
            Self::StrictlyLeft => "<<",
            Self::StrictlyRight => ">>",
            Self::NotExtendsRight => "&<",
            Self::NotExtendsLeft => "&>",
            Self::Adjacent => "-|-",
        }
    }

    /// Operators that take `(any)`/`(all)`.
    #[cfg(test)]
    pub(crate) fn quantifiable(self) -> bool {
        matches!(
            self,
            Self::Eq
                | Self::Gt
                | Self::Gte
                | Self::Lt
                | Self::Lte
                | Self::Like
                | Self::ILike
                | Self::Match
                | Self::IMatch
        )
    }

    /// Every operator (the property tests draw from them).
    #[cfg(test)]
    pub(crate) const ALL: [SimpleOperator; 18] = [
        Self::Eq,
        Self::Neq,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::Like,
        Self::ILike,
        Self::Match,
        Self::IMatch,
        Self::Contains,
        Self::Contained,
        Self::Overlap,
        Self::StrictlyLeft,
        Self::StrictlyRight,
        Self::NotExtendsRight,
        Self::NotExtendsLeft,
        Self::Adjacent,
    ];
}

/// Full-text operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FtsOperator {
    /// `fts` → `to_tsquery`
    Fts,
    /// `plfts` → `plainto_tsquery`
    Plain,
    /// `phfts` → `phraseto_tsquery`
    Phrase,
    /// `wfts` → `websearch_to_tsquery`
    Websearch,
}

impl FtsOperator {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Fts => "fts",
            Self::Plain => "plfts",
            Self::Phrase => "phfts",
            Self::Websearch => "wfts",
        }
    }

    /// The tsquery constructor (a fixed string, never input).
    pub(crate) fn sql_function(self) -> &'static str {
        match self {
            Self::Fts => "to_tsquery",
            Self::Plain => "plainto_tsquery",
            Self::Phrase => "phraseto_tsquery",
            Self::Websearch => "websearch_to_tsquery",
        }
    }

    pub(crate) const ALL: [FtsOperator; 4] =
        [Self::Fts, Self::Plain, Self::Phrase, Self::Websearch];
}

/// The value of `is.`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    /// `is.null`
    Null,
    /// `is.not_null`
    NotNull,
    /// `is.true`
    True,
    /// `is.false`
    False,
    /// `is.unknown`
    Unknown,
}

impl IsValue {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::NotNull => "NOT NULL",
            Self::True => "TRUE",
            Self::False => "FALSE",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// `op(any)` / `op(all)`: compare with every element of an array value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `(any)`
    Any,
    /// `(all)`
    All,
}

impl Quantifier {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Quantifier::Any => "any",
            Quantifier::All => "all",
        }
    }

    /// The SQL keyword (a fixed string, never input).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Quantifier::Any => "ANY",
            Quantifier::All => "ALL",
        }
    }
}

/// The right-hand side of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `eq.value`
    Simple(SimpleOperator, String),
    /// `like(any).{a*,b*}`: the value is an array literal.
    Quantified(SimpleOperator, Quantifier, String),
    /// `isdistinct.value`
    IsDistinct(String),
    /// `in.(a,b)`
    In(Vec<String>),
    /// `is.null` and the like
    Is(IsValue),
    /// `fts(language).query`: the operator, the language if given, the query.
    Fts(FtsOperator, Option<String>, String),
}

/// `not.`-prefixed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpExpr {
    /// `not.`
    pub negated: bool,
    /// The operator and its value.
    pub operation: Operation,
}

/// `col=op.value`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `col`
    pub field: Field,
    /// `op.value`
    pub expr: OpExpr,
}

/// The operator of a logic tree (`and=`, `or=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOperator {
    /// `and`
    And,
    /// `or`
    Or,
}

/// `or=(a.eq.1,and(b.gt.2,c.lt.3))`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree {
    /// `not.and(...)`, `or(...)`: an operator over subtrees.
    Expr {
        /// `not.`
        negated: bool,
        /// `and` or `or`.
        op: LogicOperator,
        /// The operands.
        children: Vec<LogicTree>,
    },
    /// `a.eq.1`: one filter.
    Stmt(Filter),
}

/// `.asc` or `.desc` in `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderDirection {
    /// `.asc`
    Asc,
    /// `.desc`
    Desc,
}

/// `.nullsfirst` or `.nullslast` in `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderNulls {
    /// `.nullsfirst`
    First,
    /// `.nullslast`
    Last,
}

/// One term of `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    /// `Some(rel)` for `rel(col).desc`, an order on an embedded resource.
    pub relation: Option<String>,
    /// The column ordered by.
    pub field: Field,
    /// `.asc`/`.desc`, if given.
    pub direction: Option<OrderDirection>,
    /// `.nullsfirst`/`.nullslast`, if given.
    pub nulls: Option<OrderNulls>,
}

/// A range of rows, `[lower, upper]` inclusive, as PostgREST's `NonnegRange`.
/// `upper: None` is unbounded; `upper < lower` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRange {
    /// The first row (0-based).
    pub lower: i64,
    /// The last row, if bounded.
    pub upper: Option<i64>,
}

impl RowRange {
    pub(crate) const ALL: RowRange = RowRange {
        lower: 0,
        upper: None,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.upper.is_some_and(|u| u < self.lower)
    }

    /// `1 + upper - lower` when bounded.
    pub(crate) fn limit(&self) -> Option<i64> {
        self.upper
            .map(|u| u.saturating_add(1).saturating_sub(self.lower))
    }

    pub(crate) fn offset(&self) -> i64 {
        self.lower
    }

    pub(crate) fn intersect(self, other: RowRange) -> RowRange {
        let upper = match (self.upper, other.upper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        };
        RowRange {
            lower: self.lower.max(other.lower),
            upper,
        }
    }

    /// PostgREST's `restrictRange (Just limit)`: at most `limit` rows from
    /// this range's offset.
    pub(crate) fn restrict(self, limit: i64) -> RowRange {
        self.intersect(RowRange {
            lower: i64::MIN,
            upper: Some(self.lower.saturating_add(limit).saturating_sub(1)),
        })
    }

    pub(crate) fn is_all(&self) -> bool {
        *self == Self::ALL
    }
}

/// Everything in a request's query string, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParams {
    /// Parameters sorted by name and re-encoded (`Content-Location`).
    pub canonical: String,
    /// `select` (default `*`).
    pub select: Vec<SelectItem>,
    /// Filters with their embedding path (empty for the root table).
    pub filters: Vec<(Vec<String>, Filter)>,
    /// `and=`/`or=` trees with their embedding path.
    pub logic: Vec<(Vec<String>, LogicTree)>,
    /// `order=` per embedding path.
    pub order: Vec<(Vec<String>, Vec<OrderTerm>)>,
    /// `limit`/`offset` per embedding path (`limit` key = root).
    pub ranges: Vec<(Vec<String>, RowRange)>,
    /// `columns=`
    pub columns: Option<Vec<String>>,
    /// `on_conflict=`
    pub on_conflict: Option<Vec<String>>,
    /// Parameters that are neither reserved nor filters: the arguments of a
    /// `GET /rpc/fn` call (ignored for tables, as PostgREST does).
    pub params: Vec<(String, String)>,
}

impl QueryParams {
    /// The root `limit`/`offset` range (all rows when absent).
    pub(crate) fn root_range(&self) -> RowRange {
        self.ranges
            .iter()
            .rev()
            .find(|(p, _)| p.is_empty())
            .map_or(RowRange::ALL, |(_, r)| *r)
    }

    /// Whether a `limit` parameter asked for zero rows (`limit=0`).
    pub(crate) fn root_has_limit_zero(&self) -> bool {
        self.root_range().limit() == Some(0)
    }
}

// ---------------------------------------------------------------------------
// Query-string decoding

/// Splits and percent-decodes a raw query string the way Haskell's
/// `parseQueryReplacePlus True` does: `&` (and `;`) separate pairs, `+` is a
/// space, a key without `=` has no value. Invalid UTF-8 is replaced.
pub(crate) fn decode_query(raw: &str) -> Vec<(String, Option<String>)> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    raw.split(['&', ';'])
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), Some(percent_decode(v))),
            None => (percent_decode(pair), None),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Parses a whole query string (without the leading `?`).
pub fn parse(raw_query: &str, rpc_read: bool) -> Result<QueryParams, QueryError> {
    parse_pairs(&decode_query(raw_query), rpc_read)
}

/// [`parse`] over already-decoded pairs. `rpc_read` is true for `GET`/`HEAD`
/// on `/rpc/fn`: there a parameter whose value is no operator expression is
/// an argument of the function; anywhere else it is a `PGRST100`.
///
/// Parameters are parsed in PostgREST's order (order, logic trees, columns,
/// select, filters, on_conflict), so the error reported is the one PostgREST
/// reports first.
pub fn parse_pairs(
    pairs: &[(String, Option<String>)],
    rpc_read: bool,
) -> Result<QueryParams, QueryError> {
    let canonical = canonical_query(pairs);
    let lookup = |needle: &str| -> Option<&str> {
        pairs
            .iter()
            .find(|(k, _)| k == needle)
            .and_then(|(_, v)| v.as_deref())
    };
    let nonempty: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
        .collect();

    let order = parse_orders(&nonempty)?;
    let logic = parse_logic_trees(&nonempty)?;
    let columns = lookup("columns")
        .map(|c| {
            run(
                &format!("failed to parse columns parameter ({c})"),
                c,
                p_columns,
            )
        })
        .transpose()?;
    let select = parse_select(lookup("select").unwrap_or("*"))?;
    let (filters, params) = parse_filters(&nonempty, rpc_read)?;
    let on_conflict = lookup("on_conflict")
        .map(|c| {
            run(
                &format!("failed to parse on_conflict parameter ({c})"),
                c,
                p_columns,
            )
        })
        .transpose()?;
    let ranges = parse_ranges(&nonempty);

    Ok(QueryParams {
        canonical,
        select,
        filters,
        logic,
        order,
        ranges,
        columns,
        on_conflict,
        params,
    })
}

/// Whether the last dot-separated part of a parameter's name is one of
/// `words` (`order`, `items.order`, ...).
fn ends_in(k: &str, words: &[&str]) -> bool {
    words.contains(&k.rsplit('.').next().unwrap_or(""))
}

/// The parameters sorted by name and re-encoded, as `Content-Location`
/// shows them.
fn canonical_query(pairs: &[(String, Option<String>)]) -> String {
    let mut sorted: Vec<&(String, Option<String>)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical = String::new();
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            canonical.push('&');
        }
        percent_encode_component(k, &mut canonical);
        canonical.push('=');
        percent_encode_component(v.as_deref().unwrap_or(""), &mut canonical);
    }
    canonical
}

/// A parameter's value with its embedding path (empty for the root table).
type AtPath<T> = (Vec<String>, T);

/// `order=` and `<embed>.order=`.
fn parse_orders(nonempty: &[(&str, &str)]) -> Result<Vec<AtPath<Vec<OrderTerm>>>, QueryError> {
    let mut order = Vec::new();
    for &(k, v) in nonempty.iter().filter(|(k, _)| ends_in(k, &["order"])) {
        let path = parse_tree_path(k)?.0;
        let terms = run(&format!("failed to parse order ({v})"), v, p_order)?;
        order.push((path, terms));
    }
    Ok(order)
}

/// `and=`/`or=` (and their `<embed>.` forms) logic trees.
fn parse_logic_trees(nonempty: &[(&str, &str)]) -> Result<Vec<AtPath<LogicTree>>, QueryError> {
    let mut logic = Vec::new();
    for &(k, v) in nonempty.iter().filter(|(k, _)| ends_in(k, &["and", "or"])) {
        let (path, op) = parse_logic_path(k)?;
        let input = format!("{op}{v}");
        let tree = run(
            &format!("failed to parse logic tree ({v})"),
            &input,
            p_logic_tree,
        )?;
        logic.push((path, tree));
    }
    Ok(logic)
}

/// Filters and function arguments (in the order PostgREST reads them).
type FiltersAndArgs = (Vec<AtPath<Filter>>, Vec<(String, String)>);

/// Every parameter that is not reserved: a filter, or on `GET /rpc/fn` an
/// argument when its value is no operator expression.
fn parse_filters(nonempty: &[(&str, &str)], rpc_read: bool) -> Result<FiltersAndArgs, QueryError> {
    let mut filters = Vec::new();
    let mut params = Vec::new();
    let is_filter = |k: &str| {
        !ends_in(k, &["order", "limit", "offset", "and", "or"])
            && !matches!(k, "select" | "columns" | "on_conflict")
    };
    for &(k, v) in nonempty.iter().filter(|(k, _)| is_filter(k)) {
        let (path, field) = parse_tree_path(k)?;
        let mut parser = P::new(v);
        match p_op_expr(&mut parser, ValueKind::Single) {
            Ok(expr) => filters.push((path, Filter { field, expr })),
            // `pOpExpr pSingleVal <|> pure (NoOpExpr v)`: only a failure
            // that consumed nothing falls back to an argument.
            Err(fail) if rpc_read && !fail.consumed => params.push((field.name, v.to_string())),
            Err(fail) => {
                return Err(query_error(
                    &format!("failed to parse filter ({v})"),
                    &parser.chars,
                    &fail,
                ));
            }
        }
    }
    Ok((filters, params))
}

/// `limit=`/`offset=` (and their `<embed>.` forms), one range per
/// embedding path.
fn parse_ranges(nonempty: &[(&str, &str)]) -> Vec<AtPath<RowRange>> {
    let mut limits: Vec<(String, RowRange)> = Vec::new();
    let mut offsets: Vec<(String, RowRange)> = Vec::new();
    for &(k, v) in nonempty {
        if ends_in(k, &["limit"]) {
            let r = match read_integer(v) {
                Some(l) => RowRange::ALL.restrict(l),
                None => RowRange::ALL,
            };
            limits.push((k.to_string(), r));
        } else if ends_in(k, &["offset"]) {
            let r = match read_integer(v) {
                Some(o) => RowRange {
                    lower: o,
                    upper: None,
                },
                None => RowRange::ALL,
            };
            let key = match k.rsplit_once('.') {
                Some((prefix, _)) => format!("{prefix}.limit"),
                None => "limit".to_string(),
            };
            offsets.push((key, r));
        }
    }

    // HM.fromList keeps the last value per key; unionWith combines limit and
    // offset into one range.
    let mut keys: Vec<String> = Vec::new();
    for (k, _) in limits.iter().chain(offsets.iter()) {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let mut ranges = Vec::new();
    for key in keys {
        let l = limits.iter().rev().find(|(k, _)| *k == key).map(|x| x.1);
        let o = offsets.iter().rev().find(|(k, _)| *k == key).map(|x| x.1);
        let r = match (l, o) {
            (Some(rl), Some(ro)) => {
                let limit = rl.limit().unwrap_or(0);
                let lower = ro.offset();
                RowRange {
                    lower,
                    upper: Some(lower.saturating_add(limit).saturating_sub(1)),
                }
            }
            (Some(r), None) | (None, Some(r)) => r,
            (None, None) => RowRange::ALL,
        };
        let path: Vec<String> = match key.rsplit_once('.') {
            Some((prefix, _)) => prefix.split('.').map(str::to_string).collect(),
            None => Vec::new(),
        };
        ranges.push((path, r));
    }

    ranges
}

/// Parses a `select` value on its own.
pub fn parse_select(s: &str) -> Result<Vec<SelectItem>, QueryError> {
    let items = run(
        &format!("failed to parse select parameter ({s})"),
        s,
        p_field_forest,
    )?;
    // An empty select (`select=`) selects every column, as `*` does.
    Ok(if items.is_empty() {
        vec![SelectItem::Star]
    } else {
        items
    })
}

/// Haskell's `readMaybe :: Maybe Integer` closely enough: optional
/// surrounding whitespace, an optional `-`, digits. Saturates instead of
/// growing without bound.
fn read_integer(v: &str) -> Option<i64> {
    let t = v.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    Some(if neg { -n } else { n })
}

fn parse_tree_path(k: &str) -> Result<(Vec<String>, Field), QueryError> {
    run(&format!("failed to parse tree path ({k})"), k, |p| {
        let mut names = vec![p_field_name(p)?];
        while p.peek() == Some('.') {
            p.bump();
            names.push(p_field_name(p)?);
        }
        let json_path = p_json_path(p)?;
        let name = names.pop().unwrap_or_default();
        Ok((names, Field { name, json_path }))
    })
}

fn parse_logic_path(k: &str) -> Result<(Vec<String>, String), QueryError> {
    run(&format!("failed to parse logic path ({k})"), k, |p| {
        let mut names = vec![p_field_name(p)?];
        while p.peek() == Some('.') {
            p.bump();
            names.push(p_field_name(p)?);
        }
        let op = names.last().cloned().unwrap_or_default();
        let negated = names.iter().any(|n| n == "not");
        let path: Vec<String> = names[..names.len() - 1]
            .iter()
            .filter(|n| *n != "not")
            .cloned()
            .collect();
        Ok((path, if negated { format!("not.{op}") } else { op }))
    })
}

// ---------------------------------------------------------------------------
// A small Parsec-like machinery: a cursor over chars, errors that carry the
// position and what was expected there, merged across alternatives.

#[derive(Debug, Clone, Default)]
struct Fail {
    pos: usize,
    unexpected: Option<String>,
    expected: Vec<String>,
    messages: Vec<String>,
    /// The parser consumed input before failing, so an enclosing `<|>`
    /// does not try its next alternative.
    consumed: bool,
}

impl Fail {
    fn merge(mut self, other: Fail) -> Fail {
        use std::cmp::Ordering;
        match self.pos.cmp(&other.pos) {
            Ordering::Greater => self,
            Ordering::Less => other,
            Ordering::Equal => {
                for e in other.expected {
                    if !self.expected.contains(&e) {
                        self.expected.push(e);
                    }
                }
                self.messages.extend(other.messages);
                if self.unexpected.is_none() {
                    self.unexpected = other.unexpected;
                }
                self
            }
        }
    }

    fn details(&self) -> String {
        let mut lines = Vec::new();
        if let Some(u) = &self.unexpected {
            lines.push(format!("unexpected {u}"));
        }
        if !self.expected.is_empty() {
            let ex = &self.expected;
            let joined = if ex.len() == 1 {
                ex[0].clone()
            } else {
                format!("{} or {}", ex[..ex.len() - 1].join(", "), ex[ex.len() - 1])
            };
            lines.push(format!("expecting {joined}"));
        }
        lines.extend(self.messages.iter().cloned());
        if lines.is_empty() {
            "unknown parse error".to_string()
        } else {
            lines.join(" ").trim().to_string()
        }
    }
}

type PResult<T> = Result<T, Fail>;

struct P {
    chars: Vec<char>,
    pos: usize,
}

impl P {
    fn new(s: &str) -> Self {
        P {
            chars: s.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn at_eof(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn looking_at(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    /// The Parsec description of the next token.
    fn unexpected_here(&self) -> String {
        match self.peek() {
            Some(c) => show_char_token(c),
            None => "end of input".to_string(),
        }
    }

    fn fail_expecting(&self, what: &str) -> Fail {
        Fail {
            pos: self.pos,
            unexpected: Some(self.unexpected_here()),
            expected: vec![what.to_string()],
            messages: vec![],
            consumed: false,
        }
    }

    fn char(&mut self, c: char) -> PResult<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail_expecting(&format!("\"{c}\"")))
        }
    }

    /// `try (string s)`: all or nothing.
    fn try_string(&mut self, s: &str) -> PResult<()> {
        if self.looking_at(s) {
            self.pos += s.chars().count();
            Ok(())
        } else {
            Err(self.fail_expecting(&format!("\"{s}\"")))
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }
}

fn show_char_token(c: char) -> String {
    let mut s = String::from("\"");
    haskell_show_char(c, &mut s, None);
    s.push('"');
    s
}

/// Haskell's `show` for a string, which PostgREST's error message uses for
/// the parser's source name: quotes, backslash escapes, and non-ASCII as
/// decimal escapes (`\233`).
pub(crate) fn haskell_show(s: &str) -> String {
    let mut out = String::from("\"");
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        haskell_show_char(c, &mut out, chars.get(i + 1).copied());
    }
    out.push('"');
    out
}

fn haskell_show_char(c: char, out: &mut String, next: Option<char>) {
    const ASCII_NAMES: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "a", "b", "t", "n", "v", "f", "r", "SO",
        "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
        "FS", "GS", "RS", "US",
    ];
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\x7f' => out.push_str("\\DEL"),
        c if (c as u32) < 32 => {
            out.push('\\');
            out.push_str(ASCII_NAMES[c as usize]);
            // "\SO" followed by 'H' would read as "\SOH".
            if c == '\x0e' && next == Some('H') {
                out.push_str("\\&");
            }
        }
        c if (c as u32) > 127 => {
            let _ = write!(out, "\\{}", c as u32);
            if next.is_some_and(|n| n.is_ascii_digit()) {
                out.push_str("\\&");
            }
        }
        c => out.push(c),
    }
}

fn position(chars: &[char], pos: usize) -> (usize, usize) {
    let (mut line, mut col) = (1usize, 1usize);
    for &c in chars.iter().take(pos) {
        match c {
            '\n' => {
                line += 1;
                col = 1;
            }
            '\t' => col = col + 8 - ((col - 1) % 8),
            _ => col += 1,
        }
    }
    (line, col)
}

fn run<T>(
    source: &str,
    input: &str,
    f: impl FnOnce(&mut P) -> PResult<T>,
) -> Result<T, QueryError> {
    let mut p = P::new(input);
    f(&mut p).map_err(|fail| query_error(source, &p.chars, &fail))
}

/// PostgREST's `mapError`: the parser's source name and position, and the
/// expectations as details.
fn query_error(source: &str, chars: &[char], fail: &Fail) -> QueryError {
    let (line, col) = position(chars, fail.pos);
    QueryError {
        message: format!("{} (line {line}, column {col})", haskell_show(source)),
        details: fail.details(),
    }
}

// ---------------------------------------------------------------------------
// Grammar

fn is_identifier_char(c: char) -> bool {
    c.is_alphabetic() || c.is_ascii_digit() || matches!(c, '_' | ' ' | '$')
}

/// `many1 (letter <|> digit <|> oneOf "_ $")`, stripped.
fn p_identifier(p: &mut P) -> PResult<String> {
    let start = p.pos;
    while p.peek().is_some_and(is_identifier_char) {
        p.pos += 1;
    }
    if p.pos == start {
        return Err(p.fail_expecting("letter or digit"));
    }
    Ok(p.chars[start..p.pos]
        .iter()
        .collect::<String>()
        .trim()
        .to_string())
}

/// `"..."` with backslash escapes.
fn p_quoted_value(p: &mut P) -> PResult<String> {
    p.char('"')?;
    let mut out = String::new();
    loop {
        match p.peek() {
            None => {
                return Err(Fail {
                    pos: p.pos,
                    unexpected: Some("end of input".into()),
                    expected: vec!["\"\\\"\"".into()],
                    messages: vec![],
                    consumed: true,
                });
            }
            Some('"') => {
                p.pos += 1;
                return Ok(out);
            }
            Some('\\') => {
                p.pos += 1;
                match p.bump() {
                    Some(c) => out.push(c),
                    None => {
                        return Err(Fail {
                            pos: p.pos,
                            unexpected: Some("end of input".into()),
                            expected: vec![],
                            messages: vec![],
                            consumed: true,
                        });
                    }
                }
            }
            Some(c) => {
                p.pos += 1;
                out.push(c);
            }
        }
    }
}

/// A field name: a quoted value, or identifiers joined by `-` (a `-` that
/// does not start `->`).
fn p_field_name(p: &mut P) -> PResult<String> {
    const EXPECT: &str = "field name (* or [a..z0..9_$])";
    if p.peek() == Some('"') {
        return p_quoted_value(p);
    }
    let first = p_identifier(p).map_err(|_| p.fail_expecting(EXPECT))?;
    let mut parts = vec![first];
    while p.peek() == Some('-') && p.peek_at(1) != Some('>') {
        p.pos += 1;
        parts.push(p_identifier(p)?);
    }
    Ok(parts.join("-"))
}

fn p_json_path(p: &mut P) -> PResult<Vec<JsonOperation>> {
    let mut path = Vec::new();
    loop {
        let double = if p.looking_at("->>") {
            p.pos += 3;
            true
        } else if p.looking_at("->") {
            p.pos += 2;
            false
        } else {
            return Ok(path);
        };
        let operand = p_json_operand(p)?;
        path.push(if double {
            JsonOperation::DoubleArrow(operand)
        } else {
            JsonOperation::Arrow(operand)
        });
    }
}

fn p_json_operand(p: &mut P) -> PResult<JsonOperand> {
    let start = p.pos;
    // try pJIdx: optional '-', digits, then a lookahead end.
    let mut idx = String::new();
    if p.peek() == Some('-') {
        p.pos += 1;
        idx.push('-');
    } else {
        idx.push('+');
    }
    let digits_start = p.pos;
    while p.peek().is_some_and(|c| c.is_ascii_digit()) {
        p.pos += 1;
    }
    if p.pos > digits_start {
        let ends = p.looking_at("->") || p.looking_at("::") || matches!(p.peek(), Some('.' | ','));
        if ends || p.at_eof() {
            idx.extend(&p.chars[digits_start..p.pos]);
            return Ok(JsonOperand::Idx(idx));
        }
    }
    let idx_fail = p.fail_expecting("digit");
    p.pos = start;
    match p_json_key_name(p) {
        Ok(k) => Ok(JsonOperand::Key(k)),
        Err(e) => {
            p.pos = start;
            Err(idx_fail.merge(e))
        }
    }
}

/// `pJsonKeyName`: a quoted value, or runs of anything but `(-:.,>)`
/// joined by `-` (a `-` that does not start `->`), stripped.
fn p_json_key_name(p: &mut P) -> PResult<String> {
    if p.peek() == Some('"') {
        return p_quoted_value(p);
    }
    let is_key_char = |c: char| !matches!(c, '(' | '-' | ':' | '.' | ',' | '>' | ')');
    let mut parts = Vec::new();
    loop {
        let start = p.pos;
        while p.peek().is_some_and(is_key_char) {
            p.pos += 1;
        }
        if p.pos == start {
            return Err(p.fail_expecting("any non reserved character different from: .,>()"));
        }
        parts.push(
            p.chars[start..p.pos]
                .iter()
                .collect::<String>()
                .trim()
                .to_string(),
        );
        if p.peek() == Some('-') && p.peek_at(1) != Some('>') {
            p.pos += 1;
        } else {
            return Ok(parts.join("-"));
        }
    }
}

/// `lexeme ((,) <$> pFieldName <*> option [] pJsonPath)`
fn p_field(p: &mut P) -> PResult<Field> {
    p.ws();
    let name = p_field_name(p)?;
    let json_path = p_json_path(p)?;
    p.ws();
    Ok(Field { name, json_path })
}

/// `pFieldTree `sepBy` lexeme (char ',')`: possibly empty.
fn p_field_forest(p: &mut P) -> PResult<Vec<SelectItem>> {
    let start = p.pos;
    let first = match p_field_tree(p) {
        Ok(item) => item,
        Err(e) if e.pos == start && !e.consumed => {
            // `sepBy` accepts zero items when the first fails untouched.
            p.pos = start;
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut items = vec![first];
    loop {
        let save = p.pos;
        p.ws();
        if p.peek() == Some(',') {
            p.pos += 1;
            p.ws();
            items.push(p_field_tree(p)?);
        } else {
            p.pos = save;
            return Ok(items);
        }
    }
}

fn p_field_tree(p: &mut P) -> PResult<SelectItem> {
    // try spread relation <|> try relation <|> field: each alternative starts
    // over from here.
    let start = p.pos;
    for spread in [true, false] {
        if let Ok(item) = p_relation_tree(p, spread) {
            return Ok(item);
        }
        p.pos = start;
    }
    p_field_select(p)
}

/// `try (Node <$> pRelationSelect <*> between '(' ')' pFieldForest)`, and
/// the spread (`..rel(...)`) variant.
fn p_relation_tree(p: &mut P, spread: bool) -> PResult<SelectItem> {
    p.ws();
    let alias = if spread {
        p.try_string("...")?;
        None
    } else {
        let save = p.pos;
        match p_field_name(p) {
            Ok(a) if p.peek() == Some(':') && p.peek_at(1) != Some(':') => {
                p.pos += 1;
                Some(a)
            }
            _ => {
                p.pos = save;
                None
            }
        }
    };
    let name = p_field_name(p)?;
    if name == "count" {
        // `count()` is an aggregate, not an embedding.
        return Err(p.fail_expecting("\"(\""));
    }
    let mut hint = None;
    let mut join = None;
    for _ in 0..2 {
        if p.peek() != Some('!') {
            break;
        }
        p.pos += 1;
        if p.looking_at("left") {
            p.pos += 4;
            join = join.or(Some(JoinType::Left));
        } else if p.looking_at("inner") {
            p.pos += 5;
            join = join.or(Some(JoinType::Inner));
        } else {
            let h = p_field_name(p)?;
            hint = hint.or(Some(h));
        }
    }
    if p.peek() != Some('(') {
        return Err(p.fail_expecting("\"(\""));
    }
    p.ws();
    p.char('(')?;
    let children = p_field_forest(p)?;
    p.char(')')?;
    p.ws();
    Ok(SelectItem::Relation {
        name,
        alias,
        hint,
        join,
        spread,
        children,
    })
}

fn p_select_end(p: &P) -> PResult<()> {
    if p.at_eof() || matches!(p.peek(), Some(')' | ',')) {
        Ok(())
    } else {
        let mut f = p.fail_expecting("\")\"");
        f.expected.push("\",\"".into());
        f.expected.push("end of input".into());
        Err(f)
    }
}

/// `pFieldSelect`: `*`, `alias:count()::cast`, or
/// `alias:field->path::cast.agg()::cast`.
fn p_field_select(p: &mut P) -> PResult<SelectItem> {
    let start = p.pos;
    p.ws();
    let after_ws = p.pos;
    // try (* <* pEnd)
    if p.peek() == Some('*') {
        p.pos += 1;
        if p_select_end(p).is_ok() {
            p.ws();
            return Ok(SelectItem::Star);
        }
        p.pos = after_ws;
    }
    let alias = |p: &mut P| {
        let save = p.pos;
        match p_field_name(p) {
            Ok(a) if p.peek() == Some(':') && p.peek_at(1) != Some(':') => {
                p.pos += 1;
                Some(a)
            }
            _ => {
                p.pos = save;
                None
            }
        }
    };
    // try (alias? "count()" ("::" cast)? pEnd)
    {
        let a = alias(p);
        if p.looking_at("count()") {
            p.pos += 7;
            let cast = if p.looking_at("::") {
                p.pos += 2;
                p_identifier(p).ok()
            } else {
                None
            };
            if p_select_end(p).is_ok() {
                p.ws();
                return Ok(SelectItem::Aggregate {
                    function: "count".into(),
                    field: None,
                    alias: a,
                    cast,
                });
            }
        }
        p.pos = after_ws;
    }
    let alias = alias(p);
    let field = p_field(p)?;
    let cast = if p.looking_at("::") {
        p.pos += 2;
        Some(p_identifier(p)?)
    } else {
        None
    };
    let mut aggregate = None;
    for agg in ["sum", "avg", "count", "max", "min"] {
        let call = format!(".{agg}()");
        if p.looking_at(&call) {
            p.pos += call.len();
            aggregate = Some(agg);
            break;
        }
    }
    let agg_cast = if aggregate.is_some() && p.looking_at("::") {
        p.pos += 2;
        Some(p_identifier(p)?)
    } else {
        None
    };
    if let Err(e) = p_select_end(p) {
        let _ = start;
        return Err(e);
    }
    p.ws();
    Ok(match aggregate {
        Some(function) => SelectItem::Aggregate {
            function: function.into(),
            field: Some(field),
            alias,
            cast: agg_cast,
        },
        None => SelectItem::Field { field, cast, alias },
    })
}

/// `pColumns`: field names separated by commas.
fn p_columns(p: &mut P) -> PResult<Vec<String>> {
    let mut cols = vec![p_field_name(p)?];
    loop {
        let save = p.pos;
        p.ws();
        if p.peek() == Some(',') {
            p.pos += 1;
            p.ws();
            cols.push(p_field_name(p)?);
        } else {
            p.pos = save;
            return Ok(cols);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// The rest of the input (a top-level filter).
    Single,
    /// A value inside a logic tree: up to `,` or `)`, or quoted, or `{…}`.
    Logic,
}

const OPERATOR_LABEL: &str = "operator (eq, gt, ...)";

/// Where `string kw` fails at `at`, as Parsec reports it: at `at` itself,
/// with the first character that differs. `None` when `kw` is there.
fn keyword_fail(p: &P, at: usize, kw: &str) -> Option<Fail> {
    for (i, k) in kw.chars().enumerate() {
        match p.chars.get(at + i) {
            Some(&c) if c == k => {}
            other => {
                return Some(Fail {
                    pos: at,
                    unexpected: Some(other.map_or("end of input".into(), |&c| show_char_token(c))),
                    expected: vec![format!("\"{kw}\"")],
                    ..Fail::default()
                });
            }
        }
    }
    None
}

/// `try (string kw *> pDelimiter)`: consumes `kw.` or nothing; the failure
/// is at the keyword or at the missing delimiter.
fn try_keyword_dot(p: &mut P, kw: &str) -> Result<(), Fail> {
    let at = p.pos;
    if let Some(f) = keyword_fail(p, at, kw) {
        return Err(f);
    }
    let dot = at + kw.chars().count();
    if p.chars.get(dot) == Some(&'.') {
        p.pos = dot + 1;
        Ok(())
    } else {
        Err(Fail {
            pos: dot,
            unexpected: Some(
                p.chars
                    .get(dot)
                    .map_or("end of input".into(), |&c| show_char_token(c)),
            ),
            expected: vec!["delimiter (.)".into()],
            ..Fail::default()
        })
    }
}

/// `pOpExpr`: an optional `not.`, then one operation.
fn p_op_expr(p: &mut P, kind: ValueKind) -> PResult<OpExpr> {
    let start = p.pos;
    let (negated, not_fail) = match try_keyword_dot(p, "not") {
        Ok(()) => (true, None),
        Err(f) => (false, Some(f)),
    };
    match p_operation(p, kind) {
        Ok(operation) => Ok(OpExpr { negated, operation }),
        Err(mut e) => {
            if negated {
                // `not.` was consumed: no alternative is left.
                e.consumed = true;
                return Err(e);
            }
            let _ = start;
            Err(match not_fail {
                Some(nf) if !e.consumed => nf.merge(e),
                _ => e,
            })
        }
    }
}

/// `pOperation = pIn <|> pIs <|> pIsDist <|> try pFts <|> try pSimpleOp <|>
/// try pQuantOp <?> "operator (eq, gt, ...)"`.
fn p_operation(p: &mut P, kind: ValueKind) -> PResult<Operation> {
    let start = p.pos;
    // Failures of alternatives that consumed nothing (or were behind `try`),
    // merged: the furthest one is reported, under the operator label.
    let mut empty: Option<Fail> = None;
    let note = |f: Fail, empty: &mut Option<Fail>| {
        *empty = Some(match empty.take() {
            None => f,
            Some(e) => e.merge(f),
        });
    };
    let consumed = |mut f: Fail| {
        f.consumed = true;
        f
    };

    match try_keyword_dot(p, "in") {
        Ok(()) => return p_list_val(p).map(Operation::In).map_err(consumed),
        Err(f) => note(f, &mut empty),
    }
    match try_keyword_dot(p, "is") {
        Ok(()) => return p_is_val(p).map(Operation::Is).map_err(consumed),
        Err(f) => note(f, &mut empty),
    }
    match try_keyword_dot(p, "isdistinct") {
        Ok(()) => {
            return p_value(p, kind)
                .map(Operation::IsDistinct)
                .map_err(consumed);
        }
        Err(f) => note(f, &mut empty),
    }

    // try pFts
    match p_fts(p, kind) {
        Ok(op) => return Ok(op),
        Err(f) => {
            p.pos = start;
            note(f, &mut empty);
        }
    }
    // try pSimpleOp
    const SIMPLE: [(&str, SimpleOperator); 9] = [
        ("neq", SimpleOperator::Neq),
        ("cs", SimpleOperator::Contains),
        ("cd", SimpleOperator::Contained),
        ("ov", SimpleOperator::Overlap),
        ("sl", SimpleOperator::StrictlyLeft),
        ("sr", SimpleOperator::StrictlyRight),
        ("nxr", SimpleOperator::NotExtendsRight),
        ("nxl", SimpleOperator::NotExtendsLeft),
        ("adj", SimpleOperator::Adjacent),
    ];
    match p_operator_then(p, &SIMPLE, false, kind) {
        Ok((op, _, v)) => return Ok(Operation::Simple(op, v)),
        Err(f) => {
            p.pos = start;
            note(f, &mut empty);
        }
    }
    // try pQuantOp
    const QUANT: [(&str, SimpleOperator); 9] = [
        ("eq", SimpleOperator::Eq),
        ("gte", SimpleOperator::Gte),
        ("gt", SimpleOperator::Gt),
        ("lte", SimpleOperator::Lte),
        ("lt", SimpleOperator::Lt),
        ("like", SimpleOperator::Like),
        ("ilike", SimpleOperator::ILike),
        ("match", SimpleOperator::Match),
        ("imatch", SimpleOperator::IMatch),
    ];
    match p_operator_then(p, &QUANT, true, kind) {
        Ok((op, Some(q), v)) => return Ok(Operation::Quantified(op, q, v)),
        Ok((op, None, v)) => return Ok(Operation::Simple(op, v)),
        Err(f) => {
            p.pos = start;
            note(f, &mut empty);
        }
    }
    let mut f = empty.unwrap_or_default();
    f.expected = vec![OPERATOR_LABEL.into()];
    f.consumed = false;
    Err(f)
}

/// One of `ops` (the first whose name is a prefix of the input), an optional
/// `(any)`/`(all)` when `quantified`, the delimiter and the value.
fn p_operator_then(
    p: &mut P,
    ops: &[(&str, SimpleOperator)],
    quantified: bool,
    kind: ValueKind,
) -> PResult<(SimpleOperator, Option<Quantifier>, String)> {
    let start = p.pos;
    let mut fail: Option<Fail> = None;
    let mut found = None;
    for (name, op) in ops {
        match keyword_fail(p, start, name) {
            None => {
                found = Some((*name, *op));
                break;
            }
            Some(f) => {
                fail = Some(match fail {
                    None => f,
                    Some(prev) => prev.merge(f),
                })
            }
        }
    }
    let Some((name, op)) = found else {
        return Err(fail.unwrap_or_default());
    };
    p.pos = start + name.chars().count();
    let mut hint: Option<Fail> = None;
    let mut quant = None;
    if quantified && p.peek() == Some('(') {
        let at = p.pos;
        if p.looking_at("(any)") {
            quant = Some(Quantifier::Any);
            p.pos += 5;
        } else if p.looking_at("(all)") {
            quant = Some(Quantifier::All);
            p.pos += 5;
        } else {
            let inner = at + 1;
            let bad = if p.looking_at("(any") || p.looking_at("(all") {
                inner + 3
            } else {
                inner
            };
            hint = Some(Fail {
                pos: bad,
                unexpected: Some(
                    p.chars
                        .get(bad)
                        .map_or("end of input".into(), |&c| show_char_token(c)),
                ),
                expected: vec![],
                ..Fail::default()
            });
        }
    }
    if p.peek() == Some('.') {
        p.pos += 1;
        let v = p_value(p, kind)?;
        return Ok((op, quant, v));
    }
    let here = Fail {
        pos: p.pos,
        unexpected: Some(p.unexpected_here()),
        expected: vec!["delimiter (.)".into()],
        consumed: true,
        ..Fail::default()
    };
    Err(match hint {
        Some(h) => h.merge(here),
        None => here,
    })
}

/// `pFts`: `fts`, `plfts`, `phfts` or `wfts`, an optional `(language)`,
/// the delimiter and the value.
fn p_fts(p: &mut P, kind: ValueKind) -> PResult<Operation> {
    let start = p.pos;
    let mut fail: Option<Fail> = None;
    let mut found = None;
    for op in FtsOperator::ALL {
        match keyword_fail(p, start, op.name()) {
            None => {
                found = Some(op);
                break;
            }
            Some(f) => {
                fail = Some(match fail {
                    None => f,
                    Some(prev) => prev.merge(f),
                })
            }
        }
    }
    let Some(op) = found else {
        return Err(fail.unwrap_or_default());
    };
    p.pos = start + op.name().len();
    let mut hint = None;
    let mut lang = None;
    if p.peek() == Some('(') {
        let at = p.pos;
        p.pos += 1;
        match p_identifier(p) {
            Ok(l) if p.peek() == Some(')') => {
                p.pos += 1;
                lang = Some(l);
            }
            Ok(_) => {
                hint = Some(p.fail_expecting("\")\""));
                p.pos = at;
            }
            Err(f) => {
                hint = Some(f);
                p.pos = at;
            }
        }
    }
    if p.peek() == Some('.') {
        p.pos += 1;
        return Ok(Operation::Fts(op, lang, p_value(p, kind)?));
    }
    let here = Fail {
        consumed: true,
        ..p.fail_expecting("delimiter (.)")
    };
    Err(match hint {
        Some(h) => h.merge(here),
        None => here,
    })
}

fn p_value(p: &mut P, kind: ValueKind) -> PResult<String> {
    match kind {
        ValueKind::Single => {
            let v: String = p.chars[p.pos..].iter().collect();
            p.pos = p.chars.len();
            Ok(v)
        }
        ValueKind::Logic => p_logic_single_val(p),
    }
}

fn is_list_stop(c: char) -> bool {
    c == ',' || c == ')'
}

/// `try (pQuotedValue <* notFollowedBy (noneOf ",)"))`
fn try_quoted_then_stop(p: &mut P) -> Option<String> {
    let start = p.pos;
    if p.peek() == Some('"')
        && let Ok(v) = p_quoted_value(p)
        && p.peek().is_none_or(is_list_stop)
    {
        return Some(v);
    }
    p.pos = start;
    None
}

fn take_until_list_stop(p: &mut P) -> String {
    let start = p.pos;
    while p.peek().is_some_and(|c| !is_list_stop(c)) {
        p.pos += 1;
    }
    p.chars[start..p.pos].iter().collect()
}

fn p_logic_single_val(p: &mut P) -> PResult<String> {
    if let Some(v) = try_quoted_then_stop(p) {
        return Ok(v);
    }
    // try pPgArray: "{" many (noneOf "{}") "}"
    if p.peek() == Some('{') {
        let start = p.pos;
        let rest = &p.chars[p.pos + 1..];
        if let Some(close) = rest.iter().position(|&c| c == '{' || c == '}')
            && rest[close] == '}'
        {
            p.pos += close + 2;
            return Ok(p.chars[start..p.pos].iter().collect());
        }
    }
    Ok(take_until_list_stop(p))
}

fn p_list_val(p: &mut P) -> PResult<Vec<String>> {
    p.ws();
    p.char('(')?;
    p.ws();
    let mut items = Vec::new();
    loop {
        let item = match try_quoted_then_stop(p) {
            Some(v) => v,
            None => take_until_list_stop(p),
        };
        items.push(item);
        if p.peek() == Some(',') {
            p.pos += 1;
        } else {
            break;
        }
    }
    p.ws();
    p.char(')')?;
    p.ws();
    Ok(items)
}

/// `pIsVal`: `null`, `not_null`, `true`, `false`, `unknown`, each in lower
/// or upper case letter by letter.
fn p_is_val(p: &mut P) -> PResult<IsValue> {
    let matches_word = |p: &P, word: &str| {
        word.chars().enumerate().all(|(i, w)| {
            p.peek_at(i)
                .is_some_and(|c| c == w || c == w.to_ascii_uppercase())
        })
    };
    for (word, v) in [
        ("null", IsValue::Null),
        ("not_null", IsValue::NotNull),
        ("true", IsValue::True),
        ("false", IsValue::False),
        ("unknown", IsValue::Unknown),
    ] {
        if matches_word(p, word) {
            p.pos += word.len();
            return Ok(v);
        }
    }
    Err(p.fail_expecting("isVal: (null, not_null, true, false, unknown)"))
}

fn p_order(p: &mut P) -> PResult<Vec<OrderTerm>> {
    let mut terms = vec![p_order_item(p)?];
    while p.peek() == Some(',') {
        p.pos += 1;
        terms.push(p_order_item(p)?);
    }
    Ok(terms)
}

fn p_order_item(p: &mut P) -> PResult<OrderTerm> {
    p.ws();
    let start = p.pos;
    // try pOrderRelationTerm
    let rel: PResult<(String, Field)> = (|| {
        let name = p_field_name(p)?;
        p.char('(')?;
        let field = p_field(p)?;
        p.char(')')?;
        Ok((name, field))
    })();
    let (relation, field) = match rel {
        Ok((name, field)) => (Some(name), field),
        Err(_) => {
            p.pos = start;
            (None, p_field(p)?)
        }
    };
    let direction = if p.looking_at(".asc") {
        p.pos += 4;
        Some(OrderDirection::Asc)
    } else if p.looking_at(".desc") {
        p.pos += 5;
        Some(OrderDirection::Desc)
    } else {
        None
    };
    let nulls = if p.looking_at(".nullsfirst") {
        p.pos += 11;
        Some(OrderNulls::First)
    } else if p.looking_at(".nullslast") {
        p.pos += 10;
        Some(OrderNulls::Last)
    } else {
        None
    };
    if !(p.at_eof() || p.peek() == Some(',')) {
        let mut f = p.fail_expecting("\",\"");
        f.expected.push("end of input".into());
        if p.peek() == Some('.') && nulls.is_none() {
            let mut g = Fail {
                pos: p.pos + 1,
                unexpected: Some(match p.peek_at(1) {
                    Some(c) => show_char_token(c),
                    None => "end of input".into(),
                }),
                expected: if direction.is_none() {
                    vec![
                        "\"asc\"".into(),
                        "\"desc\"".into(),
                        "\"nullsfirst\"".into(),
                        "\"nullslast\"".into(),
                    ]
                } else {
                    vec!["\"nullsfirst\"".into(), "\"nullslast\"".into()]
                },
                messages: vec![],
                consumed: false,
            };
            g.pos = p.pos;
            f = g;
        }
        return Err(f);
    }
    p.ws();
    Ok(OrderTerm {
        relation,
        field,
        direction,
        nulls,
    })
}

fn p_logic_tree(p: &mut P) -> PResult<LogicTree> {
    let start = p.pos;
    // Stmnt <$> try pLogicFilter
    let stmt: PResult<Filter> = (|| {
        let field = p_field(p)?;
        p.char('.')?;
        let expr = p_op_expr(p, ValueKind::Logic)?;
        Ok(Filter { field, expr })
    })();
    let stmt_err = match stmt {
        Ok(f) => return Ok(LogicTree::Stmt(f)),
        Err(e) => {
            p.pos = start;
            e
        }
    };
    let negated = if p.looking_at("not.") {
        p.pos += 4;
        true
    } else {
        false
    };
    let op = if p.looking_at("and") {
        p.pos += 3;
        LogicOperator::And
    } else if p.looking_at("or") {
        p.pos += 2;
        LogicOperator::Or
    } else {
        let mut f = p.fail_expecting("logic operator (and, or)");
        if !negated {
            f.expected.insert(0, "negation operator (not)".into());
            f.expected
                .insert(0, "field name (* or [a..z0..9_$])".into());
            f = Fail { pos: start, ..f };
        }
        return Err(if stmt_err.pos > start {
            stmt_err.merge(f)
        } else {
            f
        });
    };
    p.ws();
    p.char('(')?;
    p.ws();
    let mut children = vec![p_logic_tree(p)?];
    loop {
        p.ws();
        if p.peek() == Some(',') {
            p.pos += 1;
            p.ws();
            children.push(p_logic_tree(p)?);
        } else {
            break;
        }
    }
    p.ws();
    p.char(')')?;
    p.ws();
    Ok(LogicTree::Expr {
        negated,
        op,
        children,
    })
}

// ---------------------------------------------------------------------------
// Rendering back to query-string syntax (tests and the fuzz target use it to
// check that parsing is the inverse of rendering).

/// Renders a filter value so that [`parse`] reads it back as `expr`.
pub fn render_op_expr(expr: &OpExpr) -> String {
    let mut s = String::new();
    if expr.negated {
        s.push_str("not.");
    }
    match &expr.operation {
        Operation::Simple(op, v) => {
            let _ = write!(s, "{}.{v}", op.name());
        }
        Operation::Quantified(op, q, v) => {
            let _ = write!(s, "{}({}).{v}", op.name(), q.name());
        }
        Operation::IsDistinct(v) => {
            let _ = write!(s, "isdistinct.{v}");
        }
        Operation::In(vals) => {
            s.push_str("in.(");
            let quoted: Vec<String> = vals.iter().map(|v| quote_list_value(v)).collect();
            s.push_str(&quoted.join(","));
            s.push(')');
        }
        Operation::Is(v) => {
            s.push_str("is.");
            s.push_str(match v {
                IsValue::Null => "null",
                IsValue::NotNull => "not_null",
                IsValue::True => "true",
                IsValue::False => "false",
                IsValue::Unknown => "unknown",
            });
        }
        Operation::Fts(op, lang, v) => {
            s.push_str(op.name());
            if let Some(l) = lang {
                let _ = write!(s, "({l})");
            }
            let _ = write!(s, ".{v}");
        }
    }
    s
}

/// Quotes a value for an `in.(...)` list or a logic tree.
pub(crate) fn quote_list_value(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(k: &str, v: &str) -> Result<QueryParams, QueryError> {
        parse_pairs(&[(k.to_string(), Some(v.to_string()))], false)
    }

    fn simple(name: &str, op: SimpleOperator, v: &str) -> Filter {
        Filter {
            field: Field {
                name: name.into(),
                json_path: vec![],
            },
            expr: OpExpr {
                negated: false,
                operation: Operation::Simple(op, v.into()),
            },
        }
    }

    #[test]
    fn classifies_filters_and_params() {
        let q = parse(
            "id=eq.5&select=id,title&order=id.desc&limit=10&offset=20&foo=bar",
            true,
        )
        .unwrap();
        assert_eq!(
            q.filters,
            vec![(vec![], simple("id", SimpleOperator::Eq, "5"))]
        );
        assert_eq!(q.params, vec![("foo".into(), "bar".into())]);
        assert_eq!(
            q.root_range(),
            RowRange {
                lower: 20,
                upper: Some(29)
            }
        );
        assert_eq!(q.order.len(), 1);
        assert_eq!(q.select.len(), 2);
        // Outside an RPC read every parameter must be a filter (v14).
        let e = parse("id=eq.5&foo=bar", false).unwrap_err();
        assert_eq!(
            e.message,
            "\"failed to parse filter (bar)\" (line 1, column 1)"
        );
        // A failure after consuming input is an error even in an RPC read.
        assert!(parse("foo=in.x", true).is_err());
        assert!(parse("foo=not.bar", true).is_err());
        assert_eq!(parse("foo=notes", true).unwrap().params.len(), 1);
    }

    #[test]
    fn unknown_operator_error_matches_postgrest() {
        // The doctests of QueryParams.hs (v14).
        let e = filter("a.b", "noop.0").unwrap_err();
        assert_eq!(
            e.message,
            "\"failed to parse filter (noop.0)\" (line 1, column 1)"
        );
        assert_eq!(
            e.details,
            "unexpected \"o\" expecting \"not\" or operator (eq, gt, ...)"
        );
        let e = filter("id", "val").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.details.as_str()),
            (
                "\"failed to parse filter (val)\" (line 1, column 1)",
                "unexpected \"v\" expecting \"not\" or operator (eq, gt, ...)"
            )
        );
        let column = |v: &str| {
            let m = filter("x", v).unwrap_err().message;
            m.rsplit("column ")
                .next()
                .unwrap()
                .trim_end_matches(')')
                .to_string()
        };
        assert_eq!(column("fts().value"), "5");
        assert_eq!(column("eq().value"), "4");
        assert_eq!(column("is().value"), "3");
        assert_eq!(column("in().value"), "3");
        assert_eq!(column("eq1"), "3");
    }

    #[test]
    fn filter_values_keep_dots_and_stars() {
        let q = filter("title", "like.*a.b*").unwrap();
        assert_eq!(
            q.filters[0].1,
            simple("title", SimpleOperator::Like, "*a.b*")
        );
    }

    #[test]
    fn not_in_is_and_fts() {
        let q = filter("id", "not.in.(1,\"2,3\",4)").unwrap();
        assert_eq!(
            q.filters[0].1.expr,
            OpExpr {
                negated: true,
                operation: Operation::In(vec!["1".into(), "2,3".into(), "4".into()])
            }
        );
        let q = filter("x", "is.NULL").unwrap();
        assert_eq!(q.filters[0].1.expr.operation, Operation::Is(IsValue::Null));
        let q = filter("fts", "fts(english).cat & dog").unwrap();
        assert_eq!(
            q.filters[0].1.expr.operation,
            Operation::Fts(FtsOperator::Fts, Some("english".into()), "cat & dog".into())
        );
        let q = filter("fts", "wfts.cat dog").unwrap();
        assert_eq!(
            q.filters[0].1.expr.operation,
            Operation::Fts(FtsOperator::Websearch, None, "cat dog".into())
        );
        let q = filter("x", "in.()").unwrap();
        assert_eq!(
            q.filters[0].1.expr.operation,
            Operation::In(vec!["".into()])
        );
    }

    #[test]
    fn quantifiers_and_isdistinct() {
        let q = filter("title", "like(any).{a*,*b}").unwrap();
        assert_eq!(
            q.filters[0].1.expr.operation,
            Operation::Quantified(SimpleOperator::Like, Quantifier::Any, "{a*,*b}".into())
        );
        let q = parse("or=(id.eq(all).{1,2},title.isdistinct.x)", false).unwrap();
        let LogicTree::Expr { children, .. } = &q.logic[0].1 else {
            panic!()
        };
        assert_eq!(
            children[0],
            LogicTree::Stmt(Filter {
                field: Field {
                    name: "id".into(),
                    json_path: vec![]
                },
                expr: OpExpr {
                    negated: false,
                    operation: Operation::Quantified(
                        SimpleOperator::Eq,
                        Quantifier::All,
                        "{1,2}".into()
                    )
                }
            })
        );
        assert!(filter("a.b", "cs(any).{1}").is_err());
        assert!(filter("a", "cs(any).{1}").is_err());
        assert!(filter("a.b", "like(some).x").is_err());
    }

    #[test]
    fn not_with_unknown_operator_reports_not() {
        let e = filter("a", "not.foo.1").unwrap_err();
        assert_eq!(
            e.details,
            "unexpected \"f\" expecting operator (eq, gt, ...)"
        );
        assert!(e.message.ends_with("(line 1, column 5)"), "{e:?}");
    }

    #[test]
    fn operator_without_value_fails() {
        let e = filter("a", "eq").unwrap_err();
        assert!(e.message.starts_with("\"failed to parse filter (eq)\""));
    }

    #[test]
    fn logic_trees_nest() {
        let q = parse("or=(a.eq.1,and(b.gt.2,c.not.is.null),d.in.(1,2))", false).unwrap();
        let (path, tree) = &q.logic[0];
        assert!(path.is_empty());
        let LogicTree::Expr {
            negated,
            op,
            children,
        } = tree
        else {
            panic!("{tree:?}")
        };
        assert!(!negated);
        assert_eq!(*op, LogicOperator::Or);
        assert_eq!(children.len(), 3);
        assert!(matches!(
            &children[1],
            LogicTree::Expr {
                op: LogicOperator::And,
                ..
            }
        ));
        let q = parse("not.and=(a.eq.1,b.eq.\"x,y\")", false).unwrap();
        let LogicTree::Expr {
            negated, children, ..
        } = &q.logic[0].1
        else {
            panic!()
        };
        assert!(*negated);
        assert_eq!(
            children[1],
            LogicTree::Stmt(simple("b", SimpleOperator::Eq, "x,y"))
        );
    }

    #[test]
    fn logic_tree_errors() {
        let e = parse("or=()", false).unwrap_err();
        assert!(
            e.message.starts_with("\"failed to parse logic tree (())\""),
            "{e:?}"
        );
        let e = parse("or=(id.in.1,2,id.eq.3)", false).unwrap_err();
        assert!(e.message.contains("failed to parse logic tree"), "{e:?}");
    }

    #[test]
    fn select_items() {
        let s = parse_select("id, t:title, created_at::text, data->a->>b, *").unwrap();
        assert_eq!(
            s[1],
            SelectItem::Field {
                field: Field {
                    name: "title".into(),
                    json_path: vec![]
                },
                cast: None,
                alias: Some("t".into())
            }
        );
        assert_eq!(
            s[2],
            SelectItem::Field {
                field: Field {
                    name: "created_at".into(),
                    json_path: vec![]
                },
                cast: Some("text".into()),
                alias: None
            }
        );
        assert_eq!(
            s[3],
            SelectItem::Field {
                field: Field {
                    name: "data".into(),
                    json_path: vec![
                        JsonOperation::Arrow(JsonOperand::Key("a".into())),
                        JsonOperation::DoubleArrow(JsonOperand::Key("b".into()))
                    ]
                },
                cast: None,
                alias: None
            }
        );
        assert_eq!(s[4], SelectItem::Star);
        let s = parse_select("id,author:profiles!fk!inner(name)").unwrap();
        assert!(matches!(
            &s[1],
            SelectItem::Relation { name, alias: Some(a), join: Some(JoinType::Inner), .. }
                if name == "profiles" && a == "author"
        ));
        let s = parse_select("\"quoted, name\"").unwrap();
        assert!(matches!(&s[0], SelectItem::Field { field, .. } if field.name == "quoted, name"));
    }

    #[test]
    fn select_errors() {
        let e = parse_select("id,clients(name[])").unwrap_err();
        assert!(e.message.starts_with("\"failed to parse select parameter"));
        assert!(parse_select("name::").is_err());
        assert_eq!(parse_select("").unwrap(), vec![SelectItem::Star]);
        assert!(matches!(
            parse_select("count(),total:id.sum()::int")
                .unwrap()
                .as_slice(),
            [SelectItem::Aggregate { .. }, SelectItem::Aggregate { .. }]
        ));
        assert!(matches!(
            parse_select("...author(name)").unwrap().as_slice(),
            [SelectItem::Relation { spread: true, .. }]
        ));
        let s = parse_select("data->>!@#$%^&*_a").unwrap();
        assert!(matches!(&s[0], SelectItem::Field { field, .. }
            if field.json_path == vec![JsonOperation::DoubleArrow(JsonOperand::Key("!@#$%^&*_a".into()))]));
        assert!(parse_select("a;drop table x").is_err());
    }

    #[test]
    fn order_terms() {
        let q = parse("order=created_at.desc.nullslast,id", false).unwrap();
        let terms = &q.order[0].1;
        assert_eq!(terms[0].direction, Some(OrderDirection::Desc));
        assert_eq!(terms[0].nulls, Some(OrderNulls::Last));
        assert_eq!(terms[1].field.name, "id");
        assert!(parse("order=id.ac", false).is_err());
        assert!(parse("order=id.descc", false).is_err());
        assert!(parse("order=id%3Bdrop", false).is_err());
        // `;` separates parameters, as in http-types.
        assert_eq!(parse("order=id;drop", false).unwrap().params, vec![]);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse("limit=0", false).unwrap().root_range(),
            RowRange {
                lower: 0,
                upper: Some(-1)
            }
        );
        assert!(parse("limit=0", false).unwrap().root_has_limit_zero());
        assert_eq!(
            parse("limit=abc", false).unwrap().root_range(),
            RowRange::ALL
        );
        assert!(parse("limit=-1", false).unwrap().root_range().is_empty());
        assert_eq!(
            parse("offset=5", false).unwrap().root_range(),
            RowRange {
                lower: 5,
                upper: None
            }
        );
    }

    #[test]
    fn columns_and_on_conflict() {
        let q = parse("columns=\"a\",\"b c\",d&on_conflict=id", false).unwrap();
        assert_eq!(q.columns, Some(vec!["a".into(), "b c".into(), "d".into()]));
        assert_eq!(q.on_conflict, Some(vec!["id".into()]));
    }

    #[test]
    fn decoding() {
        let q = decode_query("a=1+2%2C3&b&c=%ZZ");
        assert_eq!(
            q,
            vec![
                ("a".into(), Some("1 2,3".into())),
                ("b".into(), None),
                ("c".into(), Some("%ZZ".into()))
            ]
        );
    }

    #[test]
    fn unicode_in_message_is_shown_like_haskell() {
        let e = filter("a.b", "zz.é").unwrap_err();
        assert_eq!(
            e.message,
            "\"failed to parse filter (zz.\\233)\" (line 1, column 1)"
        );
    }

    #[test]
    fn canonical_sorts_keys() {
        let q = parse("select=id&a=eq.1", false).unwrap();
        assert_eq!(q.canonical, "a=eq.1&select=id");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn ident() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_]{0,10}"
    }

    fn json_path() -> impl Strategy<Value = Vec<JsonOperation>> {
        prop::collection::vec(
            (
                any::<bool>(),
                prop_oneof![
                    ident().prop_map(JsonOperand::Key),
                    (any::<bool>(), 0u32..1000).prop_map(|(neg, n)| {
                        JsonOperand::Idx(format!("{}{n}", if neg { '-' } else { '+' }))
                    }),
                ],
            )
                .prop_map(|(double, o)| {
                    if double {
                        JsonOperation::DoubleArrow(o)
                    } else {
                        JsonOperation::Arrow(o)
                    }
                }),
            0..3,
        )
    }

    fn field() -> impl Strategy<Value = Field> {
        (ident(), json_path()).prop_map(|(name, json_path)| Field { name, json_path })
    }

    fn render_field(f: &Field) -> String {
        let mut s = f.name.clone();
        for op in &f.json_path {
            s.push_str(match op {
                JsonOperation::Arrow(_) => "->",
                JsonOperation::DoubleArrow(_) => "->>",
            });
            match op.operand() {
                JsonOperand::Key(k) => s.push_str(k),
                JsonOperand::Idx(i) => s.push_str(i.trim_start_matches('+')),
            }
        }
        s
    }

    /// Any text, including the characters the grammar cares about.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 .,()\"\\\\*%'-]{0,12}",
            any::<String>(),
            Just("'; drop table canary; --".to_string()),
        ]
    }

    fn operation() -> impl Strategy<Value = Operation> {
        let simple = (prop::sample::select(SimpleOperator::ALL.to_vec()), value())
            .prop_map(|(op, v)| Operation::Simple(op, v));
        let fts = (
            prop::sample::select(FtsOperator::ALL.to_vec()),
            prop::option::of("[a-z]{1,8}"),
            value(),
        )
            .prop_map(|(op, lang, v)| Operation::Fts(op, lang, v));
        let is = prop::sample::select(vec![
            IsValue::Null,
            IsValue::NotNull,
            IsValue::True,
            IsValue::False,
            IsValue::Unknown,
        ])
        .prop_map(Operation::Is);
        let list = prop::collection::vec(value(), 1..4).prop_map(Operation::In);
        let quantified = (
            prop::sample::select(
                SimpleOperator::ALL
                    .into_iter()
                    .filter(|o| o.quantifiable())
                    .collect::<Vec<_>>(),
            ),
            any::<bool>(),
            value(),
        )
            .prop_map(|(op, any, v)| {
                let q = if any {
                    Quantifier::Any
                } else {
                    Quantifier::All
                };
                Operation::Quantified(op, q, v)
            });
        let distinct = value().prop_map(Operation::IsDistinct);
        prop_oneof![simple, fts, is, list, quantified, distinct]
    }

    fn filter() -> impl Strategy<Value = Filter> {
        (field(), any::<bool>(), operation()).prop_map(|(field, negated, operation)| Filter {
            field,
            expr: OpExpr { negated, operation },
        })
    }

    /// In a logic tree a value runs up to `,`/`)`, so rendered values are
    /// quoted there.
    fn render_logic_filter(f: &Filter) -> String {
        let mut s = render_field(&f.field);
        s.push('.');
        if f.expr.negated {
            s.push_str("not.");
        }
        match &f.expr.operation {
            Operation::Simple(op, v) => {
                s.push_str(op.name());
                s.push('.');
                s.push_str(&quote_list_value(v));
            }
            Operation::Quantified(op, q, v) => {
                s.push_str(&format!("{}({}).", op.name(), q.name()));
                s.push_str(&quote_list_value(v));
            }
            Operation::IsDistinct(v) => {
                s.push_str("isdistinct.");
                s.push_str(&quote_list_value(v));
            }
            Operation::Fts(op, lang, v) => {
                s.push_str(op.name());
                if let Some(l) = lang {
                    s.push_str(&format!("({l})"));
                }
                s.push('.');
                s.push_str(&quote_list_value(v));
            }
            other => {
                let e = OpExpr {
                    negated: false,
                    operation: other.clone(),
                };
                s.push_str(&render_op_expr(&e));
            }
        }
        s
    }

    fn logic_tree() -> impl Strategy<Value = LogicTree> {
        let leaf = filter().prop_map(LogicTree::Stmt);
        leaf.prop_recursive(3, 12, 4, |inner| {
            (
                any::<bool>(),
                any::<bool>(),
                prop::collection::vec(inner, 1..4),
            )
                .prop_map(|(negated, and, children)| LogicTree::Expr {
                    negated,
                    op: if and {
                        LogicOperator::And
                    } else {
                        LogicOperator::Or
                    },
                    children,
                })
        })
    }

    fn render_tree(t: &LogicTree) -> String {
        match t {
            LogicTree::Stmt(f) => render_logic_filter(f),
            LogicTree::Expr {
                negated,
                op,
                children,
            } => {
                let inner: Vec<String> = children.iter().map(render_tree).collect();
                format!(
                    "{}{}({})",
                    if *negated { "not." } else { "" },
                    match op {
                        LogicOperator::And => "and",
                        LogicOperator::Or => "or",
                    },
                    inner.join(",")
                )
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parser_never_panics(raw in any::<String>()) {
            let _ = parse(&raw, false);
            let _ = parse(&raw, true);
            let _ = parse_select(&raw);
            let _ = parse_pairs(&[("or".into(), Some(raw.clone()))], false);
            let _ = parse_pairs(&[("x".into(), Some(raw.clone()))], false);
            let _ = parse_pairs(&[("order".into(), Some(raw.clone()))], false);
            let _ = parse_pairs(&[(raw.clone(), Some("eq.1".into()))], false);
        }

        #[test]
        fn grammar_shaped_input_never_panics(
            raw in "[a-z.,:()!\"\\\\*>{} -]{0,40}"
        ) {
            let _ = parse_pairs(&[("a".into(), Some(raw.clone()))], false);
            let _ = parse_pairs(&[("and".into(), Some(raw.clone()))], false);
            let _ = parse_select(&raw);
            let _ = parse_pairs(&[("order".into(), Some(raw.clone()))], false);
            let _ = parse_pairs(&[("columns".into(), Some(raw))], false);
        }

        #[test]
        fn filters_round_trip(f in filter()) {
            let key = render_field(&f.field);
            let q = parse_pairs(&[(key, Some(render_op_expr(&f.expr)))], false).unwrap();
            prop_assert_eq!(q.filters, vec![(vec![], f)]);
        }

        #[test]
        fn logic_trees_round_trip(children in prop::collection::vec(logic_tree(), 1..4), negated in any::<bool>()) {
            let tree = LogicTree::Expr { negated, op: LogicOperator::Or, children };
            let rendered = render_tree(&tree);
            let (key, value) = rendered.split_at(rendered.find('(').unwrap());
            let q = parse_pairs(&[(key.to_string(), Some(value.to_string()))], false).unwrap();
            prop_assert_eq!(&q.logic[0].1, &tree);
        }

        #[test]
        fn select_round_trips(items in prop::collection::vec(
            (field(), prop::option::of(ident()), prop::option::of(prop::sample::select(vec!["text", "int", "double precision"]))),
            1..5,
        )) {
            let rendered: Vec<String> = items
                .iter()
                .map(|(f, alias, cast)| {
                    let mut s = String::new();
                    if let Some(a) = alias {
                        s.push_str(a);
                        s.push(':');
                    }
                    s.push_str(&render_field(f));
                    if let Some(c) = cast {
                        s.push_str("::");
                        s.push_str(c);
                    }
                    s
                })
                .collect();
            let parsed = parse_select(&rendered.join(",")).unwrap();
            let expected: Vec<SelectItem> = items
                .into_iter()
                .map(|(field, alias, cast)| SelectItem::Field {
                    field,
                    alias,
                    cast: cast.map(str::to_string),
                })
                .collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn parsed_filters_are_a_fixpoint_of_rendering(v in "[a-z]{1,5}\\.[a-z0-9.,()\" *{}-]{0,20}") {
            if let Ok(q) = parse_pairs(&[("col".into(), Some(v))], false) {
                for (_, f) in q.filters {
                    let again = parse_pairs(&[("col".into(), Some(render_op_expr(&f.expr)))], false).unwrap();
                    prop_assert_eq!(&again.filters[0].1, &f);
                }
            }
        }
    }
}
