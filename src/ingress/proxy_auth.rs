//! Basic proxy authentication for a segment (RFC 9110 §11.7.2, RFC 7617): the users a
//! segment admits, and the check of a request's `Proxy-Authorization`. Only SHA-256
//! digests of `user:password` are kept, compared in constant time against every user,
//! so neither the time taken nor memory reveals a password; credentials are never logged.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The `Proxy-Authenticate` challenge sent with a 407.
pub const CHALLENGE: &str = "Basic realm=\"lbo-proxy\", charset=\"UTF-8\"";

/// The users of one segment.
#[derive(Clone)]
pub struct Users {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} entries, redacted)", self.digests.len())
    }
}

impl Users {
    /// Reads a users file: one `user:password` a line; blank lines and `#` comments are
    /// skipped. Errors name the line, never its content.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut digests = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    digests.push(digest(line.as_bytes()));
                }
                _ => return Err(format!("line {}: want user:password", n + 1)),
            }
        }
        if digests.is_empty() {
            return Err("no users".into());
        }
        Ok(Users { digests })
    }

    /// Whether a `Proxy-Authorization` value names one of the users.
    pub fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(presented) = header.and_then(basic_credentials) else {
            return false;
        };
        let presented = digest(&presented);
        // Every entry is compared, whichever matches.
        self.digests
            .iter()
            .fold(false, |found, d| found | same(d, &presented))
    }
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
    }

    #[test]
    fn refuses_bad_files_without_echoing_them() {
        let e = Users::parse("sato:ok\nsecret-without-colon\n").unwrap_err();
        assert_eq!(e, "line 2: want user:password");
        assert!(Users::parse("# nobody\n").is_err());
        assert!(Users::parse(":nouser\n").is_err());
        let users = Users::parse("sato:s3cret\n").unwrap();
        assert!(!format!("{users:?}").contains("s3cret"));
    }
}
