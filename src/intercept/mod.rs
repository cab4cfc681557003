//! Tenant restrictions: TLS interception of the configured sign-in hosts only, so the
//! proxy can set Microsoft's restriction headers; every other tunnel stays blind.
//!
//! `scope` decides (pure), `headers` replaces (pure), `ca` and `mint` hold the
//! municipality's CA and the leaves minted from it, `serve` bridges the client's TLS to
//! the sign-in server's over the tunnel's next hop, direct or through a parent.

pub mod ca;
mod counted;
pub mod headers;
mod mint;
mod record;
pub mod scope;
mod serve;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub use ca::{Ca, CaError};
pub use record::{TenantOutcome, TenantReason, TenantRecord};
pub use scope::{Plan, Scope, TenantPolicy};
pub use serve::intercept;

/// Validated tenant restrictions: who gets which headers, and the means to set them.
#[derive(Debug)]
pub struct TenantRestrictions {
    pub scope: Scope,
    pub interceptor: Interceptor,
}

/// What interception needs at run time: the leaf minter and the TLS settings towards the
/// sign-in servers.
#[derive(Debug)]
pub struct Interceptor {
    minter: mint::Minter,
    upstream: Arc<rustls::ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Mint(#[from] mint::MintError),
    #[error("{path}: {reason}")]
    Bundle { path: String, reason: String },
    #[error("no trusted root certificates for the sign-in servers; set tenant_restrictions.upstream_ca_file")]
    NoRoots,
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
}

/// ALPN offered on both sides: HTTP/2 first, as browsers do.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl Interceptor {
    /// Loads the CA and the roots the sign-in servers are verified against
    /// (`upstream_ca_file`, or the system's).
    pub fn new(
        ca_cert: &Path,
        ca_key: &Path,
        upstream_ca_file: Option<&Path>,
    ) -> Result<Interceptor, SetupError> {
        let minter = mint::Minter::new(Ca::load(ca_cert, ca_key)?)?;
        let mut roots = rustls::RootCertStore::empty();
        match upstream_ca_file {
            Some(path) => {
                let bundle = |reason: String| SetupError::Bundle {
                    path: path.display().to_string(),
                    reason,
                };
                for cert in
                    CertificateDer::pem_file_iter(path).map_err(|e| bundle(e.to_string()))?
                {
                    roots
                        .add(cert.map_err(|e| bundle(e.to_string()))?)
                        .map_err(|e| bundle(e.to_string()))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(SetupError::NoRoots);
        }
        let mut upstream = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        upstream.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Interceptor {
            minter,
            upstream: Arc::new(upstream),
        })
    }

    /// The client-facing TLS settings for one connection, presenting `host`'s leaf.
    fn client_side(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, SetupError> {
        let leaf = self.minter.certified(host)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(leaf)));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
