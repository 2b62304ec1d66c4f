//! Splits in S3-compatible object storage: one object per file of a split, under
//! `<prefix>/<tenant>/<signal>/<split id>/`. Uploads read at most a few parts of
//! 8 MiB at a time (multipart past one part), downloads stream to disk; neither
//! holds a split in memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Files up to this size go in one request; larger ones in parts of it.
const PART_SIZE: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;
/// Files of one split downloaded at once.
const FILES_IN_FLIGHT: usize = 4;

use super::metastore::SplitRow;
use crate::config::ClusterSettings;

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("object storage: local file: {0}")]
    Io(#[from] std::io::Error),
}

/// Where splits live in object storage.
#[derive(Clone)]
pub struct SplitObjects {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// For the log: `s3://bucket/prefix`.
    pub url: String,
}

/// Files of a split directory that are not part of the split: tantivy's locks.
fn is_lock(name: &str) -> bool {
    name.ends_with(".lock")
}

impl SplitObjects {
    /// The bucket of `settings`, with credentials from the AWS variables
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
    /// AWS_ENDPOINT_URL), the flags winning over them.
    pub fn s3(settings: &ClusterSettings) -> Result<SplitObjects, ObjectsError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            // A few short retries: the publisher tries again on its own, and says
            // so, rather than hanging for minutes in one upload.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(region) = &settings.s3_region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &settings.s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let url = if settings.prefix.is_empty() {
            format!("s3://{}", settings.bucket)
        } else {
            format!("s3://{}/{}", settings.bucket, settings.prefix)
        };
        Ok(SplitObjects {
            store: Arc::new(builder.build()?),
            prefix: settings.prefix.clone(),
            url,
        })
    }

    fn path(&self, split: &SplitRow, file: &str) -> ObjectPath {
        let mut path = String::new();
        if !self.prefix.is_empty() {
            path.push_str(&self.prefix);
            path.push('/');
        }
        path.push_str(&format!(
            "{}/{}/{}/{file}",
            split.tenant,
            split.signal.as_str(),
            split.id
        ));
        ObjectPath::from(path)
    }

    /// The files of split directory `dir` that make the split, with their sizes.
    pub fn split_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.file_type()?.is_file() && !is_lock(&name) {
                files.push((name, entry.metadata()?.len()));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Uploads the files `split` lists from `dir`. Complete when it returns Ok.
    pub async fn upload(&self, split: &SplitRow, dir: &Path) -> Result<(), ObjectsError> {
        for (name, size) in &split.files {
            let path = self.path(split, name);
            let mut file = tokio::fs::File::open(dir.join(name)).await?;
            if *size <= PART_SIZE as u64 {
                let mut bytes = Vec::with_capacity(*size as usize);
                file.read_to_end(&mut bytes).await?;
                self.store.put(&path, PutPayload::from(bytes)).await?;
                continue;
            }
            // Larger files in parts of PART_SIZE, a few in flight at once.
            let upload = self.store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buffer = vec![0u8; 1 << 20];
            let written: Result<(), ObjectsError> = async {
                loop {
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    let n = file.read(&mut buffer).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    writer.write(&buffer[..n]);
                }
            }
            .await;
            match written {
                Ok(()) => {
                    writer.finish().await?;
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Downloads `split` into `dir` (created; files written whole, then renamed).
    pub async fn download(&self, split: &SplitRow, dir: &Path) -> Result<(), ObjectsError> {
        tokio::fs::create_dir_all(dir).await?;
        // A few files at once: a split is a dozen or more files, and each costs a
        // round trip and an fsync that one at a time would wait for in turn.
        let mut names = split.files.iter().map(|(name, _)| name.as_str());
        let mut downloading = FuturesUnordered::new();
        for name in names.by_ref().take(FILES_IN_FLIGHT) {
            downloading.push(self.download_file(split, name, dir));
        }
        while let Some(done) = downloading.next().await {
            done?;
            if let Some(name) = names.next() {
                downloading.push(self.download_file(split, name, dir));
            }
        }
        Ok(())
    }

    /// Streams the object of `split`'s file `name` to `dir/name`.
    async fn download_file(
        &self,
        split: &SplitRow,
        name: &str,
        dir: &Path,
    ) -> Result<(), ObjectsError> {
        let partial = dir.join(format!("{name}.partial"));
        let mut file = tokio::fs::File::create(&partial).await?;
        let mut stream = self.store.get(&self.path(split, name)).await?.into_stream();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await?;
        }
        file.sync_all().await?;
        tokio::fs::rename(&partial, dir.join(name)).await?;
        Ok(())
    }

    /// Deletes `split`'s objects (those already gone are fine).
    pub async fn delete(&self, split: &SplitRow) -> Result<(), ObjectsError> {
        for (name, _) in &split.files {
            match self.store.delete(&self.path(split, name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Whether the bucket answers: lists at most one object under the prefix.
    pub async fn check(&self) -> Result<(), ObjectsError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let mut listing = self.store.list(prefix.as_ref());
        if let Some(first) = listing.next().await {
            first?;
        }
        Ok(())
    }
}
