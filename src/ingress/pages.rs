//! The short pages a browser shows and an administrator understands: what happened, why,
//! and which rule decided it.

use bytes::Bytes;
use http::StatusCode;

use crate::policy::Decision;

/// What a page says.
pub struct Page<'a> {
    pub status: StatusCode,
    pub title: &'a str,
    pub detail: String,
    pub decision: Option<&'a Decision>,
}

impl Page<'_> {
    pub fn html(&self) -> Bytes {
        let mut rows = String::new();
        if let Some(d) = self.decision {
            let fields = [
                ("route", Some(d.route.as_str())),
                ("reason", Some(d.reason.as_str())),
                ("segment", d.segment.as_deref()),
                ("profile", d.profile.as_deref()),
                ("category", d.category.as_deref()),
                ("rule", d.rule.as_deref()),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    rows.push_str(&format!("<tr><th>{k}</th><td>{}</td></tr>\n", escape(v)));
                }
            }
        }
        Bytes::from(format!(
            "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
             <body><h1>{code} {title}</h1>\n<p>{detail}</p>\n<table>\n{rows}</table>\n\
             <p><small>lbo-proxy</small></p></body></html>\n",
            code = self.status.as_u16(),
            title = escape(self.title),
            detail = escape(&self.detail),
        ))
    }

    /// A complete HTTP/1.1 response that closes the connection (raw CONNECT path).
    pub fn raw_response(&self) -> Vec<u8> {
        self.raw_response_with("")
    }

    /// As [`Page::raw_response`], with more header lines (each ending in CRLF).
    pub fn raw_response_with(&self, headers: &str) -> Vec<u8> {
        let body = self.html();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        if let Some(d) = self.decision {
            out.extend_from_slice(
                format!(
                    "X-LBO-Route: {}\r\nX-LBO-Reason: {}\r\n",
                    d.route.as_str(),
                    d.reason.as_str()
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for a denied decision.
pub fn denied(d: &Decision) -> Page<'_> {
    use crate::policy::Reason;
    let detail = match d.reason {
        Reason::UnknownClient => {
            "Your address is not in any configured client segment; this proxy serves configured networks only.".to_string()
        }
        Reason::DenyRule => format!(
            "The destination is refused by rule {} of your profile.",
            d.rule.as_deref().unwrap_or("?")
        ),
        Reason::InvalidTarget => "The destination is not a valid host and port.".to_string(),
        Reason::PortNotAllowlisted => format!(
            "The destination breaks out locally by rule {}, but not on this port.",
            d.rule.as_deref().unwrap_or("?")
        ),
        _ => "The destination is refused.".to_string(),
    };
    Page {
        status: match d.reason {
            Reason::InvalidTarget => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        },
        title: "Denied by the local breakout policy",
        detail,
        decision: Some(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_frames() {
        let p = Page {
            status: StatusCode::BAD_GATEWAY,
            title: "x",
            detail: "<script>".into(),
            decision: None,
        };
        let raw = String::from_utf8(p.raw_response()).unwrap();
        assert!(raw.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(raw.contains("&lt;script&gt;"));
        let body_len = p.html().len();
        assert!(raw.contains(&format!("Content-Length: {body_len}\r\n")));
    }
}
