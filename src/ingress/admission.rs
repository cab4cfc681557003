//! Admission at accept: bounds the open client connections overall and per client
//! address, so one misbehaving PC (or a flood of them) cannot take every socket. A
//! [`Permit`] holds one place until it is dropped, however the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `limits.max_connections` connections are open (503).
    Total,
    /// This client address holds `limits.max_connections_per_client` (429).
    PerClient,
}

/// The open connections, counted overall and per client address. The limits can change
/// on reload; connections already admitted keep their place.
pub struct Admission {
    state: Mutex<State>,
}

struct State {
    max_total: usize,
    max_per_client: usize,
    total: usize,
    /// Only addresses with at least one open connection: the map never outgrows the
    /// connections themselves.
    per_client: HashMap<IpAddr, usize>,
}

/// One admitted connection's place; given back when dropped.
#[must_use = "the connection counts as open only while its permit lives"]
pub struct Permit {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            state: Mutex::new(State {
                max_total,
                max_per_client,
                total: 0,
                per_client: HashMap::new(),
            }),
        })
    }

    /// New limits (a reload): they apply to connections accepted from now on.
    pub fn set_limits(&self, max_total: usize, max_per_client: usize) {
        let mut s = self.lock();
        s.max_total = max_total;
        s.max_per_client = max_per_client;
    }

    /// Takes a place for `client`, or says which limit is reached.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Permit, Refused> {
        let mut s = self.lock();
        if s.total >= s.max_total {
            return Err(Refused::Total);
        }
        let max_per_client = s.max_per_client;
        let open = s.per_client.entry(client).or_insert(0);
        if *open >= max_per_client {
            return Err(Refused::PerClient);
        }
        *open += 1;
        s.total += 1;
        Ok(Permit {
            admission: self.clone(),
            client,
        })
    }

    /// Connections open now (overall).
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// A poisoned lock only means another thread panicked mid-update of two counters;
    /// counting on is better than refusing every connection.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.admission.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(open) = s.per_client.get_mut(&self.client) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                s.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bounds_each_client_and_the_total() {
        let a = Admission::new(3, 2);
        let p1 = a.admit(ip("10.0.0.1")).unwrap();
        let _p2 = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).err(), Some(Refused::PerClient));
        let _p3 = a.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.3")).err(), Some(Refused::Total));
        drop(p1);
        assert_eq!(a.open(), 2);
        let _p4 = a.admit(ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn forgets_clients_with_nothing_open_and_takes_new_limits() {
        let a = Admission::new(10, 1);
        let p = a.admit(ip("::1")).unwrap();
        drop(p);
        assert!(a.lock().per_client.is_empty());
        a.set_limits(10, 2);
        let _p1 = a.admit(ip("::1")).unwrap();
        let _p2 = a.admit(ip("::1")).unwrap();
        a.set_limits(1, 2);
        assert_eq!(a.admit(ip("::2")).err(), Some(Refused::Total));
    }
}
