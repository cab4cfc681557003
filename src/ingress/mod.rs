//! What accepts: the explicit proxy listener (CONNECT tunnels and absolute-form `http://`),
//! its pure head parser, and the pages clients see when a request is refused.

pub mod explicit;
pub mod forward;
pub mod head;
pub mod pages;
pub mod tunnel;
