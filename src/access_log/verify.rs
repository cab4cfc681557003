//! `lbo-proxy log verify`: walks access-log files in order (rotated ones too, gzip
//! included) and reports every line deleted, edited, moved or cut, every number missing,
//! and every line no valid signature covers, each with its `seq` range. Pure over the
//! bytes read; the chain is recomputed from the lines as written (`line.rs`).
//!
//! A line is trusted when the chain from a valid signed checkpoint reaches it unbroken
//! and a later valid checkpoint signs the chain it ends in. Every file starts with a
//! checkpoint (`start` or `open`), so a file can be checked alone.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::keys::PublicKey;
use super::line::{self, Kind, PreviousStop};

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

/// The members of a line the walk reads.
#[derive(Deserialize)]
struct Fields {
    seq: u64,
    event: Option<String>,
    kind: Option<Kind>,
    prev: Option<String>,
    key: Option<String>,
    previous_stop: Option<PreviousStop>,
    count: Option<u64>,
    #[serde(default)]
    seqs: Vec<(u64, u64)>,
}

struct Line {
    at: At,
    canonical: Vec<u8>,
    chain: [u8; 32],
    fields: Fields,
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

#[derive(Default)]
struct Walk {
    /// The chain each number states (its first line).
    chains: std::collections::HashMap<u64, [u8; 32]>,
    max_seen: Option<u64>,
    seen: BTreeSet<u64>,
    /// Numbers the log reports as lost after they were sent.
    reported: Vec<(u64, u64)>,
    /// Where each start checkpoint after an unclean stop is.
    crashes: Vec<(u64, At)>,
    /// Where each line is, for the gap messages: (seq, at).
    firsts: Vec<(u64, At)>,
    /// Lines since the last valid checkpoint: first and last seq, count.
    unsigned: Option<(u64, u64, u64)>,
    /// Lines other than checkpoints right after a gap: their chain cannot be checked.
    after_gap: Vec<(u64, At)>,
    first_seq: Option<u64>,
}

impl Walk {
    fn line(&mut self, l: &Line, keys: &[PublicKey], report: &mut Report) {
        let seq = l.fields.seq;
        self.first_seq.get_or_insert(seq);
        let checkpoint = l.fields.event.as_deref() == Some("checkpoint");
        let mut continues = true;
        if let Some(max) = self.max_seen {
            if self.seen.contains(&seq) || seq <= max {
                report.problems.push(Problem::Reordered {
                    seq,
                    after: max,
                    at: l.at.clone(),
                });
                continues = false;
            } else if seq > max + 1 {
                self.firsts.push((seq, l.at.clone()));
                if !checkpoint {
                    self.after_gap.push((seq, l.at.clone()));
                }
                continues = false;
            }
        } else if !checkpoint {
            report.problems.push(Problem::Unanchored {
                seq,
                at: l.at.clone(),
            });
        }
        self.seen.insert(seq);
        self.max_seen = Some(self.max_seen.map_or(seq, |m| m.max(seq)));

        // The chain this line must continue: that of the number before, when that line is
        // there; otherwise a checkpoint's own `prev` (the first line, after a gap).
        let before = seq
            .checked_sub(1)
            .and_then(|p| self.chains.get(&p))
            .copied();
        let stated_prev = l
            .fields
            .prev
            .as_deref()
            .and_then(|p| line::unhex(p.as_bytes()));
        // A checkpoint is checked against the `prev` it signs; whether that is the line
        // before is judged below, by what it vouches for.
        let anchor = if checkpoint {
            stated_prev.or(before)
        } else {
            before
        };
        if let Some(prev) = anchor {
            if line::chain_of(&prev, &l.canonical) != l.chain {
                report.problems.push(if checkpoint {
                    Problem::BadCheckpoint {
                        seq,
                        at: l.at.clone(),
                        why: "its chain does not match its bytes".into(),
                    }
                } else {
                    Problem::Modified {
                        seq,
                        at: l.at.clone(),
                    }
                });
            }
        }

        if checkpoint {
            report.checkpoints += 1;
            match signature(l, keys) {
                Ok(()) => {
                    // It vouches for the lines since the last checkpoint if it continues
                    // them; otherwise (an unclean restart) they stay unsigned.
                    let vouches = continues && before.is_some() && stated_prev == before;
                    let unclean = l.fields.previous_stop == Some(PreviousStop::Unclean);
                    match (self.unsigned, vouches) {
                        (Some((a, b, _)), false) if continues && !unclean => {
                            report.problems.push(Problem::Rechained {
                                from: a,
                                to: b,
                                checkpoint: seq,
                            })
                        }
                        (Some((a, b, n)), false) => report.problems.push(Problem::Unsigned {
                            from: a,
                            to: b,
                            lines: n,
                        }),
                        _ => {}
                    }
                    self.unsigned = None;
                }
                Err(why) => {
                    report.problems.push(Problem::BadCheckpoint {
                        seq,
                        at: l.at.clone(),
                        why,
                    });
                    self.add_unsigned(seq);
                }
            }
            if l.fields.kind == Some(Kind::Start)
                && l.fields.previous_stop == Some(PreviousStop::Unclean)
            {
                self.crashes.push((seq, l.at.clone()));
            }
        } else {
            self.add_unsigned(seq);
            match l.fields.event.as_deref() {
                None => report.records += 1,
                Some("records_lost") => {
                    report.reported_lost += l.fields.count.unwrap_or(0);
                    self.reported.extend(&l.fields.seqs);
                }
                Some(_) => {}
            }
        }
    }

    fn add_unsigned(&mut self, seq: u64) {
        self.unsigned = Some(match self.unsigned {
            None => (seq, seq, 1),
            Some((a, _, n)) => (a, seq, n + 1),
        });
    }

    fn finish(self, report: &mut Report) {
        if let Some((a, b, n)) = self.unsigned {
            report.problems.push(Problem::Unsigned {
                from: a,
                to: b,
                lines: n,
            });
        }
        if let Some(first) = self.first_seq.filter(|&s| s > 1) {
            report.notes.push(format!(
                "the files begin at seq {first}: earlier lines are not among them (older files removed by rotation, or not given)"
            ));
        }
        // Missing numbers, each range once, told apart by what explains it.
        let Some(max) = self.max_seen else { return };
        let mut missing = Vec::new();
        let mut expect = self.first_seq.unwrap_or(1);
        for &s in &self.seen {
            if s > expect {
                missing.push((expect, s - 1));
            }
            expect = expect.max(s + 1);
        }
        let _ = max;
        for (from, to) in missing {
            let before = self
                .firsts
                .iter()
                .find(|(s, _)| *s == to + 1)
                .map(|(_, at)| at.clone())
                .unwrap_or(At {
                    file: "?".into(),
                    line: 0,
                });
            let covered = |a: u64, b: u64| {
                (a..=b).all(|n| self.reported.iter().any(|(x, y)| (*x..=*y).contains(&n)))
            };
            if covered(from, to) {
                report.notes.push(format!(
                    "seq {} not delivered: the log reports them lost (records_lost)",
                    range(from, to)
                ));
                if let Some((seq, at)) = self.after_gap.iter().find(|(s, _)| *s == to + 1) {
                    report.problems.push(Problem::Unanchored {
                        seq: *seq,
                        at: at.clone(),
                    });
                }
            } else if self.crashes.iter().any(|(s, _)| *s == to + 1) {
                report.problems.push(Problem::Crash { from, to, before });
            } else {
                report.problems.push(Problem::Gap { from, to, before });
            }
        }
    }
}

fn parse(raw: &[u8], at: At) -> Result<Line, At> {
    let (canonical, chain) = line::split_chain(raw).ok_or_else(|| at.clone())?;
    let fields: Fields = serde_json::from_slice(&canonical).map_err(|_| at.clone())?;
    Ok(Line {
        at,
        canonical,
        chain,
        fields,
    })
}

fn signature(l: &Line, keys: &[PublicKey]) -> Result<(), String> {
    let Some((signed, sig)) = line::split_sig(&l.canonical) else {
        return Err("not signed (the appliance had no log.signing_key)".into());
    };
    let fingerprint = l.fields.key.as_deref().unwrap_or("");
    let Some(key) = keys.iter().find(|k| k.fingerprint() == fingerprint) else {
        return Err(format!(
            "signed by {fingerprint}, which is not among the keys given"
        ));
    };
    if key.verify(&signed, sig) {
        Ok(())
    } else {
        Err("the signature does not verify: the checkpoint or a line before it was altered".into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::keys::{generate, SigningKey};
    use super::super::line::{checkpoint, lost, record, Head, GENESIS};
    use super::*;
    use crate::outcome::Outcome;

    struct Log {
        key: SigningKey,
        public: PublicKey,
        head: Head,
        lines: Vec<Vec<u8>>,
        _dir: tempfile::TempDir,
    }

    impl Log {
        fn new() -> Log {
            let dir = tempfile::tempdir().unwrap();
            let (k, p) = (dir.path().join("k"), dir.path().join("k.pub"));
            let public = generate(&k, &p).unwrap();
            Log {
                key: SigningKey::load(&k).unwrap(),
                public,
                head: Head {
                    seq: 0,
                    chain: GENESIS,
                },
                lines: Vec::new(),
                _dir: dir,
            }
        }

        fn push(&mut self, f: impl FnOnce(&mut Vec<u8>, u64, &[u8; 32]) -> [u8; 32]) {
            let mut out = Vec::new();
            let seq = self.head.seq + 1;
            let chain = f(&mut out, seq, &self.head.chain);
            self.head = Head { seq, chain };
            self.lines.push(out);
        }

        fn records(&mut self, n: usize) {
            for i in 0..n {
                let o = Outcome {
                    target: Some(format!("host{i}.example:443")),
                    start: SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64),
                    ..Outcome::default()
                };
                self.push(|out, seq, prev| record(out, seq, prev, &o));
            }
        }

        /// A `records_lost` line for `count` records, `seqs` among them numbered.
        fn lost(&mut self, count: u64, seqs: &[(u64, u64)]) {
            let span = (SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH);
            self.push(|out, seq, prev| lost(out, seq, prev, count, span, seqs));
        }

        fn checkpoint(&mut self, kind: Kind, stop: Option<PreviousStop>, signed: bool) {
            let key = signed.then(|| self.key.clone());
            self.push(|out, seq, prev| {
                checkpoint(
                    out,
                    seq,
                    prev,
                    kind,
                    SystemTime::UNIX_EPOCH,
                    stop,
                    key.as_ref(),
                )
            });
        }

        fn input(&self, name: &str, lines: &[Vec<u8>]) -> Input {
            let mut bytes = Vec::new();
            for l in lines {
                bytes.extend_from_slice(l);
                bytes.push(b'\n');
            }
            Input::from_bytes(name.into(), &bytes)
        }
    }

    /// Two files as rotation leaves them: start, records, rotate | open, records, stop.
    fn rotated() -> (Log, usize) {
        let mut log = Log::new();
        log.checkpoint(Kind::Start, Some(PreviousStop::None), true);
        log.records(5);
        log.checkpoint(Kind::Rotate, None, true);
        let split = log.lines.len();
        log.checkpoint(Kind::Open, None, true);
        log.records(5);
        log.lost(3, &[]);
        log.checkpoint(Kind::Stop, None, true);
        (log, split)
    }

    fn run(log: &Log, files: &[(&str, Vec<Vec<u8>>)]) -> Report {
        let inputs: Vec<Input> = files.iter().map(|(n, l)| log.input(n, l)).collect();
        verify(&inputs, &[log.public])
    }

    #[test]
    fn untouched_files_verify_in_any_order() {
        let (log, split) = rotated();
        let (a, b) = (log.lines[..split].to_vec(), log.lines[split..].to_vec());
        let r = run(&log, &[("b", b.clone()), ("a", a.clone())]);
        assert!(r.ok(), "{r}");
        assert_eq!((r.records, r.checkpoints, r.reported_lost), (10, 4, 3));
        assert_eq!(r.files[0].0, "a");
        // The second file alone: it starts with its own anchor.
        let r = run(&log, &[("b", b)]);
        assert!(r.ok(), "{r}");
        assert!(r.notes[0].contains("begin at seq 8"), "{r}");
    }

    #[test]
    fn every_kind_of_edit_is_found() {
        let (log, split) = rotated();
        let all = log.lines.clone();
        let text = |i: usize| String::from_utf8(all[i].clone()).unwrap();
        let problems = |lines: Vec<Vec<u8>>| run(&log, &[("f", lines)]).problems;

        let mut deleted = all.clone();
        deleted.remove(3);
        assert!(matches!(
            problems(deleted)[..],
            [Problem::Gap { from: 4, to: 4, .. }]
        ));

        let mut edited = all.clone();
        edited[3] = text(3)
            .replace("host2.example", "host9.example")
            .into_bytes();
        assert!(matches!(
            problems(edited)[..],
            [Problem::Modified { seq: 4, .. }]
        ));

        let mut swapped = all.clone();
        swapped.swap(2, 3);
        let p = problems(swapped);
        assert!(
            matches!(
                p[..],
                [Problem::Reordered {
                    seq: 3,
                    after: 4,
                    ..
                }]
            ),
            "{p:?}"
        );

        let mut cut = all.clone();
        let last = cut.len() - 1;
        cut[last].truncate(40);
        let p = problems(cut);
        assert!(
            p.iter().any(|p| matches!(p, Problem::Damaged { .. })),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| matches!(p, Problem::Unsigned { .. })),
            "{p:?}"
        );

        // A truncated first file: its tail is missing, and what is left of it is signed
        // by nothing.
        let r = run(
            &log,
            &[("a", all[..2].to_vec()), ("b", all[split..].to_vec())],
        );
        assert!(
            matches!(
                r.problems[..],
                [
                    Problem::Unsigned { from: 2, to: 2, .. },
                    Problem::Gap { from: 3, to: 7, .. }
                ]
            ),
            "{r}"
        );

        // Rechained: an edit whose chain is recomputed up to the stop checkpoint.
        let mut forged = Log::new();
        forged.key = log.key.clone();
        forged.public = log.public;
        for (i, l) in all.iter().enumerate().take(all.len() - 1) {
            let mut l = String::from_utf8(l.clone()).unwrap();
            if i == 10 {
                l = l.replace("host2.example", "evil.example");
            }
            let (canonical, _) = line::split_chain(l.as_bytes()).unwrap();
            let chain = line::chain_of(&forged.head.chain, &canonical);
            let mut out = canonical[..canonical.len() - 1].to_vec();
            out.extend_from_slice(format!(",\"chain\":\"{}\"}}", line::hex(&chain)).as_bytes());
            forged.head = Head {
                seq: forged.head.seq + 1,
                chain,
            };
            forged.lines.push(out);
        }
        forged.lines.push(all[all.len() - 1].clone());
        let r = verify(&[forged.input("f", &forged.lines)], &[log.public]);
        assert!(
            matches!(
                r.problems[..],
                [Problem::Rechained {
                    from: 9,
                    to: 14,
                    checkpoint: 15
                }]
            ),
            "{r}"
        );
    }

    #[test]
    fn an_unclean_restart_shows_the_unsigned_tail_and_the_gap() {
        let mut log = Log::new();
        log.checkpoint(Kind::Start, Some(PreviousStop::None), true);
        log.records(3);
        log.checkpoint(Kind::Interval, None, true);
        log.records(2); // seq 6, 7: written, then the process was killed
        let stale = log.lines[4].clone(); // the state file's chain is older
        let (_, stale_chain) = line::split_chain(&stale).unwrap();
        log.head = Head {
            seq: 65_536,
            chain: stale_chain,
        };
        log.checkpoint(Kind::Start, Some(PreviousStop::Unclean), true);
        log.records(1);
        log.checkpoint(Kind::Stop, None, true);
        let r = run(&log, &[("f", log.lines.clone())]);
        assert!(
            matches!(
                r.problems[..],
                [
                    Problem::Unsigned {
                        from: 6,
                        to: 7,
                        lines: 2
                    },
                    Problem::Crash {
                        from: 8,
                        to: 65_536,
                        ..
                    }
                ]
            ),
            "{r}"
        );
        assert!(r.to_string().contains("unclean stop"), "{r}");
    }

    #[test]
    fn signatures_must_be_there_and_be_good() {
        let mut log = Log::new();
        log.checkpoint(Kind::Start, Some(PreviousStop::None), false);
        log.records(1);
        log.checkpoint(Kind::Stop, None, true);
        let r = run(&log, &[("f", log.lines.clone())]);
        assert!(
            matches!(&r.problems[..], [Problem::BadCheckpoint { seq: 1, why, .. }] if why.contains("not signed")),
            "{r}"
        );
        let other = Log::new();
        let r = verify(&[log.input("f", &log.lines[2..])], &[other.public]);
        assert!(r.problems.iter().any(|p| matches!(p, Problem::BadCheckpoint { why, .. } if why.contains("not among the keys"))), "{r}");
        // A number lost after it was sent, and reported with its seq by the next run,
        // is a note; the line before it has no signature that reaches it.
        let mut log = Log::new();
        log.checkpoint(Kind::Start, Some(PreviousStop::None), true);
        log.records(2);
        log.checkpoint(Kind::Start, Some(PreviousStop::Clean), true);
        log.lost(1, &[(3, 3)]);
        log.checkpoint(Kind::Stop, None, true);
        let mut lines = log.lines.clone();
        lines.remove(2); // the undelivered record
        let r = run(&log, &[("f", lines)]);
        assert!(
            matches!(r.problems[..], [Problem::Unsigned { from: 2, to: 2, .. }]),
            "{r}"
        );
        assert!(r.notes.iter().any(|n| n.contains("not delivered")), "{r}");
        // The same gap followed by a record: nothing can check that record.
        let mut log = Log::new();
        log.checkpoint(Kind::Start, Some(PreviousStop::None), true);
        log.records(2);
        log.lost(1, &[(3, 3)]);
        log.checkpoint(Kind::Stop, None, true);
        let mut lines = log.lines.clone();
        lines.remove(2);
        let r = run(&log, &[("f", lines)]);
        assert!(
            r.problems
                .iter()
                .any(|p| matches!(p, Problem::Unanchored { seq: 4, .. })),
            "{r}"
        );
    }

    #[test]
    fn a_siem_export_is_checked_by_seq() {
        let (log, _) = rotated();
        let mut lines = log.lines.clone();
        lines.swap(2, 4);
        let inputs = [log.input("siem", &lines)];
        assert!(!verify(&inputs, &[log.public]).ok());
        let r = verify_in(&inputs, &[log.public], Order::BySeq);
        assert!(r.ok(), "{r}");
        lines.push(lines[3].clone());
        let r = verify_in(&[log.input("siem", &lines)], &[log.public], Order::BySeq);
        assert!(
            r.problems
                .iter()
                .any(|p| matches!(p, Problem::Reordered { .. })),
            "{r}"
        );
    }

    #[test]
    fn gzip_is_read() {
        let (log, _) = rotated();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for l in &log.lines {
            std::io::Write::write_all(&mut gz, l).unwrap();
            std::io::Write::write_all(&mut gz, b"\n").unwrap();
        }
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let r = verify(&[Input::read(&path).unwrap()], &[log.public]);
        assert!(r.ok(), "{r}");
    }
}
