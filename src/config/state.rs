//! The `[state]` table: the directory for what must outlive the process. The access log
//! keeps its sequence number, chain and counts of lost records there; other parts of the
//! appliance keep their own files beside it.

use std::path::{Path, PathBuf};

use super::error::Problems;
use super::schema;
use super::validate::resolve;

/// Where systemd's `StateDirectory=lbo-proxy` and the Debian package put it.
pub const DEFAULT_DIR: &str = "/var/lib/lbo-proxy";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    pub dir: PathBuf,
    /// Set in the file. A directory the file names must be usable, or the proxy does not
    /// start; the default may be missing (a developer's `cargo run`), which the access
    /// log then says in its first record and in the service log.
    pub explicit: bool,
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            dir: PathBuf::from(DEFAULT_DIR),
            explicit: false,
        }
    }
}

pub(super) fn state(p: &mut Problems<'_>, s: &schema::State, base: Option<&Path>) -> StateConfig {
    match &s.dir {
        None => StateConfig::default(),
        Some(d) if d.get_ref().trim().is_empty() => {
            p.at(d.span(), "state.dir", "must name a directory");
            StateConfig::default()
        }
        Some(d) => StateConfig {
            dir: resolve(base, d.get_ref()),
            explicit: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<StateConfig, String> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n{text}"
        );
        crate::config::load_str(Path::new("t.toml"), &text, Some(Path::new("/etc/lbo")))
            .map(|c| c.state)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn var_lib_by_default_and_relative_to_the_config() {
        assert_eq!(load("").unwrap(), StateConfig::default());
        assert_eq!(
            load("[state]\ndir = \"state\"\n").unwrap(),
            StateConfig {
                dir: PathBuf::from("/etc/lbo/state"),
                explicit: true
            }
        );
        let e = load("[state]\ndir = \"\"\n").unwrap_err();
        assert!(e.contains("t.toml:8: state.dir"), "{e}");
        assert!(load("[state]\nfile = \"x\"\n").is_err());
    }
}
