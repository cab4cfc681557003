//! Every shipped example config is valid: one per deployment scenario.

#[test]
fn every_example_config_passes_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = lbo_proxy::config::load(Some(&path)) {
                panic!("{}: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected the example configs, found {checked}"
    );
}
