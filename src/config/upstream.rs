//! The `[upstream]` table: the security cloud's parents (address, TLS, credentials,
//! weight, standby connections), how one is chosen, and their health checks.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use toml::Spanned;

use super::allowlists;
use super::error::Problems;
use super::schema;
use super::validate::{dur, resolve, resolver_addr};
use super::{Balance, HealthCheck, ParentConfig, ParentTls, UpstreamConfig};

/// Largest `weight`: a share finer than 1 in 1000 is not a choice anyone makes.
const MAX_WEIGHT: u32 = 1000;
/// Most `standby` connections of one parent: beyond a few hundred, the parent's own
/// connection limits matter more than a round trip saved.
const MAX_STANDBY: usize = 1000;

pub(super) fn upstream(
    p: &mut Problems<'_>,
    u: &schema::Upstream,
    base: Option<&Path>,
) -> UpstreamConfig {
    let mut names = HashSet::new();
    let mut parents = Vec::new();
    for parent in &u.parents {
        let name = parent.name.get_ref();
        if !allowlists::valid_name(name) {
            p.at(
                parent.name.span(),
                "upstream.parent.name",
                "use lower-case letters, digits and '-'",
            );
        }
        if !names.insert(name.clone()) {
            p.at(
                parent.name.span(),
                "upstream.parent.name",
                format!("duplicate parent {name:?}"),
            );
        }
        let address = parent.address.get_ref();
        let host = match crate::policy::Target::parse_authority(address, None) {
            Ok(t) => t.host.to_string().trim_matches(['[', ']']).to_string(),
            Err(e) => {
                p.at(
                    parent.address.span(),
                    "upstream.parent.address",
                    format!("{address:?}: {e} (want host:port)"),
                );
                continue;
            }
        };
        let tls = parent.tls.then(|| ParentTls {
            server_name: parent
                .tls_server_name
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or(host),
            ca_file: parent
                .tls_ca_file
                .as_ref()
                .map(|f| resolve(base, f.get_ref())),
            early_data: parent.tls_early_data,
        });
        if let Some(t) = &tls {
            // Checked here so `check` (and the unit's ExecStartPre) catches what would
            // otherwise fail only when the proxy starts.
            let span = parent
                .tls_server_name
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(parent.address.span());
            if rustls::pki_types::ServerName::try_from(t.server_name.as_str()).is_err() {
                p.at(
                    span,
                    "upstream.parent.tls_server_name",
                    format!("{:?} is not a valid TLS server name", t.server_name),
                );
            }
            if let (Some(path), Some(spanned)) = (&t.ca_file, &parent.tls_ca_file) {
                if let Err(e) = std::fs::read(path) {
                    p.at(
                        spanned.span(),
                        "upstream.parent.tls_ca_file",
                        format!("{}: {e}", path.display()),
                    );
                }
            }
        }
        if !parent.tls
            && (parent.tls_server_name.is_some()
                || parent.tls_ca_file.is_some()
                || parent.tls_early_data)
        {
            let span = parent.name.span();
            p.at(
                span,
                "upstream.parent.tls",
                "tls_server_name/tls_ca_file/tls_early_data need tls = true",
            );
        }
        let weight = match &parent.weight {
            None => 1,
            Some(w) if (1..=MAX_WEIGHT).contains(w.get_ref()) => *w.get_ref(),
            Some(w) => {
                p.at(
                    w.span(),
                    "upstream.parent.weight",
                    format!("must be between 1 and {MAX_WEIGHT}"),
                );
                1
            }
        };
        let standby = match &parent.standby {
            None => 0,
            Some(n) if *n.get_ref() <= MAX_STANDBY => *n.get_ref(),
            Some(n) => {
                p.at(
                    n.span(),
                    "upstream.parent.standby",
                    format!("must be between 0 and {MAX_STANDBY}"),
                );
                0
            }
        };
        let standby_max_idle = dur(
            p,
            &parent.standby_max_idle,
            "upstream.parent.standby_max_idle",
            Duration::from_secs(30),
        );
        let password = match (&parent.password, &parent.password_file) {
            (Some(_), Some(f)) => {
                p.at(
                    f.span(),
                    "upstream.parent.password_file",
                    "give password or password_file, not both",
                );
                None
            }
            (Some(pw), None) => Some(pw.get_ref().clone()),
            (None, Some(f)) => match std::fs::read_to_string(resolve(base, f.get_ref())) {
                Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
                Err(e) => {
                    p.at(
                        f.span(),
                        "upstream.parent.password_file",
                        format!("cannot read: {e}"),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let proxy_authorization = match (&parent.username, password) {
            (Some(user), Some(pw)) => {
                if user.get_ref().contains(':') {
                    p.at(
                        user.span(),
                        "upstream.parent.username",
                        "must not contain ':'",
                    );
                }
                let raw = format!("{}:{pw}", user.get_ref());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            (None, None) => None,
            _ => {
                p.at(
                    parent.name.span(),
                    "upstream.parent",
                    "username and password go together",
                );
                None
            }
        };
        parents.push(ParentConfig {
            name: Arc::from(name.as_str()),
            address: address.clone(),
            tls,
            proxy_authorization,
            weight,
            standby,
            standby_max_idle,
        });
    }
    let mut count = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
        None => default,
        Some(n) if *n.get_ref() > 0 => *n.get_ref(),
        Some(n) => {
            p.at(n.span(), key, "must be greater than zero");
            default
        }
    };
    let fall = count(&u.fall, "upstream.fall", 3);
    let rise = count(&u.rise, "upstream.rise", 2);
    let balance = match u.balance.as_ref().map(|b| (b, b.get_ref().as_str())) {
        None | Some((_, "failover")) => Balance::Failover,
        Some((_, "round_robin")) => Balance::RoundRobin,
        Some((_, "source_hash")) => Balance::SourceHash,
        Some((b, other)) => {
            p.at(
                b.span(),
                "upstream.balance",
                format!("{other:?}: use \"failover\", \"round_robin\" or \"source_hash\""),
            );
            Balance::Failover
        }
    };
    let health_check = health_check(p, u);
    let dns = u
        .dns
        .iter()
        .filter_map(|d| resolver_addr(p, d, "upstream.dns"))
        .collect();
    UpstreamConfig {
        parents,
        health_interval: dur(
            p,
            &u.health_interval,
            "upstream.health_interval",
            Duration::from_secs(5),
        ),
        health_timeout: dur(
            p,
            &u.health_timeout,
            "upstream.health_timeout",
            Duration::from_secs(3),
        ),
        fall,
        rise,
        balance,
        health_check,
        dns,
    }
}

/// `health_check` and `health_target`, which go together.
fn health_check(p: &mut Problems<'_>, u: &schema::Upstream) -> HealthCheck {
    let kind = u.health_check.as_ref().map(|k| (k, k.get_ref().as_str()));
    match (kind, &u.health_target) {
        (None | Some((_, "tcp")), None) => HealthCheck::Tcp,
        (None | Some((_, "tcp")), Some(t)) => {
            p.at(
                t.span(),
                "upstream.health_target",
                "needs health_check = \"connect\"",
            );
            HealthCheck::Tcp
        }
        (Some((k, "connect")), None) => {
            p.at(
                k.span(),
                "upstream.health_check",
                "\"connect\" needs health_target = \"host:port\"",
            );
            HealthCheck::Tcp
        }
        (Some((_, "connect")), Some(t)) => {
            match crate::policy::Target::parse_authority(t.get_ref(), None) {
                Ok(target) => HealthCheck::Connect(target.to_string()),
                Err(e) => {
                    p.at(
                        t.span(),
                        "upstream.health_target",
                        format!("{:?}: {e} (want host:port)", t.get_ref()),
                    );
                    HealthCheck::Tcp
                }
            }
        }
        (Some((k, other)), _) => {
            p.at(
                k.span(),
                "upstream.health_check",
                format!("{other:?}: use \"tcp\" or \"connect\""),
            );
            HealthCheck::Tcp
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Balance, HealthCheck};

    fn load(upstream: &str, timeouts: &str) -> Result<crate::Config, crate::config::ConfigError> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[timeouts]\n{timeouts}\n[upstream]\n{upstream}\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n"
        );
        crate::config::load_str(Path::new("t.toml"), &text, None)
    }

    #[test]
    fn defaults() {
        let c = load(
            "[[upstream.parent]]\nname = \"a\"\naddress = \"10.0.0.1:8080\"\n",
            "",
        )
        .unwrap();
        let u = &c.upstream;
        assert_eq!(u.balance, Balance::Failover);
        assert_eq!(u.health_check, HealthCheck::Tcp);
        assert!(u.dns.is_empty());
        let a = &u.parents[0];
        assert_eq!((a.weight, a.standby), (1, 0));
        assert_eq!(a.standby_max_idle, Duration::from_secs(30));
        assert_eq!(c.timeouts.parent_answer, Duration::from_secs(60));
    }

    #[test]
    fn reads_every_knob() {
        let c = load(
            "balance = \"source_hash\"\nhealth_check = \"connect\"\n\
             health_target = \"Probe.Example.JP:443\"\ndns = [\"192.0.2.53\", \"192.0.2.54:5353\"]\n\
             [[upstream.parent]]\nname = \"a\"\naddress = \"seccloud.example:8080\"\nweight = 3\n\
             standby = 8\nstandby_max_idle = \"20s\"\ntls = true\ntls_early_data = true\n",
            "parent_answer = \"90s\"\n",
        )
        .unwrap();
        let u = &c.upstream;
        assert_eq!(u.balance, Balance::SourceHash);
        assert_eq!(
            u.health_check,
            HealthCheck::Connect("probe.example.jp:443".into())
        );
        assert_eq!(
            u.dns,
            [
                "192.0.2.53:53".parse().unwrap(),
                "192.0.2.54:5353".parse().unwrap()
            ]
        );
        let a = &u.parents[0];
        assert_eq!((a.weight, a.standby), (3, 8));
        assert_eq!(a.standby_max_idle, Duration::from_secs(20));
        assert!(a.tls.as_ref().is_some_and(|t| t.early_data));
        assert_eq!(c.timeouts.parent_answer, Duration::from_secs(90));
        let rr = load("balance = \"round_robin\"\n", "").unwrap();
        assert_eq!(rr.upstream.balance, Balance::RoundRobin);
    }

    #[test]
    fn errors_cite_the_line() {
        let e = load(
            "balance = \"random\"\nhealth_check = \"connect\"\ndns = [\"resolver\"]\n\
             [[upstream.parent]]\nname = \"a\"\naddress = \"10.0.0.1:8080\"\nweight = 0\n\
             standby = 5000\nstandby_max_idle = \"0s\"\ntls_early_data = true\n",
            "parent_answer = \"soon\"\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for (line, key) in [
            (4, "timeouts.parent_answer"),
            (7, "upstream.balance"),
            (8, "upstream.health_check"),
            (9, "upstream.dns"),
            (11, "upstream.parent.tls"),
            (13, "upstream.parent.weight"),
            (14, "upstream.parent.standby"),
            (15, "upstream.parent.standby_max_idle"),
        ] {
            assert!(
                e.contains(&format!("t.toml:{line}")) && e.contains(key),
                "{key}: {e}"
            );
        }
        let e = load("health_target = \"probe.example:443\"\n", "")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("t.toml:6") && e.contains("needs health_check"),
            "{e}"
        );
        let e = load(
            "health_check = \"connect\"\nhealth_target = \"no-port.example\"\n",
            "",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("t.toml:7") && e.contains("upstream.health_target"),
            "{e}"
        );
    }
}
