//! The bytes of stored objects, on the local file system.
//!
//! Layout, like Supabase Storage's file backend (one file per object
//! version, so a row and the bytes it names never disagree):
//!
//! ```text
//! <data_dir>/storage/<bucket>/<key>/~<version>    committed object bytes
//! <data_dir>/storage-uploads/tmp/<uuid>            a request body being received
//! <data_dir>/storage-uploads/tus/<version>/        a resumable upload in progress
//! ```
//!
//! `~` is not a key character (see [`super::key`]), so a version file can
//! never be mistaken for, or collide with, a key's folder. A body is written
//! to a temporary file while it arrives and renamed into place only after
//! the `storage.objects` row commits; a [`Incoming`] that is dropped before
//! that removes its file.

use std::io;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// Where object bytes live (cheap to clone).
#[derive(Debug, Clone)]
pub struct ObjectFiles {
    objects: PathBuf,
    tmp: PathBuf,
    tus: PathBuf,
}

/// What was received into an [`Incoming`] file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub size: u64,
    /// The MD5 of the bytes, quoted, as S3 and Storage report `eTag`.
    pub etag: String,
}

impl ObjectFiles {
    /// Opens (creating) the object directories under `data_dir`, and removes
    /// temporary files a previous run left behind.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let files = ObjectFiles {
            objects: data_dir.join("storage"),
            tmp: data_dir.join("storage-uploads").join("tmp"),
            tus: data_dir.join("storage-uploads").join("tus"),
        };
        std::fs::create_dir_all(&files.objects)?;
        std::fs::create_dir_all(&files.tus)?;
        if files.tmp.exists() {
            std::fs::remove_dir_all(&files.tmp)?;
        }
        std::fs::create_dir_all(&files.tmp)?;
        Ok(files)
    }

    /// `<data_dir>/storage`: one directory per bucket.
    pub fn objects_dir(&self) -> &Path {
        &self.objects
    }

    /// Where request bodies are received before they are committed.
    #[cfg(test)]
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where resumable uploads keep their state.
    pub fn tus_dir(&self) -> &Path {
        &self.tus
    }

    /// The file holding `version` of `bucket/key`. Both must have passed
    /// [`super::key`]'s checks.
    pub fn object_path(&self, bucket: &str, key: &str, version: &str) -> PathBuf {
        let mut path = self.objects.join(bucket);
        for segment in key.split('/').filter(|s| !s.is_empty()) {
            path.push(segment);
        }
        path.push(format!("~{version}"));
        path
    }

    /// A new temporary file to receive a body into.
    pub async fn incoming(&self) -> io::Result<Incoming> {
        let path = self.tmp.join(Uuid::new_v4().to_string());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Incoming {
            path: Some(path),
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            size: 0,
            md5: Md5::new(),
        })
    }

    /// Moves a received file into place as `version` of `bucket/key`.
    pub async fn commit(
        &self,
        mut incoming: Incoming,
        bucket: &str,
        key: &str,
        version: &str,
    ) -> io::Result<()> {
        let from = incoming
            .path
            .take()
            .ok_or_else(|| io::Error::other("incoming file already committed"))?;
        let result = self.place(&from, bucket, key, version).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&from).await;
        }
        result
    }

    /// Renames `from` to the object's path, creating its directories. A
    /// concurrent delete may prune a just-created empty directory, so the
    /// rename is retried a few times.
    pub async fn place(
        &self,
        from: &Path,
        bucket: &str,
        key: &str,
        version: &str,
    ) -> io::Result<()> {
        let to = self.object_path(bucket, key, version);
        let parent = to.parent().expect("an object path has a parent").to_owned();
        let mut attempt = 0;
        loop {
            tokio::fs::create_dir_all(&parent).await?;
            match tokio::fs::rename(from, &to).await {
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 5 && from.exists() => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Opens `version` of `bucket/key` for reading.
    pub async fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
    ) -> io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.object_path(bucket, key, version)).await
    }

    /// Removes `version` of `bucket/key` and the folders it leaves empty (up
    /// to the bucket's own directory). A missing file is not an error.
    pub async fn remove(&self, bucket: &str, key: &str, version: &str) -> io::Result<()> {
        let path = self.object_path(bucket, key, version);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        let stop = self.objects.join(bucket);
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == stop || !d.starts_with(&stop) {
                break;
            }
            // Fails (and stops the walk) as soon as a folder is not empty.
            if tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }
}

/// A body being received into a temporary file. Dropped without
/// [`ObjectFiles::commit`], it deletes the file: a refused, failed or
/// disconnected upload leaves nothing behind.
#[derive(Debug)]
pub struct Incoming {
    path: Option<PathBuf>,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    size: u64,
    md5: Md5,
}

impl Incoming {
    /// Appends a chunk of the body.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("incoming file already finished"))?;
        file.write_all(chunk).await?;
        self.md5.update(chunk);
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and closes the file; the body is complete.
    pub async fn finish(&mut self) -> io::Result<Received> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("incoming file already finished"))?;
        file.flush().await?;
        file.into_inner().shutdown().await?;
        let digest = std::mem::take(&mut self.md5).finalize();
        Ok(Received {
            size: self.size,
            etag: format!("\"{}\"", hex::encode(digest)),
        })
    }

    /// Where the bytes are (until committed).
    #[cfg(test)]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Synchronous on purpose: this runs when a request's future is
            // dropped mid-upload, and the file must go with it.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The MD5 of a file as a quoted `eTag`, streamed (for resumable uploads,
/// whose bytes arrive over several requests).
pub async fn etag_of(path: &Path) -> io::Result<Received> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Received {
        size,
        etag: format!("\"{}\"", hex::encode(md5.finalize())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_files(dir: &Path) -> usize {
        walk(dir).len()
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[tokio::test]
    async fn a_committed_body_lands_at_its_versioned_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = ObjectFiles::open(dir.path()).unwrap();
        let mut incoming = files.incoming().await.unwrap();
        incoming.write(b"hello ").await.unwrap();
        incoming.write(b"world").await.unwrap();
        let received = incoming.finish().await.unwrap();
        assert_eq!(received.size, 11);
        assert_eq!(received.etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
        files
            .commit(incoming, "docs", "u1/a.pdf", "v1")
            .await
            .unwrap();

        let path = dir.path().join("storage/docs/u1/a.pdf/~v1");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(count_files(files.tmp_dir()), 0);
        assert_eq!(etag_of(&path).await.unwrap(), received);
    }

    #[tokio::test]
    async fn a_dropped_body_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = ObjectFiles::open(dir.path()).unwrap();
        let mut incoming = files.incoming().await.unwrap();
        incoming.write(&[7u8; 1000]).await.unwrap();
        drop(incoming);
        assert_eq!(count_files(files.tmp_dir()), 0);
        assert_eq!(count_files(files.objects_dir()), 0);
    }

    #[tokio::test]
    async fn removing_the_last_version_prunes_empty_folders_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = ObjectFiles::open(dir.path()).unwrap();
        for (key, version) in [("u1/a/b.pdf", "v1"), ("u1/c.pdf", "v2")] {
            let mut incoming = files.incoming().await.unwrap();
            incoming.write(b"x").await.unwrap();
            incoming.finish().await.unwrap();
            files.commit(incoming, "docs", key, version).await.unwrap();
        }
        files.remove("docs", "u1/a/b.pdf", "v1").await.unwrap();
        assert!(!dir.path().join("storage/docs/u1/a").exists());
        assert!(dir.path().join("storage/docs/u1/c.pdf/~v2").exists());
        files.remove("docs", "u1/c.pdf", "v2").await.unwrap();
        assert!(!dir.path().join("storage/docs/u1").exists());
        assert!(dir.path().join("storage/docs").exists());
        // Removing again is fine.
        files.remove("docs", "u1/c.pdf", "v2").await.unwrap();
    }

    #[tokio::test]
    async fn leftovers_of_a_previous_run_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let files = ObjectFiles::open(dir.path()).unwrap();
        let incoming = files.incoming().await.unwrap();
        let path = incoming.path().unwrap().to_owned();
        std::mem::forget(incoming);
        assert!(path.exists());
        let files = ObjectFiles::open(dir.path()).unwrap();
        assert_eq!(count_files(files.tmp_dir()), 0);
    }
}
