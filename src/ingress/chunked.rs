//! Where a chunked request body ends (RFC 9112 §7.1), found by reading its bytes as they
//! pass: the client connection hands the HTTP server one request at a time and must know
//! where the next head begins. Pure and incremental: bytes in, "need more", "ends here"
//! or "broken here" out. The HTTP server decodes the same bytes itself and answers a
//! broken body with its own error; this scanner only finds the boundary.

/// Longest chunk-size line (size, extensions, CRLF) and trailer section accepted.
const MAX_LINE: usize = 4096;
/// A chunk size of more hex digits than this cannot be meant (2^64).
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the chunk-size line: hex digits so far, and whether extensions began.
    Size {
        digits: u8,
        ext: bool,
        size: u64,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (after the last chunk).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// What the bytes given to [`Chunked::scan`] were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// All of them belong to the body, and it goes on.
    More,
    /// The body ends after this many of them.
    End(usize),
    /// The body is broken at this byte (0-based): what comes after is not a request.
    Broken(usize),
}

/// A chunked body being read.
#[derive(Clone, Debug)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size line or trailer section.
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size {
                digits: 0,
                ext: false,
                size: 0,
            },
            line: 0,
        }
    }
}

impl Chunked {
    pub fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data(left) = self.state {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = bytes[i];
            self.line += 1;
            if self.line > MAX_LINE {
                return Scan::Broken(i);
            }
            let next = match self.state {
                State::Size { digits, ext, size } => match b {
                    b'\r' if digits > 0 => Some(State::SizeLf { size }),
                    _ if ext => (b != b'\n').then_some(self.state),
                    b';' | b' ' | b'\t' if digits > 0 => Some(State::Size {
                        digits,
                        ext: true,
                        size,
                    }),
                    _ => (b as char).to_digit(16).and_then(|d| {
                        (digits < MAX_SIZE_DIGITS).then_some(State::Size {
                            digits: digits + 1,
                            ext: false,
                            size: size.checked_mul(16)?.checked_add(u64::from(d))?,
                        })
                    }),
                },
                State::SizeLf { size } if b == b'\n' => {
                    self.line = 0;
                    Some(if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    })
                }
                State::DataCr if b == b'\r' => Some(State::DataLf),
                State::DataLf if b == b'\n' => {
                    self.line = 0;
                    Some(State::Size {
                        digits: 0,
                        ext: false,
                        size: 0,
                    })
                }
                State::TrailerStart if b == b'\r' => Some(State::EndLf),
                State::TrailerStart | State::Trailer if b != b'\r' && b != b'\n' => {
                    Some(State::Trailer)
                }
                State::Trailer if b == b'\r' => Some(State::TrailerLf),
                State::TrailerLf if b == b'\n' => Some(State::TrailerStart),
                State::EndLf if b == b'\n' => Some(State::Done),
                _ => None,
            };
            match next {
                Some(State::Done) => {
                    self.state = State::Done;
                    return Scan::End(i + 1);
                }
                Some(s) => self.state = s,
                None => return Scan::Broken(i),
            }
            i += 1;
        }
        Scan::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: &[u8]) -> Scan {
        Chunked::default().scan(body)
    }

    #[test]
    fn finds_the_end_however_the_bytes_are_split() {
        let body = b"5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
        let end = body.len() - b"GET / HTTP/1.1\r\n".len();
        assert_eq!(whole(body), Scan::End(end));
        for cut in 1..end {
            let mut c = Chunked::default();
            assert_eq!(c.scan(&body[..cut]), Scan::More, "cut {cut}");
            assert_eq!(c.scan(&body[cut..]), Scan::End(end - cut), "cut {cut}");
        }
        for one in 0..end {
            let mut c = Chunked::default();
            let got: Vec<Scan> = body[..=one].iter().map(|b| c.scan(&[*b])).collect();
            let last = *got.last().unwrap();
            assert_eq!(last == Scan::End(1), one == end - 1, "byte {one}");
        }
        assert_eq!(whole(b"0\r\n\r\n"), Scan::End(5));
    }

    #[test]
    fn broken_bodies_say_where() {
        assert_eq!(whole(b"zz\r\nhello\r\n"), Scan::Broken(0));
        assert_eq!(whole(b"\r\n"), Scan::Broken(0));
        assert_eq!(whole(b"5\nhello"), Scan::Broken(1));
        assert_eq!(whole(b"5\r\nhelloXX"), Scan::Broken(8));
        assert_eq!(whole(b"0\r\nbad\n"), Scan::Broken(6));
        assert_eq!(whole(b"11111111111111111\r\n"), Scan::Broken(16));
        let long = [b"1;".as_slice(), &[b'x'; MAX_LINE]].concat();
        assert!(matches!(whole(&long), Scan::Broken(_)));
    }
}
