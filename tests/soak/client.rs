//! The load's clients on raw sockets: a CONNECT tunnel that echoes a payload, and an
//! absolute-form `http://` GET of a known body. Each ends in an [`Ended`] the tally counts;
//! a transfer that finishes is compared byte for byte (SHA-256) with what was sent or
//! expected, and one that ends early must still be an intact prefix.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::origin::ECHO;
use super::payload::{blob, sha256_hex};

/// Largest response head the client reads.
const MAX_HEAD: usize = 16 * 1024;

/// How one request or tunnel ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every byte arrived and the SHA-256 matched.
    Intact,
    /// Bytes arrived that differ from what was sent or served.
    Corrupt(String),
    /// The proxy answered with this status instead of relaying.
    Refused(u16),
    /// The connection ended early; what arrived was an intact prefix.
    Cut,
    /// The client reset the connection on purpose (SO_LINGER 0) mid-transfer.
    Reset,
    /// The proxy could not be reached or did not answer in time.
    Broken(String),
}

/// One tunnel or request and how it went.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub ended: Ended,
    /// Status of the proxy's answer (CONNECT reply or response), 0 when none.
    pub status: u16,
    /// Payload bytes relayed back to the client.
    pub bytes: u64,
    /// Payload bytes the client sent into a tunnel.
    pub sent: u64,
}

impl Transfer {
    fn broken(e: impl std::fmt::Display) -> Transfer {
        Transfer {
            ended: Ended::Broken(e.to_string()),
            status: 0,
            bytes: 0,
            sent: 0,
        }
    }
}

/// `CONNECT target`, then sends `ECHO` + `payload` and reads it back. With `reset_after`,
/// the client sends that many payload bytes, then resets.
pub async fn tunnel(
    proxy: SocketAddr,
    target: &str,
    payload: &[u8],
    reset_after: Option<usize>,
) -> Transfer {
    let mut tcp = match TcpStream::connect(proxy).await {
        Ok(t) => t,
        Err(e) => return Transfer::broken(e),
    };
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    if let Err(e) = tcp.write_all(request.as_bytes()).await {
        return Transfer::broken(e);
    }
    let (status, _head, early) = match read_head(&mut tcp).await {
        Ok(h) => h,
        Err(e) => return Transfer::broken(e),
    };
    if status != 200 {
        return Transfer {
            ended: Ended::Refused(status),
            status,
            bytes: 0,
            sent: 0,
        };
    }
    let mut framed = ECHO.to_vec();
    framed.extend_from_slice(payload);
    if let Some(cut) = reset_after {
        let cut = ECHO.len() + cut.min(payload.len());
        let sent = match tcp.write_all(&framed[..cut]).await {
            Ok(()) => (cut - ECHO.len()) as u64,
            Err(_) => 0,
        };
        return reset(tcp, status, sent);
    }
    let (mut r, mut w) = tcp.split();
    let send = async {
        match w.write_all(&framed).await {
            Ok(()) => payload.len() as u64,
            Err(_) => 0,
        }
    };
    let receive = async {
        let mut got = early;
        let mut chunk = vec![0u8; 16 * 1024];
        while got.len() < payload.len() {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
        got
    };
    let (sent, got) = tokio::join!(send, receive);
    Transfer {
        ended: compare(&got, payload),
        status,
        bytes: got.len() as u64,
        sent,
    }
}

/// `GET http://target/blob/SEED/LEN` through the proxy. With `reset_after`, the client
/// resets once it has read that many body bytes.
pub async fn http_get(
    proxy: SocketAddr,
    target: &str,
    seed: u64,
    len: usize,
    reset_after: Option<usize>,
) -> Transfer {
    let mut tcp = match TcpStream::connect(proxy).await {
        Ok(t) => t,
        Err(e) => return Transfer::broken(e),
    };
    let request = format!(
        "GET http://{target}/blob/{seed}/{len} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = tcp.write_all(request.as_bytes()).await {
        return Transfer::broken(e);
    }
    let (status, head, mut body) = match read_head(&mut tcp).await {
        Ok(h) => h,
        Err(e) => return Transfer::broken(e),
    };
    if status != 200 {
        return Transfer {
            ended: Ended::Refused(status),
            status,
            bytes: 0,
            sent: 0,
        };
    }
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if reset_after.is_some_and(|cut| body.len() >= cut) {
            return reset(tcp, status, 0);
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding: chunked") {
        body = match dechunk(&body) {
            Some(b) => b,
            None => {
                return Transfer {
                    ended: Ended::Cut,
                    status,
                    bytes: body.len() as u64,
                    sent: 0,
                }
            }
        };
    }
    let expected = blob(seed, len);
    let mut ended = compare(&body, &expected);
    let announced = header(&lower, "x-soak-sha256");
    if ended == Ended::Intact && announced.as_deref() != Some(&sha256_hex(&expected)) {
        ended = Ended::Corrupt(format!("origin checksum header {announced:?}"));
    }
    Transfer {
        ended,
        status,
        bytes: body.len() as u64,
        sent: 0,
    }
}

/// Resets the connection: SO_LINGER 0, then close (an RST, not a FIN).
fn reset(tcp: TcpStream, status: u16, sent: u64) -> Transfer {
    let ended = match tcp.set_zero_linger() {
        Ok(()) => Ended::Reset,
        Err(e) => Ended::Broken(format!("SO_LINGER: {e}")),
    };
    drop(tcp);
    Transfer {
        ended,
        status,
        bytes: 0,
        sent,
    }
}

/// Intact when `got` is `want`; cut when it is a shorter prefix; corrupt otherwise.
fn compare(got: &[u8], want: &[u8]) -> Ended {
    if got.len() > want.len() {
        return Ended::Corrupt(format!("{} bytes, {} expected", got.len(), want.len()));
    }
    if got != &want[..got.len()] {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
        return Ended::Corrupt(format!("byte {at} of {} differs", want.len()));
    }
    if got.len() < want.len() {
        return Ended::Cut;
    }
    if sha256_hex(got) == sha256_hex(want) {
        Ended::Intact
    } else {
        Ended::Corrupt("SHA-256 differs".into())
    }
}

/// Reads a response head: its status, the head text, and the bytes read past it.
async fn read_head(tcp: &mut TcpStream) -> Result<(u16, String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        match tcp.read(&mut chunk).await {
            Ok(0) => return Err(format!("closed after {} head bytes", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, head, buf[end..].to_vec()))
}

/// The value of header `name` in a lower-cased head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim() == name).then(|| v.trim().to_string())
    })
}

/// Decodes a complete chunked body; `None` when it is incomplete.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
