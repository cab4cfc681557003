//! The bytes of one access-log line, pure: `{"seq":N,` the record's fields, then
//! `,"chain":"<hex>"}`, where the chain is SHA-256 of the previous line's chain and this
//! line's canonical bytes (the line without its `chain` member). The verifier recomputes
//! it from the bytes as written, never from a re-serialisation, so any change to a line
//! shows. Checkpoints also carry `sig`, an Ed25519 signature over the checkpoint's bytes
//! before `sig`, which include `prev` (the chain of the line before) and so vouch for every
//! line up to it.

use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::keys::SigningKey;
use crate::outcome::{rfc3339, Outcome};

/// The chain "before" the very first line.
pub const GENESIS: [u8; 32] = [0; 32];

/// What a checkpoint signature covers is this, then the checkpoint's bytes before `sig`:
/// a signature made for anything else can never pass as one.
pub const SIGNED_PREFIX: &[u8] = b"lbo-proxy access-log checkpoint v1\n";

const CHAIN_KEY: &[u8] = b",\"chain\":\"";
const SIG_KEY: &[u8] = b",\"sig\":\"";

/// The last line written: the next one continues from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub chain: [u8; 32],
}

impl Head {
    pub const START: Head = Head {
        seq: 0,
        chain: GENESIS,
    };
}

/// Appends the line of one record (without newline) and returns its chain.
pub fn record(out: &mut Vec<u8>, seq: u64, prev: &[u8; 32], outcome: &Outcome) -> [u8; 32] {
    body(out, seq, prev, outcome)
}

/// Why a checkpoint was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The writer started: the first line of this run.
    Start,
    /// The first line of a file reopened after rotation or a reload that changed the
    /// sink: verification of this file alone starts here.
    Open,
    /// The last line of a file before rotation (SIGUSR1) or a change of sink.
    Rotate,
    /// `log.checkpoint_interval` passed.
    Interval,
    /// The last line of an orderly shutdown.
    Stop,
}

/// How the run before this one ended, as the state file tells (start checkpoints only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviousStop {
    /// No state file: the first run with this state directory.
    None,
    /// An orderly shutdown: this line continues the chain of its stop checkpoint.
    Clean,
    /// Killed, crashed or powered off: the numbers it had reserved are skipped, records it
    /// had queued but not written are missing, uncounted.
    Unclean,
    /// The state directory could not be used: numbering starts again at 1.
    StateUnavailable,
}

#[derive(Serialize)]
struct CheckpointBody<'a> {
    event: &'static str,
    kind: Kind,
    #[serde(serialize_with = "as_rfc3339")]
    time: SystemTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_stop: Option<PreviousStop>,
    prev: &'a str,
    /// The fingerprint of the key that signed, or null for an unsigned log.
    key: Option<String>,
}

/// Appends a checkpoint line, signed when there is a key, and returns its chain.
pub fn checkpoint(
    out: &mut Vec<u8>,
    seq: u64,
    prev: &[u8; 32],
    kind: Kind,
    time: SystemTime,
    previous_stop: Option<PreviousStop>,
    key: Option<&SigningKey>,
) -> [u8; 32] {
    let prev_hex = hex(prev);
    let cp = CheckpointBody {
        event: "checkpoint",
        kind,
        time,
        previous_stop,
        prev: &prev_hex,
        key: key.map(|k| k.public().fingerprint()),
    };
    let start = out.len();
    open(out, seq);
    serialize_members(out, &cp);
    if let Some(key) = key {
        let mut signed = SIGNED_PREFIX.to_vec();
        signed.extend_from_slice(&out[start..]);
        signed.push(b'}');
        out.extend_from_slice(SIG_KEY);
        out.extend_from_slice(key.sign(&signed).as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
    close(out, start, prev)
}

#[derive(Serialize)]
struct LostBody<'a> {
    event: &'static str,
    count: u64,
    #[serde(serialize_with = "as_rfc3339")]
    from: SystemTime,
    #[serde(serialize_with = "as_rfc3339")]
    to: SystemTime,
    /// Numbers of records that were sent and then not delivered (a collector connection
    /// dropped with them unacknowledged), so the verifier can tell them from deletions.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    seqs: &'a [(u64, u64)],
}

/// Appends the report of `count` lost records, the first lost at `from`, the last at `to`.
pub fn lost(
    out: &mut Vec<u8>,
    seq: u64,
    prev: &[u8; 32],
    count: u64,
    (from, to): (SystemTime, SystemTime),
    seqs: &[(u64, u64)],
) -> [u8; 32] {
    let report = LostBody {
        event: "records_lost",
        count,
        from,
        to,
        seqs,
    };
    body(out, seq, prev, &report)
}

fn body<T: Serialize>(out: &mut Vec<u8>, seq: u64, prev: &[u8; 32], value: &T) -> [u8; 32] {
    let start = out.len();
    open(out, seq);
    serialize_members(out, value);
    out.push(b'}');
    close(out, start, prev)
}

fn open(out: &mut Vec<u8>, seq: u64) {
    use std::io::Write as _;
    out.extend_from_slice(b"{\"seq\":");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{seq}");
}

/// The members of `value`'s JSON object, after a comma, without the braces.
fn serialize_members<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    let at = out.len();
    // Serialising plain data into a Vec cannot fail; an object has at least one member.
    if serde_json::to_writer(&mut *out, value).is_ok() && out.len() > at + 2 {
        out[at] = b',';
        out.pop();
    } else {
        out.truncate(at);
    }
}

/// Chains the canonical bytes `out[start..]` and appends the `chain` member.
fn close(out: &mut Vec<u8>, start: usize, prev: &[u8; 32]) -> [u8; 32] {
    let chain = chain_of(prev, &out[start..]);
    out.pop();
    out.extend_from_slice(CHAIN_KEY);
    push_hex(out, &chain);
    out.extend_from_slice(b"\"}");
    chain
}

pub fn chain_of(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// A line split into its canonical bytes and the chain it states; `None` when the line
/// does not end in a `chain` member (cut, or not a record of ours).
pub fn split_chain(line: &[u8]) -> Option<(Vec<u8>, [u8; 32])> {
    let at = rfind(line, CHAIN_KEY)?;
    let rest = &line[at + CHAIN_KEY.len()..];
    if rest.len() != 64 + 2 || &rest[64..] != b"\"}" {
        return None;
    }
    let chain = unhex(&rest[..64])?;
    let mut canonical = line[..at].to_vec();
    canonical.push(b'}');
    Some((canonical, chain))
}

/// The bytes a checkpoint's signature covers, and the signature; `None`: no signature.
pub fn split_sig(canonical: &[u8]) -> Option<(Vec<u8>, &str)> {
    let at = rfind(canonical, SIG_KEY)?;
    let rest = canonical.get(at + SIG_KEY.len()..canonical.len().checked_sub(2)?)?;
    if !canonical.ends_with(b"\"}") {
        return None;
    }
    let sig = std::str::from_utf8(rest).ok()?;
    let mut signed = SIGNED_PREFIX.to_vec();
    signed.extend_from_slice(&canonical[..at]);
    signed.push(b'}');
    Some((signed, sig))
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

pub fn hex(bytes: &[u8; 32]) -> String {
    let mut out = Vec::with_capacity(64);
    push_hex(&mut out, bytes);
    String::from_utf8_lossy(&out).into_owned()
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

pub fn unhex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn a_record_line_starts_with_its_seq_and_ends_with_its_chain() {
        let o = Outcome {
            start: at(1_795_435_200_123),
            listener: "explicit",
            ..Outcome::default()
        };
        let mut out = Vec::new();
        let chain = record(&mut out, 7, &GENESIS, &o);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"seq":7,"start":"2026-11-23T12:00:00.123Z","#),
            "{text}"
        );
        assert!(text.ends_with(&format!(r#","chain":"{}"}}"#, hex(&chain))));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["seq"], 7);
        assert_eq!(v["listener"], "explicit");
        let (canonical, stated) = split_chain(&out).unwrap();
        assert_eq!(stated, chain);
        assert_eq!(chain_of(&GENESIS, &canonical), chain);
        let v: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
        assert!(v.get("chain").is_none());
    }

    #[test]
    fn the_chain_covers_every_byte_and_the_line_before() {
        let mut a = Vec::new();
        let first = lost(&mut a, 1, &GENESIS, 3, (at(0), at(1000)), &[]);
        let mut b = Vec::new();
        let second = lost(&mut b, 2, &first, 3, (at(0), at(1000)), &[]);
        assert_ne!(first, second);
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(text.starts_with(
            r#"{"seq":1,"event":"records_lost","count":3,"from":"1970-01-01T00:00:00.000Z","to":"1970-01-01T00:00:01.000Z","chain":""#
        ), "{text}");
        let edited = String::from_utf8(b.clone())
            .unwrap()
            .replace("\"count\":3", "\"count\":2");
        let (canonical, stated) = split_chain(edited.as_bytes()).unwrap();
        assert_ne!(chain_of(&first, &canonical), stated);
        let (canonical, stated) = split_chain(&b).unwrap();
        assert_eq!(chain_of(&first, &canonical), stated);
        assert_ne!(chain_of(&GENESIS, &canonical), stated);
        assert!(split_chain(&b[..b.len() - 1]).is_none());
        assert!(split_chain(b"{\"seq\":1}").is_none());
    }

    #[test]
    fn a_signed_checkpoint_vouches_for_its_prev() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k"), dir.path().join("k.pub"));
        let public_key = super::super::keys::generate(&private, &public).unwrap();
        let key = SigningKey::load(&private).unwrap();
        let prev = [7u8; 32];
        let mut out = Vec::new();
        let chain = checkpoint(
            &mut out,
            9,
            &prev,
            Kind::Start,
            at(1000),
            Some(PreviousStop::Clean),
            Some(&key),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "checkpoint");
        assert_eq!(v["kind"], "start");
        assert_eq!(v["previous_stop"], "clean");
        assert_eq!(v["prev"], hex(&prev));
        assert_eq!(v["key"], public_key.fingerprint());
        let (canonical, stated) = split_chain(&out).unwrap();
        assert_eq!(chain_of(&prev, &canonical), chain);
        assert_eq!(stated, chain);
        let (signed, sig) = split_sig(&canonical).unwrap();
        assert!(public_key.verify(&signed, sig));
        let forged = String::from_utf8(signed.clone())
            .unwrap()
            .replace(&hex(&prev), &hex(&[8; 32]));
        assert!(!public_key.verify(forged.as_bytes(), sig));

        let mut unsigned = Vec::new();
        checkpoint(
            &mut unsigned,
            10,
            &chain,
            Kind::Interval,
            at(2000),
            None,
            None,
        );
        let v: serde_json::Value = serde_json::from_slice(&unsigned).unwrap();
        assert_eq!(v["key"], serde_json::Value::Null);
        assert!(v.get("previous_stop").is_none());
        let (canonical, _) = split_chain(&unsigned).unwrap();
        assert!(split_sig(&canonical).is_none());
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex(hex(&bytes).as_bytes()), Some(bytes));
        assert_eq!(unhex(b"zz"), None);
        assert_eq!(unhex(&[b'G'; 64]), None);
    }
}
