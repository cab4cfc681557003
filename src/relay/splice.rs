//! The Linux zero-copy relay, when both ends of a tunnel are bare TCP sockets: bytes go
//! socket → pipe → socket inside the kernel (splice(2)) and never through user memory.
//! A direction waits for its socket to be readable before it takes a pipe from the
//! per-thread pool, keeps it while bytes keep coming, and gives it back empty when the
//! socket has nothing more: an idle tunnel holds no pipe. Should no pipe be available
//! (file descriptor limit), the burst goes through a pooled buffer instead.
//!
//! Each direction is a small state machine polled by hand, not an `async fn`: an idle
//! tunnel's task then holds two of them (a few dozen bytes each) and one timer.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::copy::{give_buffer, take_buffer};
use super::pool::Pool;
use super::watchdog::Watchdog;
use super::{Activity, Blame, Limits, RelayEnd, RelayStats};

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
    /// Pieces it holds (pages of capacity): each piece is at least one byte, so a splice
    /// that moved fewer bytes than this did not stop because the pipe was full.
    slots: usize,
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
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        Ok(Pipe {
            read,
            write,
            capacity,
            slots: capacity / page.max(1),
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

/// Relays `client` ⇄ `server` until both directions are done, an error, a limit or
/// `stop`. `first` holds the bytes read ahead of each socket (client's, server's), which
/// go out before anything else.
pub async fn relay<F: Future<Output = ()>>(
    client: &TcpStream,
    server: &TcpStream,
    first: [Bytes; 2],
    limits: Limits,
    stats: &RelayStats,
    activity: &Activity,
    mut stop: Pin<&mut F>,
) -> RelayEnd {
    let [up_first, down_first] = first;
    let mut up = Direction::new(up_first, Blame::CLIENT_TO_SERVER);
    let mut down = Direction::new(down_first, Blame::SERVER_TO_CLIENT);
    let mut watchdog = pin!(Watchdog::new(limits));
    poll_fn(|cx| {
        // First: once stopped, not one more byte moves (a tunnel closed by a reload must
        // not carry the answer to a request that came after).
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(RelayEnd::Shutdown);
        }
        let up = up.poll(cx, client, server, &stats.bytes_up, activity);
        if let Poll::Ready(Err(end)) = up {
            return Poll::Ready(end);
        }
        let down = down.poll(cx, server, client, &stats.bytes_down, activity);
        if let Poll::Ready(Err(end)) = down {
            return Poll::Ready(end);
        }
        if up.is_ready() && down.is_ready() {
            return Poll::Ready(RelayEnd::Finished);
        }
        watchdog.as_mut().poll(cx, activity)
    })
    .await
}

/// One direction of a tunnel, from one socket to the other.
struct Direction {
    step: Step,
    blame: Blame,
}

enum Step {
    /// Bytes read ahead of the source (a request head's tail, a ClientHello), written first.
    First(Bytes),
    /// Waiting for the source to be readable; holds nothing.
    Idle,
    /// A burst through a pipe; `held` bytes are in it, not yet written. `drained`: the
    /// last splice into it emptied the source, so once `held` is out the burst is over.
    Pipe {
        pipe: Pipe,
        held: usize,
        drained: bool,
    },
    /// A burst through a pooled buffer (no pipe could be had); `buf[at..end]` is unwritten.
    Buffer {
        buf: Box<[u8]>,
        at: usize,
        end: usize,
    },
    /// EOF passed on: the destination's write half is shut.
    Done,
}

impl Direction {
    fn new(first: Bytes, blame: Blame) -> Self {
        Direction {
            step: Step::First(first),
            blame,
        }
    }

    /// Moves what can be moved now. Ready(Ok) once EOF has been passed on.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &TcpStream,
        count: &AtomicU64,
        activity: &Activity,
    ) -> Poll<Result<(), RelayEnd>> {
        let Blame { read, write } = self.blame;
        let moved = |n: usize| {
            count.fetch_add(n as u64, Ordering::Relaxed);
            activity.touch();
        };
        loop {
            let next = match &mut self.step {
                Step::Done => return Poll::Ready(Ok(())),
                Step::First(bytes) if bytes.is_empty() => Step::Idle,
                Step::First(bytes) => {
                    ready!(to.poll_write_ready(cx)).map_err(|_| write)?;
                    match to.try_write(bytes) {
                        Ok(n) => {
                            bytes.advance(n);
                            moved(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Poll::Ready(Err(write)),
                    }
                    continue;
                }
                Step::Idle => {
                    ready!(from.poll_read_ready(cx)).map_err(|_| read)?;
                    match Pipe::take() {
                        Ok(pipe) => Step::Pipe {
                            pipe,
                            held: 0,
                            drained: false,
                        },
                        Err(_) => Step::Buffer {
                            buf: take_buffer(),
                            at: 0,
                            end: 0,
                        },
                    }
                }
                Step::Pipe { pipe, held, .. } if *held > 0 => {
                    ready!(to.poll_write_ready(cx)).map_err(|_| write)?;
                    let (out, dst) = (pipe.read.as_raw_fd(), to.as_raw_fd());
                    match to.try_io(Interest::WRITABLE, || splice(out, dst, *held)) {
                        Ok(n) => {
                            *held -= n;
                            moved(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        // The pipe still holds bytes: it is closed with the tunnel.
                        Err(_) => return Poll::Ready(Err(write)),
                    }
                    continue;
                }
                Step::Pipe { drained: true, .. } => Step::Idle,
                Step::Pipe {
                    pipe,
                    held,
                    drained,
                } => {
                    ready!(from.poll_read_ready(cx)).map_err(|_| read)?;
                    let (src, into) = (from.as_raw_fd(), pipe.write.as_raw_fd());
                    let mut short = 0;
                    let spliced = from.try_io(Interest::READABLE, || {
                        let n = splice(src, into, pipe.capacity)?;
                        if n > 0 && n < pipe.slots {
                            // Fewer bytes than slots: the socket's queue is empty now.
                            // Answering WouldBlock has tokio clear its readiness (unless
                            // an event came meanwhile), as a short read() does, and
                            // saves the splice that would only say EAGAIN.
                            short = n;
                            return Err(io::ErrorKind::WouldBlock.into());
                        }
                        Ok(n)
                    });
                    match spliced {
                        Ok(0) => Step::Done,
                        Ok(n) => {
                            *held = n;
                            continue;
                        }
                        Err(_) if short > 0 => {
                            (*held, *drained) = (short, true);
                            continue;
                        }
                        Err(e) => match end_of_burst(e) {
                            Some(next) => next,
                            None => return Poll::Ready(Err(read)),
                        },
                    }
                }
                Step::Buffer { buf, at, end } if *at < *end => {
                    ready!(to.poll_write_ready(cx)).map_err(|_| write)?;
                    match to.try_write(&buf[*at..*end]) {
                        Ok(n) => {
                            *at += n;
                            moved(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Poll::Ready(Err(write)),
                    }
                    continue;
                }
                Step::Buffer { buf, at, end } => {
                    ready!(from.poll_read_ready(cx)).map_err(|_| read)?;
                    match from.try_read(buf) {
                        Ok(0) => Step::Done,
                        Ok(n) => {
                            (*at, *end) = (0, n);
                            continue;
                        }
                        Err(e) => match end_of_burst(e) {
                            Some(next) => next,
                            None => return Poll::Ready(Err(read)),
                        },
                    }
                }
            };
            // The burst is over: an empty pipe or buffer goes back to the pool.
            match std::mem::replace(&mut self.step, next) {
                Step::Pipe { pipe, .. } => pipe.give(),
                Step::Buffer { buf, .. } => give_buffer(buf),
                _ => {}
            }
            if let Step::Done = self.step {
                // Half-close: the peer sees EOF, the other direction goes on.
                // SAFETY: `to` is an open socket for the duration of the call.
                unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
            }
        }
    }
}

/// What a failed read from the source means: it has nothing more for now (wait again),
/// it is finished (a reset after its last byte counts as EOF), or it failed (`None`).
fn end_of_burst(e: io::Error) -> Option<Step> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Some(Step::Idle),
        io::ErrorKind::ConnectionReset => Some(Step::Done),
        _ => None,
    }
}
