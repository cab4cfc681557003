//! The pool against loopback parents played by small servers: health by fall and rise,
//! the failure classes, and the `balance` orders over real connections.

use std::time::Duration;

use super::*;
use crate::config::{Balance, HealthCheck, ParentConfig, Timeouts, UpstreamConfig};

/// A plain parent with the defaults.
pub(super) fn parent(name: &str, address: String) -> ParentConfig {
    ParentConfig {
        name: Arc::from(name),
        address,
        tls: None,
        proxy_authorization: None,
        weight: 1,
        standby: 0,
        standby_max_idle: Duration::from_secs(30),
    }
}

fn upstream(parents: Vec<ParentConfig>, fall: u32, rise: u32) -> UpstreamConfig {
    UpstreamConfig {
        parents,
        health_interval: Duration::from_secs(1),
        health_timeout: Duration::from_secs(1),
        fall,
        rise,
        balance: Balance::Failover,
        health_check: HealthCheck::Tcp,
        dns: Vec::new(),
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        head: Duration::from_secs(1),
        connect: Duration::from_secs(1),
        dns: Duration::from_secs(1),
        idle: Duration::from_secs(1),
        drain: Duration::from_secs(1),
        parent_answer: Duration::from_millis(300),
    }
}

fn pool(config: UpstreamConfig) -> ParentPool {
    ParentPool::new(&config, &timeouts(), None).unwrap()
}

fn closed() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    addr.to_string()
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn health_checks_follow_fall_and_rise() {
    let addr = closed();
    let pool = pool(upstream(vec![parent("p", addr.clone())], 2, 2));
    let p = pool.parents()[0].clone();
    pool.check_all().await;
    assert!(p.is_up(), "one failure is below fall = 2");
    pool.check_all().await;
    assert!(!p.is_up());
    let h = p.health();
    assert_eq!(h.downs, 1);
    assert_eq!(h.down_by, Some("its health checks"));
    let check = h.last_check.unwrap();
    assert!(!check.ok);
    assert_eq!(
        check.error.unwrap(),
        format!("TCP connect to {addr} refused")
    );
    let _listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    pool.check_all().await;
    assert!(!p.is_up(), "one success is below rise = 2");
    pool.check_all().await;
    assert!(p.is_up());
}

#[tokio::test]
async fn no_parent_and_all_down_are_distinct_errors() {
    let empty = pool(upstream(vec![], 1, 1));
    let t = Target::parse_authority("example.test:443", None).unwrap();
    assert!(matches!(
        empty.connect_tunnel(CLIENT, &t).await,
        Err(ConnectError::NoParent)
    ));
    let down = pool(upstream(vec![parent("p", closed())], 1, 1));
    let e = down.connect_tunnel(CLIENT, &t).await.err().unwrap();
    // fall = 1: this very attempt marked the only parent down.
    assert!(matches!(e, ConnectError::ParentsDown { .. }), "{e}");
    assert!(
        e.to_string().contains("p by connection failures since"),
        "{e}"
    );
    assert!(!down.parents()[0].is_up());
    assert!(matches!(
        down.connect_tunnel(CLIENT, &t).await,
        Err(ConnectError::ParentsDown { .. })
    ));
}
