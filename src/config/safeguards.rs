//! Safeguards an operator can weaken, and the line past which a setting is refused.
//! `check` and the audit report list every weakened safeguard with what it opens, from
//! [`weakened`]; `audit --strict` fails when there is any. `allow_internal` ranges that
//! together cover every internal range of a family would switch the address guard off:
//! refused with their line.

use ipnet::IpNet;
use toml::Spanned;

use super::admin::OpenTunnels;
use super::error::Problems;
use super::log::AccessLogTarget;
use super::{Config, NonTls, SniMode};
use crate::policy::special;

/// One weakened safeguard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weakened {
    /// The setting as the config writes it (`direct.allow_internal`).
    pub key: &'static str,
    /// Its value.
    pub value: String,
    /// What it opens.
    pub opens: String,
    /// The same in Japanese, for the audit report.
    pub opens_ja: String,
}

/// Refuses `allow_internal` ranges that would switch the guard off: `0.0.0.0/0`, `::/0`,
/// or any set that covers every internal range of IPv4 or of IPv6.
pub(super) fn allow_internal(p: &mut Problems<'_>, list: &[Spanned<String>]) {
    let parsed: Vec<(IpNet, &Spanned<String>)> = list
        .iter()
        .filter_map(|s| s.get_ref().parse::<IpNet>().ok().map(|n| (n, s)))
        .collect();
    for (net, s) in &parsed {
        if net.prefix_len() == 0 {
            p.at(
                s.span(),
                "direct.allow_internal",
                format!("{net} would switch the guard off: name the internal range a lab needs"),
            );
        }
    }
    for v4 in [true, false] {
        let family: Vec<&(IpNet, &Spanned<String>)> = parsed
            .iter()
            .filter(|(n, _)| matches!(n, IpNet::V4(_)) == v4 && n.prefix_len() > 0)
            .collect();
        let Some((_, first)) = family.first() else {
            continue;
        };
        let covered = special::refused_ranges()
            .filter(|(r, _)| matches!(r, IpNet::V4(_)) == v4)
            .all(|(r, _)| family.iter().any(|(n, _)| n.contains(&r)));
        if covered {
            p.at(
                first.span(),
                "direct.allow_internal",
                format!(
                    "together these ranges cover every internal {} range and would switch the guard off",
                    if v4 { "IPv4" } else { "IPv6" }
                ),
            );
        }
    }
}

/// The built-in internal ranges an allowed range opens (all or part of).
pub fn opened_by(net: &IpNet) -> Vec<String> {
    special::refused_ranges()
        .filter(|(r, _)| r.contains(net) || net.contains(r))
        .map(|(r, s)| {
            if net.contains(&r) {
                format!("{r} {}", s.name)
            } else {
                format!("{net} of {r} {}", s.name)
            }
        })
        .collect()
}

/// Every safeguard the configuration weakens, in the order of the file's tables.
pub fn weakened(c: &Config) -> Vec<Weakened> {
    let mut out = Vec::new();
    let mut push = |key, value: String, opens: String, opens_ja: String| {
        out.push(Weakened {
            key,
            value,
            opens,
            opens_ja,
        })
    };
    for net in &c.direct.allow_internal {
        let opened = opened_by(net);
        if opened.is_empty() {
            continue;
        }
        let list = opened.join("; ");
        push(
            "direct.allow_internal",
            net.to_string(),
            format!("local breakout to internal addresses: {list}"),
            format!("内部アドレスへのローカルブレイクアウト: {list}"),
        );
    }
    match c.sni_check.mode {
        SniMode::Enforce => {}
        SniMode::Log => push(
            "sni_check.mode",
            "log".into(),
            "a direct tunnel whose ClientHello names another host (domain fronting) is recorded but relayed".into(),
            "ClientHello が別のホストを示す直接接続トンネル（ドメインフロンティング）を記録するだけで中継する".into(),
        ),
        SniMode::Off => push(
            "sni_check.mode",
            "off".into(),
            "direct tunnels are not checked: one to an allowlisted name may carry TLS for any host behind the same address".into(),
            "直接接続トンネルを検査しない: 許可された名前へのトンネルで同じアドレスの任意のホストと TLS で通信できる".into(),
        ),
    }
    if c.sni_check.non_tls == NonTls::Allow {
        push(
            "sni_check.non_tls",
            "allow".into(),
            "a direct tunnel on port 443 that does not start with TLS is relayed unchecked".into(),
            "TLS で始まらないポート 443 の直接接続トンネルを検査せずに中継する".into(),
        );
    }
    let open = c.admin.beyond_loopback();
    if c.admin_listen.is_some() && !open.is_empty() && c.admin.token.is_none() {
        let nets = open
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        push(
            "admin.allow",
            nets.clone(),
            format!("the admin listener is open to {nets} without admin.token_file: they read the status page and metrics; reload only from loopback"),
            format!("管理リスナーを admin.token_file なしで {nets} に開放: ステータスページとメトリクスが読める（リロードはループバックからのみ）"),
        );
    }
    let mut segments: Vec<_> = c.access.auth.iter().collect();
    segments.sort_by(|a, b| a.0.cmp(b.0));
    for (segment, users) in segments {
        let plain = users.stored().plain;
        if plain > 0 {
            push(
                "segment.auth_file",
                segment.to_string(),
                format!("{plain} user(s) of segment {segment} stored in plain text: whoever reads the file has their passwords (htpasswd -B stores a hash)"),
                format!("セグメント {segment} の {plain} 人のパスワードを平文で保存: ファイルを読めばパスワードが分かる（htpasswd -B でハッシュ化）"),
            );
        }
    }
    for parent in &c.upstream.parents {
        if parent.proxy_authorization.is_some() && parent.tls.is_none() {
            push(
                "upstream.parent",
                parent.name.to_string(),
                format!(
                    "credentials for parent {} travel in clear (tls = false)",
                    parent.name
                ),
                format!(
                    "上位プロキシ {} への認証情報を平文で送る（tls = false）",
                    parent.name
                ),
            );
        }
    }
    if c.reload == OpenTunnels::Keep {
        push(
            "reload.open_tunnels",
            "keep".into(),
            "after a reload, open tunnels keep the policy they were opened under: a destination or user revoked stays reachable until the tunnel ends".into(),
            "リロード後も開いているトンネルは古いポリシーのまま: 取り消した宛先や利用者がトンネル終了まで使える".into(),
        );
    }
    if c.access_log.target == AccessLogTarget::Off {
        push(
            "log.access",
            "off".into(),
            "no access-log record: nothing shows what broke out or who used it".into(),
            "アクセスログを記録しない: 何が直接接続し誰が使ったかを示すものがない".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn load(extra: &str) -> Result<crate::Config, String> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[admin]\nlisten = \"127.0.0.1:9090\"\n{extra}\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n"
        );
        crate::config::load_str(Path::new("t.toml"), &text, None).map_err(|e| e.to_string())
    }

    #[test]
    fn ranges_that_switch_the_guard_off_are_refused_with_their_line() {
        for all in [
            "\"0.0.0.0/0\"",
            "\"::/0\"",
            "\"0.0.0.0/1\", \"128.0.0.0/1\"",
        ] {
            let e = load(&format!("[direct]\nallow_internal = [{all}]\n"))
                .err()
                .unwrap_or_default();
            assert!(
                e.contains("t.toml:6: direct.allow_internal") && e.contains("guard off"),
                "{all}: {e}"
            );
        }
        assert!(load("[direct]\nallow_internal = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\n").is_ok());
    }

    #[test]
    fn the_default_weakens_nothing() {
        assert!(super::weakened(&load("").unwrap()).is_empty());
        assert!(super::weakened(&crate::config::load(None).unwrap()).is_empty());
    }

    #[test]
    fn every_weakened_safeguard_says_what_it_opens() {
        let c = load(
            "allow = [\"10.9.0.0/24\"]\n[direct]\nallow_internal = [\"127.0.0.1/32\", \"10.0.0.0/7\", \"8.8.8.0/24\"]\n\
             [sni_check]\nmode = \"off\"\nnon_tls = \"allow\"\n[reload]\nopen_tunnels = \"keep\"\n[log]\naccess = \"off\"\n",
        )
        .unwrap();
        let w = super::weakened(&c);
        let keys: Vec<&str> = w.iter().map(|w| w.key).collect();
        assert_eq!(
            keys,
            [
                "direct.allow_internal",
                "direct.allow_internal",
                "sni_check.mode",
                "sni_check.non_tls",
                "admin.allow",
                "reload.open_tunnels",
                "log.access"
            ]
        );
        assert!(
            w[0].opens.contains("127.0.0.1/32 of 127.0.0.0/8 Loopback"),
            "{}",
            w[0].opens
        );
        assert!(
            w[1].opens.contains("10.0.0.0/8 Private-Use"),
            "{}",
            w[1].opens
        );
        assert!(w.iter().all(|w| !w.opens_ja.is_empty()));
    }
}
