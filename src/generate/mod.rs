//! Deterministic synthetic data for the region (placeholder until the generator lands).

use std::path::Path;

/// Errors while generating.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Store error.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Generates the dataset.
pub fn generate(_out: &Path, _scale: f64, _seed: u64) -> Result<String, GenerateError> {
    Ok(String::new())
}
