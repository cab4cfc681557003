//! The destination of a request, normalised once at the edge.
//!
//! Everything after the listener sees a [`Target`]: a lower-case ASCII (punycode) name
//! without a trailing dot, or an IP address, plus a port. Nothing downstream re-parses host
//! strings, so a lookalike spelling can never take a different path than the name it looks
//! like.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Longest name DNS can carry (RFC 1035), without the trailing dot.
const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A normalised destination host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// Lower-case ASCII name (IDN converted to punycode), no trailing dot.
    Name(Arc<str>),
    /// An IP literal (IPv4-mapped IPv6 addresses are unmapped to IPv4).
    Ip(IpAddr),
}

/// A normalised destination: host and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub host: Host,
    pub port: u16,
}

/// Why a host or authority was rejected; each maps to a 400 for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("empty host")]
    Empty,
    #[error("host name too long")]
    TooLong,
    #[error("empty label in host name")]
    EmptyLabel,
    #[error("label longer than 63 characters")]
    LabelTooLong,
    #[error("invalid character in host name")]
    InvalidChar,
    #[error("label starts or ends with a hyphen")]
    Hyphen,
    #[error("international name cannot be converted to punycode")]
    Idna,
    #[error("numeric host that is not a dotted-quad IPv4 address")]
    AmbiguousNumeric,
    #[error("invalid IPv6 literal")]
    BadIpv6,
    #[error("missing port")]
    MissingPort,
    #[error("invalid port")]
    BadPort,
    #[error("user information is not allowed in the authority")]
    UserInfo,
}

impl Host {
    /// Normalises a host as written in a request (`Example.COM.`, `[::1]`, `bücher.de`, `10.0.0.1`).
    pub fn parse(raw: &str) -> Result<Host, TargetError> {
        if raw.is_empty() {
            return Err(TargetError::Empty);
        }
        if let Some(inner) = raw.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(TargetError::BadIpv6)?;
            // Zone ids (`%eth0`) name a local interface: never a valid proxy destination.
            let v6: Ipv6Addr = inner.parse().map_err(|_| TargetError::BadIpv6)?;
            return Ok(Host::Ip(unmap(IpAddr::V6(v6))));
        }
        if raw.contains(':') {
            // A bare IPv6 literal (as in SNI-less contexts); authority form requires brackets.
            let v6: Ipv6Addr = raw.parse().map_err(|_| TargetError::BadIpv6)?;
            return Ok(Host::Ip(unmap(IpAddr::V6(v6))));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw);
        if name.is_empty() {
            return Err(TargetError::Empty);
        }
        let ascii = if name.is_ascii() {
            name.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(name).map_err(|_| TargetError::Idna)?
        };
        check_name(&ascii)?;
        if let Some(ip) = numeric_host(&ascii)? {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        Ok(Host::Name(Arc::from(ascii)))
    }

    pub fn as_name(&self) -> Option<&str> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }
}

impl Target {
    /// Parses an authority `host:port` (CONNECT request target, `Host` header).
    /// `default_port` is used when the authority has no port (plain `http://` URIs).
    pub fn parse_authority(raw: &str, default_port: Option<u16>) -> Result<Target, TargetError> {
        if raw.contains('@') {
            return Err(TargetError::UserInfo);
        }
        let (host, port) = split_host_port(raw)?;
        let port = match port {
            Some(p) => parse_port(p)?,
            None => default_port.ok_or(TargetError::MissingPort)?,
        };
        Ok(Target {
            host: Host::parse(host)?,
            port,
        })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn split_host_port(raw: &str) -> Result<(&str, Option<&str>), TargetError> {
    if raw.starts_with('[') {
        let end = raw.find(']').ok_or(TargetError::BadIpv6)?;
        let (host, rest) = raw.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(TargetError::BadIpv6),
            },
        };
    }
    match raw.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(TargetError::BadIpv6),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((raw, None)),
    }
}

fn parse_port(raw: &str) -> Result<u16, TargetError> {
    if raw.is_empty() || raw.len() > 5 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::BadPort);
    }
    match raw.parse::<u16>() {
        Ok(0) | Err(_) => Err(TargetError::BadPort),
        Ok(p) => Ok(p),
    }
}

fn check_name(name: &str) -> Result<(), TargetError> {
    if name.len() > MAX_NAME_LEN {
        return Err(TargetError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(TargetError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(TargetError::LabelTooLong);
        }
        // Underscores appear in real service names; everything else outside LDH is refused.
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(TargetError::InvalidChar);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(TargetError::Hyphen);
        }
    }
    Ok(())
}

/// A name whose last label is numeric is an IPv4 address to every browser and resolver
/// (`127.1`, `0x7f.1`, `2130706433`). Only the canonical dotted quad is accepted; the
/// other spellings are refused so they cannot dodge an IP-network rule.
fn numeric_host(name: &str) -> Result<Option<Ipv4Addr>, TargetError> {
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if !numeric {
        return Ok(None);
    }
    let ip: Ipv4Addr = name.parse().map_err(|_| TargetError::AmbiguousNumeric)?;
    // Leading zeros (`010.0.0.1`) are octal to some stacks; std rejects them, keep it so.
    Ok(Some(ip))
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(Arc::from(s))
    }

    #[test]
    fn normalises_names() {
        let cases = [
            (
                "Login.MicrosoftOnline.COM",
                name("login.microsoftonline.com"),
            ),
            (
                "login.microsoftonline.com.",
                name("login.microsoftonline.com"),
            ),
            ("bücher.example", name("xn--bcher-kva.example")),
            ("_dmarc.example.jp", name("_dmarc.example.jp")),
            ("10.0.0.1", Host::Ip("10.0.0.1".parse().unwrap())),
            ("[::1]", Host::Ip("::1".parse().unwrap())),
            ("[::ffff:10.0.0.1]", Host::Ip("10.0.0.1".parse().unwrap())),
        ];
        for (raw, want) in cases {
            assert_eq!(Host::parse(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn rejects_bad_hosts() {
        let cases = [
            ("", TargetError::Empty),
            (".", TargetError::Empty),
            ("a..b", TargetError::EmptyLabel),
            ("a.b..", TargetError::EmptyLabel),
            ("-a.example", TargetError::Hyphen),
            ("a b.example", TargetError::InvalidChar),
            ("a%2eb.example", TargetError::InvalidChar),
            ("127.1", TargetError::AmbiguousNumeric),
            ("2130706433", TargetError::AmbiguousNumeric),
            ("0x7f.0.0.1", TargetError::AmbiguousNumeric),
            ("010.0.0.1", TargetError::AmbiguousNumeric),
            ("[fe80::1%eth0]", TargetError::BadIpv6),
            ("[::1", TargetError::BadIpv6),
        ];
        for (raw, want) in cases {
            assert_eq!(Host::parse(raw), Err(want), "{raw:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(Host::parse(&long_label), Err(TargetError::LabelTooLong));
        let long_name = format!("{}example", "abcdefghi.".repeat(25));
        assert_eq!(Host::parse(&long_name), Err(TargetError::TooLong));
    }

    #[test]
    fn parses_authorities() {
        let t = Target::parse_authority("Example.com.:443", None).unwrap();
        assert_eq!(t.to_string(), "example.com:443");
        let t = Target::parse_authority("[2001:db8::1]:8443", None).unwrap();
        assert_eq!(t.to_string(), "[2001:db8::1]:8443");
        let t = Target::parse_authority("example.com", Some(80)).unwrap();
        assert_eq!(t.port, 80);
        let bad = [
            ("example.com", TargetError::MissingPort),
            ("example.com:", TargetError::BadPort),
            ("example.com:0", TargetError::BadPort),
            ("example.com:65536", TargetError::BadPort),
            ("example.com:+443", TargetError::BadPort),
            ("user@example.com:443", TargetError::UserInfo),
            ("2001:db8::1:443", TargetError::BadIpv6),
            ("[::1]x", TargetError::BadIpv6),
        ];
        for (raw, want) in bad {
            assert_eq!(Target::parse_authority(raw, None), Err(want), "{raw:?}");
        }
    }
}
