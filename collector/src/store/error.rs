//! What can go wrong in the storage layer.

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open index: {0}")]
    OpenDirectory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("cannot read index: {0}")]
    OpenRead(#[from] tantivy::directory::error::OpenReadError),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Format(String),
    /// A question whose answer would not fit the limits: what to narrow.
    #[error("{0}")]
    TooBig(String),
    #[error("the index writer has stopped")]
    WriterStopped,
    #[error("the search was stopped: {0:?}")]
    Cancelled(super::search::Stop),
}
