//! Basic proxy authentication for a segment (RFC 9110 §11.7.2, RFC 7617): the users a
//! segment admits, read from an Apache `htpasswd` file, and the check of a request's
//! `Proxy-Authorization`. Credentials are never logged.
//!
//! Hashes as `htpasswd` writes them: bcrypt (`-B`, `$2y$`) by the `bcrypt` crate and
//! SHA-crypt (`-2` `$5$`, `-5` `$6$`) by RustCrypto's `sha-crypt`. Lines in plain text
//! (`user:password`, the appliance's first format) are still read: only a SHA-256 digest
//! of them is kept, compared in constant time against every such entry, and `check` and
//! the audit report them as a weakened safeguard. Refused, with the line: Debian's
//! default MD5-crypt (`$apr1$`, `-m`), `{SHA}` (`-s`) and crypt(3) (`-d`): MD5-crypt is a
//! thousand MD5 rounds that a graphics card tries by the billion, `{SHA}` one unsalted
//! SHA-1, crypt(3) keeps eight characters; a leaked file of them gives up its passwords,
//! and no well-kept Rust crate verifies MD5-crypt. `htpasswd -B` rewrites such a line.
//!
//! A verified credential is remembered (by its SHA-256) for the life of the
//! configuration, so a PC that opens a tunnel a second pays bcrypt once, not each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use sha2::{Digest, Sha256};

/// The `Proxy-Authenticate` challenge sent with a 407.
pub const CHALLENGE: &str = "Basic realm=\"lbo-proxy\", charset=\"UTF-8\"";

/// Credentials remembered per configuration; when full, the memory starts over.
const MAX_REMEMBERED: usize = 4096;

/// How one user's password is stored.
#[derive(Clone)]
enum Secret {
    /// SHA-256 of the whole `user:password` line.
    Plain([u8; 32]),
    Bcrypt(String),
    ShaCrypt(String),
}

#[derive(Clone)]
struct Entry {
    user: Arc<str>,
    secret: Secret,
    /// Stands for this entry as written: the same user with another password (or none)
    /// is another entry.
    fingerprint: u64,
}

/// Who a credential was checked to be: enough to tell, after a reload, whether the same
/// entry still admits it (credentials are not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub user: Arc<str>,
    pub fingerprint: u64,
}

/// The users of one segment.
pub struct Users {
    entries: Vec<Entry>,
    /// SHA-256 of a presented credential → the entry it matched, if any.
    remembered: Mutex<HashMap<[u8; 32], Option<usize>>>,
}

impl Clone for Users {
    fn clone(&self) -> Users {
        Users {
            entries: self.entries.clone(),
            remembered: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} entries, redacted)", self.entries.len())
    }
}

/// What a users file holds, for `check` and the audit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub plain: usize,
    pub bcrypt: usize,
    pub sha_crypt: usize,
}

impl Users {
    /// Reads a users file: one `user:hash` (or `user:password`) a line; blank lines and
    /// `#` comments are skipped. Errors name the line, never its content.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let at = |why: &str| format!("line {}: {why}", n + 1);
            let Some((user, stored)) = line.split_once(':') else {
                return Err(at("want user:password or user:hash"));
            };
            if user.is_empty() || stored.is_empty() {
                return Err(at("want user:password or user:hash"));
            }
            let secret = secret(line, stored).map_err(|why| at(&why))?;
            entries.push(Entry {
                user: Arc::from(user),
                secret,
                fingerprint: fingerprint(line),
            });
        }
        if entries.is_empty() {
            return Err("no users".into());
        }
        Ok(Users {
            entries,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// How many users are stored in which form.
    pub fn stored(&self) -> Stored {
        let mut s = Stored::default();
        for e in &self.entries {
            match e.secret {
                Secret::Plain(_) => s.plain += 1,
                Secret::Bcrypt(_) => s.bcrypt += 1,
                Secret::ShaCrypt(_) => s.sha_crypt += 1,
            }
        }
        s
    }

    /// Whether a `Proxy-Authorization` value names one of the users.
    pub fn admits(&self, header: Option<&[u8]>) -> bool {
        self.check(header).is_some()
    }

    /// The entry a `Proxy-Authorization` value matches, if any.
    pub fn check(&self, header: Option<&[u8]>) -> Option<Admitted> {
        let presented = header.and_then(basic_credentials)?;
        let key = digest(&presented);
        let known = self
            .remembered
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied());
        let found = match known {
            Some(found) => found,
            None => {
                let found = self.verify(&presented, &key);
                if let Ok(mut m) = self.remembered.lock() {
                    if m.len() >= MAX_REMEMBERED {
                        m.clear();
                    }
                    m.insert(key, found);
                }
                found
            }
        };
        found.map(|i| Admitted {
            user: self.entries[i].user.clone(),
            fingerprint: self.entries[i].fingerprint,
        })
    }

    /// Takes over what `old` (the same segment's users before a reload) had verified, for
    /// the entries that are still here as they were: a reload does not make every PC pay
    /// bcrypt again at once.
    pub fn inherit(&self, old: &Users) {
        let (Ok(from), Ok(mut to)) = (old.remembered.lock(), self.remembered.lock()) else {
            return;
        };
        for (key, found) in from.iter() {
            let Some(i) = found else { continue };
            let was = &old.entries[*i];
            let now = self
                .entries
                .iter()
                .position(|e| e.user == was.user && e.fingerprint == was.fingerprint);
            if let Some(j) = now {
                if to.len() < MAX_REMEMBERED {
                    to.insert(*key, Some(j));
                }
            }
        }
    }

    /// Whether the entry that admitted a credential is still here as it was.
    pub fn still_admits(&self, a: &Admitted) -> bool {
        self.entries
            .iter()
            .any(|e| e.user == a.user && e.fingerprint == a.fingerprint)
    }

    fn verify(&self, presented: &[u8], key: &[u8; 32]) -> Option<usize> {
        // Plain entries: every one compared, whichever matches.
        let plain = self.entries.iter().enumerate().fold(None, |found, (i, e)| {
            let hit = matches!(&e.secret, Secret::Plain(d) if same(d, key));
            if hit {
                Some(i)
            } else {
                found
            }
        });
        if plain.is_some() {
            return plain;
        }
        let text = std::str::from_utf8(presented).ok()?;
        let (user, password) = text.split_once(':')?;
        self.entries.iter().position(|e| {
            *e.user == *user
                && match &e.secret {
                    Secret::Plain(_) => false,
                    Secret::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
                    Secret::ShaCrypt(hash) => {
                        use sha_crypt::PasswordVerifier;
                        sha_crypt::ShaCrypt::default()
                            .verify_password(password.as_bytes(), hash.as_str())
                            .is_ok()
                    }
                }
        })
    }
}

/// The stored form of one line's password, or why it is refused.
fn secret(line: &str, stored: &str) -> Result<Secret, String> {
    let weak = |what: &str| {
        format!("{what} is too weak to keep passwords; store it again with htpasswd -B (bcrypt)")
    };
    if ["$2y$", "$2a$", "$2b$", "$2x$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        return stored
            .parse::<bcrypt::HashParts>()
            .map(|_| Secret::Bcrypt(stored.to_string()))
            .map_err(|_| "not a valid bcrypt hash".to_string());
    }
    if stored.starts_with("$5$") || stored.starts_with("$6$") {
        let ok = sha_crypt::PasswordHashRef::new(stored)
            .ok()
            .is_some_and(|h| sha_crypt::Algorithm::new(h.id()).is_ok() && h.fields().count() >= 2);
        return if ok {
            Ok(Secret::ShaCrypt(stored.to_string()))
        } else {
            Err("not a valid SHA-crypt hash".to_string())
        };
    }
    if stored.starts_with("$apr1$") || stored.starts_with("$1$") {
        return Err(weak("MD5-crypt ($apr1$, htpasswd's default)"));
    }
    if stored.starts_with("{SHA}") {
        return Err(weak("{SHA} (one unsalted SHA-1)"));
    }
    if stored.starts_with('$') && stored[1..].contains('$') {
        return Err("a hash in a format this appliance does not read; use htpasswd -B".into());
    }
    Ok(Secret::Plain(digest(line.as_bytes())))
}

/// The decoded `user:password` of a `Basic` credential.
fn basic_credentials(header: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn fingerprint(line: &str) -> u64 {
    let d = digest(line.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Equal digests, in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn admits_listed_users_only() {
        let users = Users::parse("# 税務課\nsato:s3cret\n\ntanaka:pa:ss\n").unwrap();
        assert!(users.admits(Some(&basic("sato:s3cret"))));
        assert!(users.admits(Some(&basic("tanaka:pa:ss"))));
        assert!(users.admits(Some(b"basic c2F0bzpzM2NyZXQ=")));
        for bad in [
            basic("sato:s3cre"),
            basic("sato:s3cret "),
            basic("suzuki:s3cret"),
            basic(""),
            b"Bearer c2F0bzpzM2NyZXQ=".to_vec(),
            b"Basic !!!".to_vec(),
            b"Basic".to_vec(),
            vec![0xff, 0xfe],
        ] {
            assert!(!users.admits(Some(&bad)), "{bad:?}");
        }
        assert!(!users.admits(None));
        assert_eq!(users.stored().plain, 2);
    }

    #[test]
    fn reads_bcrypt_and_sha_crypt() {
        let b = bcrypt::hash("s3cret", 4).unwrap();
        let text = format!(
            "sato:{b}\nsuzuki:$5$rounds=5000$saltsalt$yGbYRXRz9CHbZWUy8gBl0xJi6YMdDqZdCqa1PvDb7/7\n"
        );
        let users = Users::parse(&text).unwrap();
        let a = users.check(Some(&basic("sato:s3cret"))).unwrap();
        assert_eq!(&*a.user, "sato");
        // Remembered: the second check gives the same answer.
        assert_eq!(users.check(Some(&basic("sato:s3cret"))), Some(a.clone()));
        assert!(users.check(Some(&basic("sato:wrong"))).is_none());
        assert!(users.check(Some(&basic("suzuki:s3cret"))).is_none());
        assert_eq!(
            users.stored(),
            Stored {
                plain: 0,
                bcrypt: 1,
                sha_crypt: 1
            }
        );
        assert!(users.still_admits(&a));
        let changed =
            Users::parse(&format!("sato:{}\n", bcrypt::hash("other", 4).unwrap())).unwrap();
        assert!(!changed.still_admits(&a));
    }

    #[test]
    fn refuses_weak_hashes_and_bad_files_without_echoing_them() {
        let e = Users::parse("sato:ok\nsecret-without-colon\n").unwrap_err();
        assert_eq!(e, "line 2: want user:password or user:hash");
        for weak in [
            "sato:$apr1$Vz0.Ks4Y$1x0zOKvmVdQd7cOkiNd2V.",
            "sato:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",
            "sato:$1$abc$def",
        ] {
            let e = Users::parse(weak).unwrap_err();
            assert!(
                e.starts_with("line 1: ") && e.contains("htpasswd -B"),
                "{e}"
            );
            assert!(!e.contains("Vz0.Ks4Y") && !e.contains("qUqP"), "{e}");
        }
        assert!(Users::parse("sato:$2y$05$short").is_err());
        assert!(Users::parse("sato:$6$").is_err());
        assert!(Users::parse("# nobody\n").is_err());
        assert!(Users::parse(":nouser\n").is_err());
        let users = Users::parse("sato:s3cret\n").unwrap();
        assert!(!format!("{users:?}").contains("s3cret"));
    }
}
