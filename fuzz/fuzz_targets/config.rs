//! The configuration loader on arbitrary text (`check`, start-up and reload all go
//! through it): it must answer with a config or with problems that cite the file, never
//! panic. Relative paths resolve under a directory that does not exist, so nothing is read.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let name = Path::new("fuzz.toml");
    if let Err(e) = lbo_proxy::config::load_str(name, text, Some(Path::new("/nonexistent"))) {
        assert!(!e.problems.is_empty());
        let lines = text.lines().count().max(1);
        for p in &e.problems {
            if p.file == name {
                assert!(p.line <= lines + 1, "{p} beyond {lines} lines");
            }
        }
    }
});
