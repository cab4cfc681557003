//! Allowlist tooling around the category files: importing Microsoft's published endpoint
//! list through a mapping kept as data, reviewing what a new list version changes, and
//! exporting what the proxy cannot carry (UDP media) for the firewall.

pub mod diff;
mod diff_text;
pub mod files;
pub mod firewall;
pub mod import;
pub mod m365;
pub mod mapping;
pub mod render;
