//! The `[admin]` table: who may reach the admin listener at all (loopback only unless
//! `allow` says more), which endpoints more networks may reach (`/metrics` for the
//! Prometheus server, `/readyz` for the load balancer, the PAC for PCs), and the bearer
//! token that a client off loopback needs for anything that changes the appliance.
//! And the `[reload]` table: what a reload does to open tunnels.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::error::Problems;
use super::schema;
use super::validate::resolve;

/// Shortest token accepted: a guessable one is no lock.
const MIN_TOKEN_LEN: usize = 16;

/// Who may use the admin listener, and for what.
#[derive(Clone, Debug)]
pub struct AdminAccess {
    /// May connect, and reach every endpoint (mutating ones with the token, or from
    /// loopback).
    pub allow: Vec<IpNet>,
    /// May reach `/metrics` only (besides `allow`).
    pub metrics: Vec<IpNet>,
    /// May reach `/readyz` and `/healthz` only.
    pub readyz: Vec<IpNet>,
    /// May reach `/proxy.pac` and `/wpad.dat` only.
    pub pac: Vec<IpNet>,
    pub token: Option<AdminToken>,
}

/// The admin bearer token: only its SHA-256 is kept, compared in constant time.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    pub file: PathBuf,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken({}, redacted)", self.file.display())
    }
}

impl AdminToken {
    /// Whether an `Authorization` value carries this token (`Bearer <token>`).
    pub fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let Some((scheme, token)) = text.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let presented: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let diff = presented
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// What an admin endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Metrics,
    Readyz,
    Pac,
    /// The status page and anything else that only reads.
    Other,
}

impl AdminAccess {
    /// Whether `client` may connect at all.
    pub fn may_connect(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        [&self.allow, &self.metrics, &self.readyz, &self.pac]
            .iter()
            .any(|nets| nets.iter().any(|n| n.contains(&client)))
    }

    /// Whether `client` may reach `endpoint`.
    pub fn may_reach(&self, client: IpAddr, endpoint: Endpoint) -> bool {
        let client = client.to_canonical();
        let within = |nets: &[IpNet]| nets.iter().any(|n| n.contains(&client));
        within(&self.allow)
            || match endpoint {
                Endpoint::Metrics => within(&self.metrics),
                Endpoint::Readyz => within(&self.readyz),
                Endpoint::Pac => within(&self.pac),
                Endpoint::Other => false,
            }
    }

    /// Networks beyond loopback that may connect.
    pub fn beyond_loopback(&self) -> Vec<IpNet> {
        [&self.allow, &self.metrics, &self.readyz, &self.pac]
            .iter()
            .flat_map(|nets| nets.iter())
            .filter(|n| !is_loopback(n))
            .copied()
            .collect()
    }
}

/// A network that is loopback only.
pub fn is_loopback(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.network().is_loopback() && n.prefix_len() >= 8,
        IpNet::V6(n) => n.prefix_len() == 128 && n.network().is_loopback(),
    }
}

/// A client on this machine: mutating endpoints need no token from there.
pub fn on_loopback(client: IpAddr) -> bool {
    client.to_canonical().is_loopback()
}

pub(super) fn admin(p: &mut Problems<'_>, a: &schema::Admin, base: Option<&Path>) -> AdminAccess {
    let nets = |p: &mut Problems<'_>, list: &Option<Vec<toml::Spanned<String>>>, key: &str| {
        list.as_deref().map(|l| super::validate::nets(p, l, key))
    };
    let allow = nets(p, &a.allow, "admin.allow").unwrap_or_else(|| {
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    });
    let metrics = nets(p, &a.metrics_allow, "admin.metrics_allow").unwrap_or_default();
    let readyz = nets(p, &a.readyz_allow, "admin.readyz_allow").unwrap_or_default();
    let pac = nets(p, &a.pac_allow, "admin.pac_allow").unwrap_or_default();
    let token = a.token_file.as_ref().and_then(|f| {
        let path = resolve(base, f.get_ref());
        match read_token(&path) {
            Ok(digest) => Some(AdminToken { digest, file: path }),
            Err(e) => {
                p.at(f.span(), "admin.token_file", e);
                None
            }
        }
    });
    AdminAccess {
        allow,
        metrics,
        readyz,
        pac,
        token,
    }
}

/// Reads the token file: kept like a key (`root:lbo-proxy`, 0640), one token of at least
/// [`MIN_TOKEN_LEN`] characters.
fn read_token(path: &Path) -> Result<[u8; 32], String> {
    super::files::secret_mode(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
        return Err(format!(
            "{}: want one token of at least {MIN_TOKEN_LEN} characters without spaces (e.g. openssl rand -hex 32)",
            path.display()
        ));
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}

/// What a reload does to tunnels that are open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenTunnels {
    /// Each is decided again under the new policy; one whose route would differ is
    /// closed (`policy_changed`).
    Recheck,
    /// They keep the policy they were opened under until they end.
    Keep,
}

pub(super) fn reload(p: &mut Problems<'_>, r: &schema::Reload) -> OpenTunnels {
    match r.open_tunnels.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "recheck")) => OpenTunnels::Recheck,
        Some((_, "keep")) => OpenTunnels::Keep,
        Some((v, other)) => {
            p.at(
                v.span(),
                "reload.open_tunnels",
                format!("{other:?}: use \"recheck\" or \"keep\""),
            );
            OpenTunnels::Recheck
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn load(dir: &Path, admin: &str) -> Result<crate::Config, crate::config::ConfigError> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[admin]\nlisten = \"127.0.0.1:9090\"\n{admin}\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n"
        );
        crate::config::load_str(Path::new("t.toml"), &text, Some(dir))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_only_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(dir.path(), "").unwrap().admin;
        assert!(a.may_connect(ip("127.0.0.1")) && a.may_connect(ip("::1")));
        assert!(a.may_connect(ip("::ffff:127.0.0.1")));
        assert!(!a.may_connect(ip("10.0.0.1")));
        assert!(a.token.is_none() && a.beyond_loopback().is_empty());
    }

    #[test]
    fn endpoints_open_to_their_networks_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(
            dir.path(),
            "metrics_allow = [\"10.9.0.5/32\"]\nreadyz_allow = [\"10.9.1.0/24\"]\npac_allow = [\"10.0.0.0/8\"]\n",
        )
        .unwrap()
        .admin;
        assert!(a.may_reach(ip("10.9.0.5"), Endpoint::Metrics));
        assert!(!a.may_reach(ip("10.9.0.5"), Endpoint::Other));
        assert!(!a.may_reach(ip("10.9.1.1"), Endpoint::Metrics));
        assert!(a.may_reach(ip("10.9.1.1"), Endpoint::Readyz));
        assert!(a.may_reach(ip("10.20.1.1"), Endpoint::Pac));
        assert!(!a.may_reach(ip("10.20.1.1"), Endpoint::Readyz));
        assert!(a.may_reach(ip("127.0.0.1"), Endpoint::Other));
        assert_eq!(a.beyond_loopback().len(), 3);
    }

    #[test]
    fn the_token_file_is_kept_like_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("admin.token");
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let a = load(dir.path(), "token_file = \"admin.token\"\n")
            .unwrap()
            .admin;
        let t = a.token.unwrap();
        assert!(t.admits(Some(b"Bearer 0123456789abcdef0123")));
        assert!(t.admits(Some(b"bearer  0123456789abcdef0123 ")));
        assert!(!t.admits(Some(b"Bearer 0123456789abcdef012")));
        assert!(!t.admits(Some(b"Basic 0123456789abcdef0123")));
        assert!(!t.admits(None));
        assert!(!format!("{t:?}").contains("0123"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(dir.path(), "token_file = \"admin.token\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("t.toml:5: admin.token_file") && e.contains("0644"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&f, "short\n").unwrap();
        let e = load(dir.path(), "token_file = \"admin.token\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("at least 16"), "{e}");
        let e = load(dir.path(), "allow = [\"nope\"]\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("t.toml:5: admin.allow"), "{e}");
    }
}
