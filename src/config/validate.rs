//! From the file as written to a validated [`Config`]: every value checked, every
//! cross-reference resolved, every problem collected with its line.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::allowlists::{self, LoadedCategory, BUILTIN};
use super::error::{ConfigError, Problem, Problems};
use super::pac::pac;
use super::schema::{self, File};
use super::upstream::upstream;
use super::{duration, Config, DirectConfig, NonTls, SniCheck, SniMode, Timeouts};
use crate::policy::{PolicySpec, ProfileSpec, SegmentSpec, Snapshot};

/// The α′ cases, always defined: case ① 認証等, ② + コミュニケーション, ③ + 外部共有.
pub const BUILTIN_PROFILES: &[(&str, &[&str])] = &[
    ("case1", &["m365-auth", "m365-license", "av-update", "pki"]),
    (
        "case2",
        &[
            "m365-auth",
            "m365-license",
            "av-update",
            "pki",
            "teams",
            "exchange",
        ],
    ),
    (
        "case3",
        &[
            "m365-auth",
            "m365-license",
            "av-update",
            "pki",
            "teams",
            "exchange",
            "storage",
        ],
    ),
];

pub fn from_str(
    name: &Path,
    text: &str,
    base: Option<&Path>,
    purpose: super::Purpose,
) -> Result<Config, ConfigError> {
    let mut p = Problems::new(name, text);
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            p.toml(&e);
            return Err(ConfigError { problems: p.found });
        }
    };
    let mut other_files = Vec::new();
    let categories = load_categories(&file, base, &mut p, &mut other_files);
    let config = build(name, &file, base, categories, purpose, &mut p);
    let mut problems = p.found;
    problems.extend(other_files);
    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(ConfigError { problems }),
    }
}

pub(super) fn resolve(base: Option<&Path>, path: &str) -> PathBuf {
    match base {
        Some(b) => b.join(path),
        None => PathBuf::from(path),
    }
}

fn load_categories(
    file: &File,
    base: Option<&Path>,
    p: &mut Problems<'_>,
    other: &mut Vec<Problem>,
) -> Vec<LoadedCategory> {
    let shipped: Vec<(PathBuf, String)> = match &file.allowlists.dir {
        None => BUILTIN
            .iter()
            .map(|(n, t)| {
                (
                    PathBuf::from(format!("<built-in allowlists>/{n}")),
                    t.to_string(),
                )
            })
            .collect(),
        Some(dir) => read_lists(dir, "allowlists.dir", base, p),
    };
    let mut loaded = parse_lists(&shipped, other);
    if let Some(dir) = &file.allowlists.local_dir {
        for local in parse_lists(&read_lists(dir, "allowlists.local_dir", base, p), other) {
            match loaded
                .iter_mut()
                .find(|l| l.category.name == local.category.name)
            {
                Some(shipped) => {
                    tracing::info!(
                        category = %local.category.name,
                        file = %local.file.display(),
                        "local allowlist replaces the shipped one"
                    );
                    *shipped = local;
                }
                None => loaded.push(local),
            }
        }
    }
    loaded
}

fn read_lists(
    dir: &Spanned<String>,
    key: &str,
    base: Option<&Path>,
    p: &mut Problems<'_>,
) -> Vec<(PathBuf, String)> {
    let path = resolve(base, dir.get_ref());
    match allowlists::read_dir(&path) {
        Ok(files) if files.is_empty() && key == "allowlists.dir" => {
            p.at(
                dir.span(),
                key,
                format!("{} holds no .toml files", path.display()),
            );
            Vec::new()
        }
        Ok(files) => files,
        Err(e) => {
            p.at(dir.span(), key, format!("{}: {e}", path.display()));
            Vec::new()
        }
    }
}

/// Parses category files; a name defined twice in one directory is an error.
fn parse_lists(sources: &[(PathBuf, String)], other: &mut Vec<Problem>) -> Vec<LoadedCategory> {
    let mut loaded: Vec<LoadedCategory> = Vec::new();
    for (path, text) in sources {
        let mut fp = Problems::new(path, text);
        if let Some(c) = allowlists::parse(path, text, &mut fp) {
            if loaded.iter().any(|l| l.category.name == c.category.name) {
                fp.file(
                    "category.name",
                    format!("category {:?} defined twice", c.category.name),
                );
            }
            loaded.push(c);
        }
        other.extend(fp.found);
    }
    loaded
}

fn build(
    name: &Path,
    file: &File,
    base: Option<&Path>,
    categories: Vec<LoadedCategory>,
    purpose: super::Purpose,
    p: &mut Problems<'_>,
) -> Option<Config> {
    let proxy_listen: Vec<SocketAddr> = file
        .proxy
        .listen
        .iter()
        .filter_map(|l| socket_addr(p, l, "proxy.listen"))
        .collect();
    if file.proxy.listen.is_empty() {
        p.file("proxy.listen", "at least one listener is needed");
    }
    let admin_listen = file
        .admin
        .listen
        .as_ref()
        .and_then(|l| socket_addr(p, l, "admin.listen"));

    let direct = DirectConfig {
        dns: file
            .direct
            .dns
            .iter()
            .filter_map(|d| dns_server(p, d))
            .collect(),
        allow_internal: nets(p, &file.direct.allow_internal, "direct.allow_internal"),
        deny_internal: nets(p, &file.direct.deny_internal, "direct.deny_internal"),
        happy_eyeballs_delay: dur(
            p,
            &file.direct.happy_eyeballs_delay,
            "direct.happy_eyeballs_delay",
            Duration::from_millis(250),
        ),
    };
    super::safeguards::allow_internal(p, &file.direct.allow_internal);
    let admin = super::admin::admin(p, &file.admin, base);
    let reload = super::admin::reload(p, &file.reload);
    let upstream = upstream(p, &file.upstream, base);
    let profiles = profiles(p, &file.profiles, &categories);
    let segments = segments(p, &file.segments, &profiles);
    let timeouts = Timeouts {
        head: dur(
            p,
            &file.timeouts.head,
            "timeouts.head",
            Duration::from_secs(10),
        ),
        connect: dur(
            p,
            &file.timeouts.connect,
            "timeouts.connect",
            Duration::from_secs(10),
        ),
        dns: dur(
            p,
            &file.timeouts.dns,
            "timeouts.dns",
            Duration::from_secs(5),
        ),
        idle: dur(
            p,
            &file.timeouts.idle,
            "timeouts.idle",
            Duration::from_secs(3600),
        ),
        drain: dur(
            p,
            &file.timeouts.drain,
            "timeouts.drain",
            Duration::from_secs(30),
        ),
        parent_answer: dur(
            p,
            &file.timeouts.parent_answer,
            "timeouts.parent_answer",
            Duration::from_secs(60),
        ),
    };
    let limits = super::limits::limits(p, &file.limits);
    let access = super::limits::access(p, &file.access, &file.segments, base);
    let access_log = super::log::access_log(p, &file.log, base);
    let state = super::state::state(p, &file.state, base);
    if purpose == super::Purpose::Run {
        super::files::check(p, file, base, &access_log);
    }
    let pac = pac(p, &file.pac, &proxy_listen, &upstream);
    let sni_check = sni_check(p, &file.sni_check);
    let transparent = super::transparent::validate(p, &file.transparent);
    let tenant = super::tenant::validate(
        p,
        &file.tenant_restrictions,
        base,
        &segments,
        &profiles,
        &categories,
    );
    check_shared_hosting(p, &profiles, &categories);
    if !p.is_empty() {
        return None;
    }
    let spec = PolicySpec {
        categories: categories.iter().map(|c| c.category.clone()).collect(),
        profiles,
        segments,
    };
    let policy = match Snapshot::build(spec) {
        Ok(s) => s,
        Err(e) => {
            p.file("", e);
            return None;
        }
    };
    Some(Config {
        source: name.to_path_buf(),
        proxy_listen,
        admin_listen,
        policy: Arc::new(policy),
        categories,
        direct,
        upstream,
        timeouts,
        limits,
        access_log,
        pac,
        sni_check,
        transparent,
        access,
        tenant,
        state,
        admin,
        reload,
    })
}

/// Smallest `max_hello_bytes`: real ClientHellos (post-quantum key shares included) fit
/// easily; less would refuse ordinary clients.
const MIN_HELLO_BYTES: usize = 1024;
/// Largest: a hello bigger than this is not a browser's.
const MAX_HELLO_BYTES: usize = 1024 * 1024;

fn sni_check(p: &mut Problems<'_>, s: &schema::SniCheck) -> SniCheck {
    let mode = match s.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
        None | Some((_, "enforce")) => SniMode::Enforce,
        Some((_, "log")) => SniMode::Log,
        Some((_, "off")) => SniMode::Off,
        Some((m, other)) => {
            p.at(
                m.span(),
                "sni_check.mode",
                format!("{other:?}: use \"enforce\", \"log\" or \"off\""),
            );
            SniMode::Enforce
        }
    };
    let non_tls = match s.non_tls.as_ref().map(|n| (n, n.get_ref().as_str())) {
        None | Some((_, "deny_on_443")) => NonTls::DenyOn443,
        Some((_, "allow")) => NonTls::Allow,
        Some((_, "deny")) => NonTls::Deny,
        Some((n, other)) => {
            p.at(
                n.span(),
                "sni_check.non_tls",
                format!("{other:?}: use \"deny_on_443\", \"allow\" or \"deny\""),
            );
            NonTls::DenyOn443
        }
    };
    let max_hello_bytes = match &s.max_hello_bytes {
        None => 16 * 1024,
        Some(n) if (MIN_HELLO_BYTES..=MAX_HELLO_BYTES).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            p.at(
                n.span(),
                "sni_check.max_hello_bytes",
                format!("must be between {MIN_HELLO_BYTES} and {MAX_HELLO_BYTES}"),
            );
            16 * 1024
        }
    };
    SniCheck {
        mode,
        non_tls,
        max_hello_bytes,
    }
}

pub(super) fn socket_addr(
    p: &mut Problems<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Option<SocketAddr> {
    match v.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.at(
                v.span(),
                key,
                format!("{:?} is not an ip:port address", v.get_ref()),
            );
            None
        }
    }
}

fn dns_server(p: &mut Problems<'_>, v: &Spanned<String>) -> Option<SocketAddr> {
    resolver_addr(p, v, "direct.dns")
}

/// A resolver as `ip` (port 53) or `ip:port`.
pub(super) fn resolver_addr(
    p: &mut Problems<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Option<SocketAddr> {
    let text = v.get_ref();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    socket_addr(p, v, key)
}

pub(super) fn nets(p: &mut Problems<'_>, list: &[Spanned<String>], key: &str) -> Vec<IpNet> {
    list.iter()
        .filter_map(|n| match n.get_ref().parse::<IpNet>() {
            Ok(net) => Some(net),
            Err(_) => {
                p.at(
                    n.span(),
                    key,
                    format!("{:?} is not a network (CIDR)", n.get_ref()),
                );
                None
            }
        })
        .collect()
}

pub(super) fn dur(
    p: &mut Problems<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Duration {
    match v {
        None => default,
        Some(s) => match duration::parse(s.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                p.at(s.span(), key, "must be longer than zero");
                default
            }
            Err(e) => {
                p.at(s.span(), key, e);
                default
            }
        },
    }
}

pub(super) fn positive(
    p: &mut Problems<'_>,
    v: &Option<Spanned<usize>>,
    key: &str,
    default: usize,
) -> usize {
    match v {
        None => default,
        Some(n) if *n.get_ref() > 0 => *n.get_ref(),
        Some(n) => {
            p.at(n.span(), key, "must be greater than zero");
            default
        }
    }
}

fn profiles(
    p: &mut Problems<'_>,
    custom: &[schema::Profile],
    categories: &[LoadedCategory],
) -> Vec<ProfileSpec> {
    let known = |name: &str| categories.iter().any(|c| &*c.category.name == name);
    let mut out: Vec<ProfileSpec> = BUILTIN_PROFILES
        .iter()
        .map(|(name, direct)| ProfileSpec {
            name: name.to_string(),
            direct: direct.iter().map(|s| s.to_string()).collect(),
            deny: Vec::new(),
        })
        .collect();
    // The built-in profiles need the shipped categories; a custom allowlist directory that
    // lacks one simply leaves that built-in unusable (checked where a segment names it).
    for prof in custom {
        let name = prof.name.get_ref();
        if !allowlists::valid_name(name) {
            p.at(
                prof.name.span(),
                "profile.name",
                "use lower-case letters, digits and '-'",
            );
        }
        if out.iter().any(|o| o.name == *name) {
            let what = if BUILTIN_PROFILES.iter().any(|(b, _)| b == name) {
                "is built in (case1/case2/case3); give a custom profile another name"
            } else {
                "is defined twice"
            };
            p.at(
                prof.name.span(),
                "profile.name",
                format!("profile {name:?} {what}"),
            );
            continue;
        }
        for c in prof.direct.iter().chain(&prof.deny) {
            if !known(c.get_ref()) {
                p.at(
                    c.span(),
                    "profile",
                    format!("unknown category {:?}", c.get_ref()),
                );
            }
        }
        for c in &prof.deny {
            if prof.direct.iter().any(|d| d.get_ref() == c.get_ref()) {
                p.at(
                    c.span(),
                    "profile.deny",
                    format!("{:?} is both direct and denied", c.get_ref()),
                );
            }
        }
        out.push(ProfileSpec {
            name: name.clone(),
            direct: prof.direct.iter().map(|s| s.get_ref().clone()).collect(),
            deny: prof.deny.iter().map(|s| s.get_ref().clone()).collect(),
        });
    }
    // Built-ins whose categories are missing are dropped so the snapshot still builds.
    out.retain(|o| o.direct.iter().chain(&o.deny).all(|c| known(c)));
    out
}

fn segments(
    p: &mut Problems<'_>,
    list: &[schema::Segment],
    profiles: &[ProfileSpec],
) -> Vec<SegmentSpec> {
    let mut names = HashSet::new();
    let mut seen_nets: Vec<(IpNet, String)> = Vec::new();
    let mut out = Vec::new();
    if list.is_empty() {
        p.file("segment", "no segment: no client could use the proxy");
    }
    for s in list {
        let name = s.name.get_ref();
        if !allowlists::valid_name(name) {
            p.at(
                s.name.span(),
                "segment.name",
                "use lower-case letters, digits and '-'",
            );
        }
        if !names.insert(name.clone()) {
            p.at(
                s.name.span(),
                "segment.name",
                format!("duplicate segment {name:?}"),
            );
        }
        let profile = s.profile.get_ref();
        if !profiles.iter().any(|pr| pr.name == *profile) {
            let hint = if BUILTIN_PROFILES.iter().any(|(b, _)| b == profile) {
                " (its categories are missing from the allowlist directory)"
            } else {
                ""
            };
            p.at(
                s.profile.span(),
                "segment.profile",
                format!("unknown profile {profile:?}{hint}"),
            );
        }
        if s.networks.is_empty() {
            p.at(
                s.name.span(),
                "segment.networks",
                "a segment needs client networks",
            );
        }
        let networks = nets(p, &s.networks, "segment.networks");
        for (net, spanned) in networks.iter().zip(&s.networks) {
            if let Some((_, other)) = seen_nets.iter().find(|(n, _)| n.trunc() == net.trunc()) {
                p.at(
                    spanned.span(),
                    "segment.networks",
                    format!("{net} is already in segment {other:?}"),
                );
            }
            seen_nets.push((*net, name.clone()));
        }
        out.push(SegmentSpec {
            name: name.clone(),
            networks,
            profile: profile.clone(),
        });
    }
    out
}

/// No profile may break out a category holding a wildcard over shared hosting or a public
/// suffix.
fn check_shared_hosting(
    p: &mut Problems<'_>,
    profiles: &[ProfileSpec],
    categories: &[LoadedCategory],
) {
    for c in categories {
        let direct_in: Vec<&str> = profiles
            .iter()
            .filter(|pr| pr.direct.iter().any(|d| **d == *c.category.name))
            .map(|pr| pr.name.as_str())
            .collect();
        if direct_in.is_empty() {
            continue;
        }
        for hit in &c.shared_hosting {
            p.push(Problem {
                file: c.file.clone(),
                line: hit.line,
                key: "rule.domains".into(),
                message: format!(
                    "{:?} is a wildcard over {} and category {:?} goes direct in profile {}; \
                     anyone could host content or register a name there, so it can never break out",
                    hit.pattern,
                    hit.zone,
                    c.category.name,
                    direct_in.join(", ")
                ),
            });
        }
    }
}
