//! Benchmark of the PAC generator on the shipped allowlists (the embedded default config):
//! one render per request of `/proxy.pac`, for the smallest and the largest built-in
//! profile, in both modes. A PC fetches its PAC at start and on every network change, so
//! a 9:00 rush asks for thousands.
//!
//! Run: `cargo bench --bench pac` (full) or `cargo bench --bench pac -- --quick`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use lbo_proxy::admin::pac::{render, PacMode};

fn bench_render(c: &mut Criterion) {
    let mut config = lbo_proxy::config::load(None).expect("the embedded default loads");
    // Split mode needs a security cloud to split towards.
    config.pac.security_cloud = vec!["seccloud.example.lg.jp:8080".into()];
    let mut group = c.benchmark_group("pac_render");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    for mode in [PacMode::All, PacMode::Split] {
        config.pac.mode = mode;
        for name in ["case1", "case3"] {
            let snap = &config.policy;
            let profile = snap.profile(name).expect("built-in profile");
            let js = render(snap, &config.pac, Some(profile), Some("office"));
            assert!(js.contains("function FindProxyForURL"), "{name}");
            let id = BenchmarkId::new(format!("{mode:?}").to_lowercase(), name);
            group.bench_function(id, |b| {
                b.iter(|| {
                    render(
                        black_box(snap),
                        black_box(&config.pac),
                        Some(profile),
                        Some("office"),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
