//! A request head on a client connection, parsed from a byte slice: enough to tell a
//! CONNECT (handled as a raw tunnel) from an HTTP request (handed to the HTTP server with
//! the bytes already read), and where that request's body ends. Every head of a
//! connection, the first and each later one, goes through this parser, so every head
//! meets the same limits and the same framing checks.

#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// Need more bytes.
    Partial,
    /// `CONNECT authority`: the head is `head_len` bytes long.
    Connect {
        authority: &'a str,
        head_len: usize,
        /// The `Proxy-Authorization` value, if any.
        proxy_authorization: Option<&'a [u8]>,
    },
    /// Any other method, its head complete and its framing unambiguous: served by the
    /// HTTP server.
    Http {
        head_len: usize,
        body: Body,
        /// The client asked to close after this request (`Connection: close`, or HTTP/1.0
        /// without `keep-alive`).
        close: bool,
    },
}

/// Where a request's body ends (RFC 9112 §6.3): requests without a length or a coding
/// have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    Length(u64),
    Chunked,
}

/// How big a head may be.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_bytes: usize,
    pub max_headers: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head")]
    Malformed,
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    #[error("request head with more than {0} header fields")]
    TooManyHeaders(usize),
    /// A head two parsers could read differently (request smuggling).
    #[error("ambiguous request framing: {0}")]
    Framing(&'static str),
}

pub fn parse(buf: &[u8], limits: HeadLimits) -> Result<Head<'_>, HeadError> {
    if buf.is_empty() {
        return Ok(Head::Partial);
    }
    // Room for every header the limit allows, left uninitialised: the parser writes
    // only the ones it finds.
    let mut headers: Vec<httparse::Header<'_>> = Vec::with_capacity(limits.max_headers);
    let mut req = httparse::Request::new(&mut []);
    let room = &mut headers.spare_capacity_mut()[..limits.max_headers];
    let status = match req.parse_with_uninit_headers(buf, room) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders(limits.max_headers))
        }
        Err(_) => return Err(line_fault(buf).unwrap_or(HeadError::Malformed)),
    };
    let head_len = match status {
        httparse::Status::Partial if buf.len() >= limits.max_bytes => {
            return Err(HeadError::TooLarge(limits.max_bytes))
        }
        httparse::Status::Partial => return Ok(Head::Partial),
        httparse::Status::Complete(n) if n > limits.max_bytes => {
            return Err(HeadError::TooLarge(limits.max_bytes))
        }
        httparse::Status::Complete(n) => n,
    };
    if let Some(fault) = line_fault(&buf[..head_len]) {
        return Err(fault);
    }
    match req.method {
        Some("CONNECT") => Ok(Head::Connect {
            authority: req.path.ok_or(HeadError::Malformed)?,
            head_len,
            proxy_authorization: req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
                .map(|h| h.value),
        }),
        _ => {
            let body = framing(req.headers)?;
            Ok(Head::Http {
                head_len,
                body,
                close: wants_close(req.version, req.headers),
            })
        }
    }
}

/// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
fn wants_close(version: Option<u8>, headers: &[httparse::Header<'_>]) -> bool {
    let has = |token: &str| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    has("close") || (version == Some(0) && !has("keep-alive"))
}

/// Line breaks every parser reads alike: CRLF only (a bare CR or LF is a line end to some
/// and not to others), and no obs-fold continuation lines (RFC 9112 §5.2).
fn line_fault(head: &[u8]) -> Option<HeadError> {
    for (i, &b) in head.iter().enumerate() {
        let bare_cr = b == b'\r' && head.get(i + 1).is_some_and(|&n| n != b'\n');
        let bare_lf = b == b'\n' && (i == 0 || head[i - 1] != b'\r');
        if bare_cr || bare_lf {
            return Some(HeadError::Framing("bare CR or LF"));
        }
        let folded = b == b'\n' && matches!(head.get(i + 1), Some(b' ' | b'\t'));
        if folded {
            return Some(HeadError::Framing("obs-fold line folding"));
        }
    }
    None
}

/// One way to tell where the body ends (RFC 9112 §6.3): a single, numeric
/// `Content-Length`, or `Transfer-Encoding` ending in `chunked`, never both.
fn framing(headers: &[httparse::Header<'_>]) -> Result<Body, HeadError> {
    let named = |name: &'static str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let lengths = named("content-length");
    let codings = named("transfer-encoding");
    if !lengths.is_empty() && !codings.is_empty() {
        return Err(HeadError::Framing(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    let length = match lengths.as_slice() {
        [] => None,
        [one] if !one.is_empty() && one.iter().all(u8::is_ascii_digit) => {
            let n = std::str::from_utf8(one)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or(HeadError::Framing("invalid Content-Length"))?;
            Some(n)
        }
        [_] => return Err(HeadError::Framing("invalid Content-Length")),
        _ => return Err(HeadError::Framing("duplicate Content-Length")),
    };
    if let Some(last) = codings.last() {
        let last = String::from_utf8_lossy(last);
        let coding = last.rsplit(',').next().unwrap_or("").trim();
        if !coding.eq_ignore_ascii_case("chunked") {
            return Err(HeadError::Framing(
                "Transfer-Encoding not ending in chunked",
            ));
        }
        return Ok(Body::Chunked);
    }
    Ok(match length {
        None | Some(0) => Body::Empty,
        Some(n) => Body::Length(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 1024,
        max_headers: 100,
    };

    fn parse(buf: &[u8], max_bytes: usize) -> Result<Head<'_>, HeadError> {
        super::parse(
            buf,
            HeadLimits {
                max_bytes,
                ..LIMITS
            },
        )
    }

    #[test]
    fn connect_in_fragments() {
        let full = b"CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: login.microsoftonline.com:443\r\n\r\n\x16\x03\x01";
        let head_len = full.len() - 3;
        for cut in 0..head_len {
            let got = parse(&full[..cut], 1024);
            assert!(matches!(got, Ok(Head::Partial)), "cut {cut}: {got:?}");
        }
        assert_eq!(
            parse(full, 1024),
            Ok(Head::Connect {
                authority: "login.microsoftonline.com:443",
                head_len,
                proxy_authorization: None,
            })
        );
    }

    #[test]
    fn other_methods_go_to_the_http_server_once_their_head_is_complete() {
        assert_eq!(
            parse(b"GET http://example.com/ HTTP/1.1\r\n", 1024),
            Ok(Head::Partial)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\n\r\n", 1024),
            Ok(Head::Http {
                head_len: 19,
                body: Body::Empty,
                close: false
            })
        );
        let chunked =
            b"POST http://a.example/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert!(matches!(
            parse(chunked, 1024),
            Ok(Head::Http {
                body: Body::Chunked,
                ..
            })
        ));
        let sized =
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: keep-alive, Close\r\n\r\nhello";
        assert_eq!(
            parse(sized, 1024),
            Ok(Head::Http {
                head_len: sized.len() - 5,
                body: Body::Length(5),
                close: true
            })
        );
        let old = b"GET / HTTP/1.0\r\n\r\n";
        assert!(matches!(
            parse(old, 1024),
            Ok(Head::Http { close: true, .. })
        ));
        let old = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        assert!(matches!(
            parse(old, 1024),
            Ok(Head::Http { close: false, .. })
        ));
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(
            parse(huge, 1024),
            Err(HeadError::Framing("invalid Content-Length"))
        );
    }

    #[test]
    fn refuses_smuggling_shapes() {
        let cases: &[(&str, &str)] = &[
            (
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "both Content-Length and Transfer-Encoding",
            ),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                "duplicate Content-Length",
            ),
            (
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                "duplicate Content-Length",
            ),
            ("Content-Length: +5\r\n", "invalid Content-Length"),
            (
                "Transfer-Encoding: chunked, identity\r\n",
                "Transfer-Encoding not ending in chunked",
            ),
            ("X-A: 1\r\n  folded\r\n", "obs-fold line folding"),
            ("X-A: 1\nX-B: 2\r\n", "bare CR or LF"),
            ("X-A: 1\rX-B: 2\r\n", "bare CR or LF"),
        ];
        for (headers, want) in cases {
            let head =
                format!("POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\n{headers}\r\n");
            assert_eq!(
                parse(head.as_bytes(), 1024),
                Err(HeadError::Framing(want)),
                "{headers:?}"
            );
        }
        let bare_lf = b"CONNECT a.example:443 HTTP/1.1\nHost: a.example:443\n\n";
        assert_eq!(
            parse(bare_lf, 1024),
            Err(HeadError::Framing("bare CR or LF"))
        );
    }

    #[test]
    fn counts_header_fields() {
        let mut head = b"CONNECT a.example:443 HTTP/1.1\r\n".to_vec();
        for i in 0..5 {
            head.extend(format!("X-{i}: 1\r\n").bytes());
        }
        head.extend(b"\r\n");
        let few = HeadLimits {
            max_headers: 4,
            ..LIMITS
        };
        assert_eq!(super::parse(&head, few), Err(HeadError::TooManyHeaders(4)));
        let enough = HeadLimits {
            max_headers: 5,
            ..LIMITS
        };
        assert!(matches!(
            super::parse(&head, enough),
            Ok(Head::Connect { .. })
        ));
    }

    #[test]
    fn rejects_garbage_and_oversized_heads() {
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00", 1024),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse(b"CONNECT a:1 HTTP/1.1\r\nBad Header\r\n\r\n", 1024),
            Err(HeadError::Malformed)
        );
        let mut big = b"CONNECT a.example:443 HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 2000));
        assert_eq!(parse(&big, 1024), Err(HeadError::TooLarge(1024)));
    }
}
