//! RFC 5424 framing, pure: the header a SIEM collector parses, structured data with the
//! record's key fields (so a SIEM can index without parsing the JSON), and RFC 6587 octet
//! counting for a stream (TCP, and TLS as RFC 5425 has it). The message is the access-log
//! JSON line, unchanged: it carries the chain a verifier checks.

use std::fmt::Write as _;

use crate::outcome::{rfc3339, Outcome};

/// The SD-ID of the record's fields. 32473 is the enterprise number RFC 5612 sets aside
/// for examples; collectors match on the whole ID.
pub const SD_ID: &str = "lbo@32473";

/// The severities the access log uses (RFC 5424 table 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Records lost: a gap in the audit trail.
    Warning = 4,
    /// One request or tunnel.
    Informational = 6,
}

/// The header fields that stay the same for every message of one sender.
#[derive(Clone, Debug)]
pub struct Origin {
    /// 0..=23.
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
}

/// The MSGID of records and of the report of lost records.
pub fn msgid(severity: Severity) -> &'static str {
    match severity {
        Severity::Informational => "access",
        Severity::Warning => "dropped",
    }
}

/// Appends one RFC 5424 message to `out`:
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`, `sd` being structured data
/// made by [`structured_data`] (empty: the NILVALUE). Header fields are cut to their
/// maximum length, characters outside printable ASCII become `_`, and an empty field
/// becomes the NILVALUE `-`.
pub fn message(
    origin: &Origin,
    severity: Severity,
    timestamp: &str,
    sd: &str,
    msg: &[u8],
    out: &mut Vec<u8>,
) {
    let pri = u16::from(origin.facility.min(23)) * 8 + severity as u16;
    let mut head = String::with_capacity(96);
    let _ = write!(head, "<{pri}>1 ");
    field(&mut head, timestamp, 32);
    head.push(' ');
    field(&mut head, &origin.hostname, 255);
    head.push(' ');
    field(&mut head, &origin.app_name, 48);
    head.push(' ');
    field(&mut head, &origin.procid, 128);
    head.push(' ');
    field(&mut head, msgid(severity), 32);
    head.push(' ');
    head.push_str(if sd.is_empty() { "-" } else { sd });
    head.push(' ');
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(msg);
}

/// One SD-ELEMENT, `[lbo@32473 name="value" …]`, of the parameters that have a value.
/// Values escape `"`, `\` and `]` (RFC 5424 6.3.3).
pub fn structured_data(params: &[(&str, Option<&str>)]) -> String {
    let mut sd = format!("[{SD_ID}");
    for (name, value) in params {
        let Some(value) = value else { continue };
        let _ = write!(sd, " {name}=\"");
        for c in value.chars() {
            if matches!(c, '"' | '\\' | ']') {
                sd.push('\\');
            }
            sd.push(c);
        }
        sd.push('"');
    }
    sd.push(']');
    sd
}

/// The record's key fields as structured data: who, what, which way, how it ended.
pub fn record_data(seq: u64, o: &Outcome) -> String {
    let seq = seq.to_string();
    let client = o.client.to_string();
    let port = o.client_port.to_string();
    let status = o.status.map(|s| s.to_string());
    let up = o.bytes_up.to_string();
    let down = o.bytes_down.to_string();
    let start = rfc3339(o.start);
    let end = rfc3339(o.end);
    structured_data(&[
        ("seq", Some(&seq)),
        ("start", Some(&start)),
        ("end", Some(&end)),
        ("client", Some(&client)),
        ("client_port", Some(&port)),
        ("segment", o.segment.as_deref()),
        ("profile", o.profile.as_deref()),
        ("method", o.method.as_deref()),
        ("target", o.target.as_deref()),
        ("route", o.route.map(|r| r.as_str())),
        ("category", o.category.as_deref()),
        ("rule", o.rule.as_deref()),
        ("decision", o.decision.map(|d| d.as_str())),
        ("parent", o.parent.as_deref()),
        ("status", status.as_deref()),
        ("bytes_up", Some(&up)),
        ("bytes_down", Some(&down)),
        ("reason", Some(o.reason.as_str())),
        ("blame", o.blame.map(|b| b.as_str())),
    ])
}

/// An event line's structured data: its number and what it is.
pub fn event_data(seq: u64, event: &str) -> String {
    structured_data(&[("seq", Some(&seq.to_string())), ("event", Some(event))])
}

/// RFC 6587 3.4.1: `MSG-LEN SP SYSLOG-MSG`, so a message may hold any byte.
pub fn octet_counted(msg: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}

fn field(out: &mut String, value: &str, max: usize) {
    if value.is_empty() {
        out.push('-');
        return;
    }
    out.extend(value.chars().take(max).map(|c| match c {
        '!'..='~' => c,
        _ => '_',
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            facility: 16,
            hostname: "lbo1.city.example".into(),
            app_name: "lbo-proxy".into(),
            procid: "4242".into(),
        }
    }

    fn text(origin: &Origin, severity: Severity, msg: &str) -> String {
        let mut out = Vec::new();
        message(
            origin,
            severity,
            "2026-11-23T12:00:00.123Z",
            "",
            msg.as_bytes(),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_as_rfc_5424_section_6() {
        assert_eq!(
            text(&origin(), Severity::Informational, r#"{"route":"direct"}"#),
            r#"<134>1 2026-11-23T12:00:00.123Z lbo1.city.example lbo-proxy 4242 access - {"route":"direct"}"#
        );
        let mut kern = origin();
        kern.facility = 0;
        assert!(text(&kern, Severity::Warning, "x").starts_with("<4>1 "));
        let mut local7 = origin();
        local7.facility = 23;
        assert!(text(&local7, Severity::Informational, "x").starts_with("<190>1 "));
        assert!(text(&local7, Severity::Warning, "x").contains(" 4242 dropped - x"));
    }

    #[test]
    fn header_fields_stay_printable_ascii_within_their_length() {
        let o = Origin {
            facility: 99,
            hostname: String::new(),
            app_name: "lbo proxy\u{3042}".repeat(10),
            procid: "1\n2".into(),
        };
        let t = text(&o, Severity::Informational, "m");
        let fields: Vec<&str> = t.splitn(8, ' ').collect();
        assert_eq!(fields[0], "<190>1");
        assert_eq!(fields[2], "-");
        assert_eq!(fields[3].len(), 48);
        assert!(fields[3].starts_with("lbo_proxy_lbo_proxy_"));
        assert_eq!(fields[4], "1_2");
        assert_eq!(fields[7], "m");
    }

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        let mut out = Vec::new();
        octet_counted("<134>1 - - - - - - 東京".as_bytes(), &mut out);
        assert_eq!(out, "25 <134>1 - - - - - - 東京".as_bytes());
        let mut two = Vec::new();
        octet_counted(b"a", &mut two);
        octet_counted(b"bc\n", &mut two);
        assert_eq!(two, b"1 a3 bc\n");
    }

    #[test]
    fn structured_data_carries_the_key_fields_escaped() {
        assert_eq!(
            structured_data(&[("a", Some("x\"y]z\\")), ("b", None), ("c", Some("東京"))]),
            r#"[lbo@32473 a="x\"y\]z\\" c="東京"]"#
        );
        let o = Outcome {
            client: "10.1.2.3".parse().unwrap(),
            client_port: 50123,
            target: Some("login.microsoftonline.com:443".into()),
            route: Some(crate::policy::Route::Direct),
            status: Some(200),
            reason: crate::outcome::CloseReason::Finished,
            ..Outcome::default()
        };
        let sd = record_data(42, &o);
        for want in [
            "[lbo@32473 seq=\"42\" start=\"1970-01-01T00:00:00.000Z\"",
            " client=\"10.1.2.3\" client_port=\"50123\"",
            " target=\"login.microsoftonline.com:443\" route=\"direct\"",
            " status=\"200\" bytes_up=\"0\" bytes_down=\"0\" reason=\"finished\"]",
        ] {
            assert!(sd.contains(want), "{want} in {sd}");
        }
        assert!(!sd.contains("segment="));
        let mut out = Vec::new();
        message(
            &origin(),
            Severity::Informational,
            "-",
            &sd,
            b"{}",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" access [lbo@32473 seq=\"42\""), "{text}");
        assert!(text.ends_with("reason=\"finished\"] {}"), "{text}");
        assert_eq!(
            event_data(7, "records_lost"),
            r#"[lbo@32473 seq="7" event="records_lost"]"#
        );
    }
}
