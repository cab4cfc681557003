//! The verifier on logs built line by line, with every kind of edit.

use std::time::{Duration, SystemTime};

use super::*;
use crate::access_log::keys::{generate, SigningKey};
use crate::access_log::line::{self, checkpoint, lost, record, Head, Kind, PreviousStop, GENESIS};
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
