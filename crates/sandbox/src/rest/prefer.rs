//! Request headers PostgREST interprets besides the query string: `Prefer`
//! (RFC 7240, `ApiRequest/Preferences.hs`), `Range`, and `Accept`.

use super::query::RowRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Representation {
    /// `return=representation`
    Full,
    /// `return=headers-only`
    HeadersOnly,
    /// `return=minimal`
    Minimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Exact,
    Planned,
    Estimated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Default,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handling {
    Strict,
    Lenient,
}

/// The preferences PostgREST recognises; the first occurrence of each wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Preferences {
    pub(crate) resolution: Option<Resolution>,
    pub(crate) representation: Option<Representation>,
    pub(crate) count: Option<Count>,
    pub(crate) missing: Option<Missing>,
    pub(crate) handling: Option<Handling>,
    pub(crate) max_affected: Option<i64>,
    /// Anything else, as sent (reported with `handling=strict`).
    pub(crate) invalid: Vec<String>,
}

impl Preferences {
    /// Parses every `Prefer` header value (comma-separated, spaces ignored).
    pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut p = Preferences::default();
        for pref in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            match pref {
                "resolution=merge-duplicates" => {
                    p.resolution.get_or_insert(Resolution::MergeDuplicates);
                }
                "resolution=ignore-duplicates" => {
                    p.resolution.get_or_insert(Resolution::IgnoreDuplicates);
                }
                "return=representation" => {
                    p.representation.get_or_insert(Representation::Full);
                }
                "return=minimal" => {
                    p.representation.get_or_insert(Representation::Minimal);
                }
                "return=headers-only" => {
                    p.representation.get_or_insert(Representation::HeadersOnly);
                }
                "count=exact" => {
                    p.count.get_or_insert(Count::Exact);
                }
                "count=planned" => {
                    p.count.get_or_insert(Count::Planned);
                }
                "count=estimated" => {
                    p.count.get_or_insert(Count::Estimated);
                }
                "missing=default" => {
                    p.missing.get_or_insert(Missing::Default);
                }
                "missing=null" => {
                    p.missing.get_or_insert(Missing::Null);
                }
                "handling=strict" => {
                    p.handling.get_or_insert(Handling::Strict);
                }
                "handling=lenient" => {
                    p.handling.get_or_insert(Handling::Lenient);
                }
                // Recognised but not applied: transactions end as configured
                // (`db-tx-end = commit`), single-object params are deprecated.
                "tx=commit" | "tx=rollback" | "params=single-object" => {}
                other => {
                    if let Some(n) = other.strip_prefix("max-affected=") {
                        if p.max_affected.is_none() {
                            p.max_affected = n.parse().ok();
                        }
                    } else if !other.is_empty() {
                        p.invalid.push(other.to_string());
                    }
                }
            }
        }
        p
    }

    /// `shouldCount`: exact and estimated counts run a count query.
    /// (`planned` does too here: the sandbox has no planner estimate to give.)
    pub(crate) fn counts(&self) -> bool {
        self.count.is_some()
    }

    /// The `Preference-Applied` value for the given subset, in PostgREST's
    /// order: resolution, missing, return, count, handling, max-affected.
    pub(crate) fn applied(
        &self,
        resolution: bool,
        missing: bool,
        representation: bool,
        max_affected: bool,
    ) -> Option<String> {
        let mut vals: Vec<String> = Vec::new();
        if resolution && let Some(r) = self.resolution {
            vals.push(
                match r {
                    Resolution::MergeDuplicates => "resolution=merge-duplicates",
                    Resolution::IgnoreDuplicates => "resolution=ignore-duplicates",
                }
                .into(),
            );
        }
        if missing && let Some(m) = self.missing {
            vals.push(
                match m {
                    Missing::Default => "missing=default",
                    Missing::Null => "missing=null",
                }
                .into(),
            );
        }
        if representation && let Some(r) = self.representation {
            vals.push(
                match r {
                    Representation::Full => "return=representation",
                    Representation::HeadersOnly => "return=headers-only",
                    Representation::Minimal => "return=minimal",
                }
                .into(),
            );
        }
        if let Some(c) = self.count {
            vals.push(
                match c {
                    Count::Exact => "count=exact",
                    Count::Planned => "count=planned",
                    Count::Estimated => "count=estimated",
                }
                .into(),
            );
        }
        if let Some(h) = self.handling {
            vals.push(
                match h {
                    Handling::Strict => "handling=strict",
                    Handling::Lenient => "handling=lenient",
                }
                .into(),
            );
        }
        if max_affected
            && self.handling == Some(Handling::Strict)
            && let Some(n) = self.max_affected
        {
            vals.push(format!("max-affected={n}"));
        }
        (!vals.is_empty()).then(|| vals.join(", "))
    }
}

/// `rangeParse`: `^([0-9]+)-([0-9]*)$`; anything else means all rows.
pub(crate) fn parse_range_header(value: &str) -> RowRange {
    let Some((lower, upper)) = value.split_once('-') else {
        return RowRange::ALL;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lower) || !(upper.is_empty() || digits(upper)) {
        return RowRange::ALL;
    }
    let num = |s: &str| {
        s.bytes().fold(0i64, |n, b| {
            n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        })
    };
    RowRange {
        lower: num(lower),
        upper: (!upper.is_empty()).then(|| num(upper)),
    }
}

/// The media type a read or a write answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaType {
    /// `application/json`
    Json,
    /// `application/vnd.pgrst.object+json`: one object, else `PGRST116`.
    SingleObject,
}

impl MediaType {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::SingleObject => "application/vnd.pgrst.object+json; charset=utf-8",
        }
    }
}

/// Negotiates `Accept` (quality factors respected, `q=0` excluded). `None`
/// when nothing acceptable is offered (`PGRST107`).
pub(crate) fn negotiate(accept: Option<&str>) -> Option<MediaType> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(MediaType::Json);
    };
    let mut offers: Vec<(f32, usize, &str, bool)> = Vec::new();
    for (i, item) in accept.split(',').enumerate() {
        let mut parts = item.split(';');
        let mime = parts.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        let mut nulls_stripped = false;
        for param in parts {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k.trim() {
                "q" => q = v.trim().parse().unwrap_or(1.0),
                "nulls" => nulls_stripped = v.trim() == "stripped",
                _ => {}
            }
        }
        if q > 0.0 {
            offers.push((q, i, mime, nulls_stripped));
        }
    }
    offers.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, mime, _) in offers {
        match mime.to_ascii_lowercase().as_str() {
            "application/json" | "application/*" | "*/*" | "application/vnd.pgrst.array+json" => {
                return Some(MediaType::Json);
            }
            "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => {
                return Some(MediaType::SingleObject);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences() {
        let p = Preferences::parse(["count=exact,    return=representation , tx=commit, anything"]);
        assert_eq!(p.count, Some(Count::Exact));
        assert_eq!(p.representation, Some(Representation::Full));
        assert_eq!(p.invalid, vec!["anything".to_string()]);
        let p = Preferences::parse([
            "resolution=ignore-duplicates",
            "resolution=merge-duplicates",
        ]);
        assert_eq!(p.resolution, Some(Resolution::IgnoreDuplicates));
        assert_eq!(
            Preferences::parse(["return=minimal, count=exact"])
                .applied(true, true, true, true)
                .as_deref(),
            Some("return=minimal, count=exact")
        );
    }

    #[test]
    fn range_header() {
        assert_eq!(
            parse_range_header("0-9"),
            RowRange {
                lower: 0,
                upper: Some(9)
            }
        );
        assert_eq!(
            parse_range_header("5-"),
            RowRange {
                lower: 5,
                upper: None
            }
        );
        assert_eq!(parse_range_header("items=0-9"), RowRange::ALL);
        assert!(parse_range_header("5-2").is_empty());
    }

    #[test]
    fn accept() {
        assert_eq!(negotiate(None), Some(MediaType::Json));
        assert_eq!(negotiate(Some("*/*")), Some(MediaType::Json));
        assert_eq!(
            negotiate(Some("application/vnd.pgrst.object+json")),
            Some(MediaType::SingleObject)
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(
            negotiate(Some("text/html, application/json;q=0.5")),
            Some(MediaType::Json)
        );
    }
}
