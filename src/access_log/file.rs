//! A file the log is appended to (or standard output, the journal under systemd). Each
//! batch of lines goes out in one `write`; the count of whole lines that reached the
//! file is exact: a short write (a full disk) is cut back to the last whole line, so a
//! record is in the file whole or not at all, and a file that ends inside a line (a
//! crash, or a cut that could not be undone) gets a newline before the next line. A
//! file is reopened by name on SIGUSR1, so logrotate can move it away without
//! `copytruncate`. Plain blocking calls: they run on the access log's own thread.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub(super) struct FileSink {
    /// `None`: standard output.
    path: Option<PathBuf>,
    out: File,
    /// A regular file (one that can be cut back and synced), not a pipe or terminal.
    regular: bool,
    /// The file ends inside a line: the next write starts with a newline.
    cut: bool,
}

impl FileSink {
    pub(super) fn open(path: PathBuf) -> std::io::Result<FileSink> {
        let out = open_append(&path)?;
        FileSink::new(Some(path), out)
    }

    /// Standard output, written without Rust's buffer so each batch is one `write`.
    pub(super) fn stdout() -> std::io::Result<FileSink> {
        let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
        FileSink::new(None, File::from(fd))
    }

    fn new(path: Option<PathBuf>, mut out: File) -> std::io::Result<FileSink> {
        let regular = out.metadata()?.is_file();
        let cut = regular && !ends_with_newline(&mut out)?;
        Ok(FileSink {
            path,
            out,
            regular,
            cut,
        })
    }

    pub(super) fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "standard output".into(), |p| p.display().to_string())
    }

    /// Writes `buf`, whole lines each ending at one of `ends`; returns how many of them
    /// are in the file, and the error that stopped the rest.
    pub(super) fn write(&mut self, buf: &[u8], ends: &[usize]) -> (usize, Option<std::io::Error>) {
        if self.cut {
            match self.out.write(b"\n") {
                Ok(1) => self.cut = false,
                Ok(_) => return (0, Some(std::io::ErrorKind::WriteZero.into())),
                Err(e) => return (0, Some(e)),
            }
        }
        let mut done = 0;
        let error = loop {
            if done == buf.len() {
                break None;
            }
            match self.out.write(&buf[done..]) {
                Ok(0) => break Some(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let whole = ends.partition_point(|&end| end <= done);
        let partial = done - whole.checked_sub(1).map_or(0, |i| ends[i]);
        if partial > 0 {
            self.cut_back(partial as u64);
        }
        (whole, error)
    }

    /// Removes the `partial` bytes of a line that did not fit, or failing that, marks the
    /// file as ending inside a line.
    fn cut_back(&mut self, partial: u64) {
        let trimmed = self.regular
            && self
                .out
                .metadata()
                .and_then(|m| self.out.set_len(m.len().saturating_sub(partial)))
                .is_ok();
        if !trimmed {
            self.cut = true;
        }
    }

    /// A named file (reopened on rotation), not standard output.
    pub(super) fn is_named(&self) -> bool {
        self.path.is_some()
    }

    /// `fdatasync`, for regular files (a pipe has nothing to sync).
    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        if self.regular {
            self.out.sync_data()
        } else {
            Ok(())
        }
    }

    /// Continues in a new file at the same path (logrotate moved the old one away). If it
    /// cannot be opened, writing goes on to the old one and the error is returned.
    pub(super) fn reopen(&mut self) -> std::io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        *self = FileSink::open(path.clone())?;
        tracing::info!(path = %path.display(), "access log reopened");
        Ok(())
    }
}

fn ends_with_newline(f: &mut File) -> std::io::Result<bool> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for l in text.split_inclusive('\n') {
            buf.extend_from_slice(l.as_bytes());
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn a_file_cut_inside_a_line_gets_a_newline_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "{\"whole\":1}\n{\"cut").unwrap();
        let mut f = FileSink::open(path.clone()).unwrap();
        let (buf, ends) = lines("{\"n\":2}\n{\"n\":3}\n");
        assert_eq!(f.write(&buf, &ends).0, 2);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"whole\":1}\n{\"cut\n{\"n\":2}\n{\"n\":3}\n"
        );
        // An empty file or one that ends a line needs nothing.
        let mut f = FileSink::open(path.clone()).unwrap();
        assert!(!f.cut);
        assert_eq!(f.write(b"x\n", &[2]).0, 1);
        let empty = dir.path().join("b.log");
        assert!(!FileSink::open(empty).unwrap().cut);
    }

    /// /dev/full answers every write with ENOSPC: nothing is in the file, all is counted.
    #[test]
    fn a_failed_write_says_how_many_lines_are_in() {
        let mut f = FileSink {
            path: None,
            out: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
            regular: false,
            cut: false,
        };
        let (buf, ends) = lines("a\nb\n");
        let (n, e) = f.write(&buf, &ends);
        assert_eq!(n, 0);
        assert_eq!(e.unwrap().raw_os_error(), Some(libc::ENOSPC));
        assert!(f.sync().is_ok());
    }

    #[test]
    fn reopen_follows_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = FileSink::open(path.clone()).unwrap();
        f.write(b"1\n", &[2]);
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        f.write(b"2\n", &[2]);
        f.reopen().unwrap();
        f.write(b"3\n", &[2]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log.1")).unwrap(),
            "1\n2\n"
        );
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(f.reopen().is_err());
    }
}
