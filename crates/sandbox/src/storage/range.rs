//! The `Range` request header (RFC 9110 §14), one byte range at a time as
//! S3 serves them.

/// What a download should send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole object (no `Range`, or one the server ignores: malformed,
    /// another unit, several ranges).
    Full,
    /// Bytes `start..=end` of the object (206).
    Partial { start: u64, end: u64 },
    /// A well-formed range that selects nothing (416).
    Unsatisfiable,
}

impl ByteRange {
    /// Interprets a `Range` header value against an object of `size` bytes.
    pub fn parse(header: Option<&str>, size: u64) -> Self {
        let Some(value) = header else {
            return Self::Full;
        };
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return Self::Full;
        };
        let spec = spec.trim();
        if spec.contains(',') {
            return Self::Full;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Self::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match (first.is_empty(), last.is_empty()) {
            // `-n`: the last n bytes.
            (true, false) => {
                let Some(n) = digits(last).then(|| last.parse::<u64>().ok()).flatten() else {
                    return Self::Full;
                };
                if n == 0 || size == 0 {
                    return Self::Unsatisfiable;
                }
                Self::Partial {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
            // `a-` or `a-b`.
            (false, _) => {
                let Some(start) = digits(first).then(|| first.parse::<u64>().ok()).flatten() else {
                    return Self::Full;
                };
                let end = if last.is_empty() {
                    u64::MAX
                } else {
                    match digits(last).then(|| last.parse::<u64>().ok()).flatten() {
                        Some(end) if end >= start => end,
                        _ => return Self::Full,
                    }
                };
                if start >= size {
                    return Self::Unsatisfiable;
                }
                Self::Partial {
                    start,
                    end: end.min(size - 1),
                }
            }
            (true, true) => Self::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, *};

    #[test]
    fn ranges() {
        let p = |h: &str, size| ByteRange::parse(Some(h), size);
        assert_eq!(ByteRange::parse(None, 10), Full);
        assert_eq!(p("bytes=0-3", 10), Partial { start: 0, end: 3 });
        assert_eq!(p("bytes=4-", 10), Partial { start: 4, end: 9 });
        assert_eq!(p("bytes=5-100", 10), Partial { start: 5, end: 9 });
        assert_eq!(p("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(p("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(p("bytes=9-9", 10), Partial { start: 9, end: 9 });
        assert_eq!(p("bytes=10-", 10), Unsatisfiable);
        assert_eq!(p("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(p("bytes=-0", 10), Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=5-2", 10), Full);
        assert_eq!(p("bytes=0-1,4-5", 10), Full);
        assert_eq!(p("items=0-1", 10), Full);
        assert_eq!(p("bytes=abc", 10), Full);
        assert_eq!(p("bytes=-", 10), Full);
        assert_eq!(p("bytes=+1-2", 10), Full);
        assert_eq!(p("bytes=99999999999999999999999-", 10), Full);
    }
}
