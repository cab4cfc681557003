//! The explicit listener's path on arbitrary bytes: head parser, authority
//! normalisation, then the decision on the embedded default policy. None may panic, and
//! a normalised target must read back as itself.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use lbo_proxy::ingress::head::{parse, Head, HeadLimits};
use lbo_proxy::policy::{decide::decide, Snapshot, Target};
use libfuzzer_sys::fuzz_target;

/// The explicit listener's defaults (`[limits]`).
const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 64 * 1024,
    max_headers: 100,
};

fn policy() -> &'static Arc<Snapshot> {
    static POLICY: OnceLock<Arc<Snapshot>> = OnceLock::new();
    POLICY.get_or_init(|| {
        lbo_proxy::config::load(None)
            .expect("the embedded default is valid")
            .policy
    })
}

fuzz_target!(|data: &[u8]| {
    let client = IpAddr::from([127, 0, 0, 1]);
    if let Ok(Head::Connect { authority, .. }) = parse(data, LIMITS) {
        if let Ok(target) = Target::parse_authority(authority, None) {
            let again = Target::parse_authority(&target.to_string(), None);
            assert_eq!(again.as_ref(), Ok(&target), "{authority:?}");
            let _ = decide(policy(), client, &target);
        }
    }
});
