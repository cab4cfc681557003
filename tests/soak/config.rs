//! The proxy's configuration for the soak, written to a directory it reloads from: the
//! allowlisted origin goes direct, everything else to the Squid parent. Variants differ by
//! one segment (a good reload) or carry an unknown key (a reload that must be refused).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The allowlisted name (the lab DNS maps it to 127.0.0.1).
pub const DIRECT_HOST: &str = "direct.test";
/// A name that is not allowlisted: only Squid resolves it.
pub const UPSTREAM_HOST: &str = "upstream.test";

pub struct SoakConfig {
    pub path: PathBuf,
    pub dns: SocketAddr,
    pub squid: String,
}

impl SoakConfig {
    /// Writes the allowlist and generation 0 of the config into `dir`.
    pub fn write(dir: &Path, dns: SocketAddr, direct_port: u16, squid: String) -> SoakConfig {
        let lists = dir.join("allowlists");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::write(
            lists.join("soak-direct.toml"),
            format!(
                r#"[category]
name = "soak-direct"
description = "the soak's origin that breaks out"
[provenance]
source = "test"
version = "1"
retrieved = "2026-11-23"
[[rule]]
name = "soak-origin"
domains = ["{DIRECT_HOST}"]
ports = [{direct_port}]
"#
            ),
        )
        .unwrap();
        let config = SoakConfig {
            path: dir.join("lbo-proxy.toml"),
            dns,
            squid,
        };
        config.generation(0);
        config
    }

    /// A valid config; each generation adds its own extra segment, so a reload changes
    /// something real.
    pub fn generation(&self, n: u64) {
        std::fs::write(&self.path, self.render(n)).unwrap();
    }

    /// A config the proxy must refuse on reload (an unknown key), keeping the old one.
    pub fn broken(&self) {
        std::fs::write(&self.path, format!("soak_bogus = true\n{}", self.render(0))).unwrap();
    }

    fn render(&self, n: u64) -> String {
        let extra = if n == 0 {
            String::new()
        } else {
            format!(
                "[[segment]]\nname = \"soak-extra-{n}\"\nnetworks = [\"10.99.{}.0/24\"]\nprofile = \"soak\"\n",
                n % 250
            )
        };
        format!(
            r#"[proxy]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[allowlists]
dir = "allowlists"
[direct]
dns = ["{dns}"]
allow_internal = ["127.0.0.1/32"]
[upstream]
health_interval = "1s"
health_timeout = "1s"
fall = 1
rise = 1
[[upstream.parent]]
name = "seccloud"
address = "{squid}"
[[profile]]
name = "soak"
direct = ["soak-direct"]
[[segment]]
name = "loopback"
networks = ["127.0.0.0/8"]
profile = "soak"
{extra}[timeouts]
connect = "3s"
dns = "1s"
drain = "1s"
[log]
access = "access.log"
[state]
dir = "state"
"#,
            dns = self.dns,
            squid = self.squid,
        )
    }
}
