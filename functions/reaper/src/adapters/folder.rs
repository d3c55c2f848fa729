//! The evidence store as a folder on disk with the bucket's layout (`evidence/account=…/…`):
//! what `aws s3 sync` of the evidence bucket leaves, or what `scripts/gen-evidence` writes.

use crate::ports::EvidenceStore;
use std::path::PathBuf;

/// A folder holding `evidence/` (keys are relative to it).
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    pub fn new(root: PathBuf) -> Self {
        Folder { root }
    }

    /// Names under `prefix`: folders when `dirs`, else files (as keys).
    async fn entries(&self, prefix: &str, dirs: bool) -> Result<Vec<String>, String> {
        let dir = self.root.join(prefix);
        let mut read = match tokio::fs::read_dir(&dir).await {
            Ok(read) => read,
            // A partition asked for that is not there has no records.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut out = Vec::new();
        while let Some(entry) = read
            .next_entry()
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?
        {
            let is_dir = entry
                .file_type()
                .await
                .map_err(|e| format!("{}: {e}", entry.path().display()))?
                .is_dir();
            let name = entry.file_name().to_string_lossy().into_owned();
            match (dirs, is_dir) {
                (true, true) => out.push(name),
                (false, false) => out.push(format!("{prefix}{name}")),
                _ => {}
            }
        }
        Ok(out)
    }
}

impl EvidenceStore for Folder {
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.entries(prefix, true).await
    }

    async fn files(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.entries(prefix, false).await
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, String> {
        let path = self.root.join(key);
        tokio::fs::read(&path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}
