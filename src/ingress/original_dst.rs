//! Where a redirected connection was going: nftables/iptables `redirect` rewrites the
//! destination to the appliance, and conntrack keeps the original, which
//! `SO_ORIGINAL_DST` reads back. The transparent listeners need it for the port (and, for
//! TLS without SNI, the address).

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The original destination of `tcp` if it was redirected to this listener; `None` when
/// it was not (no conntrack entry, or one whose destination is the listener itself).
pub fn redirected(tcp: &TcpStream) -> Option<SocketAddr> {
    let original = original_dst(tcp).ok()?;
    let local = tcp.local_addr().ok()?;
    (canonical(original) != canonical(local)).then_some(original)
}

/// `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6) of a connected socket. IPv4
/// clients of a dual-stack listener are IPv4 to conntrack, so the family follows the
/// peer, and the answer is given as plain IPv4.
#[cfg(target_os = "linux")]
pub fn original_dst(tcp: &TcpStream) -> io::Result<SocketAddr> {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    match canonical(tcp.peer_addr()?) {
        SocketAddr::V4(_) => ipv4(fd),
        SocketAddr::V6(_) => ipv6(fd),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn original_dst(_tcp: &TcpStream) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_ORIGINAL_DST is Linux only",
    ))
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Reads one `sockaddr_*` option; `T` must be the plain C struct the kernel fills in.
#[cfg(target_os = "linux")]
fn getsockopt<T>(fd: std::os::fd::RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes and outlives the call; the kernel
    // writes at most `len` bytes and reports the size it wrote.
    let rc = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<T>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected SO_ORIGINAL_DST size",
        ));
    }
    // SAFETY: zero-initialised, then filled by the kernel; all-zero is a valid sockaddr.
    Ok(unsafe { value.assume_init() })
}

#[cfg(target_os = "linux")]
fn ipv4(fd: std::os::fd::RawFd) -> io::Result<SocketAddr> {
    let a: libc::sockaddr_in = getsockopt(fd, libc::SOL_IP, libc::SO_ORIGINAL_DST)?;
    let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
    Ok(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
}

#[cfg(target_os = "linux")]
fn ipv6(fd: std::os::fd::RawFd) -> io::Result<SocketAddr> {
    let a: libc::sockaddr_in6 = getsockopt(fd, libc::SOL_IPV6, libc::IP6T_SO_ORIGINAL_DST)?;
    let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
    Ok(std::net::SocketAddrV6::new(
        ip,
        u16::from_be(a.sin6_port),
        a.sin6_flowinfo,
        a.sin6_scope_id,
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that was not redirected has no other original destination: either
    /// conntrack is absent (an error) or it names the listener itself.
    #[tokio::test]
    async fn not_redirected_on_plain_loopback() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(l) = tokio::net::TcpListener::bind(bind).await else {
                continue; // no IPv6 here
            };
            let addr = l.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = l.accept().await.unwrap();
            match original_dst(&server) {
                Ok(a) => assert_eq!(a, addr),
                Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
            }
            assert_eq!(redirected(&server), None);
            drop(client);
        }
    }
}
