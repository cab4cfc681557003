//! The allowlist file parser on arbitrary text: a category or problems, never a panic;
//! every rule it accepts has at least one port and a name under its category.
#![no_main]

use std::path::Path;

use lbo_proxy::config::allowlists::parse;
use lbo_proxy::config::error::Problems;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let mut problems = Problems::new(path, text);
    let loaded = parse(path, text, &mut problems);
    if let Some(c) = loaded {
        if problems.is_empty() {
            for r in &c.category.rules {
                assert!(!r.ports.is_empty(), "{}", r.name);
                assert!(
                    r.name.starts_with(&format!("{}/", c.category.name)),
                    "{}",
                    r.name
                );
            }
        }
    } else {
        assert!(!problems.is_empty());
    }
});
