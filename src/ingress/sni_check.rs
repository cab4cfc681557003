//! The SNI check of direct CONNECT tunnels: the guard against domain fronting. A tunnel
//! opened to an allowlisted name must not carry a TLS handshake for another host, such as
//! an unlisted site behind the same CDN. After the 200 and before relaying, the client's
//! first bytes are read (bounded, within the head timeout, by [`read_first`]); the
//! ClientHello's server name must be decided direct too, for the same client and port,
//! under the policy in force when it came ([`judge`], called by the tunnel). The bytes read
//! are replayed to the destination. Upstream tunnels are not checked: the security cloud
//! inspects them.

use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::client_hello::{self, Hello, HelloError};
use crate::config::NonTls;
use crate::policy::{decide::decide, Host, Route, Snapshot, Target};

/// What the client sent first, once the parser had an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum First {
    /// A complete ClientHello and its server name, if it sent one.
    Hello(Option<String>),
    /// Bytes that are not TLS, or none within the head timeout (the server speaks first).
    NotTls,
    /// Starts as TLS but cannot be read: malformed or too large.
    Invalid(HelloError),
}

/// How reading the first bytes ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    First(First),
    /// A handshake had started but was not complete within the head timeout.
    Timeout,
    /// The client closed (or failed) before the parser had an answer.
    Closed,
}

/// The check's answer for one tunnel.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The server name as sent, for the log.
    pub sni: Option<String>,
    /// Why the tunnel must not go on, when it must not.
    pub mismatch: Option<String>,
}

/// Longest server name kept for the log (the parser bounds it, this bounds the line).
const MAX_LOGGED_SNI: usize = 300;

/// Decides whether the first bytes of a tunnel to `target`, decided direct, may go on.
/// Pure, like the policy: the same snapshot and client decide the server name.
pub fn judge(
    policy: &Snapshot,
    client: IpAddr,
    target: &Target,
    first: &First,
    non_tls: NonTls,
) -> Verdict {
    let pass = |sni| Verdict {
        sni,
        mismatch: None,
    };
    let fail = |sni, why| Verdict {
        sni,
        mismatch: Some(why),
    };
    match first {
        // Clients send no SNI to an IP address; to a name, its absence hides the real host.
        First::Hello(None) => match target.host {
            Host::Ip(_) => pass(None),
            Host::Name(_) => fail(
                None,
                format!("ClientHello without a server name on a tunnel to {target}"),
            ),
        },
        First::Hello(Some(raw)) => {
            let sni: String = raw.chars().take(MAX_LOGGED_SNI).collect();
            let host = match Host::parse(raw) {
                Ok(h) => h,
                Err(e) => {
                    let why = format!("server name {sni:?} is not a valid host: {e}");
                    return fail(Some(sni), why);
                }
            };
            let named = Target {
                host,
                port: target.port,
            };
            let d = decide(policy, client, &named);
            if d.route == Route::Direct {
                pass(Some(sni))
            } else {
                let why = format!(
                    "ClientHello names {named}, which goes {} ({}), on a tunnel to {target}",
                    d.route.as_str(),
                    d.reason.as_str()
                );
                fail(Some(sni), why)
            }
        }
        First::NotTls => match non_tls {
            NonTls::Allow => pass(None),
            NonTls::DenyOn443 if target.port != 443 => pass(None),
            NonTls::DenyOn443 | NonTls::Deny => fail(
                None,
                format!("not TLS on a tunnel to {target} (sni_check.non_tls)"),
            ),
        },
        First::Invalid(e) => fail(None, format!("{e} on a tunnel to {target}")),
    }
}

/// Reads the client's first bytes until the parser answers, at most `max` of them and for
/// at most `wait`; returns them (to replay) with how reading ended.
pub async fn read_first<C>(client: &mut C, max: usize, wait: Duration) -> (Bytes, Read)
where
    C: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(max.min(4096));
    let reading = async {
        loop {
            match client_hello::parse(&buf, max) {
                Ok(Hello::NeedMore) => {}
                Ok(Hello::Complete { sni }) => return Read::First(First::Hello(sni)),
                Err(HelloError::NotTls) => return Read::First(First::NotTls),
                Err(e) => return Read::First(First::Invalid(e)),
            }
            // The parser answers `TooLarge` at `max` bytes, so there is room; never more.
            let room = max.saturating_sub(buf.len()) as u64;
            match (&mut *client).take(room).read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            }
        }
    };
    let read = match tokio::time::timeout(wait, reading).await {
        Ok(r) => r,
        Err(_) if buf.is_empty() => Read::First(First::NotTls),
        Err(_) => Read::Timeout,
    };
    (buf.freeze(), read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;

    /// The embedded default: loopback clients, case ① (sign-in direct, SharePoint not).
    fn policy() -> Arc<Snapshot> {
        crate::config::load(None).unwrap().policy
    }

    fn client() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn target(authority: &str) -> Target {
        Target::parse_authority(authority, None).unwrap()
    }

    fn hello(sni: Option<&str>) -> First {
        First::Hello(sni.map(str::to_string))
    }

    fn verdict(t: &str, first: &First, non_tls: NonTls) -> Option<String> {
        judge(&policy(), client(), &target(t), first, non_tls).mismatch
    }

    #[test]
    fn the_server_name_must_go_direct_too() {
        let ok = [
            (
                "login.microsoftonline.com:443",
                hello(Some("login.microsoftonline.com")),
            ),
            (
                "login.microsoftonline.com:443",
                hello(Some("LOGIN.microsoftonline.com.")),
            ),
            (
                "login.microsoftonline.com:443",
                hello(Some("aadcdn.msftauth.net")),
            ),
            ("192.0.2.10:443", hello(None)),
        ];
        for (t, first) in ok {
            assert_eq!(verdict(t, &first, NonTls::DenyOn443), None, "{t} {first:?}");
        }
        let fronting = verdict(
            "login.microsoftonline.com:443",
            &hello(Some("contoso.sharepoint.com")),
            NonTls::DenyOn443,
        );
        assert_eq!(
            fronting.as_deref(),
            Some("ClientHello names contoso.sharepoint.com:443, which goes upstream (not_allowlisted), on a tunnel to login.microsoftonline.com:443")
        );
        let bad = [
            ("login.microsoftonline.com:443", hello(None)),
            ("login.microsoftonline.com:443", hello(Some("a..b"))),
            (
                "login.microsoftonline.com:443",
                hello(Some("www.example.com")),
            ),
            // The same name on a port its rule does not allow.
            (
                "login.microsoftonline.com:8443",
                hello(Some("login.microsoftonline.com")),
            ),
        ];
        for (t, first) in bad {
            assert!(
                verdict(t, &first, NonTls::DenyOn443).is_some(),
                "{t} {first:?}"
            );
        }
        let v = judge(
            &policy(),
            client(),
            &target("login.microsoftonline.com:443"),
            &hello(Some("contoso.sharepoint.com")),
            NonTls::Allow,
        );
        assert_eq!(v.sni.as_deref(), Some("contoso.sharepoint.com"));
    }

    #[test]
    fn non_tls_follows_the_setting() {
        let cases = [
            ("login.microsoftonline.com:443", NonTls::DenyOn443, false),
            ("login.microsoftonline.com:80", NonTls::DenyOn443, true),
            ("login.microsoftonline.com:443", NonTls::Allow, true),
            ("login.microsoftonline.com:80", NonTls::Deny, false),
        ];
        for (t, setting, passes) in cases {
            let v = verdict(t, &First::NotTls, setting);
            assert_eq!(v.is_none(), passes, "{t} {setting:?} {v:?}");
        }
        let invalid = First::Invalid(HelloError::TooLarge(1024));
        assert!(verdict("login.microsoftonline.com:443", &invalid, NonTls::Allow).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn reads_a_hello_in_pieces_and_keeps_the_bytes() {
        let full = crate::ingress::client_hello::tests::rustls_hello("a.example", true);
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let send = full.clone();
        tokio::spawn(async move {
            for chunk in send.chunks(7) {
                tx.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tx.write_all(b"after").await.unwrap();
            std::future::pending::<()>().await;
        });
        let (seen, read) = read_first(&mut rx, 16 * 1024, Duration::from_secs(10)).await;
        assert_eq!(read, Read::First(hello(Some("a.example"))));
        assert_eq!(&seen[..full.len()], &full[..]);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_not_tls_and_a_stalled_hello_times_out() {
        let (_tx, mut rx) = tokio::io::duplex(64);
        let (seen, read) = read_first(&mut rx, 1024, Duration::from_secs(10)).await;
        assert_eq!((seen.len(), read), (0, Read::First(First::NotTls)));

        let (mut tx, mut rx) = tokio::io::duplex(64);
        tx.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
        let (seen, read) = read_first(&mut rx, 1024, Duration::from_secs(10)).await;
        assert_eq!((seen.len(), read), (6, Read::Timeout));
        drop(tx);
    }

    #[tokio::test]
    async fn never_holds_more_than_max() {
        let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
        // A record header announcing 16 KiB, then the bytes: more than `max` = 1024.
        let mut big = vec![22, 3, 1, 0x40, 0];
        big.extend([1, 0, 0x3f, 0xfc]);
        big.extend(vec![0u8; 20_000]);
        tx.write_all(&big).await.unwrap();
        let (seen, read) = read_first(&mut rx, 1024, Duration::from_secs(10)).await;
        assert_eq!(
            read,
            Read::First(First::Invalid(HelloError::TooLarge(1024)))
        );
        assert!(seen.len() <= 1024, "{}", seen.len());

        // A client that goes away half-way.
        let (mut tx, mut rx) = tokio::io::duplex(64);
        tx.write_all(&[22, 3, 1]).await.unwrap();
        drop(tx);
        let (seen, read) = read_first(&mut rx, 1024, Duration::from_secs(10)).await;
        assert_eq!((seen.len(), read), (3, Read::Closed));
    }
}
