//! `/metrics` read back from the admin listener, and promtool from Debian to judge it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// One scrape of the exposition text.
pub struct Scrape {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

/// One sample line: name, labels, value.
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Fetches `/metrics` from the admin listener (curl, no proxy).
pub async fn scrape(admin: SocketAddr) -> Scrape {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--noproxy", "*", "--max-time", "10"])
        .args(["-w", "\n%{http_code} %{content_type}"])
        .arg(format!("http://{admin}/metrics"))
        .output()
        .await
        .expect("curl is not installed: run scripts/test");
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (text, tail) = all.rsplit_once('\n').unwrap_or(("", &all));
    let (status, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    Scrape {
        status: status.parse().unwrap_or(0),
        content_type: content_type.to_string(),
        text: format!("{text}\n"),
    }
}

impl Scrape {
    pub fn samples(&self) -> Vec<Sample> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a sample line has a value");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
                };
                let (name, labels) = match series.split_once('{') {
                    None => (series, Vec::new()),
                    Some((name, rest)) => {
                        let inner = rest.strip_suffix('}').expect("labels end with }");
                        let labels = inner
                            .split("\",")
                            .filter(|kv| !kv.is_empty())
                            .map(|kv| {
                                let (k, v) = kv.split_once("=\"").expect("label=\"value\"");
                                (k.to_string(), v.trim_end_matches('"').to_string())
                            })
                            .collect();
                        (name, labels)
                    }
                };
                Sample {
                    name: name.to_string(),
                    labels,
                    value,
                }
            })
            .collect()
    }

    /// The sum over the series of `name` that carry every label in `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples()
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any series of `name` carries every label in `want`.
    pub fn has(&self, name: &str, want: &[(&str, &str)]) -> bool {
        self.samples().iter().any(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Metric family names from the `# TYPE` lines, with their type.
    pub fn families(&self) -> Vec<(String, String)> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// Every label value that appears, to prove none is a host or an address.
    pub fn label_values(&self) -> BTreeSet<String> {
        self.samples()
            .into_iter()
            .flat_map(|s| s.labels.into_iter().map(|(_, v)| v))
            .collect()
    }
}

/// Debian's promtool; fails (never skips) when it is missing: `scripts/test` installs the
/// `prometheus` package.
pub fn promtool() -> &'static str {
    let bin = "/usr/bin/promtool";
    assert!(
        Path::new(bin).exists(),
        "promtool is not installed: run scripts/test (apt-get install prometheus)"
    );
    bin
}

/// `promtool check metrics` on exposition text.
pub fn promtool_check_metrics(text: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    child.wait_with_output().expect("waiting for promtool")
}
