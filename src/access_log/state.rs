//! The access log's state file (`access-log.state` in the state directory): the last
//! sequence number and chain, how far numbers are reserved, whether the run stopped in
//! order, and the lost records not yet reported in the log. It is what makes `seq`
//! monotonic across restarts and what carries a count the log could not write at
//! shutdown (a full disk) to the next start.
//!
//! The file is written in place, never grown: two fixed slots, each a JSON value with a
//! checksum, written alternately and synced, so a crash mid-write leaves the other slot,
//! and a full disk does not stop the write (the blocks are allocated when the file is
//! made). An exclusive lock keeps a second process off the same state.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FILE_NAME: &str = "access-log.state";
const SLOT: usize = 4096;
/// Lost ranges of numbered records kept for the next report; more are merged.
const MAX_SEQ_RANGES: usize = 64;

/// What the state file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub generation: u64,
    /// The last line written and its chain (hex).
    pub seq: u64,
    pub chain: String,
    /// No number above this has been used: after an unclean stop, numbering goes on
    /// above it.
    pub reserved: u64,
    /// The run that wrote this stopped in order (its stop checkpoint is `seq`).
    pub clean: bool,
    /// Lost records not yet reported in the log, and when the first and last were lost
    /// (Unix milliseconds).
    pub lost: u64,
    pub lost_from_ms: u64,
    pub lost_to_ms: u64,
    /// Numbers of records sent but not delivered, among `lost`.
    pub lost_seqs: Vec<(u64, u64)>,
}

pub struct StateFile {
    file: File,
    path: PathBuf,
    generation: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: in use by another lbo-proxy process (each needs its own [state] dir)", path.display())]
    Locked { path: PathBuf },
}

impl StateFile {
    /// Opens (creating the directory and the file as needed) and locks the state file,
    /// and returns what it held (`None`: a new file).
    pub fn open(dir: &Path) -> Result<(StateFile, Option<Saved>), StateError> {
        let path = dir.join(FILE_NAME);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                StateError::Locked { path }
            } else {
                io(e)
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() < 2 * SLOT {
            // Allocate both slots now, while there is room.
            bytes.resize(2 * SLOT, 0);
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let saved = [&bytes[..SLOT], &bytes[SLOT..2 * SLOT]]
            .into_iter()
            .filter_map(parse)
            .max_by_key(|s| s.generation);
        let generation = saved.as_ref().map_or(0, |s| s.generation);
        Ok((
            StateFile {
                file,
                path,
                generation,
            },
            saved,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `saved` (with the next generation) over the older slot and syncs it.
    pub fn save(&mut self, saved: &Saved) -> std::io::Result<()> {
        let mut saved = saved.clone();
        saved.generation = self.generation + 1;
        let slot = encode(&saved)?;
        let offset = (saved.generation % 2) * SLOT as u64;
        self.file.write_all_at(&slot, offset)?;
        self.file.sync_data()?;
        self.generation = saved.generation;
        Ok(())
    }
}

/// Adds a range of lost numbers, merging with the last when adjacent and keeping the list
/// short (the oldest two merge into one span, which then also covers numbers that were
/// written: the verifier reports them as found, not as lost).
pub fn add_range(ranges: &mut Vec<(u64, u64)>, from: u64, to: u64) {
    if let Some(last) = ranges.last_mut() {
        if last.1 + 1 == from {
            last.1 = to;
            return;
        }
    }
    ranges.push((from, to));
    if ranges.len() > MAX_SEQ_RANGES {
        let second = ranges.remove(1);
        ranges[0].1 = second.1;
    }
}

fn encode(saved: &Saved) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(saved)?;
    let mut slot = json.clone();
    slot.push(b' ');
    slot.extend_from_slice(checksum(&json).as_bytes());
    slot.push(b'\n');
    if slot.len() > SLOT {
        return Err(std::io::Error::other("state does not fit its slot"));
    }
    slot.resize(SLOT, 0);
    Ok(slot)
}

fn parse(slot: &[u8]) -> Option<Saved> {
    let end = slot.iter().position(|&b| b == b'\n')?;
    let text = &slot[..end];
    let space = text.iter().rposition(|&b| b == b' ')?;
    let (json, sum) = (&text[..space], &text[space + 1..]);
    (checksum(json).as_bytes() == sum)
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

fn checksum(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(seq: u64) -> Saved {
        Saved {
            seq,
            chain: "ab".repeat(32),
            reserved: seq + 100,
            clean: true,
            lost: 3,
            lost_from_ms: 1,
            lost_to_ms: 2,
            lost_seqs: vec![(4, 5)],
            ..Saved::default()
        }
    }

    #[test]
    fn the_newest_good_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (mut f, none) = StateFile::open(&state).unwrap();
        assert_eq!(none, None);
        f.save(&saved(10)).unwrap();
        f.save(&saved(20)).unwrap();
        drop(f);
        let (mut f, got) = StateFile::open(&state).unwrap();
        assert_eq!(got.as_ref().map(|s| s.seq), Some(20));
        assert_eq!(got.unwrap().generation, 2);
        f.save(&saved(30)).unwrap();
        drop(f);
        // A torn write of the newest slot: the one before stands.
        let path = state.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (_, got) = StateFile::open(&state).unwrap();
        assert_eq!(got.map(|s| s.seq), Some(20));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * SLOT as u64);
    }

    #[test]
    fn a_second_process_is_kept_out() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, _) = StateFile::open(dir.path()).unwrap();
        let e = StateFile::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("in use by another lbo-proxy"), "{e}");
    }

    #[test]
    fn lost_ranges_merge_and_stay_few() {
        let mut r = Vec::new();
        add_range(&mut r, 5, 6);
        add_range(&mut r, 7, 9);
        assert_eq!(r, [(5, 9)]);
        for i in 0..100 {
            add_range(&mut r, 20 + i * 10, 21 + i * 10);
        }
        assert_eq!(r.len(), MAX_SEQ_RANGES);
        assert_eq!(r[0].0, 5);
        assert_eq!(r.last(), Some(&(1010, 1011)));
    }
}
