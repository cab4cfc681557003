//! The Ed25519 key pair that signs access-log checkpoints: made by `lbo-proxy log keygen`
//! (or `openssl genpkey -algorithm ed25519`), the private half kept on the appliance, the
//! public half given to whoever verifies (the auditor). Keys are PEM: PKCS#8 for the
//! private key, SubjectPublicKeyInfo for the public one, so openssl reads them too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest, Sha256};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Group and others must not be able to write the key, others not read it.
const FORBIDDEN_KEY_MODE: u32 = 0o027;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an Ed25519 private key in PEM (PKCS#8): {why}", path.display())]
    NotPrivate { path: PathBuf, why: String },
    #[error("{}: not an Ed25519 public key in PEM (SubjectPublicKeyInfo)", path.display())]
    NotPublic { path: PathBuf },
    #[error("{}: mode {mode:04o} lets others read or change the signing key; use 0600 or 0640 (chmod 600)", path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("generating a key: {0}")]
    Generate(String),
}

/// The private key of `log.signing_key`, loaded and checked when the config is.
#[derive(Clone)]
pub struct SigningKey {
    pub path: PathBuf,
    pair: Arc<Ed25519KeyPair>,
}

impl SigningKey {
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        check_mode(path)?;
        let pem = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |why: String| KeyError::NotPrivate {
            path: path.to_path_buf(),
            why,
        };
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| bad(e.to_string()))?;
        Ok(SigningKey {
            path: path.to_path_buf(),
            pair: Arc::new(pair),
        })
    }

    pub fn public(&self) -> PublicKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(raw)
    }

    /// The signature over `message`, base64 (standard, padded).
    pub fn sign(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.pair.sign(message))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("public", &self.public().fingerprint())
            .finish()
    }
}

/// The same file with the same key: a reload that names it again changes nothing.
impl PartialEq for SigningKey {
    fn eq(&self, other: &SigningKey) -> bool {
        self.path == other.path && self.public() == other.public()
    }
}
impl Eq for SigningKey {}

/// An Ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let not = || KeyError::NotPublic {
            path: path.to_path_buf(),
        };
        let der = SubjectPublicKeyInfoDer::from_pem_slice(&pem).map_err(|_| not())?;
        let raw = der.strip_prefix(&SPKI_PREFIX).ok_or_else(not)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| not())?;
        Ok(PublicKey(raw))
    }

    /// `SHA256:` and the unpadded base64 of the key's SHA-256, as OpenSSH shows keys: what
    /// every checkpoint names and the audit report prints.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        )
    }

    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature_b64) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, &sig)
            .is_ok()
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem("PUBLIC KEY", &der)
    }
}

/// Writes a new key pair: `private` (mode 0600) and `public` (0644); never overwrites.
pub fn generate(private: &Path, public: &Path) -> Result<PublicKey, KeyError> {
    let rng = ring::rand::SystemRandom::new();
    let doc =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Generate(e.to_string()))?;
    let pair =
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| KeyError::Generate(e.to_string()))?;
    let mut raw = [0u8; 32];
    raw.copy_from_slice(pair.public_key().as_ref());
    let key = PublicKey(raw);
    for path in [private, public] {
        if path.exists() {
            return Err(KeyError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists already; a new key would orphan the old checkpoints' verification",
                ),
            });
        }
    }
    write_new(private, pem("PRIVATE KEY", doc.as_ref()).as_bytes(), 0o600)?;
    write_new(public, key.to_pem().as_bytes(), 0o644)?;
    Ok(key)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn check_mode(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode()
        & 0o7777;
    if mode & FORBIDDEN_KEY_MODE != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_signs_and_verifies_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("log.key"), dir.path().join("log.pub"));
        let made = generate(&private, &public).unwrap();
        let key = SigningKey::load(&private).unwrap();
        assert_eq!(key.public(), made);
        assert_eq!(PublicKey::load(&public).unwrap(), made);
        let sig = key.sign(b"checkpoint");
        assert!(made.verify(b"checkpoint", &sig));
        assert!(!made.verify(b"checkpoinT", &sig));
        assert!(!made.verify(b"checkpoint", "not base64!"));
        assert!(made.fingerprint().starts_with("SHA256:"));
        assert_eq!(made.fingerprint().len(), 7 + 43);
        assert!(generate(&private, &dir.path().join("other.pub")).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("log.key"), dir.path().join("log.pub"));
        generate(&private, &public).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SigningKey::load(&private).unwrap_err().to_string();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(SigningKey::load(&private).is_ok());
        assert!(SigningKey::load(&public).is_err());
        assert!(PublicKey::load(&private).is_err());
    }

    /// `openssl genpkey -algorithm ed25519` writes PKCS#8 v1 (no public key inside).
    #[test]
    fn openssl_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("o.key");
        let public = dir.path().join("o.pub");
        let gen = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&private)
            .status()
            .expect("openssl is installed (scripts/test)");
        assert!(gen.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pubout = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap();
        assert!(pubout.success());
        let key = SigningKey::load(&private).unwrap();
        assert_eq!(PublicKey::load(&public).unwrap(), key.public());
        assert_eq!(
            key.public().to_pem(),
            std::fs::read_to_string(&public).unwrap()
        );
    }
}
