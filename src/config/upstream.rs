//! The `[upstream]` table: the security cloud's parents (address, TLS, credentials) and
//! their health checks.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use toml::Spanned;

use super::allowlists;
use super::error::Problems;
use super::schema;
use super::validate::{dur, resolve};
use super::{ParentConfig, ParentTls, UpstreamConfig};

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
        if !parent.tls && (parent.tls_server_name.is_some() || parent.tls_ca_file.is_some()) {
            let span = parent.name.span();
            p.at(
                span,
                "upstream.parent.tls",
                "tls_server_name/tls_ca_file need tls = true",
            );
        }
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
    }
}
