//! What accepts: the explicit proxy listener (CONNECT tunnels and absolute-form `http://`),
//! the transparent listeners (TLS routed by SNI, HTTP routed by `Host`), their pure
//! parsers, admission (connection limits, proxy authentication), and the pages clients see
//! when a request is refused.

pub mod accept;
pub mod admission;
mod chunked;
pub mod client_auth;
pub mod client_hello;
pub mod explicit;
pub mod forward;
mod forward_upstream;
pub mod head;
pub mod heads;
pub mod original_dst;
pub mod pages;
pub mod proxy_auth;
mod recheck;
pub mod sni_check;
pub mod transparent_http;
pub mod transparent_tls;
pub mod tunnel;
pub mod tunnels;
