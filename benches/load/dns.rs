//! A DNS responder on loopback for the benchmark: every A query gets 127.0.0.1, every
//! other type "no data" with an SOA, as a real resolver says it, so that the answer is
//! cached (RFC 2308) and each tunnel does not cost a query. Just enough for the proxy's
//! resolver to reach the origin.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Starts the responder; it runs until the runtime ends.
pub async fn start() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binding DNS");
    let addr = socket.local_addr().expect("DNS address");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if let Some(reply) = answer(&buf[..n]) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    addr
}

/// The reply to one query (the first question only), or `None` for garbage.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    const HEADER: usize = 12;
    let mut i = HEADER;
    while *query.get(i)? != 0 {
        i += 1 + usize::from(query[i]);
    }
    // The root label, then type and class.
    let end = i + 5;
    let question = query.get(HEADER..end)?;
    let is_a = question[question.len() - 4..question.len() - 2] == [0, 1];
    let mut reply = Vec::with_capacity(end + 40);
    reply.extend_from_slice(&query[..2]);
    // Response, recursion desired and available, no error; one question, then one answer
    // or one authority record.
    let (answers, authorities) = (u8::from(is_a), u8::from(!is_a));
    reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, answers, 0, authorities, 0, 0]);
    reply.extend_from_slice(question);
    // Every record's name is a pointer to the question's; class IN, TTL 3600.
    const HOUR: [u8; 4] = [0, 0, 0x0e, 0x10];
    if is_a {
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        reply.extend_from_slice(&HOUR);
        reply.extend_from_slice(&[0, 4, 127, 0, 0, 1]);
    } else {
        // SOA: root as both names, then serial, refresh, retry, expire and the minimum
        // that sets how long "no data" is cached.
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1]);
        reply.extend_from_slice(&HOUR);
        reply.extend_from_slice(&[0, 22, 0, 0, 0, 0, 0, 1]);
        for _ in 0..4 {
            reply.extend_from_slice(&HOUR);
        }
    }
    Some(reply)
}
