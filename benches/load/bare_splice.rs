//! The throughput floor of this harness: a CONNECT relay that moves bytes the cheapest way
//! Linux has, and does nothing else (this bench's binary started again as
//! `bare-splice PORT`). Each direction is a thread in a loop of blocking `splice(2)`
//! socket → 1 MiB pipe → socket: no readiness polling, no runtime, no accounting. What it
//! reaches through one tunnel is the most any splice relay reaches here, so lbo-proxy's
//! 1-tunnel figure is read against it as well as against no proxy.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::bare::connect_port;

const PIPE_BYTES: usize = 1024 * 1024;

/// Serves on 127.0.0.1:`port` until killed, a thread per tunnel and one more per direction.
pub fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the splice relay");
    for client in listener.incoming().flatten() {
        std::thread::spawn(move || tunnel(client));
    }
}

fn tunnel(mut client: TcpStream) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut head = [0u8; 512];
    let mut len = 0;
    while !head[..len].ends_with(b"\r\n\r\n") {
        match client.read(&mut head[len..])? {
            0 => return Ok(()),
            n => len += n,
        }
        if len == head.len() {
            return Err(io::Error::other("head too long"));
        }
    }
    let port = connect_port(&head[..len]).ok_or_else(|| io::Error::other("not a CONNECT"))?;
    let server = TcpStream::connect(("127.0.0.1", port))?;
    server.set_nodelay(true)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let (c, s) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || pump(&c, &s));
    let down = pump(&server, &client);
    let _ = up.join();
    down
}

/// `from` → pipe → `to` until EOF, then passes the EOF on.
fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let (read, write) = pipe()?;
    loop {
        let n = splice(from.as_raw_fd(), write.as_raw_fd(), PIPE_BYTES)?;
        if n == 0 {
            return to.shutdown(Shutdown::Write);
        }
        let mut left = n;
        while left > 0 {
            left -= splice(read.as_raw_fd(), to.as_raw_fd(), left)?;
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: an open pipe; a refusal leaves the default size, which still works.
    unsafe {
        libc::fcntl(
            write.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            PIPE_BYTES as libc::c_int,
        )
    };
    Ok((read, write))
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors and no offsets; the kernel checks both.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
