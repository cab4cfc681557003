//! Reads the proxy's access log after the run: every record for a name that is not
//! allowlisted must have gone upstream or been refused, never direct.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::DIRECT_HOST;

#[derive(Default, Debug)]
pub struct LogAudit {
    pub records: u64,
    /// Records per `route` (`direct`, `upstream`, `deny`, `none` before a decision).
    pub routes: BTreeMap<String, u64>,
    /// Records per `reason`.
    pub reasons: BTreeMap<String, u64>,
    /// Records of a target that is not allowlisted with route `direct`: must stay empty.
    pub leaked: Vec<String>,
    /// One `error` text per reason, as an example for the report.
    pub errors: BTreeMap<String, String>,
    /// Lines that are not JSON records.
    pub unreadable: u64,
}

pub fn audit(path: &Path) -> LogAudit {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut audit = LogAudit::default();
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            audit.unreadable += 1;
            continue;
        };
        // Checkpoints and reports of lost records are the log's own lines.
        if record.get("event").is_some() {
            continue;
        }
        audit.records += 1;
        let route = record["route"].as_str().unwrap_or("none").to_string();
        let reason = record["reason"].as_str().unwrap_or("none").to_string();
        let target = record["target"].as_str().unwrap_or("");
        let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
        if route == "direct" && host != DIRECT_HOST {
            audit.leaked.push(line.to_string());
        }
        *audit.routes.entry(route).or_default() += 1;
        if let Some(error) = record["error"].as_str() {
            audit
                .errors
                .entry(reason.clone())
                .or_insert_with(|| error.to_string());
        }
        *audit.reasons.entry(reason).or_default() += 1;
    }
    audit
}
