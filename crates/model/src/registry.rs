//! The model registry: a directory of immutable versions and a `current` pointer.
//!
//! ```text
//! MODEL_DIR/
//!   versions/<version>.safetensors   immutable, read-only once written
//!   current                          the current version id, replaced atomically
//! ```
//! Version ids start with a UTC timestamp (`20261128T201500123Z-<hash8>`), so
//! sorting ids sorts versions by age.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, Header};
use crate::error::{ModelError, Result};

/// Writes `bytes` to `path` atomically (see [`bloginfer_common::write_atomic`]).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    bloginfer_common::write_atomic(path, bytes)
        .map_err(|e| ModelError::io(format!("writing {}", path.display()), e))
}

/// One stored version as `models list` shows it: its id, whether it is current, its
/// size and header.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// The version id, a UTC timestamp and a hash prefix
    /// (`20261128T201500123Z-<hash8>`), so ids sort by age.
    pub version: String,
    /// Whether `current` points at it.
    pub current: bool,
    /// File size in bytes.
    pub size_bytes: u64,
    /// The checkpoint header (config, training metadata, hash).
    pub header: Header,
}

/// A registry rooted at a directory.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

/// Checks a version id is a plain file-name component (no paths, no dots first).
pub fn validate_version(version: &str) -> Result<()> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::Registry(format!(
            "invalid version id {version:?}"
        )))
    }
}

impl Registry {
    /// Opens (creating if needed) the registry at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let versions = root.join("versions");
        match std::fs::create_dir_all(&versions) {
            Ok(()) => {}
            // A reader on a read-only volume that the writer has not filled yet
            // (inference starting before the first model exists): it sees an
            // empty registry until the folder appears.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(e) => {
                return Err(ModelError::io(
                    format!("creating {}", versions.display()),
                    e,
                ))
            }
        }
        Ok(Self { root })
    }

    /// The registry directory: `versions/` and the `current` pointer.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `version`.
    pub fn path_of(&self, version: &str) -> Result<PathBuf> {
        validate_version(version)?;
        Ok(self
            .root
            .join("versions")
            .join(format!("{version}.safetensors")))
    }

    /// Stores `checkpoint` as a new immutable version and returns its id. It does
    /// not become current; see [`Registry::set_current`].
    pub fn publish(&self, checkpoint: &Checkpoint) -> Result<String> {
        let (bytes, hash) = checkpoint.to_bytes()?;
        let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let stamp: String = stamp
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let version = format!("{stamp}-{}", &hash[..8]);
        let path = self.path_of(&version)?;
        if path.exists() {
            return Err(ModelError::Registry(format!(
                "version {version} already exists"
            )));
        }
        replace_file(&path, &bytes)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444));
        }
        Ok(version)
    }

    /// Points `current` at an existing `version` (atomic replace).
    pub fn set_current(&self, version: &str) -> Result<()> {
        let path = self.path_of(version)?;
        if !path.is_file() {
            return Err(ModelError::Registry(format!("no version {version}")));
        }
        replace_file(
            &self.root.join("current"),
            format!("{version}\n").as_bytes(),
        )
    }

    /// The current version id, if one is set.
    pub fn current(&self) -> Result<Option<String>> {
        match std::fs::read_to_string(self.root.join("current")) {
            Ok(s) => {
                let v = s.trim().to_string();
                validate_version(&v)?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ModelError::io("reading the current pointer", e)),
        }
    }

    /// Version ids, oldest first.
    pub fn versions(&self) -> Result<Vec<String>> {
        let dir = self.root.join("versions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ModelError::io(format!("listing {}", dir.display()), e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".safetensors"))
                    .map(str::to_string)
            })
            .filter(|v| validate_version(v).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every version with its header, oldest first. Unreadable files are skipped
    /// with a warning rather than hiding the rest.
    pub fn list(&self) -> Result<Vec<VersionInfo>> {
        let current = self.current()?;
        let mut out = Vec::new();
        for version in self.versions()? {
            let path = self.path_of(&version)?;
            match Checkpoint::read_header(&path) {
                Ok(header) => out.push(VersionInfo {
                    current: current.as_deref() == Some(version.as_str()),
                    size_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    version,
                    header,
                }),
                Err(e) => tracing::warn!(%version, error = %e, "skipping unreadable model version"),
            }
        }
        Ok(out)
    }

    /// Loads `version`, checking its content hash; an unknown version is an error.
    pub fn load(&self, version: &str) -> Result<Checkpoint> {
        let path = self.path_of(version)?;
        if !path.is_file() {
            return Err(ModelError::Registry(format!("no version {version}")));
        }
        Checkpoint::load(&path)
    }

    /// Loads `version`, or the current one when `None`; returns it with its id.
    pub fn load_version_or_current(&self, version: Option<&str>) -> Result<(String, Checkpoint)> {
        let version = match version {
            Some(v) => v.to_string(),
            None => self.current()?.ok_or_else(|| {
                ModelError::Registry(format!(
                    "no current model in {} (train one first)",
                    self.root.display()
                ))
            })?,
        };
        let checkpoint = self.load(&version)?;
        Ok((version, checkpoint))
    }

    /// Deletes all but the newest `keep` versions, never the current one.
    /// Returns the deleted ids.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>> {
        self.prune_except(keep, &[])
    }

    /// Like [`Registry::prune`], and never any of `protected` either (a
    /// candidate under evaluation, say).
    pub fn prune_except(&self, keep: usize, protected: &[String]) -> Result<Vec<String>> {
        let current = self.current()?;
        let versions = self.versions()?;
        let cutoff = versions.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for version in &versions[..cutoff] {
            if current.as_deref() == Some(version.as_str()) || protected.contains(version) {
                continue;
            }
            let path = self.path_of(version)?;
            std::fs::remove_file(&path)
                .map_err(|e| ModelError::io(format!("removing {}", path.display()), e))?;
            removed.push(version.clone());
        }
        Ok(removed)
    }
}
