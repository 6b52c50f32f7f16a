//! TUS 1.0.0 resumable uploads: header parsing, upload ids and the state of
//! uploads in progress.
//!
//! As in Supabase Storage, an upload's id is `base64url("<bucket>/<key>/<version>")`
//! (supabase/storage `src/http/routes/tus/`; the real id starts with the
//! tenant, which Storage strips from the URL). Its state lives on disk,
//! `<tus dir>/<version>/{info.json,data}`, so an upload survives a restart
//! of the sandbox; the offset is the length of `data`. One request at a time
//! may write an upload ([`Uploads::lock`]).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{StorageError, tus};

/// The protocol version this server speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// What `OPTIONS` advertises (Supabase's file store minus deferred length).
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
/// How long an unfinished upload is kept (Storage's `TUS_URL_EXPIRY_MS` default).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(60 * 60);

/// The object an upload will become: `bucket/key`, new version `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadId {
    pub bucket: String,
    pub key: String,
    pub version: String,
}

impl UploadId {
    /// The id as it appears in the upload URL.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}/{}/{}", self.bucket, self.key, self.version))
    }

    /// Parses the last segment of an upload URL. `None` for anything that is
    /// not one of this server's ids.
    pub fn decode(id: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(id.trim_end_matches('=')).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (bucket, rest) = text.split_once('/')?;
        let (key, version) = rest.rsplit_once('/')?;
        Uuid::parse_str(version).ok()?;
        if bucket.is_empty() || key.is_empty() {
            return None;
        }
        Some(UploadId {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: version.to_owned(),
        })
    }
}

/// Parses `Upload-Metadata`: comma-separated `key` or `key base64(value)`
/// pairs, keys unique and without spaces (`@tus/utils` `Metadata.parse`).
/// Values that are not UTF-8 are refused.
pub fn parse_metadata(header: &str) -> Result<BTreeMap<String, Option<String>>, StorageError> {
    let mut out = BTreeMap::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        let mut parts = pair.split(' ');
        let key = parts.next().unwrap_or_default();
        let value = parts.next();
        if key.is_empty() || parts.next().is_some() || out.contains_key(key) {
            return Err(tus::INVALID_METADATA);
        }
        let value = match value {
            None => None,
            Some(v) => {
                let bytes = STANDARD.decode(v).map_err(|_| tus::INVALID_METADATA)?;
                Some(String::from_utf8(bytes).map_err(|_| tus::INVALID_METADATA)?)
            }
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// Encodes metadata back into an `Upload-Metadata` value.
#[cfg(test)]
pub fn encode_metadata(metadata: &BTreeMap<String, Option<String>>) -> String {
    metadata
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k} {}", STANDARD.encode(v)),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A non-negative decimal header value (`Upload-Length`, `Upload-Offset`).
pub fn parse_u64(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Storage's `cacheControl` metadata rule: digits become `max-age=<n>`,
/// anything else `no-cache`.
pub fn cache_control_from_metadata(value: Option<&str>) -> String {
    let is_integer = |v: &str| {
        let digits = v.strip_prefix('-').unwrap_or(v);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    match value {
        Some(v) if is_integer(v) => format!("max-age={v}"),
        _ => "no-cache".to_owned(),
    }
}

/// What is known about an upload in progress (its `info.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UploadInfo {
    pub bucket: String,
    pub key: String,
    pub version: String,
    /// `Upload-Length`.
    pub length: u64,
    pub content_type: String,
    pub cache_control: String,
    /// The JSON object of the `metadata` entry, when it parsed.
    pub user_metadata: Option<serde_json::Value>,
    /// The `Upload-Metadata` header as sent, echoed by `HEAD`.
    pub upload_metadata: String,
    /// The `sub` of the creator; only the creator may resume the upload.
    pub owner: Option<String>,
    pub upsert: bool,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
    /// The object was stored; the bytes moved into place. Kept so that a
    /// client resuming a finished upload learns it is complete.
    #[serde(default)]
    pub completed: bool,
}

impl UploadInfo {
    pub fn id(&self) -> UploadId {
        UploadId {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            version: self.version.clone(),
        }
    }

    /// When the upload stops being resumable.
    pub fn expires_at(&self, expiry: Duration) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_at_ms) + expiry
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The uploads in progress (cheap to clone).
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
    busy: Arc<Mutex<HashSet<String>>>,
}

/// Held while a request writes an upload; released on drop.
#[derive(Debug)]
pub struct UploadLock {
    version: String,
    busy: Arc<Mutex<HashSet<String>>>,
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.version);
    }
}

impl Uploads {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Uploads {
            dir: dir.into(),
            busy: Arc::default(),
        }
    }

    fn upload_dir(&self, version: &str) -> Option<PathBuf> {
        // Versions are UUIDs we minted; anything else never names a folder.
        Uuid::parse_str(version).ok()?;
        Some(self.dir.join(version))
    }

    /// The file the upload's bytes accumulate in.
    pub fn data_path(&self, version: &str) -> Option<PathBuf> {
        Some(self.upload_dir(version)?.join("data"))
    }

    /// Records a new upload with no bytes yet.
    pub async fn create(&self, info: &UploadInfo) -> io::Result<()> {
        let dir = self
            .upload_dir(&info.version)
            .ok_or_else(|| io::Error::other("upload version is not a UUID"))?;
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::File::create(dir.join("data")).await?;
        self.write_info(&dir, info).await
    }

    /// Records that the upload's object is stored (its bytes have moved).
    pub async fn mark_completed(&self, info: &UploadInfo) -> io::Result<()> {
        let dir = self
            .upload_dir(&info.version)
            .ok_or_else(|| io::Error::other("upload version is not a UUID"))?;
        let completed = UploadInfo {
            completed: true,
            ..info.clone()
        };
        self.write_info(&dir, &completed).await
    }

    async fn write_info(&self, dir: &Path, info: &UploadInfo) -> io::Result<()> {
        let json = serde_json::to_vec(info).map_err(io::Error::other)?;
        let tmp = dir.join("info.json.tmp");
        tokio::fs::write(&tmp, json).await?;
        tokio::fs::rename(&tmp, dir.join("info.json")).await
    }

    /// The upload `id` names, when it exists and the id matches it exactly.
    pub async fn load(&self, id: &UploadId) -> io::Result<Option<UploadInfo>> {
        let Some(dir) = self.upload_dir(&id.version) else {
            return Ok(None);
        };
        let bytes = match tokio::fs::read(dir.join("info.json")).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let info: UploadInfo = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        Ok((info.id() == *id).then_some(info))
    }

    /// Bytes received so far.
    pub async fn offset(&self, version: &str) -> io::Result<u64> {
        let path = self
            .data_path(version)
            .ok_or_else(|| io::Error::other("upload version is not a UUID"))?;
        Ok(tokio::fs::metadata(path).await?.len())
    }

    /// Forgets an upload and its bytes.
    pub async fn remove(&self, version: &str) -> io::Result<()> {
        let Some(dir) = self.upload_dir(version) else {
            return Ok(());
        };
        match tokio::fs::remove_dir_all(dir).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Takes the upload for one writer; `None` while another request has it.
    pub fn lock(&self, version: &str) -> Option<UploadLock> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(version.to_owned()).then(|| UploadLock {
            version: version.to_owned(),
            busy: Arc::clone(&self.busy),
        })
    }

    /// Removes uploads older than `expiry` that nobody is writing.
    pub async fn sweep_expired(&self, expiry: Duration) -> io::Result<usize> {
        let mut removed = 0;
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = tokio::fs::read(entry.path().join("info.json")).await else {
                continue;
            };
            let Ok(info) = serde_json::from_slice::<UploadInfo>(&bytes) else {
                continue;
            };
            if info.expires_at(expiry) <= SystemTime::now()
                && let Some(_lock) = self.lock(&name)
            {
                self.remove(&name).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_strangers() {
        let id = UploadId {
            bucket: "documents".into(),
            key: "u1/folder/a.pdf".into(),
            version: Uuid::new_v4().to_string(),
        };
        assert_eq!(UploadId::decode(&id.encode()), Some(id.clone()));
        assert!(!id.encode().contains('/'));
        for bad in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("documents/a.pdf/not-a-uuid"),
            &URL_SAFE_NO_PAD.encode("x"),
        ] {
            assert_eq!(UploadId::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn metadata_parses_like_tus_utils() {
        let header = format!(
            "bucketName {},objectName {}, contentType {},empty",
            STANDARD.encode("documents"),
            STANDARD.encode("u1/a.pdf"),
            STANDARD.encode("application/pdf")
        );
        let md = parse_metadata(&header).unwrap();
        assert_eq!(md["bucketName"].as_deref(), Some("documents"));
        assert_eq!(md["objectName"].as_deref(), Some("u1/a.pdf"));
        assert_eq!(md["contentType"].as_deref(), Some("application/pdf"));
        assert_eq!(md["empty"], None);
        assert_eq!(parse_metadata(&encode_metadata(&md)).unwrap(), md);

        for bad in ["", "a b c", "a !!!", "a YQ==,a YQ==", " , ", "k \u{0}"] {
            assert!(parse_metadata(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_and_cache_control() {
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64(" 7 "), Some(7));
        for bad in ["", "-1", "1.5", "0x10", "99999999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
        assert_eq!(cache_control_from_metadata(Some("3600")), "max-age=3600");
        assert_eq!(cache_control_from_metadata(Some("public")), "no-cache");
        assert_eq!(cache_control_from_metadata(None), "no-cache");
    }

    fn info(version: &str, created_at_ms: u64) -> UploadInfo {
        UploadInfo {
            bucket: "documents".into(),
            key: "u1/a.pdf".into(),
            version: version.into(),
            length: 10,
            content_type: "application/pdf".into(),
            cache_control: "no-cache".into(),
            user_metadata: None,
            upload_metadata: String::new(),
            owner: Some("u1".into()),
            upsert: false,
            created_at_ms,
            completed: false,
        }
    }

    #[tokio::test]
    async fn uploads_persist_lock_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path());
        let v = Uuid::new_v4().to_string();
        let fresh = info(&v, now_ms());
        uploads.create(&fresh).await.unwrap();
        assert_eq!(
            uploads.load(&fresh.id()).await.unwrap(),
            Some(fresh.clone())
        );
        assert_eq!(uploads.offset(&v).await.unwrap(), 0);

        // An id naming another key with the same version finds nothing.
        let mut other = fresh.id();
        other.key = "u2/a.pdf".into();
        assert_eq!(uploads.load(&other).await.unwrap(), None);

        let lock = uploads.lock(&v).unwrap();
        assert!(uploads.lock(&v).is_none());
        drop(lock);
        assert!(uploads.lock(&v).is_some());

        let old_v = Uuid::new_v4().to_string();
        uploads.create(&info(&old_v, 1_000)).await.unwrap();
        assert_eq!(uploads.sweep_expired(DEFAULT_EXPIRY).await.unwrap(), 1);
        assert!(!dir.path().join(&old_v).exists());
        assert!(dir.path().join(&v).exists());
        uploads.remove(&v).await.unwrap();
        assert!(!dir.path().join(&v).exists());
    }
}
