//! The origins behind the proxies, on loopback: echo servers (the tunnel workloads) and a
//! source that sends as many bytes as asked (the throughput workload).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes written per call by the source.
const CHUNK: usize = 256 * 1024;

pub struct Origin {
    /// Several echo ports, so that 100,000 connections from one proxy address do not run
    /// out of ephemeral ports towards one destination.
    pub echo_ports: Vec<u16>,
    pub source_port: u16,
}

impl Origin {
    pub async fn start(echo_listeners: usize) -> Origin {
        let mut echo_ports = Vec::new();
        for _ in 0..echo_listeners {
            let listener = bind().await;
            echo_ports.push(listener.local_addr().expect("echo address").port());
            tokio::spawn(accept(listener, echo));
        }
        let listener = bind().await;
        let source_port = listener.local_addr().expect("source address").port();
        tokio::spawn(accept(listener, source));
        Origin {
            echo_ports,
            source_port,
        }
    }

    /// Every port a proxy must allow.
    pub fn ports(&self) -> Vec<u16> {
        let mut p = self.echo_ports.clone();
        p.push(self.source_port);
        p
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an origin")
}

async fn accept<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(tcp));
            }
            // Out of descriptors: the workload sees the failure; wait instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Echoes until EOF. The buffer is small: 100,000 idle connections each hold one.
async fn echo(mut tcp: TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tcp.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads a big-endian u64 count, sends that many bytes, closes.
async fn source(mut tcp: TcpStream) {
    static DATA: std::sync::OnceLock<Arc<[u8]>> = std::sync::OnceLock::new();
    let data = DATA.get_or_init(|| vec![0x5a; CHUNK].into()).clone();
    let Ok(mut left) = tcp.read_u64().await else {
        return;
    };
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        if tcp.write_all(&data[..n]).await.is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = tcp.shutdown().await;
}
