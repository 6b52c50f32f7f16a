//! Object keys and bucket names: what Storage accepts.
//!
//! Supabase Storage's `isValidKey` admits only S3-safe characters
//! (`\w / ! - . * ' ( ) space & $ @ = ; : + , ?`, ASCII `\w`) and
//! `isValidBucketName` the same without `/`, under 64 characters. The sandbox
//! keeps bytes on a real file system, so it is stricter where a key could
//! escape or collide there: no `.`/`..` segment, no leading `/`, at most
//! 1024 bytes (S3's key limit) and 255 bytes per segment (a file name).

use super::error::StorageError;

/// S3's maximum key length, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The longest file name the data directory's file system takes.
pub const MAX_SEGMENT_LEN: usize = 255;

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '_' | '/'
                | '!'
                | '-'
                | '.'
                | '*'
                | '\''
                | '('
                | ')'
                | ' '
                | '&'
                | '$'
                | '@'
                | '='
                | ';'
                | ':'
                | '+'
                | ','
                | '?'
        )
}

/// Whether `key` is an object key Storage accepts.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.chars().all(is_key_char)
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|seg| seg != "." && seg != ".." && seg.len() <= MAX_SEGMENT_LEN)
}

/// `key`, or Storage's `InvalidKey` error.
pub fn must_be_valid_key(key: &str) -> Result<&str, StorageError> {
    if is_valid_key(key) {
        Ok(key)
    } else {
        Err(StorageError::InvalidKey(key.to_owned()))
    }
}

/// Whether `name` is a bucket name Storage accepts.
pub fn is_valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 64
        && name.chars().all(|c| c != '/' && is_key_char(c))
        && name != "."
        && name != ".."
}

/// `name`, or Storage's `InvalidBucketName` error.
pub fn must_be_valid_bucket_name(name: &str) -> Result<&str, StorageError> {
    if is_valid_bucket_name(name) {
        Ok(name)
    } else {
        Err(StorageError::InvalidBucketName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_pass() {
        for key in [
            "0b6f6c1e-5b7a-4c1d-9a51-3f7f1d2e4a10/8d1c.pdf",
            "folder/sub folder/file (1).pdf",
            "a",
            "weird!-_.*'()&$@=;:+,?/x",
            "a//b",
        ] {
            assert!(is_valid_key(key), "{key}");
        }
    }

    #[test]
    fn hostile_keys_fail() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        let long_segment = format!("u/{}", "b".repeat(MAX_SEGMENT_LEN + 1));
        for key in [
            "",
            "..",
            "../etc/passwd",
            "a/../../b",
            "a/..",
            "./a",
            "a/./b",
            "/etc/passwd",
            "a\0b",
            "a\\b",
            "a%2Fb",
            "caf\u{e9}",
            "a\nb",
            long.as_str(),
            long_segment.as_str(),
        ] {
            assert!(!is_valid_key(key), "{key:?}");
            assert!(matches!(
                must_be_valid_key(key),
                Err(StorageError::InvalidKey(_))
            ));
        }
    }

    #[test]
    fn the_longest_keys_still_pass() {
        let segment = "s".repeat(MAX_SEGMENT_LEN);
        assert!(is_valid_key(&segment));
        let key = format!(
            "{segment}/{segment}/{segment}/{}/{}",
            "t".repeat(250),
            "u".repeat(5)
        );
        assert_eq!(key.len(), MAX_KEY_LEN);
        assert!(is_valid_key(&key));
    }

    #[test]
    fn bucket_names() {
        assert!(is_valid_bucket_name("documents"));
        assert!(is_valid_bucket_name("my bucket.v2"));
        for name in ["", ".", "..", "a/b", "x\0", &"b".repeat(64)] {
            assert!(!is_valid_bucket_name(name), "{name:?}");
        }
    }
}
