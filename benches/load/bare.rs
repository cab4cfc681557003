//! The floor of this harness: the least a CONNECT relay can do, run as its own process like
//! the proxies (this bench's binary started again as `bare-relay PORT`). It reads the head,
//! connects to the port the head names on 127.0.0.1, answers 200 and copies both ways with
//! tokio's `copy_bidirectional`, on one thread: no policy, no DNS, no limits, no log, no
//! metrics. Its CPU per tunnel is what the kernel's loopback TCP and the runtime cost in
//! this harness, which no proxy here goes below; lbo-proxy's figure is read against it.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves on 127.0.0.1:`port` until killed.
pub fn serve(port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("binding the bare relay");
        loop {
            if let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(tunnel(tcp));
            }
        }
    });
}

async fn tunnel(mut client: TcpStream) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut head = [0u8; 512];
    let mut len = 0;
    while !head[..len].ends_with(b"\r\n\r\n") {
        match client.read(&mut head[len..]).await? {
            0 => return Ok(()),
            n => len += n,
        }
        if len == head.len() {
            return Err(io::Error::other("head too long"));
        }
    }
    let port = connect_port(&head[..len]).ok_or_else(|| io::Error::other("not a CONNECT"))?;
    let mut server = TcpStream::connect(("127.0.0.1", port)).await?;
    server.set_nodelay(true)?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// The port of `CONNECT host:port HTTP/1.1`.
pub fn connect_port(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut words = line.split(' ');
    if words.next()? != "CONNECT" {
        return None;
    }
    words.next()?.rsplit_once(':')?.1.parse().ok()
}
