//! A TLS client's first flight, parsed from a byte slice: enough to read the ClientHello's
//! server name (SNI) before a direct tunnel relays anything, so a tunnel opened to an
//! allowlisted name cannot carry a handshake for another host (domain fronting).
//!
//! The hello may arrive split across TCP reads and across several handshake records; it
//! is reassembled here. Bounded everywhere: nothing is read past the slice, nothing
//! beyond the first `max` bytes is looked at, and at most `max` bytes are copied.
//! Anything that starts like TLS but is not a well-formed ClientHello is an error, never
//! "not TLS": a server may accept what a lenient parser would wave through.

/// Record header: content type, legacy version, length.
const RECORD_HEADER: usize = 5;
/// Handshake header: message type, 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
/// Largest plaintext record (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// The parser's answer when it is not an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// The hello is not complete yet: read more.
    NeedMore,
    /// A complete ClientHello; `sni` is its single host name, if it sent one.
    Complete { sni: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first byte is not a TLS handshake record.
    #[error("not a TLS handshake")]
    NotTls,
    /// Starts as TLS but is not a well-formed ClientHello (several server names included).
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("ClientHello not complete within {0} bytes")]
    TooLarge(usize),
}

use HelloError::Malformed;

/// Parses the ClientHello at the start of `buf`; bytes after it (early data) are ignored.
pub fn parse(buf: &[u8], max: usize) -> Result<Hello, HelloError> {
    match buf.first() {
        None => return Ok(Hello::NeedMore),
        Some(&CONTENT_HANDSHAKE) => {}
        Some(_) => return Err(HelloError::NotTls),
    }
    let window = buf.get(..max).unwrap_or(buf);
    match handshake_message(window, max)? {
        Some(msg) => server_name(&msg).map(|sni| Hello::Complete { sni }),
        None if buf.len() >= max => Err(HelloError::TooLarge(max)),
        None => Ok(Hello::NeedMore),
    }
}

/// Record payloads of `buf` in order, each checked; stops at the first incomplete record.
fn records(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], HelloError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let header = rest.get(..RECORD_HEADER)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if let Err(e) = check_record(header[0], header[1], len) {
            rest = &[];
            return Some(Err(e));
        }
        let payload = rest.get(RECORD_HEADER..RECORD_HEADER + len)?;
        rest = &rest[RECORD_HEADER + len..];
        Some(Ok(payload))
    })
}

fn check_record(content_type: u8, major: u8, len: usize) -> Result<(), HelloError> {
    if content_type != CONTENT_HANDSHAKE {
        return Err(Malformed(
            "record other than handshake before the ClientHello ended",
        ));
    }
    if major != 3 {
        return Err(Malformed("record version is not 3.x"));
    }
    if len == 0 || len > MAX_RECORD {
        return Err(Malformed("record length out of range"));
    }
    Ok(())
}

/// The ClientHello handshake message (header included) once all its bytes are in `buf`,
/// copied out of its records; `message_len` keeps the copy within `max` bytes.
fn handshake_message(buf: &[u8], max: usize) -> Result<Option<Vec<u8>>, HelloError> {
    // The handshake header itself may be split across records.
    let mut header = [0u8; HANDSHAKE_HEADER];
    let mut seen = 0usize;
    let mut total = None;
    for payload in records(buf) {
        let payload = payload?;
        let start = seen;
        seen += payload.len();
        if total.is_none() {
            let wanted = HANDSHAKE_HEADER.saturating_sub(start);
            for (slot, &b) in header
                .iter_mut()
                .skip(start)
                .zip(payload.iter().take(wanted))
            {
                *slot = b;
            }
            if seen >= HANDSHAKE_HEADER {
                total = Some(message_len(header, max)?);
            }
        }
        match total {
            Some(t) if seen > t => return Err(Malformed("handshake data after the ClientHello")),
            Some(t) if seen == t => return Ok(Some(collect(buf, t))),
            _ => {}
        }
    }
    Ok(None)
}

fn message_len(header: [u8; HANDSHAKE_HEADER], max: usize) -> Result<usize, HelloError> {
    if header[0] != CLIENT_HELLO {
        return Err(Malformed("first handshake message is not a ClientHello"));
    }
    let body = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    let total = HANDSHAKE_HEADER + body;
    if total > max {
        return Err(HelloError::TooLarge(max));
    }
    Ok(total)
}

fn collect(buf: &[u8], total: usize) -> Vec<u8> {
    let mut msg = Vec::with_capacity(total);
    for payload in records(buf).map_while(Result::ok) {
        let want = total - msg.len();
        msg.extend_from_slice(payload.get(..want).unwrap_or(payload));
        if msg.len() == total {
            break;
        }
    }
    msg
}

/// The server name of a complete ClientHello message (handshake header included).
fn server_name(msg: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(msg.get(HANDSHAKE_HEADER..).unwrap_or_default());
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    if r.vec8()?.len() > 32 {
        return Err(Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(Malformed("bad cipher suite list"));
    }
    if r.vec8()?.is_empty() {
        return Err(Malformed("no compression method"));
    }
    if r.is_empty() {
        return Ok(None); // a hello without extensions
    }
    let mut exts = Reader(r.vec16()?);
    if !r.is_empty() {
        return Err(Malformed("bytes after the extensions"));
    }
    let mut sni = None;
    let mut seen = false;
    while !exts.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind == EXT_SERVER_NAME {
            if seen {
                return Err(Malformed("several server_name extensions"));
            }
            seen = true;
            sni = Some(host_name(data)?);
        }
    }
    Ok(sni)
}

/// The one host name of a server_name extension (RFC 6066 §3).
fn host_name(data: &[u8]) -> Result<String, HelloError> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16()?);
    if !r.is_empty() {
        return Err(Malformed("bytes after the server name list"));
    }
    let mut name = None;
    while !list.is_empty() {
        if list.u8()? != NAME_TYPE_HOST {
            return Err(Malformed("unknown server name type"));
        }
        let raw = list.vec16()?;
        if name.is_some() {
            return Err(Malformed("several server names"));
        }
        if raw.is_empty() || !raw.is_ascii() {
            return Err(Malformed("server name empty or not ASCII"));
        }
        name = Some(String::from_utf8_lossy(raw).into_owned());
    }
    name.ok_or(Malformed("empty server name list"))
}

/// A cursor over a complete message; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        let head = self.0.get(..n).ok_or(Malformed("length past the end"))?;
        self.0 = &self.0[n..];
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, HelloError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    const MAX: usize = 16 * 1024;

    /// A real first flight from rustls for `name` (no SNI when `sni` is false).
    pub(crate) fn rustls_hello(name: &str, sni: bool) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.enable_sni = sni;
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 3, 1];
        r.extend((payload.len() as u16).to_be_bytes());
        r.extend(payload);
        r
    }

    fn vec16(data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u16).to_be_bytes().to_vec();
        v.extend(data);
        v
    }

    /// A minimal ClientHello message; `exts` is the extension block's content.
    fn hello_msg(exts: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend(vec16(&[0x13, 0x01]));
        body.extend([1, 0]); // compression: null
        if let Some(e) = exts {
            body.extend(vec16(e));
        }
        let mut msg = vec![CLIENT_HELLO];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend(vec16(data));
        e
    }

    fn sni_ext(names: &[&str]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(NAME_TYPE_HOST);
            list.extend(vec16(n.as_bytes()));
        }
        ext(EXT_SERVER_NAME, &vec16(&list))
    }

    fn complete(sni: Option<&str>) -> Result<Hello, HelloError> {
        Ok(Hello::Complete {
            sni: sni.map(str::to_string),
        })
    }

    #[test]
    fn real_hello_cut_at_every_byte() {
        let h = rustls_hello("login.microsoftonline.com", true);
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut], MAX), Ok(Hello::NeedMore), "cut {cut}");
        }
        assert_eq!(parse(&h, MAX), complete(Some("login.microsoftonline.com")));
        // Early data or a compatibility record after the hello is not looked at.
        let mut more = h.clone();
        more.extend(record(23, b"early data"));
        assert_eq!(
            parse(&more, MAX),
            complete(Some("login.microsoftonline.com"))
        );
    }

    #[test]
    fn hello_split_across_two_records_at_every_point() {
        let h = rustls_hello("teams.microsoft.com", true);
        let msg = &h[RECORD_HEADER..];
        for split in 1..msg.len() {
            let mut two = record(CONTENT_HANDSHAKE, &msg[..split]);
            let first_len = two.len();
            two.extend(record(CONTENT_HANDSHAKE, &msg[split..]));
            assert_eq!(parse(&two, MAX), complete(Some("teams.microsoft.com")));
            for cut in [first_len - 1, first_len, first_len + 3, two.len() - 1] {
                assert_eq!(
                    parse(&two[..cut], MAX),
                    Ok(Hello::NeedMore),
                    "{split}/{cut}"
                );
            }
        }
    }

    #[test]
    fn hello_in_one_byte_records() {
        let msg = hello_msg(Some(&sni_ext(&["a.example"])));
        let tiny: Vec<u8> = msg.iter().flat_map(|b| record(22, &[*b])).collect();
        assert_eq!(parse(&tiny, MAX), complete(Some("a.example")));
        assert_eq!(parse(&tiny[..tiny.len() - 1], MAX), Ok(Hello::NeedMore));
    }

    #[test]
    fn hellos_without_a_server_name() {
        let h = rustls_hello("login.microsoftonline.com", false);
        assert_eq!(parse(&h, MAX), complete(None));
        // rustls never sends an IP address as SNI.
        assert_eq!(parse(&rustls_hello("192.0.2.1", true), MAX), complete(None));
        let bare = record(22, &hello_msg(None));
        assert_eq!(parse(&bare, MAX), complete(None));
        let other = record(22, &hello_msg(Some(&ext(10, &[0, 2, 0, 29]))));
        assert_eq!(parse(&other, MAX), complete(None));
    }

    #[test]
    fn several_server_names_are_malformed() {
        let two_names = record(22, &hello_msg(Some(&sni_ext(&["a.test", "b.test"]))));
        assert_eq!(
            parse(&two_names, MAX),
            Err(Malformed("several server names"))
        );
        let mut exts = sni_ext(&["a.test"]);
        exts.extend(sni_ext(&["b.test"]));
        let two_exts = record(22, &hello_msg(Some(&exts)));
        assert_eq!(
            parse(&two_exts, MAX),
            Err(Malformed("several server_name extensions"))
        );
    }

    #[test]
    fn bad_server_names() {
        let cases: [&[u8]; 4] = [
            &ext(EXT_SERVER_NAME, &vec16(&[])),
            &ext(EXT_SERVER_NAME, &[]),
            &ext(EXT_SERVER_NAME, &vec16(&[1, 0, 1, b'a'])),
            &sni_ext(&["bücher.example"]),
        ];
        for e in cases {
            let h = record(22, &hello_msg(Some(e)));
            assert!(matches!(parse(&h, MAX), Err(Malformed(_))), "{e:?}");
        }
    }

    #[test]
    fn garbage_is_not_tls_or_malformed() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", MAX), Err(HelloError::NotTls));
        assert_eq!(parse(b"SSH-2.0-OpenSSH", MAX), Err(HelloError::NotTls));
        assert_eq!(parse(&[0x80, 0x2e, 0x01], MAX), Err(HelloError::NotTls));
        assert_eq!(parse(&[], MAX), Ok(Hello::NeedMore));
        let bad = [
            vec![22, 0x41, 0x41, 0, 1, 0],         // record version
            vec![22, 3, 1, 0, 0],                  // empty record
            vec![22, 3, 1, 0x40, 0x01],            // record over 16 KiB
            record(22, &[2, 0, 0, 0]),             // a ServerHello
            record(22, &hello_msg(Some(&[0, 0]))), // truncated extension
        ];
        for b in bad {
            assert!(matches!(parse(&b, MAX), Err(Malformed(_))), "{b:?}");
        }
        // An alert in the middle of a fragmented hello.
        let msg = hello_msg(Some(&sni_ext(&["a.test"])));
        let mut split = record(22, &msg[..10]);
        split.extend(record(21, &[2, 40]));
        assert!(matches!(parse(&split, MAX), Err(Malformed(_))));
        // Handshake bytes after the hello in the same record.
        let mut extra = msg.clone();
        extra.extend([20, 0, 0, 0]);
        assert_eq!(
            parse(&record(22, &extra), MAX),
            Err(Malformed("handshake data after the ClientHello"))
        );
    }

    #[test]
    fn truncated_lengths_are_malformed() {
        let msg = hello_msg(Some(&sni_ext(&["a.test"])));
        // Each inner length claims one byte more than there is; the message length holds.
        let mut sid = msg.clone();
        sid[4 + 34] = 1; // session id length, with the suites' bytes taken as its content
        let mut exts = msg.clone();
        let at = 4 + 2 + 32 + 1 + 4 + 2;
        exts[at + 1] += 1; // extensions length
        let mut name = msg.clone();
        let last = name.len() - "a.test".len() - 1;
        name[last] += 1; // host name length
        for m in [exts, name] {
            assert_eq!(
                parse(&record(22, &m), MAX),
                Err(Malformed("length past the end"))
            );
        }
        assert!(matches!(parse(&record(22, &sid), MAX), Err(Malformed(_))));
        // A message shorter than its fixed fields.
        let short = record(22, &[1, 0, 0, 3, 3, 3, 0]);
        assert_eq!(parse(&short, MAX), Err(Malformed("length past the end")));
    }

    #[test]
    fn oversize_hellos() {
        // A declared length that cannot fit is refused before it arrives.
        assert_eq!(
            parse(&record(22, &[1, 0xff, 0xff, 0xff]), MAX),
            Err(HelloError::TooLarge(MAX))
        );
        let h = rustls_hello("login.microsoftonline.com", true);
        assert_eq!(parse(&h, 64), Err(HelloError::TooLarge(64)));
        // Many small records: incomplete when `max` bytes have been seen.
        let msg = hello_msg(Some(&sni_ext(&["a.test"])));
        let tiny: Vec<u8> = msg.iter().flat_map(|b| record(22, &[*b])).collect();
        assert_eq!(parse(&tiny, 200), Err(HelloError::TooLarge(200)));
        assert_eq!(parse(&tiny[..100], 200), Ok(Hello::NeedMore));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), max in 0usize..700) {
            let mut buf = vec![22, 3, 1];
            buf.extend(tail);
            let _ = parse(&buf, max);
        }

        #[test]
        fn mutated_real_hellos_never_panic(at in 0usize..400, byte in proptest::prelude::any::<u8>()) {
            let mut h = rustls_hello("a.example", true);
            let i = at % h.len();
            h[i] = byte;
            let _ = parse(&h, MAX);
        }
    }
}
