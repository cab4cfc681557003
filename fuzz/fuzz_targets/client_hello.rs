//! The ClientHello parser on arbitrary bytes: it must answer, never panic, and a complete
//! answer must stay complete when more bytes follow.
#![no_main]

use lbo_proxy::ingress::client_hello::{parse, Hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks `max`, so the size limit is exercised too.
    let Some((&m, buf)) = data.split_first() else {
        return;
    };
    let max = 64 + usize::from(m) * 64;
    let whole = parse(buf, max);
    if let Ok(Hello::Complete { .. }) = &whole {
        let mut longer = buf.to_vec();
        longer.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
        assert_eq!(parse(&longer, max), whole);
    }
    // Every prefix must be answered too (what the shell sees as reads arrive).
    for cut in [buf.len() / 3, buf.len() / 2, buf.len().saturating_sub(1)] {
        let _ = parse(&buf[..cut], max);
    }
});
