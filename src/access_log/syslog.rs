//! RFC 5424 framing, pure: the header a SIEM collector parses, and RFC 6587 octet
//! counting for a stream. The message is the access-log JSON line, unchanged.

use std::fmt::Write as _;

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
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, without structured data.
/// Header fields are cut to their maximum length, characters outside printable ASCII
/// become `_`, and an empty field becomes the NILVALUE `-`.
pub fn message(
    origin: &Origin,
    severity: Severity,
    timestamp: &str,
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
    head.push_str(" - ");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(msg);
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
}
