//! Header replacement on an intercepted sign-in request: the restriction headers are set
//! to the configured values, whatever the client sent, and nothing else changes. A client
//! that adds its own `Restrict-Access-To-Tenants` must not widen the list by appending.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::scope::ALL_HEADERS;

/// Whether the request already carried restriction headers of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Added,
    Replaced,
}

/// Removes every copy of every restriction header, then sets `set`.
pub fn replace(headers: &mut HeaderMap, set: &[(HeaderName, HeaderValue)]) -> Applied {
    let mut had_own = false;
    for name in ALL_HEADERS {
        if let http::header::Entry::Occupied(e) = headers.entry(name) {
            e.remove_entry_mult();
            had_own = true;
        }
    }
    for (name, value) in set {
        headers.append(name.clone(), value.clone());
    }
    if had_own {
        Applied::Replaced
    } else {
        Applied::Added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intercept::scope::{V1_CONTEXT, V1_TENANTS, V2_POLICY};

    fn set() -> Vec<(HeaderName, HeaderValue)> {
        vec![
            (V1_TENANTS, HeaderValue::from_static("city.example.jp")),
            (V1_CONTEXT, HeaderValue::from_static("ctx")),
        ]
    }

    #[test]
    fn adds_to_a_clean_request() {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        assert_eq!(replace(&mut h, &set()), Applied::Added);
        assert_eq!(h["restrict-access-to-tenants"], "city.example.jp");
        assert_eq!(h["restrict-access-context"], "ctx");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn replaces_every_client_copy_of_every_name() {
        let mut h = HeaderMap::new();
        h.append(
            "Restrict-Access-To-Tenants",
            HeaderValue::from_static("evil.example"),
        );
        h.append(
            "restrict-access-to-tenants",
            HeaderValue::from_static("other.example"),
        );
        h.append(
            "Restrict-Access-Context",
            HeaderValue::from_static("evil-ctx"),
        );
        h.append(V2_POLICY, HeaderValue::from_static("restrict-nothing"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        assert_eq!(replace(&mut h, &set()), Applied::Replaced);
        let tenants: Vec<_> = h.get_all("restrict-access-to-tenants").iter().collect();
        assert_eq!(tenants, ["city.example.jp"]);
        let ctx: Vec<_> = h.get_all("restrict-access-context").iter().collect();
        assert_eq!(ctx, ["ctx"]);
        assert!(h.get(V2_POLICY).is_none());
        assert_eq!(h["cookie"], "a=1");
    }
}
