//! The `[log]` table: where access-log lines go (stdout/journald, a file, or a SIEM
//! collector over syslog), how many may wait for a slow sink, how often the file is
//! synced to disk, and the key that signs its checkpoints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::Problems;
use super::schema;
use super::validate::{dur, resolve};
use crate::access_log::keys::SigningKey;

/// Where access-log lines go, and how many may wait for the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub target: AccessLogTarget,
    /// Queue length: lines beyond it are dropped (and counted) rather than stall traffic.
    pub queue: usize,
    pub sync: SyncMode,
    /// A signed checkpoint is added this often (when records came since the last one).
    pub checkpoint_interval: Duration,
    /// `None`: checkpoints carry no signature (the chain alone shows naive edits only).
    pub signing_key: Option<SigningKey>,
}

/// How a file sink reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` at most once a second, and a second after the last write: a power
    /// loss costs at most the last second of records.
    Batch,
    /// The kernel writes back when it will (about 30 s on Linux).
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output: the journal under systemd.
    Stdout,
    Off,
    /// Appended to; reopened on SIGUSR1 after logrotate moved it.
    File(PathBuf),
    Syslog(SyslogConfig),
}

/// An RFC 5424 collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogConfig {
    /// `host:port`, resolved at each (re)connect.
    pub address: String,
    pub transport: SyslogTransport,
    /// 0..=23 (RFC 5424 table 1).
    pub facility: u8,
    pub app_name: String,
    /// `None`: the machine's host name, read when the writer starts.
    pub hostname: Option<String>,
    /// A collector that takes no bytes for this long is dropped (stream transports).
    pub write_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTransport {
    /// One message per datagram (RFC 5426).
    Udp,
    /// A stream of octet-counted messages (RFC 6587 3.4.1).
    Tcp,
    /// Octet-counted messages over TLS (RFC 5425).
    Tls(SyslogTls),
}

/// How the appliance authenticates the collector, and itself to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogTls {
    /// `None`: the system roots.
    pub ca_file: Option<PathBuf>,
    pub server_name: String,
    /// Certificate chain and key, both PEM, for collectors that require a client certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Sized for a burst of thousands of PCs at 9:00 while a disk or collector hiccups.
pub const DEFAULT_QUEUE: usize = 16 * 1024;
/// A queued record holds a few hundred bytes: a million is already most of a gigabyte.
const MAX_QUEUE: usize = 1 << 20;

/// RFC 5424 facility names and codes.
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(600);
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn access_log(
    p: &mut Problems<'_>,
    log: &schema::Log,
    base: Option<&Path>,
) -> AccessLogConfig {
    let sync = match log.sync.as_ref().map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "batch")) => SyncMode::Batch,
        Some((_, "none")) => SyncMode::None,
        Some((s, other)) => {
            p.at(
                s.span(),
                "log.sync",
                format!("{other:?}: use \"batch\" or \"none\""),
            );
            SyncMode::Batch
        }
    };
    let checkpoint_interval = dur(
        p,
        &log.checkpoint_interval,
        "log.checkpoint_interval",
        DEFAULT_CHECKPOINT_INTERVAL,
    );
    let signing_key = log.signing_key.as_ref().and_then(|k| {
        SigningKey::load(&resolve(base, k.get_ref()))
            .map_err(|e| p.at(k.span(), "log.signing_key", e.to_string()))
            .ok()
    });
    let queue = match &log.queue {
        None => DEFAULT_QUEUE,
        Some(n) if (1..=MAX_QUEUE).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            p.at(
                n.span(),
                "log.queue",
                format!("must be between 1 and {MAX_QUEUE}"),
            );
            DEFAULT_QUEUE
        }
    };
    let target = match &log.access {
        None => AccessLogTarget::Stdout,
        Some(a) => match a.get_ref().as_str() {
            "stdout" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            "syslog" => match &log.syslog {
                Some(s) => AccessLogTarget::Syslog(syslog(p, s, base)),
                None => {
                    p.at(a.span(), "log.access", "syslog needs a [log.syslog] table");
                    AccessLogTarget::Off
                }
            },
            "" | "file:" => {
                p.at(
                    a.span(),
                    "log.access",
                    "use stdout, off, syslog, file:PATH or a file path",
                );
                AccessLogTarget::Off
            }
            other => {
                let path = other.strip_prefix("file:").unwrap_or(other);
                AccessLogTarget::File(resolve(base, path))
            }
        },
    };
    if let (Some(s), false) = (&log.syslog, matches!(target, AccessLogTarget::Syslog(_))) {
        p.at(
            s.address.span(),
            "log.syslog",
            "set, but log.access is not \"syslog\": say which one is meant",
        );
    }
    AccessLogConfig {
        target,
        queue,
        sync,
        checkpoint_interval,
        signing_key,
    }
}

fn syslog(p: &mut Problems<'_>, s: &schema::LogSyslog, base: Option<&Path>) -> SyslogConfig {
    let address = s.address.get_ref();
    let host = match crate::policy::Target::parse_authority(address, None) {
        Ok(t) => t.host.to_string(),
        Err(e) => {
            p.at(
                s.address.span(),
                "log.syslog.address",
                format!("{address:?}: {e} (want host:port)"),
            );
            String::new()
        }
    };
    let transport = match s.transport.as_ref().map(|t| (t, t.get_ref().as_str())) {
        None | Some((_, "udp")) => SyslogTransport::Udp,
        Some((_, "tcp")) => SyslogTransport::Tcp,
        Some((_, "tls")) => SyslogTransport::Tls(tls(p, s, base, host)),
        Some((t, other)) => {
            p.at(
                t.span(),
                "log.syslog.transport",
                format!("{other:?}: use \"udp\", \"tcp\" or \"tls\""),
            );
            SyslogTransport::Udp
        }
    };
    if !matches!(transport, SyslogTransport::Tls(_)) {
        for (v, key) in [
            (&s.ca_file, "log.syslog.ca_file"),
            (&s.server_name, "log.syslog.server_name"),
            (&s.client_cert, "log.syslog.client_cert"),
            (&s.client_key, "log.syslog.client_key"),
        ] {
            if let Some(v) = v {
                p.at(v.span(), key, "only for transport = \"tls\"");
            }
        }
    }
    let write_timeout = dur(
        p,
        &s.write_timeout,
        "log.syslog.write_timeout",
        DEFAULT_WRITE_TIMEOUT,
    );
    let facility = match &s.facility {
        None => 16,
        Some(f) => match FACILITIES.iter().find(|(n, _)| n == f.get_ref()) {
            Some((_, code)) => *code,
            None => {
                p.at(
                    f.span(),
                    "log.syslog.facility",
                    format!("{:?}: use a name such as local0 … local7", f.get_ref()),
                );
                16
            }
        },
    };
    SyslogConfig {
        address: address.clone(),
        transport,
        facility,
        app_name: header_field(p, &s.app_name, "log.syslog.app_name", 48)
            .unwrap_or_else(|| "lbo-proxy".into()),
        hostname: header_field(p, &s.hostname, "log.syslog.hostname", 255),
        write_timeout,
    }
}

fn tls(
    p: &mut Problems<'_>,
    s: &schema::LogSyslog,
    base: Option<&Path>,
    host: String,
) -> SyslogTls {
    let mut file = |v: &Option<Spanned<String>>, key: &str| {
        let v = v.as_ref()?;
        let path = resolve(base, v.get_ref());
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            Ok(_) => {
                p.at(v.span(), key, format!("{}: not a file", path.display()));
                None
            }
            Err(e) => {
                p.at(v.span(), key, format!("{}: {e}", path.display()));
                None
            }
        }
    };
    let ca_file = file(&s.ca_file, "log.syslog.ca_file");
    let cert = file(&s.client_cert, "log.syslog.client_cert");
    let key = file(&s.client_key, "log.syslog.client_key");
    let client_cert = match (cert, key, &s.client_cert, &s.client_key) {
        (Some(c), Some(k), _, _) => Some((c, k)),
        (_, _, Some(c), None) => {
            p.at(c.span(), "log.syslog.client_cert", "needs client_key too");
            None
        }
        (_, _, None, Some(k)) => {
            p.at(k.span(), "log.syslog.client_key", "needs client_cert too");
            None
        }
        _ => None,
    };
    let server_name = match &s.server_name {
        Some(n) => n.get_ref().clone(),
        None => host,
    };
    if rustls::pki_types::ServerName::try_from(server_name.clone()).is_err() {
        let span = s
            .server_name
            .as_ref()
            .map_or(s.address.span(), |n| n.span());
        p.at(
            span,
            "log.syslog.server_name",
            format!("{server_name:?} is not a name a certificate can be checked against"),
        );
    }
    SyslogTls {
        ca_file,
        server_name,
        client_cert,
    }
}

/// An RFC 5424 header field: 1..=`max` printable ASCII characters without spaces.
fn header_field(
    p: &mut Problems<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    max: usize,
) -> Option<String> {
    let v = v.as_ref()?;
    let text = v.get_ref();
    if text.is_empty() || text.len() > max || !text.bytes().all(|b| (33..=126).contains(&b)) {
        p.at(
            v.span(),
            key,
            format!("{text:?}: 1 to {max} printable ASCII characters, no spaces"),
        );
        return None;
    }
    Some(text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(log: &str) -> Result<AccessLogConfig, String> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n{log}"
        );
        crate::config::load_str(Path::new("t.toml"), &text, Some(Path::new("/etc/lbo")))
            .map(|c| c.access_log)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn stdout_by_default_with_a_large_queue() {
        let c = load("").unwrap();
        assert_eq!(c.target, AccessLogTarget::Stdout);
        assert_eq!(c.queue, DEFAULT_QUEUE);
        assert_eq!(c.sync, SyncMode::Batch);
        assert_eq!(c.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL);
        assert_eq!(c.signing_key, None);
    }

    #[test]
    fn files_are_plain_paths_or_file_prefixed_relative_to_the_config() {
        for access in ["access.log", "file:access.log"] {
            let c = load(&format!("[log]\naccess = \"{access}\"\nqueue = 8\n")).unwrap();
            assert_eq!(
                c.target,
                AccessLogTarget::File(PathBuf::from("/etc/lbo/access.log"))
            );
            assert_eq!(c.queue, 8);
        }
        let c = load("[log]\naccess = \"file:/var/log/lbo/access.log\"\n").unwrap();
        assert_eq!(
            c.target,
            AccessLogTarget::File(PathBuf::from("/var/log/lbo/access.log"))
        );
    }

    #[test]
    fn syslog_with_defaults_and_every_setting() {
        let c = load("[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"siem.example:514\"\n")
            .unwrap();
        assert_eq!(
            c.target,
            AccessLogTarget::Syslog(SyslogConfig {
                address: "siem.example:514".into(),
                transport: SyslogTransport::Udp,
                facility: 16,
                app_name: "lbo-proxy".into(),
                hostname: None,
                write_timeout: Duration::from_secs(5),
            })
        );
        let c = load(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"192.0.2.1:6514\"\n\
             transport = \"tcp\"\nfacility = \"local7\"\napp_name = \"lbo\"\nhostname = \"lbo1\"\n",
        )
        .unwrap();
        let AccessLogTarget::Syslog(s) = c.target else {
            panic!("{c:?}")
        };
        assert_eq!(s.transport, SyslogTransport::Tcp);
        assert_eq!(s.facility, 23);
        assert_eq!((&*s.app_name, s.hostname.as_deref()), ("lbo", Some("lbo1")));
    }

    #[test]
    fn errors_cite_the_line() {
        let e = load(
            "[log]\naccess = \"syslog\"\nqueue = 0\n[log.syslog]\naddress = \"nope\"\n\
             transport = \"quic\"\nfacility = \"local9\"\napp_name = \"lbo proxy\"\n",
        )
        .unwrap_err();
        for want in [
            "t.toml:9: log.queue",
            "t.toml:11: log.syslog.address",
            "t.toml:12: log.syslog.transport",
            "t.toml:13: log.syslog.facility",
            "t.toml:14: log.syslog.app_name",
        ] {
            assert!(e.contains(want), "{want} in {e}");
        }
        let e = load("[log]\naccess = \"syslog\"\n").unwrap_err();
        assert!(
            e.contains("t.toml:8: log.access") && e.contains("[log.syslog]"),
            "{e}"
        );
        let e =
            load("[log]\naccess = \"stdout\"\n[log.syslog]\naddress = \"a:514\"\n").unwrap_err();
        assert!(e.contains("t.toml:10: log.syslog"), "{e}");
        assert!(load("[log]\naccess = \"file:\"\n").is_err());
        let e = load("[log]\nqueue = 18446744073709551615\n").unwrap_err();
        assert!(e.contains("t.toml:8: log.queue"), "{e}");
        assert!(load("[log.syslog]\naddress = \"a:514\"\nport = 1\n").is_err());
    }

    #[test]
    fn sync_checkpoints_and_the_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("log.key");
        crate::access_log::keys::generate(&key, &dir.path().join("log.pub")).unwrap();
        let c = load(&format!(
            "[log]\nsync = \"none\"\ncheckpoint_interval = \"30s\"\nsigning_key = \"{}\"\n",
            key.display()
        ))
        .unwrap();
        assert_eq!(c.sync, SyncMode::None);
        assert_eq!(c.checkpoint_interval, Duration::from_secs(30));
        assert_eq!(c.signing_key.unwrap().path, key);
        let e = load(
            "[log]\nsync = \"always\"\ncheckpoint_interval = \"0s\"\nsigning_key = \"nope.key\"\n",
        )
        .unwrap_err();
        for want in [
            "t.toml:8: log.sync",
            "t.toml:9: log.checkpoint_interval",
            "t.toml:10: log.signing_key: /etc/lbo/nope.key",
        ] {
            assert!(e.contains(want), "{want} in {e}");
        }
    }

    #[test]
    fn syslog_over_tls_with_a_ca_and_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "me.pem", "me.key"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let d = dir.path().display();
        let c = load(&format!(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"siem.example:6514\"\n\
             transport = \"tls\"\nca_file = \"{d}/ca.pem\"\nclient_cert = \"{d}/me.pem\"\n\
             client_key = \"{d}/me.key\"\nwrite_timeout = \"2s\"\n"
        ))
        .unwrap();
        let AccessLogTarget::Syslog(s) = c.target else {
            panic!("{c:?}")
        };
        assert_eq!(s.write_timeout, Duration::from_secs(2));
        assert_eq!(
            s.transport,
            SyslogTransport::Tls(SyslogTls {
                ca_file: Some(dir.path().join("ca.pem")),
                server_name: "siem.example".into(),
                client_cert: Some((dir.path().join("me.pem"), dir.path().join("me.key"))),
            })
        );
        let e = load(&format!(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"siem.example:6514\"\n\
             transport = \"tls\"\nca_file = \"{d}/missing.pem\"\nclient_cert = \"{d}/me.pem\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("t.toml:12: log.syslog.ca_file"), "{e}");
        assert!(
            e.contains("t.toml:13: log.syslog.client_cert: needs client_key"),
            "{e}"
        );
        let e = load(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"a:514\"\nca_file = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("only for transport = \"tls\""), "{e}");
    }
}
