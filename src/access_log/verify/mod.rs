//! `lbo-proxy log verify`: walks access-log files in order (rotated ones too, gzip
//! included) and reports every line deleted, edited, moved or cut, every number missing,
//! and every line no valid signature covers, each with its `seq` range. Pure over the
//! bytes read; the chain is recomputed from the lines as written (`line.rs`).
//!
//! A line is trusted when the chain from a valid signed checkpoint reaches it unbroken
//! and a later valid checkpoint signs the chain it ends in. Every file starts with a
//! checkpoint (`start` or `open`), so a file can be checked alone.

use std::fmt;
use std::io::Read;
use std::path::Path;

mod walk;

use super::keys::PublicKey;
use walk::{parse, Line, Walk};

/// One file's lines, as read.
pub struct Input {
    pub name: String,
    pub lines: Vec<Vec<u8>>,
}

impl Input {
    /// Reads a file, uncompressing it when it is gzip (logrotate's `compress`).
    pub fn read(path: &Path) -> std::io::Result<Input> {
        let raw = std::fs::read(path)?;
        let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
            out
        } else {
            raw
        };
        Ok(Input::from_bytes(path.display().to_string(), &bytes))
    }

    pub fn from_bytes(name: String, bytes: &[u8]) -> Input {
        let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        if bytes.ends_with(b"\n") || bytes.is_empty() {
            lines.pop();
        }
        Input { name, lines }
    }
}

/// Where a line is: file and 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Numbers missing that no `records_lost` line accounts for: lines deleted, or a
    /// file removed.
    Gap { from: u64, to: u64, before: At },
    /// Numbers skipped across a run that stopped without a shutdown (kill, crash, power
    /// loss): records that run had queued were not written and could not be counted.
    Crash { from: u64, to: u64, before: At },
    /// The line's bytes are not what its chain says.
    Modified { seq: u64, at: At },
    /// A number that comes after a higher one, or a second time.
    Reordered { seq: u64, after: u64, at: At },
    /// Not a whole record line: cut (a crash, a truncated file) or edited beyond parsing.
    Damaged { at: At },
    /// Lines no valid signature covers (the end of the files, or a run that ended
    /// without its stop checkpoint).
    Unsigned { from: u64, to: u64, lines: u64 },
    /// A checkpoint whose signature does not verify, or that is not signed.
    BadCheckpoint { seq: u64, at: At, why: String },
    /// The first line is not a checkpoint: nothing anchors it (a file is missing before).
    Unanchored { seq: u64, at: At },
    /// The lines before a valid checkpoint do not end in the chain it signed: one of them
    /// was altered and the chain recomputed to hide it.
    Rechained { from: u64, to: u64, checkpoint: u64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Gap { from, to, before } => write!(
                f,
                "gap: seq {} missing ({}) before {before}: lines deleted or a file left out",
                range(*from, *to),
                lines(to - from + 1)
            ),
            Problem::Crash { from, to, before } => write!(
                f,
                "gap: seq {} missing before {before}, where the next run starts after an unclean stop (kill, crash, power loss): records it had queued were not written and are not counted",
                range(*from, *to)
            ),
            Problem::Modified { seq, at } => {
                write!(f, "modified: seq {seq} at {at}: the line is not what its chain says")
            }
            Problem::Reordered { seq, after, at } => {
                write!(f, "reordered: seq {seq} at {at} comes after seq {after}")
            }
            Problem::Damaged { at } => {
                write!(f, "damaged: {at} is not a whole access-log line (cut or edited)")
            }
            Problem::Unsigned { from, to, lines: n } => write!(
                f,
                "unsigned: seq {} ({}) after the last valid checkpoint: no signature covers them",
                range(*from, *to),
                lines(*n)
            ),
            Problem::BadCheckpoint { seq, at, why } => {
                write!(f, "bad checkpoint: seq {seq} at {at}: {why}")
            }
            Problem::Unanchored { seq, at } => write!(
                f,
                "unanchored: seq {seq} at {at} is not preceded by a checkpoint: give the file before it"
            ),
            Problem::Rechained { from, to, checkpoint } => write!(
                f,
                "modified: seq {} do not end in the chain checkpoint seq {checkpoint} signed: a line was altered and the chain recomputed",
                range(*from, *to)
            ),
        }
    }
}

fn lines(n: u64) -> String {
    if n == 1 {
        "1 line".into()
    } else {
        format!("{n} lines")
    }
}

fn range(from: u64, to: u64) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}..{to}")
    }
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Report {
    /// Each file's name and its seq range, in the order walked.
    pub files: Vec<(String, Option<(u64, u64)>)>,
    pub problems: Vec<Problem>,
    pub records: u64,
    pub checkpoints: u64,
    /// Records the log itself reports as lost (`records_lost` lines).
    pub reported_lost: u64,
    pub notes: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, r) in &self.files {
            match r {
                Some((a, b)) => writeln!(f, "{name}: seq {}", range(*a, *b))?,
                None => writeln!(f, "{name}: no numbered line")?,
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for p in &self.problems {
            writeln!(f, "FAIL {p}")?;
        }
        writeln!(
            f,
            "{} records, {} checkpoints, {} records reported lost by the log itself; {}",
            self.records,
            self.checkpoints,
            self.reported_lost,
            match self.problems.len() {
                0 => "verified: no line missing, altered, moved or unsigned".to_string(),
                n => format!("{n} problem{}", if n == 1 { "" } else { "s" }),
            }
        )
    }
}

/// How lines are put in order before the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Files by their first `seq`, lines as they are in each file: a line out of place is
    /// a finding.
    AsWritten,
    /// Every line by its `seq`: for a SIEM's export of what it received over several
    /// connections, which may interleave. Reordering is then not a finding (a number
    /// twice still is).
    BySeq,
}

/// Verifies `inputs` (in any order: they are walked by their first `seq`) against the
/// public keys that may have signed.
pub fn verify(inputs: &[Input], keys: &[PublicKey]) -> Report {
    verify_in(inputs, keys, Order::AsWritten)
}

pub fn verify_in(inputs: &[Input], keys: &[PublicKey], order: Order) -> Report {
    let mut report = Report::default();
    // Parse, then order the files by their first number.
    let mut files: Vec<(String, Vec<Result<Line, At>>)> = inputs
        .iter()
        .map(|input| {
            let lines = input
                .lines
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    parse(
                        raw,
                        At {
                            file: input.name.clone(),
                            line: i + 1,
                        },
                    )
                })
                .collect();
            (input.name.clone(), lines)
        })
        .collect();
    files.sort_by_key(|(_, lines)| {
        lines
            .iter()
            .find_map(|l| l.as_ref().ok().map(|l| l.fields.seq))
    });
    if order == Order::BySeq {
        let name = files
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        let mut all: Vec<Result<Line, At>> = files.into_iter().flat_map(|(_, l)| l).collect();
        all.sort_by_key(|l| l.as_ref().map_or(u64::MAX, |l| l.fields.seq));
        files = vec![(format!("{name} (by seq)"), all)];
    }

    let mut walk = Walk::default();
    // Each number's stated chain, so a line is checked against the line that should come
    // before it, wherever that is (two swapped lines are a reordering, not two edits).
    for l in files
        .iter()
        .flat_map(|(_, l)| l)
        .filter_map(|l| l.as_ref().ok())
    {
        walk.chains.entry(l.fields.seq).or_insert(l.chain);
    }
    for (name, lines) in &files {
        let seqs: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.as_ref().ok())
            .map(|l| l.fields.seq)
            .collect();
        let span = seqs.first().zip(seqs.last()).map(|(a, b)| (*a, *b));
        report.files.push((name.clone(), span));
        for l in lines {
            match l {
                Ok(l) => walk.line(l, keys, &mut report),
                Err(at) => report.problems.push(Problem::Damaged { at: at.clone() }),
            }
        }
    }
    walk.finish(&mut report);
    report
}

#[cfg(test)]
mod tests;
