//! The PAC file, generated from the same snapshot the proxy decides with.
//!
//! Mode `all` sends every destination to the appliance, which decides. Mode `split` sends
//! what the profile breaks out (or denies) to the appliance and the rest straight to the
//! security cloud, so the appliance carries only its own traffic. Either way the PAC never
//! resolves a name (`dnsResolve` and `isInNet` on names stall browsers), and its domain
//! matching has the proxy's semantics: a wrong answer can only send a destination to the
//! security cloud or to the appliance, both of which fail closed.

use std::fmt::Write;

use ipnet::IpNet;

use crate::policy::allowlist::Rule;
use crate::policy::domain::DomainPattern;
use crate::policy::snapshot::{Profile, Snapshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacMode {
    /// Everything (but internal destinations) via the appliance.
    All,
    /// Allowlisted via the appliance, the rest to the security cloud.
    Split,
}

/// The `[pac]` settings, validated.
#[derive(Clone, Debug)]
pub struct PacSettings {
    pub mode: PacMode,
    /// The appliance as PCs reach it, in failover order (`host:port`).
    pub proxies: Vec<String>,
    /// The security cloud as PCs reach it (split mode).
    pub security_cloud: Vec<String>,
    /// Destinations PCs reach without a proxy (the LGWAN side).
    pub internal_names: Vec<DomainPattern>,
    pub internal_networks: Vec<IpNet>,
}

/// The PAC for one profile (`None`: a client in no segment; everything goes to the
/// appliance, which refuses it).
pub fn render(
    snap: &Snapshot,
    settings: &PacSettings,
    profile: Option<&Profile>,
    segment: Option<&str>,
) -> String {
    let mut js = String::new();
    let _ = writeln!(
        js,
        "// lbo-proxy PAC ({}) for segment {}, profile {}. Generated from the appliance's policy;\n\
         // it resolves no names. Internal destinations and plain host names: DIRECT.",
        match settings.mode {
            PacMode::All => "every destination via the appliance",
            PacMode::Split => "allowlisted via the appliance, the rest to the security cloud",
        },
        segment.unwrap_or("(none)"),
        profile.map(|p| &*p.name).unwrap_or("(none)")
    );
    let _ = writeln!(
        js,
        "var LBO_APPLIANCE = {};",
        js_string(&proxy_list(&settings.proxies))
    );
    let split =
        settings.mode == PacMode::Split && profile.is_some() && !settings.security_cloud.is_empty();
    let _ = writeln!(
        js,
        "var LBO_SECURITY_CLOUD = {};",
        js_string(&proxy_list(if split {
            &settings.security_cloud
        } else {
            &settings.proxies
        }))
    );
    let internal: Vec<String> = settings
        .internal_names
        .iter()
        .map(|p| js_string(p.as_str()))
        .collect();
    let _ = writeln!(js, "var LBO_INTERNAL = [{}];", internal.join(", "));
    let _ = writeln!(
        js,
        "var LBO_INTERNAL_NETS = [{}];",
        nets4(settings.internal_networks.iter())
    );
    let (direct, deny) = match (split, profile) {
        (true, Some(p)) => snap.rules_of(p),
        _ => (Vec::new(), Vec::new()),
    };
    // A name or network of a direct rule goes to the appliance on every port: it breaks
    // out on the rule's ports and refuses the others. Rules without TCP ports (UDP media
    // for the firewall) say nothing about the proxy's traffic.
    let direct: Vec<&Rule> = direct.into_iter().filter(|r| !r.ports.is_empty()).collect();
    let _ = writeln!(js, "var LBO_DENY = [{}];", names(&deny));
    let _ = writeln!(
        js,
        "var LBO_DENY_NETS = [{}];",
        nets4(deny.iter().flat_map(|r| &r.networks))
    );
    let _ = writeln!(js, "var LBO_DIRECT = [{}];", names(&direct));
    let _ = writeln!(
        js,
        "var LBO_DIRECT_NETS = [{}];",
        nets4(direct.iter().flat_map(|r| &r.networks))
    );
    let _ = writeln!(js, "var LBO_SPLIT = {split};");
    js.push_str(PAC_FUNCTIONS);
    js
}

fn proxy_list(addrs: &[String]) -> String {
    addrs
        .iter()
        .map(|a| format!("PROXY {a}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The rules' domain patterns as JavaScript strings.
fn names(rules: &[&Rule]) -> String {
    rules
        .iter()
        .flat_map(|r| &r.domains)
        .map(|d| js_string(d.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// IPv4 networks as `[base, mask]` with unsigned 32-bit numbers. IPv6 literals always go
/// to the appliance (it decides them with the full table).
fn nets4<'a>(nets: impl Iterator<Item = &'a IpNet>) -> String {
    nets.filter_map(|n| match n.trunc() {
        IpNet::V4(v4) => {
            let base = u32::from(v4.network());
            let mask = u32::from(v4.netmask());
            Some(format!("[{base}, {mask}]"))
        }
        IpNet::V6(_) => None,
    })
    .collect::<Vec<_>>()
    .join(", ")
}

fn js_string(s: &str) -> String {
    // Patterns and addresses are validated ASCII; JSON string syntax is valid JavaScript.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The decision in JavaScript, over the same pattern forms as `policy::decide`: a name or
/// network of a denied or direct rule goes to the appliance (which breaks it out on the
/// rule's ports and refuses it on others), the rest to the security cloud.
const PAC_FUNCTIONS: &str = r#"
function lboLabel(h, p) {
  if (p == "*") return h.length > 0;
  var star = p.indexOf("*");
  if (star < 0) return h == p;
  var pre = p.substring(0, star), suf = p.substring(star + 1);
  return h.length > pre.length + suf.length &&
    h.substring(0, pre.length) == pre &&
    h.substring(h.length - suf.length) == suf;
}

function lboMatch(host, pat) {
  var sub = pat.substring(0, 2) == "*.";
  var pl = (sub ? pat.substring(2) : pat).split(".");
  var hl = host.split(".");
  if (sub) {
    if (hl.length <= pl.length) return false;
    hl = hl.slice(hl.length - pl.length);
  } else if (hl.length != pl.length) {
    return false;
  }
  for (var i = 0; i < pl.length; i++) {
    if (!lboLabel(hl[i], pl[i])) return false;
  }
  return true;
}

function lboIp4(host) {
  var m = host.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (!m) return -1;
  var ip = 0;
  for (var i = 1; i <= 4; i++) {
    var o = parseInt(m[i], 10);
    if (o > 255 || (m[i].length > 1 && m[i].charAt(0) == "0")) return -2;
    ip = ip * 256 + o;
  }
  return ip;
}

function lboInNets(ip, nets) {
  for (var i = 0; i < nets.length; i++) {
    if (((ip & nets[i][1]) >>> 0) == nets[i][0]) return true;
  }
  return false;
}

function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) == ".") host = host.substring(0, host.length - 1);
  if (host.indexOf(".") < 0 && host.indexOf(":") < 0) return "DIRECT";
  var ip = lboIp4(host);
  var i;
  if (ip >= 0) {
    if (lboInNets(ip, LBO_INTERNAL_NETS)) return "DIRECT";
  } else {
    for (i = 0; i < LBO_INTERNAL.length; i++) {
      if (lboMatch(host, LBO_INTERNAL[i])) return "DIRECT";
    }
  }
  if (!LBO_SPLIT || ip == -2 || host.indexOf(":") >= 0) return LBO_APPLIANCE;
  if (ip >= 0) {
    if (lboInNets(ip, LBO_DENY_NETS) || lboInNets(ip, LBO_DIRECT_NETS)) return LBO_APPLIANCE;
    return LBO_SECURITY_CLOUD;
  }
  for (i = 0; i < LBO_DENY.length; i++) {
    if (lboMatch(host, LBO_DENY[i])) return LBO_APPLIANCE;
  }
  for (i = 0; i < LBO_DIRECT.length; i++) {
    if (lboMatch(host, LBO_DIRECT[i])) return LBO_APPLIANCE;
  }
  return LBO_SECURITY_CLOUD;
}
"#;
