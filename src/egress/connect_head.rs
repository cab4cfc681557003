//! The CONNECT exchange with a parent, as pure functions over bytes: build the request,
//! parse the reply head (or say that more bytes are needed).

use http::StatusCode;

use crate::policy::Target;

/// Longest reply head we accept from a parent.
pub const MAX_REPLY_HEAD: usize = 16 * 1024;

/// The request line and headers for `CONNECT target` through a parent.
pub fn request(target: &Target, proxy_authorization: Option<&str>) -> Vec<u8> {
    let mut out = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy_authorization {
        out.push_str("Proxy-Authorization: ");
        out.push_str(auth);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Need more bytes.
    Partial,
    /// A complete head: the status and how many bytes it took.
    Complete { status: StatusCode, head_len: usize },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply from parent")]
    Malformed,
    #[error("reply head from parent too large")]
    TooLarge,
}

pub fn parse_reply(buf: &[u8]) -> Result<Reply, ReplyError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let code = resp.code.ok_or(ReplyError::Malformed)?;
            let status = StatusCode::from_u16(code).map_err(|_| ReplyError::Malformed)?;
            Ok(Reply::Complete { status, head_len })
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REPLY_HEAD => Err(ReplyError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(Reply::Partial),
        Err(_) => Err(ReplyError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_request_with_auth() {
        let t = Target::parse_authority("Example.com:443", None).unwrap();
        let r = request(&t, Some("Basic dTpw"));
        assert_eq!(
            r,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        let t = Target::parse_authority("[::1]:443", None).unwrap();
        assert!(request(&t, None).starts_with(b"CONNECT [::1]:443 HTTP/1.1\r\n"));
    }

    #[test]
    fn parses_replies_in_fragments() {
        let full = b"HTTP/1.1 200 Connection established\r\nVia: squid\r\n\r\nTLS";
        for cut in 0..full.len() - 3 {
            assert_eq!(parse_reply(&full[..cut]), Ok(Reply::Partial), "cut {cut}");
        }
        assert_eq!(
            parse_reply(full),
            Ok(Reply::Complete {
                status: StatusCode::OK,
                head_len: full.len() - 3
            })
        );
        assert_eq!(
            parse_reply(b"HTTP/1.1 403 Forbidden\r\n\r\n"),
            Ok(Reply::Complete {
                status: StatusCode::FORBIDDEN,
                head_len: 26
            })
        );
        assert_eq!(
            parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ReplyError::Malformed)
        );
        let big = vec![b'a'; MAX_REPLY_HEAD];
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.extend_from_slice(&big);
        assert_eq!(parse_reply(&huge), Err(ReplyError::TooLarge));
    }
}
