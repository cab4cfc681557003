//! Leaf certificates for the intercepted sign-in hosts, minted from the CA on first use and
//! cached: one ECDSA P-256 key for every leaf, a week of validity, minted again after a day.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::ca::Ca;

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("minting a leaf for {host}: {reason}")]
    Mint { host: String, reason: String },
}

/// A cached leaf is minted again after this, well before it expires.
const REMINT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Leaves are valid for a week (and from an hour back, for PCs whose clocks lag).
const VALIDITY: time::Duration = time::Duration::days(7);
/// The cache holds the configured sign-in hosts only; this bounds it all the same.
const MAX_CACHED: usize = 64;

/// Signs `host`'s leaf with `key`'s public half.
pub(super) fn leaf(
    ca: &Ca,
    host: &str,
    key: &KeyPair,
) -> Result<CertificateDer<'static>, rcgen::Error> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::DnsName(host.try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + VALIDITY;
    Ok(params.signed_by(key, &ca.issuer)?.der().clone())
}

pub struct Minter {
    ca: Arc<Ca>,
    key: KeyPair,
    cache: Mutex<HashMap<String, (Instant, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").field("ca", &self.ca).finish()
    }
}

impl Minter {
    pub fn new(ca: Arc<Ca>) -> Result<Minter, MintError> {
        let key = KeyPair::generate().map_err(|e| MintError::Mint {
            host: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Minter {
            ca,
            key,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The leaf for `host`, from the cache when fresh.
    pub fn certified(&self, host: &str) -> Result<Arc<CertifiedKey>, MintError> {
        if let Some((at, ck)) = self.lock().get(host) {
            if at.elapsed() < REMINT_AFTER {
                return Ok(ck.clone());
            }
        }
        let err = |reason: String| MintError::Mint {
            host: host.to_string(),
            reason,
        };
        let cert = leaf(&self.ca, host, &self.key).map_err(|e| err(e.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let provider = rustls::crypto::ring::default_provider();
        let signer = provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| err(e.to_string()))?;
        let ck = Arc::new(CertifiedKey::new(vec![cert], signer));
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(host.to_string(), (Instant::now(), ck.clone()));
        Ok(ck)
    }

    /// A poisoned lock only means another thread panicked while inserting: the map is
    /// still a valid cache.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<CertifiedKey>)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_cached_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        super::super::ca::init(&cert, &key, "Lab CA").unwrap();
        let m = Minter::new(Ca::load(&cert, &key).unwrap()).unwrap();
        let a = m.certified("login.microsoftonline.com").unwrap();
        let b = m.certified("login.microsoftonline.com").unwrap();
        let c = m.certified("login.live.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
