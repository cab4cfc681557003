//! The `[transparent]` table: listeners for traffic redirected to the appliance without a
//! proxy setting on the PC (TLS routed by SNI, plain HTTP routed by `Host`).

use std::net::SocketAddr;
use std::time::Duration;

use super::error::Problems;
use super::schema;
use super::validate::{dur, socket_addr};

/// Validated transparent-listener settings; no listeners by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transparent {
    pub tls_listen: Vec<SocketAddr>,
    pub http_listen: Vec<SocketAddr>,
    /// Most bytes read (and held) while waiting for a ClientHello.
    pub max_hello_bytes: usize,
    /// How long a client may take to send its ClientHello.
    pub hello_timeout: Duration,
    /// Port of SNI targets when the connection was not redirected (no original destination).
    pub tls_port: u16,
}

/// Real ClientHellos (post-quantum key shares included) fit well within 1 KiB..1 MiB;
/// less would refuse ordinary clients, more is not a browser.
const HELLO_BYTES: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

pub(super) fn validate(p: &mut Problems<'_>, t: &schema::Transparent) -> Transparent {
    let addrs = |p: &mut Problems<'_>, list: &[toml::Spanned<String>], key: &str| {
        list.iter()
            .filter_map(|l| socket_addr(p, l, key))
            .collect::<Vec<_>>()
    };
    let max_hello_bytes = match &t.max_hello_bytes {
        None => 16 * 1024,
        Some(n) if HELLO_BYTES.contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            p.at(
                n.span(),
                "transparent.max_hello_bytes",
                format!(
                    "must be between {} and {}",
                    HELLO_BYTES.start(),
                    HELLO_BYTES.end()
                ),
            );
            16 * 1024
        }
    };
    let tls_port = match &t.tls_port {
        None => 443,
        Some(n) if *n.get_ref() > 0 => *n.get_ref(),
        Some(n) => {
            p.at(
                n.span(),
                "transparent.tls_port",
                "must be greater than zero",
            );
            443
        }
    };
    Transparent {
        tls_listen: addrs(p, &t.tls_listen, "transparent.tls_listen"),
        http_listen: addrs(p, &t.http_listen, "transparent.http_listen"),
        max_hello_bytes,
        hello_timeout: dur(
            p,
            &t.hello_timeout,
            "transparent.hello_timeout",
            Duration::from_secs(5),
        ),
        tls_port,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn load(extra: &str) -> Result<crate::Config, crate::config::ConfigError> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n{extra}\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n"
        );
        crate::config::load_str(Path::new("t.toml"), &text, None)
    }

    #[test]
    fn off_by_default() {
        let t = load("").unwrap().transparent;
        assert!(t.tls_listen.is_empty() && t.http_listen.is_empty());
        assert_eq!(t.max_hello_bytes, 16384);
        assert_eq!(t.hello_timeout, std::time::Duration::from_secs(5));
        assert_eq!(t.tls_port, 443);
    }

    #[test]
    fn reads_listeners_and_limits() {
        let t = load(
            "[transparent]\ntls_listen = [\"0.0.0.0:8443\", \"[::]:8443\"]\n\
             http_listen = [\"0.0.0.0:8080\"]\nmax_hello_bytes = 4096\n\
             hello_timeout = \"2s\"\ntls_port = 8443\n",
        )
        .unwrap()
        .transparent;
        assert_eq!(t.tls_listen.len(), 2);
        assert_eq!(t.http_listen[0].port(), 8080);
        assert_eq!(t.max_hello_bytes, 4096);
        assert_eq!(t.hello_timeout, std::time::Duration::from_secs(2));
        assert_eq!(t.tls_port, 8443);
    }

    #[test]
    fn errors_cite_the_line() {
        let e = load("[transparent]\ntls_listen = [\"nope\"]\nmax_hello_bytes = 10\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("t.toml:4") && e.contains("transparent.tls_listen"),
            "{e}"
        );
        assert!(
            e.contains("t.toml:5") && e.contains("max_hello_bytes"),
            "{e}"
        );
        assert!(load("[transparent]\nsni = true\n").is_err());
    }
}
