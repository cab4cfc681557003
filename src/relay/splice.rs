//! The Linux zero-copy relay direction, when both ends are bare TCP sockets: bytes go
//! socket → pipe → socket inside the kernel (splice(2)) and never through user memory.
//! A direction waits for its socket to be readable before it takes a pipe from the
//! per-thread pool, keeps it while bytes keep coming, and gives it back empty when the
//! socket has nothing more: an idle tunnel holds no pipe. Should no pipe be available
//! (file descriptor limit), the burst goes through a pooled buffer instead.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::copy::{give_buffer, take_buffer};
use super::pool::Pool;
use super::{Activity, Blame, RelayEnd};

/// Capacity asked for each pipe (the unprivileged maximum): fewer, larger splices on a busy
/// tunnel. A pipe holds pages only while bytes are in it, and only while taken from the
/// pool, so an idle tunnel costs nothing for it.
const PIPE_BYTES: usize = 1024 * 1024;
/// Pipes kept per thread (two descriptors each).
const POOLED: usize = 64;

thread_local! {
    static PIPES: Pool<Pipe> = const { Pool::new(POOLED) };
}

/// An empty pipe whose two ends are non-blocking.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes one splice into it may move: its capacity.
    capacity: usize,
}

impl Pipe {
    /// A pooled pipe, or a new one.
    fn take() -> io::Result<Pipe> {
        if let Some(pipe) = PIPES.try_with(Pool::take).ok().flatten() {
            return Ok(pipe);
        }
        let mut fds: [RawFd; 2] = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: `write` is an open pipe descriptor; a refusal (a lower pipe-max-size, or
        // the user's pipe quota) leaves the default 64 KiB, which is then what is asked.
        let set = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_BYTES as libc::c_int,
            )
        };
        let capacity = if set > 0 { set as usize } else { 64 * 1024 };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Back to the pool; only an empty pipe may be given back.
    fn give(self) {
        let _ = PIPES.try_with(move |p| p.give(self));
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors, no offsets; the kernel checks both descriptors.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// How one burst of bytes ended.
enum Burst {
    /// The source has nothing more for now.
    Drained,
    /// The source sent EOF (or was reset after its last byte).
    Eof,
}

/// Copies `from` to `to` until EOF (then shuts `to`'s write half) or an error. `pending`
/// (bytes already read from `from`) goes first.
pub async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    pending: bytes::Bytes,
    count: &AtomicU64,
    activity: &Activity,
    blame: Blame,
) -> Result<(), RelayEnd> {
    if !pending.is_empty() {
        write_all(to, &pending).await.map_err(|_| blame.write)?;
        count.fetch_add(pending.len() as u64, Ordering::Relaxed);
        activity.touch();
    }
    // Its buffer (a request head's, a ClientHello's) must not stay with an idle tunnel.
    drop(pending);
    loop {
        from.readable().await.map_err(|_| blame.read)?;
        let burst = match Pipe::take() {
            Ok(pipe) => through_pipe(from, to, pipe, count, activity, &blame).await?,
            Err(_) => through_buffer(from, to, count, activity, &blame).await?,
        };
        if let Burst::Eof = burst {
            // Half-close: the peer sees EOF, the other direction goes on.
            // SAFETY: `to` is an open socket for the duration of the call.
            unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
            return Ok(());
        }
    }
}

/// Splices while `from` has bytes. A pipe that failed with bytes in it is closed, not
/// pooled.
async fn through_pipe(
    from: &TcpStream,
    to: &TcpStream,
    pipe: Pipe,
    count: &AtomicU64,
    activity: &Activity,
    blame: &Blame,
) -> Result<Burst, RelayEnd> {
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    loop {
        let filled = from.try_io(Interest::READABLE, || {
            splice(src, pipe.write.as_raw_fd(), pipe.capacity)
        });
        let mut n = match filled {
            Ok(0) => {
                pipe.give();
                return Ok(Burst::Eof);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pipe.give();
                return Ok(Burst::Drained);
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                pipe.give();
                return Ok(Burst::Eof);
            }
            Err(_) => return Err(blame.read),
        };
        let moved = n;
        while n > 0 {
            to.writable().await.map_err(|_| blame.write)?;
            match to.try_io(Interest::WRITABLE, || splice(pipe.read.as_raw_fd(), dst, n)) {
                Ok(m) => n -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(blame.write),
            }
        }
        count.fetch_add(moved as u64, Ordering::Relaxed);
        activity.touch();
    }
}

/// One read through a pooled buffer, when no pipe could be had.
async fn through_buffer(
    from: &TcpStream,
    to: &TcpStream,
    count: &AtomicU64,
    activity: &Activity,
    blame: &Blame,
) -> Result<Burst, RelayEnd> {
    let mut buf = take_buffer();
    let burst = match from.try_read(&mut buf) {
        Ok(0) => Ok(Burst::Eof),
        Ok(n) => match write_all(to, &buf[..n]).await {
            Ok(()) => {
                count.fetch_add(n as u64, Ordering::Relaxed);
                activity.touch();
                Ok(Burst::Drained)
            }
            Err(_) => Err(blame.write),
        },
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Burst::Drained),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Burst::Eof),
        Err(_) => Err(blame.read),
    };
    give_buffer(buf);
    burst
}

async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
