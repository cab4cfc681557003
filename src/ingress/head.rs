//! The first request head on a proxy connection, parsed from a byte slice: enough to tell
//! a CONNECT (handled here, as a raw tunnel) from an HTTP request (handed to the HTTP
//! server with the bytes already read).

#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// Need more bytes.
    Partial,
    /// `CONNECT authority`: the head is `head_len` bytes long.
    Connect { authority: &'a str, head_len: usize },
    /// Any other method: served by the HTTP server.
    Http,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head")]
    Malformed,
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
}

pub fn parse(buf: &[u8], max: usize) -> Result<Head<'_>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooLarge(max),
        _ => HeadError::Malformed,
    })?;
    match (req.method, status) {
        (Some(m), _) if m != "CONNECT" => Ok(Head::Http),
        (_, httparse::Status::Partial) if buf.len() >= max => Err(HeadError::TooLarge(max)),
        (_, httparse::Status::Partial) => Ok(Head::Partial),
        (_, httparse::Status::Complete(head_len)) => {
            let authority = req.path.ok_or(HeadError::Malformed)?;
            if head_len > max {
                return Err(HeadError::TooLarge(max));
            }
            Ok(Head::Connect {
                authority,
                head_len,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                head_len
            })
        );
    }

    #[test]
    fn other_methods_go_to_the_http_server() {
        assert_eq!(
            parse(b"GET http://example.com/ HTTP/1.1\r\n", 1024),
            Ok(Head::Http)
        );
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n", 1024), Ok(Head::Http));
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
