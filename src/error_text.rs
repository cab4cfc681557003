//! Error texts for people: what the access log's `error` and the service log say when
//! TLS, DNS or a socket fails. The crates' own `Display` sometimes prints a Rust `Debug`
//! value (`received fatal alert: UnknownCA`, `no records found for Query { name: … }`),
//! which means nothing to a network engineer or an auditor; these say what happened.

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use rustls::{AlertDescription, CertificateError};

/// An I/O error, looking inside for the TLS error it may carry.
pub fn io(e: &std::io::Error) -> String {
    if let Some(tls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return tls(tls_error);
    }
    if e.kind() == std::io::ErrorKind::UnexpectedEof && e.get_ref().is_none() {
        return "the peer closed the connection".into();
    }
    e.to_string()
}

pub fn tls(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => format!("certificate refused: {}", certificate(c)),
        E::AlertReceived(a) => format!("the peer refused the TLS session: {}", alert(*a)),
        E::NoCertificatesPresented => "the peer presented no certificate".into(),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "the peer broke the TLS protocol (an unexpected message)".into()
        }
        E::InvalidMessage(_) => "the peer sent a malformed TLS message".into(),
        E::PeerIncompatible(_) => "no TLS version or cipher suite in common with the peer".into(),
        E::PeerMisbehaved(_) => "the peer broke the TLS protocol".into(),
        E::DecryptError => "cannot decrypt the peer's TLS message".into(),
        E::PeerSentOversizedRecord => "the peer sent a TLS record too large".into(),
        E::NoApplicationProtocol => "no application protocol in common with the peer".into(),
        E::InvalidCertRevocationList(_) => "a certificate revocation list is invalid".into(),
        E::General(s) => format!("TLS failed: {s}"),
        other => {
            let text = other.to_string();
            if looks_like_debug(&text) {
                "TLS failed".into()
            } else {
                text
            }
        }
    }
}

fn certificate(c: &CertificateError) -> String {
    use CertificateError as C;
    match c {
        C::UnknownIssuer => "not issued by a trusted CA".into(),
        C::BadSignature => "its signature does not verify".into(),
        C::BadEncoding => "it is not a valid certificate".into(),
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
        C::Revoked => "it is revoked".into(),
        C::NotValidForName => "it is not valid for this name".into(),
        C::NotValidForNameContext { .. } => c.to_string(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not meant for this use (extended key usage)".into()
        }
        C::UnhandledCriticalExtension => {
            "it has a critical extension that is not understood".into()
        }
        C::UnknownRevocationStatus => "its revocation status is unknown".into(),
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            "the revocation list has expired".into()
        }
        C::ApplicationVerificationFailure => "the verifier refused it".into(),
        C::Other(o) => o.to_string(),
        _ => "it was not accepted".into(),
    }
}

fn alert(a: AlertDescription) -> String {
    use AlertDescription as A;
    let what = match a {
        A::HandshakeFailure => "handshake failure (no acceptable parameters)",
        A::BadCertificate => "it finds our certificate bad",
        A::UnsupportedCertificate => "it does not support our certificate",
        A::CertificateRevoked => "our certificate is revoked",
        A::CertificateExpired => "our certificate has expired",
        A::CertificateUnknown => "it does not accept our certificate",
        A::UnknownCA => "it does not trust the CA of our certificate",
        A::AccessDenied => "access denied",
        A::CertificateRequired => "it requires a client certificate",
        A::ProtocolVersion => "no TLS version in common",
        A::InsufficientSecurity => "it wants stronger cipher suites",
        A::InternalError => "an internal error on its side",
        A::UnrecognisedName => "it does not serve this name",
        A::DecodeError | A::IllegalParameter | A::UnexpectedMessage => {
            "it could not understand our TLS messages"
        }
        A::DecryptError | A::BadRecordMac => "it could not decrypt our TLS messages",
        A::NoApplicationProtocol => "no application protocol in common",
        A::CloseNotify | A::UserCanceled => "it closed the session",
        _ => return format!("TLS alert {}", u8::from(a)),
    };
    what.into()
}

/// A failed lookup of the direct route's DNS.
pub fn dns(e: &NetError) -> String {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(none)) => match none.response_code {
            ResponseCode::NXDomain => "no such name (NXDOMAIN)".into(),
            _ => "the name has no address (A or AAAA) records".into(),
        },
        NetError::Dns(DnsError::ResponseCode(code)) => {
            format!("the resolver answered {} ({})", code, u16::from(*code))
        }
        NetError::Dns(_) => "the answer did not validate".into(),
        NetError::Timeout => "the resolvers did not answer in time".into(),
        NetError::Io(io_error) => format!("resolver unreachable: {}", io(io_error)),
        NetError::NoConnections => "no resolver could be reached".into(),
        NetError::Busy => "the resolvers are busy".into(),
        NetError::Proto(_) | NetError::QueryCaseMismatch | NetError::ForeignClassRecord { .. } => {
            "the resolver's answer was malformed".into()
        }
        NetError::Truncated => "the answer was truncated and TCP did not help".into(),
        NetError::Message(m) => (*m).into(),
        NetError::Msg(m) => m.clone(),
        other => {
            let text = other.to_string();
            if looks_like_debug(&text) {
                "the lookup failed".into()
            } else {
                text
            }
        }
    }
}

/// Whether `text` reads like Rust `Debug` output: a type name followed by `(` or ` {`,
/// `Some(`, a `::` path. For the tests that hold every `error` text to this.
pub fn looks_like_debug(text: &str) -> bool {
    if text.contains("::") || text.contains("Some(") || text.contains(" }") {
        return true;
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_uppercase() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = &b[start..i];
            // Words of the trade, not type names.
            let camel = !word.starts_with(b"IPv")
                && word != b"ClientHello"
                && word != b"ServerHello"
                && word.iter().skip(1).any(u8::is_ascii_uppercase)
                && word.iter().any(u8::is_ascii_lowercase);
            let next = b.get(i).copied();
            if next == Some(b'(') || (next == Some(b' ') && b.get(i + 1) == Some(&b'{')) || camel {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::net::NoRecords;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::{Name, RecordType};

    fn query() -> Query {
        Query::query(Name::from_ascii("nx.example.").unwrap(), RecordType::A)
    }

    #[test]
    fn the_crates_own_texts_are_debug_and_ours_are_not() {
        let nx = NetError::from(DnsError::NoRecordsFound(NoRecords::new(
            query(),
            ResponseCode::NXDomain,
        )));
        assert!(looks_like_debug(&nx.to_string()), "{nx}");
        assert_eq!(dns(&nx), "no such name (NXDOMAIN)");
        let nodata = NetError::from(DnsError::NoRecordsFound(NoRecords::new(
            query(),
            ResponseCode::NoError,
        )));
        assert_eq!(dns(&nodata), "the name has no address (A or AAAA) records");
        let servfail = NetError::from(DnsError::ResponseCode(ResponseCode::ServFail));
        assert_eq!(dns(&servfail), "the resolver answered Server Failure (2)");

        let alert = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert!(looks_like_debug(&alert.to_string()), "{alert}");
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, alert);
        assert_eq!(
            io(&wrapped),
            "the peer refused the TLS session: it does not trust the CA of our certificate"
        );
        let issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(looks_like_debug(&issuer.to_string()), "{issuer}");
        assert_eq!(
            tls(&issuer),
            "certificate refused: not issued by a trusted CA"
        );
        for e in [
            rustls::Error::InvalidMessage(rustls::InvalidMessage::MissingData("x")),
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
            rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::IllegalMiddleboxChangeCipherSpec),
            rustls::Error::AlertReceived(AlertDescription::Unknown(200)),
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        ] {
            let t = tls(&e);
            assert!(!looks_like_debug(&t), "{t}");
        }
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(!looks_like_debug(&io(&refused)), "{}", io(&refused));
    }

    #[test]
    fn debug_is_recognised() {
        for debug in [
            "no records found for Query { name: Name(\"nx.example.\") }",
            "received fatal alert: UnknownCA",
            "invalid peer certificate: UnknownIssuer",
            "Some(5)",
            "std::io::Error",
            "Kind(NotFound)",
        ] {
            assert!(looks_like_debug(debug), "{debug}");
        }
        for plain in [
            "DNS lookup of nx.example failed: no such name (NXDOMAIN)",
            "connection to 127.0.0.1:9 refused or failed: Connection refused (os error 111)",
            "parent squid answered 403 Forbidden",
            "no security cloud (upstream parent) is configured",
            "client TLS: the peer refused the TLS session: it does not trust the CA of our certificate",
            "TLS alert 200",
            "closed at accept: access.unknown_client = close",
            "no IPv6 address allowed",
            "ClientHello names evil.example.net, which goes upstream (not_allowlisted)",
        ] {
            assert!(!looks_like_debug(plain), "{plain}");
        }
    }
}
