//! The municipality's interception CA: loaded from its PEM files with the key file's
//! permissions checked, proven usable by minting and verifying one leaf at load time, and
//! created for labs by `lbo-proxy ca init`. The key stays in memory; it is never logged.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: mode {mode:04o} lets others read or change the CA key; use 0600 or 0640 (chmod 600)")]
    KeyPermissions { path: String, mode: u32 },
    #[error("{path}: not a PEM private key the appliance can sign with ({reason})")]
    Key { path: String, reason: String },
    #[error("{path}: not a PEM CA certificate ({reason})")]
    Cert { path: String, reason: String },
    #[error("the CA key does not sign leaves that the CA certificate verifies ({0}); are the key and certificate a pair, and is it a CA?")]
    Mismatch(String),
    #[error("{path} already exists; remove it to create a new CA")]
    Exists { path: String },
    #[error("creating the CA: {0}")]
    Generate(String),
}

/// A loaded CA: the signer for leaves. Debug never shows the key.
pub struct Ca {
    pub(super) issuer: Issuer<'static, KeyPair>,
    pub cert: CertificateDer<'static>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("key", &"<redacted>").finish()
    }
}

/// Group and others may not write; others may not read (0640 with a service group is fine).
const FORBIDDEN_KEY_MODE: u32 = 0o027;

impl Ca {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Ca>, CaError> {
        let key_pem = read(key_path)?;
        check_key_mode(key_path)?;
        let cert_pem = read(cert_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Key {
            path: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let cert_err = |reason: String| CaError::Cert {
            path: cert_path.display().to_string(),
            reason,
        };
        let cert = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| cert_err(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| cert_err(e.to_string()))?;
        let ca = Arc::new(Ca { issuer, cert });
        ca.prove()?;
        Ok(ca)
    }

    /// Mints a throw-away leaf and verifies it against the CA certificate as a client would:
    /// a key that is not the certificate's, or a certificate that is not a CA, fails here
    /// and not on a user's sign-in.
    fn prove(&self) -> Result<(), CaError> {
        let mismatch = |e: String| CaError::Mismatch(e);
        let minted = super::mint::leaf(
            self,
            "ca-check.lbo-proxy.invalid",
            &KeyPair::generate().map_err(|e| mismatch(e.to_string()))?,
        )
        .map_err(|e| mismatch(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .map_err(|e| mismatch(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| mismatch(e.to_string()))?;
        let name = ServerName::try_from("ca-check.lbo-proxy.invalid")
            .map_err(|e| mismatch(e.to_string()))?;
        verifier
            .verify_server_cert(&minted, &[], &name, &[], UnixTime::now())
            .map_err(|e| mismatch(e.to_string()))?;
        Ok(())
    }
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(unix)]
fn check_key_mode(path: &Path) -> Result<(), CaError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| CaError::Read {
            path: path.display().to_string(),
            source,
        })?
        .permissions()
        .mode()
        & 0o7777;
    if mode & FORBIDDEN_KEY_MODE != 0 {
        return Err(CaError::KeyPermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_mode(_: &Path) -> Result<(), CaError> {
    Ok(())
}

/// Creates a CA for a lab: `cert_path` (0644) and `key_path` (0600, created exclusively).
/// Refuses to overwrite either file.
pub fn init(cert_path: &Path, key_path: &Path, name: &str) -> Result<(), CaError> {
    for p in [cert_path, key_path] {
        if p.exists() {
            return Err(CaError::Exists {
                path: p.display().to_string(),
            });
        }
    }
    let generate = |e: rcgen::Error| CaError::Generate(e.to_string());
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "lbo-proxy tenant restrictions");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(5 * 365);
    let cert = params.self_signed(&key).map_err(generate)?;
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let err = |source| CaError::Read {
        path: path.display().to_string(),
        source,
    };
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn init_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        init(&cert, &key, "Lab CA").unwrap();
        let ca = Ca::load(&cert, &key).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        assert!(matches!(
            init(&cert, &key, "again"),
            Err(CaError::Exists { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        init(&cert, &key, "Lab CA").unwrap();
        chmod(&key, 0o644);
        let e = Ca::load(&cert, &key).unwrap_err();
        assert!(e.to_string().contains("0644"), "{e}");
        chmod(&key, 0o640);
        Ca::load(&cert, &key).unwrap();
    }

    #[test]
    fn key_of_another_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("a.pem"), dir.path().join("a.key"));
        let (cert2, key2) = (dir.path().join("b.pem"), dir.path().join("b.key"));
        init(&cert, &key, "A").unwrap();
        init(&cert2, &key2, "B").unwrap();
        let e = Ca::load(&cert, &key2).unwrap_err();
        assert!(matches!(e, CaError::Mismatch(_)), "{e}");
    }

    #[test]
    fn missing_and_garbage_files_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        let e = Ca::load(&cert, &key).unwrap_err();
        assert!(e.to_string().contains("ca.key"), "{e}");
        init(&cert, &key, "A").unwrap();
        std::fs::write(dir.path().join("bad.pem"), "nonsense").unwrap();
        let e = Ca::load(&dir.path().join("bad.pem"), &key).unwrap_err();
        assert!(e.to_string().contains("bad.pem"), "{e}");
    }
}
