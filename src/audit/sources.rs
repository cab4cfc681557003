//! The files an audit covers and their SHA-256: the config file's bytes exactly as
//! validated, then every allowlist file (the embedded text for the built-in ones).
//!
//! The combined hash is the SHA-256 of the listed hashes, each as lower-case hex followed
//! by a newline, in the listed order, so an auditor can recompute it with
//! `sha256sum CONFIG ALLOWLISTS… | cut -c1-64 | sha256sum`.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::AuditError;
use crate::config::schema::File;
use crate::config::{self, allowlists::BUILTIN, Config, EMBEDDED_DEFAULT};

/// One file covered by the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHash {
    /// As the configuration names it (a path, or `<embedded default>`).
    pub name: String,
    pub bytes: usize,
    /// What to hash to recompute it: the file, or for embedded text its path in the
    /// source tree (relative to the repository).
    pub check_path: String,
    /// Lower-case hex.
    pub sha256: String,
}

/// A loaded configuration with the text it came from and the hashes of every file.
pub struct Sources {
    pub config: Config,
    /// The configuration file as written (for what `Config` does not keep, e.g. the
    /// networks of each segment).
    pub file: File,
    /// Config file first, then the allowlists in load order.
    pub files: Vec<FileHash>,
}

impl Sources {
    /// SHA-256 over the per-file hashes (see the module documentation).
    pub fn combined_sha256(&self) -> String {
        combined(&self.files)
    }
}

/// Reads and validates a configuration (the embedded default when `path` is `None`),
/// hashing the very bytes that were validated.
pub fn load(path: Option<&Path>) -> Result<Sources, AuditError> {
    let (config, text) = match path {
        None => (
            config::load(None).map_err(AuditError::Config)?,
            EMBEDDED_DEFAULT.to_string(),
        ),
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| AuditError::Read {
                path: p.to_path_buf(),
                source: e,
            })?;
            let text = String::from_utf8(bytes).map_err(|_| AuditError::NotUtf8(p.into()))?;
            // The same base directory `config::load` uses for relative paths.
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            let config = config::load_str(p, &text, Some(&base)).map_err(AuditError::Config)?;
            (config, text)
        }
    };
    let file: File = toml::from_str(&text).map_err(|e| AuditError::Reparse(e.to_string()))?;
    let config_check = match path {
        None => "src/config/default.toml".to_string(),
        Some(p) => p.display().to_string(),
    };
    let mut files = vec![hash(
        &config.source.display().to_string(),
        &config_check,
        text.as_bytes(),
    )];
    for c in &config.categories {
        let name = c.file.display().to_string();
        let file_name = c.file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Built-in lists carry a pseudo path; a local override is a real file either way.
        let builtin = name.starts_with("<built-in allowlists>/");
        let (check, bytes) = if builtin {
            let text = BUILTIN
                .iter()
                .find(|(n, _)| *n == file_name)
                .map(|(_, t)| t.as_bytes().to_vec())
                .ok_or_else(|| AuditError::Reparse(format!("no built-in list {file_name}")))?;
            (format!("allowlists/{file_name}"), text)
        } else {
            let bytes = std::fs::read(&c.file).map_err(|e| AuditError::Read {
                path: c.file.clone(),
                source: e,
            })?;
            (name.clone(), bytes)
        };
        files.push(hash(&name, &check, &bytes));
    }
    Ok(Sources {
        config,
        file,
        files,
    })
}

fn hash(name: &str, check_path: &str, bytes: &[u8]) -> FileHash {
    FileHash {
        name: name.to_string(),
        check_path: check_path.to_string(),
        bytes: bytes.len(),
        sha256: hex(&Sha256::digest(bytes)),
    }
}

/// SHA-256 of `hex + "\n"` for every file, in order.
pub fn combined(files: &[FileHash]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.sha256.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

/// The shell command that recomputes the combined hash from the files.
pub fn verify_command(files: &[FileHash]) -> String {
    let paths: Vec<String> = files.iter().map(|f| shell_quote(&f.check_path)).collect();
    format!("sha256sum {} | cut -c1-64 | sha256sum", paths.join(" "))
}

fn shell_quote(s: &str) -> String {
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_./-+=:,@".contains(&b));
    if plain && !s.is_empty() {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_sha256sum_prints() {
        // sha256sum of the empty input and of "abc".
        assert_eq!(
            hash("e", "e", b"").sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let abc = hash("a", "a", b"abc");
        assert_eq!(
            abc.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // printf 'ba78…15ad\n' | sha256sum
        let mut want = Sha256::new();
        want.update(format!("{}\n", abc.sha256));
        assert_eq!(combined(&[abc]), hex(&want.finalize()));
    }

    #[test]
    fn embedded_default_hashes_the_embedded_texts() {
        let s = load(None).unwrap();
        assert_eq!(s.files.len(), 1 + BUILTIN.len());
        assert_eq!(
            s.files[0].sha256,
            hash("", "", EMBEDDED_DEFAULT.as_bytes()).sha256
        );
        for (f, (_, text)) in s.files[1..].iter().zip(BUILTIN) {
            assert_eq!(f.sha256, hash("", "", text.as_bytes()).sha256, "{}", f.name);
        }
    }
}
