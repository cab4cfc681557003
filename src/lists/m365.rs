//! Microsoft's "Office 365 IP Address and URL web service" list (`/endpoints/worldwide`),
//! as published: parsed, not interpreted.

use serde::Deserialize;

/// One endpoint set of the published list.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: u32,
    pub service_area: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub ips: Vec<String>,
    /// Comma-separated ports and ranges, e.g. `80,443` or `3478-3481`.
    #[serde(default)]
    pub tcp_ports: Option<String>,
    #[serde(default)]
    pub udp_ports: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("not an endpoint list: {0}")]
    Json(#[from] serde_json::Error),
    #[error("endpoint {id}: bad port list {text:?}")]
    Ports { id: u32, text: String },
}

pub fn parse(text: &str) -> Result<Vec<Endpoint>, ListError> {
    Ok(serde_json::from_str(text)?)
}

impl Endpoint {
    pub fn tcp(&self) -> Result<Vec<u16>, ListError> {
        ports(self.id, self.tcp_ports.as_deref())
    }

    pub fn udp(&self) -> Result<Vec<u16>, ListError> {
        ports(self.id, self.udp_ports.as_deref())
    }

    /// UDP only: nothing an HTTP proxy can carry.
    pub fn udp_only(&self) -> bool {
        self.tcp_ports.as_deref().unwrap_or("").trim().is_empty()
            && !self.udp_ports.as_deref().unwrap_or("").trim().is_empty()
    }
}

/// Expands `80,443,3478-3481` into ports.
fn ports(id: u32, text: Option<&str>) -> Result<Vec<u16>, ListError> {
    let bad = || ListError::Ports {
        id,
        text: text.unwrap_or_default().to_string(),
    };
    let mut out = Vec::new();
    for part in text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo == 0 || hi < lo || hi - lo > 1024 {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports_and_ranges() {
        assert_eq!(ports(1, Some("80,443")).unwrap(), [80, 443]);
        assert_eq!(
            ports(1, Some("3478-3481")).unwrap(),
            [3478, 3479, 3480, 3481]
        );
        assert_eq!(ports(1, None).unwrap(), Vec::<u16>::new());
        assert!(ports(1, Some("80,x")).is_err());
        assert!(ports(1, Some("0")).is_err());
        assert!(ports(1, Some("9-1")).is_err());
    }

    #[test]
    fn reads_the_published_format() {
        let list = parse(
            r#"[{"id": 11, "serviceArea": "Skype", "serviceAreaDisplayName": "x",
                 "ips": ["13.107.64.0/18"], "udpPorts": "3478,3479,3480,3481",
                 "expressRoute": true, "category": "Optimize", "required": true}]"#,
        )
        .unwrap();
        assert!(list[0].udp_only());
        assert_eq!(list[0].udp().unwrap(), [3478, 3479, 3480, 3481]);
        assert!(list[0].urls.is_empty());
    }
}
