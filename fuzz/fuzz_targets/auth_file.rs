//! The `auth_file` parser (`htpasswd` lines: bcrypt, SHA-crypt, plain text) on arbitrary
//! text, then a credential made of the same bytes: users or a refusal that names a line,
//! never a panic; a plain-text line admits its own credential.
#![no_main]

use base64::Engine;
use lbo_proxy::ingress::proxy_auth::Users;
use libfuzzer_sys::fuzz_target;

fn basic(credential: &str) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(credential);
    format!("Basic {token}").into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Users::parse(text) {
        Err(e) => {
            assert!(e == "no users" || e.starts_with("line "), "{e}");
        }
        Ok(users) => {
            let _ = users.check(Some(data));
            let first = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if let Some(line) = first {
                let plain = line
                    .split_once(':')
                    .is_some_and(|(_, p)| !p.starts_with('$') && !p.starts_with('{'));
                if plain {
                    assert!(users.admits(Some(&basic(line))), "{line:?}");
                }
            }
        }
    }
});
