//! The `lbo-proxy` command: run the proxy, check a configuration, explain a decision.

// As in the library: no panics outside tests (see lib.rs).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::BufRead;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lbo_proxy::config::{self, Config};
use lbo_proxy::policy::decide::{decide, decide_for_profile};
use lbo_proxy::policy::{Decision, Target};

#[derive(Parser)]
#[command(
    name = "lbo-proxy",
    version,
    about = "Local breakout proxy for the α′ model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the embedded default config when --config is not given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config and its allowlists, and print a summary.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Explain the decision for targets (HOST[:PORT], default port 443); one JSON object
    /// per target. With no target, reads targets from standard input, one per line.
    Route {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Decide as a client at this address (its segment selects the profile).
        #[arg(long, conflicts_with = "profile")]
        client: Option<IpAddr>,
        /// Decide as this profile, whatever the client.
        #[arg(long)]
        profile: Option<String>,
        targets: Vec<String>,
    },
    /// Print the PAC file the appliance serves, for a segment (default: every destination
    /// via the appliance, as for a client in no segment).
    Pac {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        segment: Option<String>,
    },
    /// Allowlist tooling: import Microsoft's endpoint list, review an update, export for
    /// the firewall.
    Allowlist {
        #[command(subcommand)]
        command: AllowlistCommand,
    },
    /// The interception CA of tenant restrictions.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The access log as evidence: the key that signs its checkpoints, and verification.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Write the auditor's report (外部監査): configuration, sources with SHA-256, and
    /// fail-closed evidence from the decision function. Exits non-zero on any FAILURE.
    Audit {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Report only this profile (default: every profile a segment uses, and case1-3).
        #[arg(long)]
        profile: Option<String>,
        /// en or ja.
        #[arg(long, default_value = "en")]
        lang: lbo_proxy::audit::Lang,
        /// html or md.
        #[arg(long, default_value = "html")]
        format: lbo_proxy::audit::Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Also exit non-zero when any safeguard is weakened (section 6 of the report).
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Subcommand)]
enum AllowlistCommand {
    /// Rewrite the Microsoft 365 category files from an endpoint list (the
    /// /endpoints/worldwide JSON) through the mapping, and report what was left out.
    ImportM365 {
        /// The endpoint list; default: the copy the mapping names.
        list: Option<PathBuf>,
        /// List version recorded in the files' provenance.
        #[arg(long)]
        version: Option<String>,
        /// Date the list was retrieved, recorded in the provenance.
        #[arg(long)]
        retrieved: Option<String>,
        #[arg(long, default_value = lbo_proxy::lists::files::SHIPPED_MAPPING)]
        mapping: PathBuf,
        /// Directory to write the category files to.
        #[arg(long, default_value = "allowlists")]
        out: PathBuf,
        /// Print the report only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Review an update: what the allowlist directory NEW adds, removes or moves compared
    /// with OLD, per category and built-in profile, newly direct destinations first.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Print an nftables script with the networks and UDP ports a profile breaks out, for
    /// the firewall of the LBO line (UDP media never crosses the proxy).
    Firewall {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        profile: String,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a CA for tenant restrictions in a lab: the certificate (to deploy to PCs)
    /// and its key (mode 0600, to stay on this appliance). Never overwrites.
    Init {
        #[arg(long, default_value = "ca.pem")]
        cert: PathBuf,
        #[arg(long, default_value = "ca.key")]
        key: PathBuf,
        /// The CA's common name, as PCs show it.
        #[arg(long, default_value = "lbo-proxy tenant restrictions CA")]
        name: String,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Create the Ed25519 key pair for log.signing_key: the private key (mode 0600, to
    /// stay on this appliance) and the public key (for whoever verifies). Never overwrites.
    Keygen {
        #[arg(long, default_value = "log-signing.key")]
        key: PathBuf,
        /// Default: the key's path with .pub added.
        #[arg(long, name = "pub")]
        public: Option<PathBuf>,
    },
    /// Check access-log files (rotated ones too, gzip included, in any order): report
    /// every line missing, altered, moved, cut or not covered by a signature, with its
    /// seq range. Exits non-zero on any.
    Verify {
        /// Public key(s) the checkpoints may be signed with (from `log keygen`).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Order every line by its seq first: for a SIEM's export of what it received
        /// over several connections (reordering is then not reported).
        #[arg(long)]
        by_seq: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DiffFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        // A report piped into `head` should stop quietly, like any Unix tool, instead of
        // panicking on a closed stdout. The proxy itself keeps ignoring SIGPIPE: a
        // client that goes away is an EPIPE error on its socket, not a reason to exit.
        // SAFETY: called before any thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Route {
            config,
            client,
            profile,
            targets,
        } => route(config, client, profile, targets),
        Command::Allowlist { command } => allowlist(command),
        Command::Ca {
            command: CaCommand::Init { cert, key, name },
        } => ca_init(&cert, &key, &name),
        Command::Pac { config, segment } => pac(config, segment),
        Command::Log { command } => log_command(command),
        Command::Audit {
            config,
            profile,
            lang,
            format,
            out,
            strict,
        } => audit(config, profile, lang, format, out, strict),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lbo-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    config::load(path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Loads a config the way `run` (and reload) load it: the files it will open included.
fn load_to_run(path: Option<PathBuf>) -> anyhow::Result<Config> {
    config::load_to_run(path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn run(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LBO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = load_to_run(path)?;
    tracing::info!(config = %config.source.display(), "configuration loaded");
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let server = lbo_proxy::Server::bind(config).await?;
        tokio::spawn(reload_on_sighup(server.live()));
        tokio::spawn(reopen_on_sigusr1(server.live()));
        server.run(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP (`systemctl reload`): re-read the config; a bad one is refused and logged.
async fn reload_on_sighup(live: std::sync::Arc<lbo_proxy::server::Live>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP: reload only through the admin listener");
        return;
    };
    while hup.recv().await.is_some() {
        lbo_proxy::systemd::notify("RELOADING=1");
        // The outcome is logged by reload() itself.
        let _ = live.reload().await;
        lbo_proxy::systemd::notify("READY=1");
    }
}

/// SIGUSR1 (logrotate's postrotate): reopen the access-log file by its path.
async fn reopen_on_sigusr1(live: std::sync::Arc<lbo_proxy::server::Live>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        tracing::error!("cannot listen for SIGUSR1: the access log is not reopened on rotation");
        return;
    };
    while usr1.recv().await.is_some() {
        live.current().log.reopen();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn check(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = match config::load_to_run(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // What `run` builds from the config before it serves, built the same way.
    if let Err(e) = lbo_proxy::server::preflight(&config) {
        eprintln!("{}: {e:#}", config.source.display());
        return Ok(ExitCode::FAILURE);
    }
    let snap = &config.policy;
    println!("configuration {}: OK", config.source.display());
    let listeners: Vec<String> = config.proxy_listen.iter().map(|a| a.to_string()).collect();
    println!("proxy listeners: {}", listeners.join(", "));
    if let Some(a) = config.admin_listen {
        println!("admin listener: {a}");
    }
    let log = lbo_proxy::audit::log_evidence::LogEvidence::of(&config);
    println!(
        "access log: {}; checkpoints {}; state directory {}{}",
        log.target,
        log.key.as_ref().map_or_else(
            || "NOT signed (set log.signing_key: lbo-proxy log keygen)".to_string(),
            |(fingerprint, _)| format!("signed by {fingerprint}")
        ),
        log.state_dir,
        if config.state.dir.is_dir() {
            ""
        } else {
            " (missing: made at start)"
        }
    );
    if config.upstream.parents.is_empty() {
        println!("security cloud: none configured (non-allowlisted requests are refused)");
    } else {
        for p in &config.upstream.parents {
            println!(
                "security cloud parent: {} {}{}{}",
                p.name,
                p.address,
                if p.tls.is_some() { " (tls)" } else { "" },
                if p.standby > 0 {
                    format!(", {} standby", p.standby)
                } else {
                    String::new()
                }
            );
        }
    }
    println!("segments:");
    for s in snap.segments() {
        println!(
            "  {:<20} profile {}",
            s.name,
            snap.profiles()[s.profile].name
        );
    }
    println!("profiles:");
    for p in snap.profiles() {
        let direct = snap.category_names(p.direct).join(", ");
        let deny = snap.category_names(p.deny).join(", ");
        println!(
            "  {:<20} direct: {direct}{}",
            p.name,
            if deny.is_empty() {
                String::new()
            } else {
                format!("; deny: {deny}")
            }
        );
    }
    println!("categories:");
    for c in &config.categories {
        println!(
            "  {:<20} {:>3} rules {:>4} domains {:>4} networks  ({}, {})",
            c.category.name,
            c.category.rules.len(),
            c.category.domain_count(),
            c.category.network_count(),
            c.provenance.source,
            c.provenance.version
        );
    }
    println!(
        "public suffix list: psl {} (wildcards at a public suffix are refused)",
        lbo_proxy::policy::shared_hosting::PSL_VERSION
    );
    let weakened = config::safeguards::weakened(&config);
    if weakened.is_empty() {
        println!("weakened safeguards: none");
    } else {
        println!("weakened safeguards ({}):", weakened.len());
        for w in &weakened {
            println!("  {} = {}: {}", w.key, w.value, w.opens);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn route(
    path: Option<PathBuf>,
    client: Option<IpAddr>,
    profile: Option<String>,
    targets: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let snap = &config.policy;
    if let Some(p) = &profile {
        if snap.profile(p).is_none() {
            anyhow::bail!("unknown profile {p:?}");
        }
    }
    let client = client.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let explain = |raw: &str| -> Decision {
        let raw = raw.trim();
        let target = match Target::parse_authority(raw, Some(443)) {
            Ok(t) => t,
            Err(_) => return Decision::invalid_target(),
        };
        match &profile {
            Some(p) => {
                decide_for_profile(snap, p, &target).unwrap_or_else(Decision::invalid_target)
            }
            None => decide(snap, client, &target),
        }
    };
    let print = |raw: &str, d: &Decision| {
        let mut v = serde_json::to_value(d).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("target".into(), raw.trim().into());
            if let Some(tr) = &config.tenant {
                let host = Target::parse_authority(raw.trim(), Some(443)).ok();
                let plan = host.as_ref().and_then(|t| t.host.as_name()).and_then(|h| {
                    (d.route != lbo_proxy::policy::Route::Deny)
                        .then(|| tr.scope.plan(d.segment.as_deref(), d.profile.as_deref(), h))
                        .flatten()
                });
                obj.insert(
                    "tenant_restrictions".into(),
                    plan.map_or(serde_json::Value::Null, |p| p.summary()),
                );
            }
        }
        println!("{v}");
    };
    if targets.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading targets from stdin")?;
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            print(&line, &explain(&line));
        }
    } else {
        for t in &targets {
            print(t, &explain(t));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn allowlist(command: AllowlistCommand) -> anyhow::Result<ExitCode> {
    match command {
        AllowlistCommand::ImportM365 {
            list,
            version,
            retrieved,
            mapping,
            out,
            dry_run,
        } => {
            let v = lbo_proxy::lists::import::Version {
                version: version.as_deref(),
                retrieved: retrieved.as_deref(),
            };
            let (report, files) = lbo_proxy::lists::files::generate(&mapping, list.as_deref(), &v)?;
            for (name, text) in &files {
                let path = out.join(name);
                if dry_run {
                    println!("would write {}", path.display());
                } else {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
            }
            print!("{}", lbo_proxy::lists::import::summary(&report));
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::Diff { old, new, format } => allowlist_diff(&old, &new, format),
        AllowlistCommand::Firewall { config, profile } => allowlist_firewall(config, &profile),
    }
}

/// Exit status 0 with or without differences: the diff is for reading, not a gate.
fn allowlist_diff(
    old: &std::path::Path,
    new: &std::path::Path,
    format: DiffFormat,
) -> anyhow::Result<ExitCode> {
    use lbo_proxy::lists::diff;
    let before = diff::load_dir(old)?;
    let after = diff::load_dir(new)?;
    let d = diff::diff(&before, &after);
    match format {
        DiffFormat::Text => print!("{}", d.to_text()),
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn allowlist_firewall(path: Option<PathBuf>, profile: &str) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let script = lbo_proxy::lists::firewall::nftables(&config, profile)?;
    print!("{script}");
    Ok(ExitCode::SUCCESS)
}

fn audit(
    path: Option<PathBuf>,
    profile: Option<String>,
    lang: lbo_proxy::audit::Lang,
    format: lbo_proxy::audit::Format,
    out: Option<PathBuf>,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let report = lbo_proxy::audit::generate(
        path.as_deref(),
        profile.as_deref(),
        std::time::SystemTime::now(),
    )?;
    let text = lbo_proxy::audit::render(&report, lang, format);
    match &out {
        Some(f) => std::fs::write(f, &text).with_context(|| format!("writing {}", f.display()))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing the report")?,
    }
    let failures = report.failures();
    if failures > 0 {
        eprintln!("lbo-proxy: {failures} probe decision(s) contradict the expectation (FAILURE in the report)");
    }
    let weakened = report.weakened.len();
    if strict && weakened > 0 {
        eprintln!(
            "lbo-proxy: {weakened} weakened safeguard(s) (section 6 of the report) and --strict"
        );
    }
    Ok(if failures > 0 || (strict && weakened > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn pac(path: Option<PathBuf>, segment: Option<String>) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let snap = &config.policy;
    let segment = match &segment {
        Some(name) => Some(
            snap.segment(name)
                .with_context(|| format!("unknown segment {name:?}"))?,
        ),
        None => None,
    };
    let profile = segment.map(|s| &snap.profiles()[s.profile]);
    print!(
        "{}",
        lbo_proxy::admin::pac::render(snap, &config.pac, profile, segment.map(|s| &*s.name))
    );
    Ok(ExitCode::SUCCESS)
}

fn ca_init(cert: &std::path::Path, key: &std::path::Path, name: &str) -> anyhow::Result<ExitCode> {
    lbo_proxy::intercept::ca::init(cert, key, name)?;
    eprintln!(
        "Created {cert} (CA certificate) and {key} (its private key, mode 0600).\n\
         WARNING: every PC that trusts this CA accepts any certificate it signs, for any site.\n\
         - Keep {key} on this appliance only: never copy it to PCs, mail it or put it in a backup others can read.\n\
         - Deploy only {cert} to PCs (GPO or Intune: docs/tenant-restrictions.md).\n\
         - This is a lab CA. In production use a CA from the municipality's own PKI, limited to the sign-in hosts where it can be.",
        cert = cert.display(),
        key = key.display(),
    );
    Ok(ExitCode::SUCCESS)
}

fn log_command(command: LogCommand) -> anyhow::Result<ExitCode> {
    use lbo_proxy::access_log::{keys, verify};
    match command {
        LogCommand::Keygen { key, public } => {
            let public = public.unwrap_or_else(|| {
                let mut p = key.clone().into_os_string();
                p.push(".pub");
                PathBuf::from(p)
            });
            let made = keys::generate(&key, &public)?;
            eprintln!(
                "Created {key} (private, mode 0600) and {public} (public).\n\
                 Fingerprint: {fp}\n\
                 - Set [log] signing_key = \"{key}\" and make the file readable by the service only (chown root:lbo-proxy, chmod 0640).\n\
                 - Give {public} to whoever verifies the log (the auditor); keep a copy off this appliance.\n\
                 - Verify: lbo-proxy log verify --key {public} /var/log/lbo-proxy/access.log*",
                key = key.display(),
                public = public.display(),
                fp = made.fingerprint(),
            );
            println!("{}", made.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Verify {
            keys: key_files,
            by_seq,
            files,
        } => {
            let keys = key_files
                .iter()
                .map(|k| keys::PublicKey::load(k))
                .collect::<Result<Vec<_>, _>>()?;
            let inputs = files
                .iter()
                .map(|f| verify::Input::read(f).with_context(|| format!("reading {}", f.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let order = if by_seq {
                verify::Order::BySeq
            } else {
                verify::Order::AsWritten
            };
            let report = verify::verify_in(&inputs, &keys, order);
            print!("{report}");
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
