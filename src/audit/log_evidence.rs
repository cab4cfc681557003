//! The report's section on the access log as evidence: where it goes, whether its
//! checkpoints are signed and with which key (by fingerprint), and the command that
//! checks the files, so the auditor can verify what the appliance wrote.

use crate::config::{AccessLogTarget, Config, SyncMode};

/// What the section says, from the configuration alone.
pub struct LogEvidence {
    pub target: String,
    /// The public key's fingerprint, and the private key's path.
    pub key: Option<(String, String)>,
    pub sync: &'static str,
    pub checkpoint_interval: String,
    pub state_dir: String,
    /// The files to give the verifier (`None`: a collector or the journal keeps them).
    pub files: Option<String>,
}

impl LogEvidence {
    pub fn of(c: &Config) -> LogEvidence {
        let log = &c.access_log;
        let (target, files) = match &log.target {
            AccessLogTarget::Off => ("off".to_string(), None),
            AccessLogTarget::Stdout => ("standard output (the journal)".to_string(), None),
            AccessLogTarget::File(p) => {
                (p.display().to_string(), Some(format!("{}*", p.display())))
            }
            AccessLogTarget::Syslog(s) => (format!("syslog {}", s.address), None),
        };
        LogEvidence {
            target,
            key: log
                .signing_key
                .as_ref()
                .map(|k| (k.public().fingerprint(), k.path.display().to_string())),
            sync: match log.sync {
                SyncMode::Batch => "batch",
                SyncMode::None => "none",
            },
            checkpoint_interval: format!("{} s", log.checkpoint_interval.as_secs()),
            state_dir: c.state.dir.display().to_string(),
            files,
        }
    }

    /// The verification command, with the key file the auditor was given.
    pub fn command(&self) -> String {
        let pubkey = self
            .key
            .as_ref()
            .map_or("log-signing.key.pub".to_string(), |(_, path)| {
                format!("{path}.pub")
            });
        let files = self.files.clone().unwrap_or_else(|| "FILE…".into());
        format!("lbo-proxy log verify --key {pubkey} {files}")
    }
}

struct Words {
    title: &'static str,
    intro: &'static str,
    target: &'static str,
    key: &'static str,
    unsigned: &'static str,
    sync: &'static str,
    interval: &'static str,
    state: &'static str,
    verify: &'static str,
    export: &'static str,
}

const EN: Words = Words {
    title: "Access-log integrity",
    intro: "Every line of the access log is numbered (seq) and chained to the one before (SHA-256); checkpoints signed with the appliance's Ed25519 key vouch for the chain. Lost records are counted in the log itself. The command below finds any line deleted, edited, moved or cut, and any file left out (docs/access-log.md).",
    target: "Access log",
    key: "Checkpoint signing key (public key fingerprint)",
    unsigned: "NOT SIGNED: log.signing_key is not set; the chain alone does not show an edit that recomputes it.",
    sync: "Sync to disk",
    interval: "Checkpoint interval",
    state: "State directory (numbering across restarts)",
    verify: "To verify, with the public key file (check its fingerprint against the one above)",
    export: "For a SIEM's export of the syslog stream, add --by-seq.",
};

const JA: Words = Words {
    title: "アクセスログの完全性",
    intro: "アクセスログの各行には通し番号（seq）が付き、直前の行と SHA-256 で連鎖しています。アプライアンスの Ed25519 鍵で署名したチェックポイントがこの連鎖を保証します。書き込めなかったレコードはログ自身に件数が記録されます。下のコマンドで、行の削除・改ざん・入れ替え・切り詰めやファイルの欠落をすべて検出できます（docs/access-log.md）。",
    target: "アクセスログの出力先",
    key: "チェックポイント署名鍵（公開鍵のフィンガープリント）",
    unsigned: "署名なし: log.signing_key が未設定です。連鎖だけでは、連鎖を計算し直した改ざんは検出できません。",
    sync: "ディスクへの同期",
    interval: "チェックポイント間隔",
    state: "状態ディレクトリ（再起動をまたぐ通し番号）",
    verify: "検証方法（公開鍵ファイルのフィンガープリントが上と一致することを確認のうえ）",
    export: "SIEM が受信した syslog を書き出したファイルには --by-seq を付けます。",
};

fn words(code: &str) -> &'static Words {
    if code == "ja" {
        &JA
    } else {
        &EN
    }
}

fn rows(e: &LogEvidence, w: &Words) -> Vec<(&'static str, String)> {
    vec![
        (w.target, e.target.clone()),
        (
            w.key,
            e.key
                .as_ref()
                .map_or(w.unsigned.to_string(), |(fp, _)| fp.clone()),
        ),
        (w.sync, e.sync.to_string()),
        (w.interval, e.checkpoint_interval.clone()),
        (w.state, e.state_dir.clone()),
    ]
}

pub fn markdown(e: &LogEvidence, code: &str) -> String {
    let w = words(code);
    let mut m = format!("## {}\n\n{}\n\n| | |\n|---|---|\n", w.title, w.intro);
    for (k, v) in rows(e, w) {
        m.push_str(&format!(
            "| {k} | `{}` |\n",
            v.replace('`', "'").replace('|', "\\|")
        ));
    }
    m.push_str(&format!(
        "\n{}:\n\n```\n{}\n```\n\n{}\n\n",
        w.verify,
        e.command(),
        w.export
    ));
    m
}

pub fn html(e: &LogEvidence, code: &str) -> String {
    use super::html::esc;
    let w = words(code);
    let mut h = format!(
        "<section id=\"access-log\"><h2>{}</h2>\n<p>{}</p>\n<table>\n",
        esc(w.title),
        esc(w.intro)
    );
    for (k, v) in rows(e, w) {
        h.push_str(&format!(
            "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    h.push_str(&format!(
        "</table>\n<p>{}:</p>\n<pre><code>{}</code></pre>\n<p>{}</p>\n</section>\n",
        esc(w.verify),
        esc(&e.command()),
        esc(w.export)
    ));
    h
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_section_names_the_key_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("log.key");
        let public =
            crate::access_log::keys::generate(&key, &dir.path().join("log.key.pub")).unwrap();
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n\
             [log]\naccess = \"/var/log/lbo-proxy/access.log\"\nsigning_key = \"{}\"\n",
            key.display()
        );
        let c = crate::config::load_str(Path::new("t.toml"), &text, None).unwrap();
        let e = LogEvidence::of(&c);
        let md = markdown(&e, "en");
        assert!(md.contains(&public.fingerprint()), "{md}");
        assert!(md.contains(&format!(
            "lbo-proxy log verify --key {}.pub /var/log/lbo-proxy/access.log*",
            key.display()
        )));
        assert!(html(&e, "ja").contains("アクセスログの完全性"));
        let unsigned = crate::config::load_str(
            Path::new("t.toml"),
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n\
             [[segment]]\nname = \"l\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n",
            None,
        )
        .unwrap();
        assert!(markdown(&LogEvidence::of(&unsigned), "en").contains("NOT SIGNED"));
    }
}
