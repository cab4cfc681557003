//! The `CONNECT` exchange on a connection to a parent, read as the failure model needs it:
//! whether the parent took the request at all (a close or reset before any reply byte
//! means it did not), answered, broke off in the middle, or kept it without answering.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::dial::io_words;
use crate::egress::connect_head::{self, Reply};
use crate::egress::error::words;
use crate::stream::ServerStream;

/// What came of sending a `CONNECT`.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx: the tunnel is open; `early` holds bytes the parent sent after its head.
    Established { early: Bytes },
    /// A complete reply head with another status.
    Status(StatusCode),
    /// The connection ended (or writing failed) before any reply byte: the parent did
    /// not take the request, and another may.
    NotTaken(String),
    /// The reply was malformed, too large, or cut off: the parent has the request.
    Broken(String),
    /// No complete reply within the wait: the parent has the request.
    Silent,
}

/// Sends `request` and reads the reply head. The request goes within `send` (with TLS
/// early data, the handshake completes here too), the reply within `wait`.
pub async fn exchange(
    stream: &mut ServerStream,
    request: &[u8],
    send: Duration,
    wait: Duration,
) -> Answer {
    let sending = async {
        stream.write_all(request).await?;
        stream.flush().await
    };
    match tokio::time::timeout(send, sending).await {
        Err(_) => {
            return Answer::NotTaken(format!(
                "the request could not be sent within {}",
                words(send)
            ))
        }
        Ok(Err(e)) => return Answer::NotTaken(sent_words(&e)),
        Ok(Ok(())) => {}
    }
    read_answer(stream, Instant::now() + wait).await
}

async fn read_answer(stream: &mut ServerStream, deadline: Instant) -> Answer {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let read = match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Answer::Silent,
            Ok(r) => r,
        };
        match read {
            Ok(0) if buf.is_empty() => {
                return Answer::NotTaken("the parent closed the connection before answering".into())
            }
            Ok(0) => {
                return Answer::Broken(format!(
                    "the parent closed the connection after {} bytes of its reply head",
                    buf.len()
                ))
            }
            Err(e) if buf.is_empty() => return Answer::NotTaken(sent_words(&e)),
            Err(e) => {
                return Answer::Broken(format!(
                    "the connection {} in the middle of the reply head",
                    io_words(&e)
                ))
            }
            Ok(_) => {}
        }
        loop {
            match connect_head::parse_reply(&buf) {
                Ok(Reply::Partial) => break,
                // An interim answer (100 Continue and the like) is followed by the real one.
                Ok(Reply::Complete { status, head_len }) if status.is_informational() => {
                    let _ = buf.split_to(head_len);
                }
                Ok(Reply::Complete { status, head_len }) if status.is_success() => {
                    let early = buf.split_off(head_len).freeze();
                    return Answer::Established { early };
                }
                Ok(Reply::Complete { status, .. }) => return Answer::Status(status),
                Err(e) => return Answer::Broken(format!("{e}")),
            }
        }
    }
}

/// A failure to send, or to read the first byte, as words; a TLS error there is the
/// handshake's (early data).
fn sent_words(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("TLS handshake failed: {tls}"),
        None => match e.kind() {
            std::io::ErrorKind::ConnectionReset => {
                "the parent reset the connection before answering".into()
            }
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof => {
                "the parent closed the connection before answering".into()
            }
            _ => format!("the connection {} before any reply", io_words(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A parent that reads the request and then plays `script`.
    async fn parent(script: &'static [&'static [u8]], close: bool) -> ServerStream {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            for part in script {
                s.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if !close {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        ServerStream::Tcp(TcpStream::connect(addr).await.unwrap())
    }

    async fn answer(script: &'static [&'static [u8]], close: bool) -> Answer {
        let mut s = parent(script, close).await;
        exchange(
            &mut s,
            b"CONNECT a.test:443 HTTP/1.1\r\n\r\n",
            Duration::from_secs(1),
            Duration::from_millis(300),
        )
        .await
    }

    #[tokio::test]
    async fn each_way_a_parent_answers_has_its_class() {
        assert_eq!(
            answer(&[b"HTTP/1.1 200 OK\r\n", b"\r\nhello"], true).await,
            Answer::Established {
                early: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(
            answer(
                &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"],
                true
            )
            .await,
            Answer::Established {
                early: Bytes::new()
            }
        );
        assert_eq!(
            answer(&[b"HTTP/1.1 503 Service Unavailable\r\n\r\n"], false).await,
            Answer::Status(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(
            matches!(answer(&[], true).await, Answer::NotTaken(t) if t.contains("before answering"))
        );
        assert!(
            matches!(answer(&[b"HTTP/1.1 2"], true).await, Answer::Broken(t) if t.contains("after 10 bytes"))
        );
        assert!(
            matches!(answer(&[b"SSH-2.0-OpenSSH_9\r\n\r\n"], false).await, Answer::Broken(t) if t.contains("malformed"))
        );
        assert_eq!(answer(&[], false).await, Answer::Silent);
        assert_eq!(answer(&[b"HTTP/1.1 200"], false).await, Answer::Silent);
    }
}
