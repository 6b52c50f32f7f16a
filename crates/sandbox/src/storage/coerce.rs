//! JSON type coercion as Storage's request validation does it: Fastify
//! validates bodies with ajv and `coerceTypes: 'array'`, so a field the schema
//! types as integer or boolean also accepts the value as a string (supabase-py
//! sends `expiresIn` as `"60"`), and a one-element array stands for its
//! element. What ajv would not coerce is refused as before (see
//! `docs/platform-contract.md`).

use serde_json::Value;

/// An ajv `integer` after coercion: a whole number, a string holding one,
/// `true`/`false` (1/0), or a one-element array of any of these.
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0)
                    .map(|f| f as i64)
            })
        }
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Array(items) if items.len() == 1 && !items[0].is_array() => integer(&items[0]),
        _ => None,
    }
}

/// An ajv `boolean` after coercion: a boolean, `"true"`/`"false"`, `1`/`0`, or
/// a one-element array of any of these.
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::Array(items) if items.len() == 1 && !items[0].is_array() => boolean(&items[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_coerce_like_ajv() {
        for (v, want) in [
            (json!(60), Some(60)),
            (json!("60"), Some(60)),
            (json!(true), Some(1)),
            (json!(["60"]), Some(60)),
            (json!(1.5), None),
            (json!("1.5"), None),
            (json!("sixty"), None),
            (json!(""), None),
            (json!([60, 61]), None),
            (json!({}), None),
        ] {
            assert_eq!(integer(&v), want, "{v}");
        }
    }

    #[test]
    fn booleans_coerce_like_ajv() {
        for (v, want) in [
            (json!(true), Some(true)),
            (json!("true"), Some(true)),
            (json!("false"), Some(false)),
            (json!(0), Some(false)),
            (json!("yes"), None),
            (json!(2), None),
        ] {
            assert_eq!(boolean(&v), want, "{v}");
        }
    }
}
