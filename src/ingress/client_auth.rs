//! The proxy authentication gate every listener passes: a client of a segment with
//! `auth_file` must present one of its users. Explicit clients are challenged (407);
//! transparent ones cannot answer a challenge, so they are refused. Credentials are
//! checked by [`super::proxy_auth`] and never recorded.

use http::StatusCode;

use super::pages::Page;
use super::proxy_auth::{Admitted, CHALLENGE};
use crate::outcome::{CloseReason, Recorder};
use crate::server::Context;

/// `Err(page)` when the request must not go on: the record is ended with
/// `auth_required`. `Ok` carries the user the credentials name, when the client's segment
/// asks for them. `header` is the request's `Proxy-Authorization`, if any; without
/// `challenge` (a transparent client) the page is a 403 instead of a 407.
pub fn check(
    ctx: &Context,
    rec: &mut Recorder,
    header: Option<&[u8]>,
    challenge: bool,
) -> Result<Option<Admitted>, Page<'static>> {
    let Some(segment) = ctx.config.policy.segment_of(rec.client()) else {
        return Ok(None);
    };
    let Some(users) = ctx.config.access.users(&segment.name) else {
        return Ok(None);
    };
    if let Some(user) = users.check(header) {
        return Ok(Some(user));
    }
    rec.get().segment = Some(segment.name.clone());
    rec.get().error = Some(
        match header {
            None => "no proxy credentials",
            Some(_) => "proxy credentials not accepted",
        }
        .into(),
    );
    let status = if challenge {
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    } else {
        StatusCode::FORBIDDEN
    };
    rec.end(CloseReason::AuthRequired, Some(status.as_u16()));
    Err(Page {
        status,
        title: "Proxy authentication required",
        detail: "Clients of your network must sign in to use this proxy.".into(),
        decision: None,
    })
}

/// As [`check`], when only the refusal matters.
pub fn refused(
    ctx: &Context,
    rec: &mut Recorder,
    header: Option<&[u8]>,
    challenge: bool,
) -> Option<Page<'static>> {
    check(ctx, rec, header, challenge).err()
}

/// The header line that asks the client for credentials.
pub fn challenge_header() -> String {
    format!("Proxy-Authenticate: {CHALLENGE}\r\n")
}
