//! The `[pac]` table: how the PAC file the appliance serves sends PCs to it.

use std::net::SocketAddr;

use ipnet::IpNet;
use toml::Spanned;

use super::error::Problems;
use super::schema;
use super::UpstreamConfig;
use crate::admin::pac::{PacMode, PacSettings};

pub(super) fn pac(
    p: &mut Problems<'_>,
    pac: &schema::Pac,
    listen: &[SocketAddr],
    upstream: &UpstreamConfig,
) -> PacSettings {
    let mode = match pac.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
        None | Some((_, "all")) => PacMode::All,
        Some((_, "split")) => PacMode::Split,
        Some((m, other)) => {
            p.at(
                m.span(),
                "pac.mode",
                format!("{other:?}: use \"all\" or \"split\""),
            );
            PacMode::All
        }
    };
    let mut addresses = |list: &[Spanned<String>], key: &str| -> Vec<String> {
        list.iter()
            .filter_map(
                |a| match crate::policy::Target::parse_authority(a.get_ref(), None) {
                    Ok(t) => Some(t.to_string()),
                    Err(e) => {
                        p.at(
                            a.span(),
                            key,
                            format!("{:?}: {e} (want host:port)", a.get_ref()),
                        );
                        None
                    }
                },
            )
            .collect()
    };
    let mut proxies = addresses(&pac.proxies, "pac.proxies");
    let security_cloud = if pac.security_cloud.is_empty() {
        upstream.parents.iter().map(|x| x.address.clone()).collect()
    } else {
        addresses(&pac.security_cloud, "pac.security_cloud")
    };
    if pac.proxies.is_empty() {
        proxies = listen.iter().map(|a| a.to_string()).collect();
        if listen.iter().any(|a| a.ip().is_unspecified()) {
            p.file(
                "pac.proxies",
                "proxy.listen has an unspecified address (0.0.0.0 or ::): name the appliance as PCs reach it in [pac] proxies",
            );
        }
    }
    if mode == PacMode::Split && security_cloud.is_empty() {
        let span = pac.mode.as_ref().map(|m| m.span()).unwrap_or_default();
        p.at(
            span,
            "pac.mode",
            "split needs [pac] security_cloud or an upstream parent",
        );
    }
    let mut internal_names = Vec::new();
    let mut internal_networks = Vec::new();
    for i in &pac.internal {
        let text = i.get_ref();
        if let Ok(net) = text.parse::<IpNet>() {
            internal_networks.push(net);
            continue;
        }
        match crate::policy::domain::DomainPattern::parse(text) {
            Ok(d) => internal_names.push(d),
            Err(e) => p.at(
                i.span(),
                "pac.internal",
                format!("{text:?}: not a network or domain pattern: {e}"),
            ),
        }
    }
    PacSettings {
        mode,
        proxies,
        security_cloud,
        internal_names,
        internal_networks,
    }
}
