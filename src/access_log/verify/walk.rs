//! The walk over the lines, in order: what each line's number, chain and signature say,
//! and what is missing at the end.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{range, At, Problem, Report};
use crate::access_log::keys::PublicKey;
use crate::access_log::line::{self, Kind, PreviousStop};

/// The members of a line the walk reads.
#[derive(Deserialize)]
pub(super) struct Fields {
    pub(super) seq: u64,
    event: Option<String>,
    kind: Option<Kind>,
    prev: Option<String>,
    key: Option<String>,
    previous_stop: Option<PreviousStop>,
    count: Option<u64>,
    #[serde(default)]
    seqs: Vec<(u64, u64)>,
}

pub(super) struct Line {
    pub(super) at: At,
    canonical: Vec<u8>,
    pub(super) chain: [u8; 32],
    pub(super) fields: Fields,
}

#[derive(Default)]
pub(super) struct Walk {
    /// The chain each number states (its first line).
    pub(super) chains: std::collections::HashMap<u64, [u8; 32]>,
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
    pub(super) fn line(&mut self, l: &Line, keys: &[PublicKey], report: &mut Report) {
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

    pub(super) fn finish(self, report: &mut Report) {
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

pub(super) fn parse(raw: &[u8], at: At) -> Result<Line, At> {
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
