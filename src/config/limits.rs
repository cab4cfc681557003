//! The `[limits]` and `[access]` tables: what one client or the whole appliance may hold
//! open, how big a request head may be, how long a tunnel may live, and what a client
//! outside every segment gets. Defaults fit a city of 30,000 PCs on one appliance.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::error::Problems;
use super::schema;
use super::validate::{dur, positive, resolve};
use super::Limits;
use crate::ingress::proxy_auth::Users;

/// Largest request head (bytes) by default: far above any browser's.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields per head by default: browsers send about twenty.
const MAX_HEADERS: usize = 100;
/// Most header fields a head may be allowed: beyond this a head is an attack.
const MAX_HEADERS_CEILING: usize = 1000;
/// Open connections overall by default: tens per PC, thousands of PCs.
const MAX_CONNECTIONS: usize = 100_000;
/// Open connections per client address by default: a PC holds tens; a terminal server
/// behind one address holds more.
const MAX_CONNECTIONS_PER_CLIENT: usize = 2_000;

pub(super) fn limits(p: &mut Problems<'_>, l: &schema::Limits) -> Limits {
    let max_headers = match &l.max_headers {
        Some(n) if *n.get_ref() > MAX_HEADERS_CEILING => {
            p.at(
                n.span(),
                "limits.max_headers",
                format!("must be between 1 and {MAX_HEADERS_CEILING}"),
            );
            MAX_HEADERS
        }
        v => positive(p, v, "limits.max_headers", MAX_HEADERS),
    };
    let max_tunnel_lifetime = l.max_tunnel_lifetime.as_ref().map(|_| {
        dur(
            p,
            &l.max_tunnel_lifetime,
            "limits.max_tunnel_lifetime",
            Duration::MAX,
        )
    });
    Limits {
        max_head_bytes: positive(
            p,
            &l.max_head_bytes,
            "limits.max_head_bytes",
            MAX_HEAD_BYTES,
        ),
        max_connections: positive(
            p,
            &l.max_connections,
            "limits.max_connections",
            MAX_CONNECTIONS,
        ),
        max_headers,
        max_connections_per_client: positive(
            p,
            &l.max_connections_per_client,
            "limits.max_connections_per_client",
            MAX_CONNECTIONS_PER_CLIENT,
        ),
        max_tunnel_lifetime,
    }
}

/// Who may use the proxy.
#[derive(Clone, Debug)]
pub struct Access {
    pub unknown_client: UnknownClient,
    /// Segments whose clients must authenticate, by segment name.
    pub auth: HashMap<Arc<str>, Users>,
}

impl Access {
    /// The users a segment admits; `None`: the segment does not authenticate.
    pub fn users(&self, segment: &str) -> Option<&Users> {
        self.auth.get(segment)
    }
}

/// What a client whose address is in no segment gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownClient {
    /// Its request is read and refused with a 403 page that says why.
    Deny,
    /// The connection is closed at accept, before a byte is read: nothing to probe.
    Close,
}

pub(super) fn access(
    p: &mut Problems<'_>,
    a: &schema::Access,
    segments: &[schema::Segment],
    base: Option<&Path>,
) -> Access {
    let unknown_client = match a.unknown_client.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "deny")) => UnknownClient::Deny,
        Some((_, "close")) => UnknownClient::Close,
        Some((v, other)) => {
            p.at(
                v.span(),
                "access.unknown_client",
                format!("{other:?}: use \"deny\" or \"close\""),
            );
            UnknownClient::Deny
        }
    };
    let mut auth = HashMap::new();
    for s in segments {
        let Some(file) = &s.auth_file else { continue };
        let path = resolve(base, file.get_ref());
        let users = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| Users::parse(&text).map_err(|e| format!("{}: {e}", path.display())));
        match users {
            Ok(users) => {
                auth.insert(Arc::from(s.name.get_ref().as_str()), users);
            }
            Err(e) => p.at(file.span(), "segment.auth_file", e),
        }
    }
    Access {
        unknown_client,
        auth,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::UnknownClient;

    fn load(extra: &str) -> Result<crate::Config, crate::config::ConfigError> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n{extra}\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n"
        );
        crate::config::load_str(Path::new("t.toml"), &text, None)
    }

    #[test]
    fn defaults() {
        let c = load("").unwrap();
        let l = c.limits;
        assert_eq!(l.max_head_bytes, 65536);
        assert_eq!(l.max_headers, 100);
        assert_eq!(l.max_connections, 100_000);
        assert_eq!(l.max_connections_per_client, 2000);
        assert_eq!(l.max_tunnel_lifetime, None);
        assert_eq!(c.access.unknown_client, UnknownClient::Deny);
    }

    #[test]
    fn reads_every_knob() {
        let c = load(
            "[limits]\nmax_head_bytes = 8192\nmax_headers = 20\nmax_connections = 10\n\
             max_connections_per_client = 3\nmax_tunnel_lifetime = \"12h\"\n\
             [access]\nunknown_client = \"close\"\n",
        )
        .unwrap();
        let l = c.limits;
        assert_eq!(
            (l.max_head_bytes, l.max_headers, l.max_connections),
            (8192, 20, 10)
        );
        assert_eq!(l.max_connections_per_client, 3);
        assert_eq!(l.max_tunnel_lifetime, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(c.access.unknown_client, UnknownClient::Close);
    }

    #[test]
    fn reads_a_segments_users() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tax.users"), "sato:s3cret\n").unwrap();
        let text = "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n\
             [[segment]]\nname = \"tax\"\nnetworks = [\"10.0.0.0/8\"]\nprofile = \"case1\"\n\
             auth_file = \"tax.users\"\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n";
        let c = crate::config::load_str(Path::new("t.toml"), text, Some(dir.path())).unwrap();
        assert!(c.access.users("tax").is_some());
        assert!(c.access.users("l").is_none());
    }

    #[test]
    fn errors_cite_the_line() {
        let e = load(
            "[limits]\nmax_headers = 5000\nmax_connections_per_client = 0\n\
             max_tunnel_lifetime = \"0s\"\n[access]\nunknown_client = \"drop\"\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for (line, key) in [
            (4, "limits.max_headers"),
            (5, "limits.max_connections_per_client"),
            (6, "limits.max_tunnel_lifetime"),
            (8, "access.unknown_client"),
        ] {
            assert!(
                e.contains(&format!("t.toml:{line}")) && e.contains(key),
                "{key}: {e}"
            );
        }
        assert!(load("[limits]\nmax_header = 5\n").is_err());
        let e = crate::config::load_str(
            Path::new("t.toml"),
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[[segment]]\nname = \"l\"\n\
             networks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\nauth_file = \"/nonexistent/users\"\n",
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("t.toml:7") && e.contains("segment.auth_file"),
            "{e}"
        );
        assert!(load("[access]\nallow = true\n").is_err());
    }
}
