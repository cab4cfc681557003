//! Deciding an open tunnel again, under the policy in force now: would it still be routed
//! the way it is? Every input of the first decision is looked at again: the route
//! (direct, upstream, deny), the client's segment and its credentials, the parent it goes
//! through, the address it was connected to, the SNI check of its ClientHello, and
//! tenant restrictions. The answer is why it would differ, or `None`.

use std::hash::{Hash, Hasher};

use super::tunnels::OpenTunnel;
use crate::config::{ParentConfig, SniMode};
use crate::policy::decide::decide;
use crate::policy::Route;
use crate::server::Context;

/// Why `t` would not be routed as it is under `ctx`, or `None` when it would.
pub fn again(ctx: &Context, t: &OpenTunnel) -> Option<String> {
    let cfg = &ctx.config;
    let client = t.client.ip();
    let d = decide(&cfg.policy, client, &t.target);
    if d.route != t.decision.route {
        return Some(format!(
            "{} now goes {} ({})",
            t.target,
            d.route.as_str(),
            d.reason.as_str()
        ));
    }
    if let Some(segment) = cfg.policy.segment_of(client) {
        if let Some(users) = cfg.access.users(&segment.name) {
            match &t.user {
                Some(a) if users.still_admits(a) => {}
                Some(a) => {
                    return Some(format!(
                        "the credentials of user {} are no longer accepted",
                        a.user
                    ))
                }
                None => {
                    return Some(format!(
                        "segment {} now requires proxy credentials",
                        segment.name
                    ))
                }
            }
        }
    }
    match d.route {
        Route::Upstream => {
            if let Some((name, fp)) = &t.parent {
                let same = ctx
                    .parents
                    .parents()
                    .iter()
                    .any(|p| p.config.name == *name && parent_fingerprint(&p.config) == *fp);
                if !same {
                    return Some(format!("parent {name} is no longer configured as it was"));
                }
            }
        }
        Route::Direct => {
            if let Some(server) = t.server {
                if !ctx.direct.allows(server.ip()) {
                    return Some(format!(
                        "{} is now refused by the address guard",
                        server.ip()
                    ));
                }
            }
        }
        Route::Deny => {}
    }
    // `None`: the first bytes are still being read, by a check that loads the policy in
    // force when they arrive.
    if let Some(first) = t.first.get() {
        if d.route == Route::Direct
            && t.listener == super::explicit::LISTENER
            && cfg.sni_check.mode == SniMode::Enforce
        {
            match first {
                None => {
                    return Some(
                        "the SNI check is now on and this tunnel's first bytes were not checked"
                            .into(),
                    )
                }
                Some(f) => {
                    let v = super::sni_check::judge(
                        &cfg.policy,
                        client,
                        &t.target,
                        f,
                        cfg.sni_check.non_tls,
                    );
                    if let Some(why) = v.mismatch {
                        return Some(why);
                    }
                }
            }
        }
        if let Some(then) = t.tenant.get() {
            let now = cfg.tenant.as_ref().and_then(|tr| {
                tr.scope
                    .sign_in(
                        d.segment.as_deref(),
                        d.profile.as_deref(),
                        &t.target,
                        first.as_ref(),
                    )
                    .fingerprint()
            });
            if now != *then {
                return Some("tenant restrictions for this sign-in changed".into());
            }
        }
    }
    None
}

/// Stands for a parent's settings: the same name with another address, TLS or
/// credentials is another parent.
pub fn parent_fingerprint(p: &ParentConfig) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    p.address.hash(&mut h);
    p.tls
        .as_ref()
        .map(|t| (&t.server_name, &t.ca_file))
        .hash(&mut h);
    p.proxy_authorization.hash(&mut h);
    h.finish()
}
