//! `GET /readyz`: 200 while the appliance serves (direct breakout works with every parent
//! down), with whether the security cloud can carry traffic. `?upstream=1` turns that into
//! the status: 503 when no parent is configured or none is up, for a load balancer that
//! should send non-allowlisted traffic only to appliances that can carry it.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::server::Context;

pub fn response(ctx: &Context, query: Option<&str>) -> Response<Full<Bytes>> {
    let pool = &ctx.parents;
    let available = pool.available();
    let parents: Vec<serde_json::Value> = pool
        .parents()
        .iter()
        .map(|p| {
            let h = p.health();
            let (ready, want) = p.standby();
            serde_json::json!({
                "name": &*p.config.name,
                "up": h.up,
                "down_since": h.down_since.map(crate::outcome::rfc3339),
                "down_by": h.down_by,
                "standby_ready": ready,
                "standby": want,
            })
        })
        .collect();
    let body = serde_json::json!({
        "ready": true,
        "upstream_available": available,
        "parents": parents,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if wants_upstream(query) && !available {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    super::text(status, format!("{body}\n"), "application/json")
}

/// `upstream=1` (or `upstream=true`) among the query's pairs.
fn wants_upstream(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "upstream=1" | "upstream=true" | "upstream"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_upstream_flag() {
        assert!(wants_upstream(Some("upstream=1")));
        assert!(wants_upstream(Some("x=2&upstream=true")));
        assert!(!wants_upstream(Some("upstream=0")));
        assert!(!wants_upstream(None));
    }
}
