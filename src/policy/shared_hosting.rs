//! Zones where anyone can host content or register a name. A wildcard over one of them
//! would let a stranger's storage account, web app, CDN endpoint or newly registered
//! domain break out directly, so no direct category may hold one, whatever a published
//! list says: the shared-hosting zones below, and every entry of the Public Suffix List
//! (its ICANN and private sections, compiled into the binary by the `psl` crate).

use super::domain::DomainPattern;

/// Zones of shared hosting, storage and CDN services (customer-named subdomains).
pub const SHARED_HOSTING_ZONES: &[&str] = &[
    "blob.core.windows.net",
    "web.core.windows.net",
    "file.core.windows.net",
    "queue.core.windows.net",
    "table.core.windows.net",
    "dfs.core.windows.net",
    "core.windows.net",
    "azurewebsites.net",
    "azurestaticapps.net",
    "cloudapp.net",
    "cloudapp.azure.com",
    "azurecontainerapps.io",
    "azureedge.net",
    "azurefd.net",
    "trafficmanager.net",
    "msecnd.net",
    "vo.msecnd.net",
    "mediaservices.windows.net",
    "azure-api.net",
    "azure-apim.net",
    "servicebus.windows.net",
    "akamaihd.net",
    "akamaized.net",
    "edgesuite.net",
    "edgekey.net",
    "akamaiedge.net",
    "cloudfront.net",
    "amazonaws.com",
    "appspot.com",
    "googleusercontent.com",
    "firebaseapp.com",
    "web.app",
    "github.io",
    "githubusercontent.com",
    "herokuapp.com",
    "netlify.app",
    "vercel.app",
    "pages.dev",
    "workers.dev",
    "fastly.net",
    "storage.live.com",
    "users.storage.live.com",
    "onedrive.live.com",
    "1drv.ms",
    "1drv.com",
    "microsoftusercontent.com",
    "yammerusercontent.com",
];

/// Zones too broad to break out as a whole: `*.microsoft.com` covers far more than any
/// category's job. Only a wildcard over exactly the zone is refused; narrower ones such as
/// `*.teams.microsoft.com` are fine.
pub const BROAD_ZONES: &[&str] = &[
    "microsoft.com",
    "office.com",
    "office.net",
    "live.com",
    "windows.net",
    "windows.com",
    "azure.com",
    "azure.net",
    "msn.com",
    "bing.com",
];

/// The shared-hosting zone a wildcard pattern ranges over, if any: the pattern's wildcard
/// zone is such a zone, lies inside one, or contains one.
pub fn shared_zone_of(pattern: &DomainPattern) -> Option<&'static str> {
    let zone = pattern.wildcard_zone()?;
    SHARED_HOSTING_ZONES
        .iter()
        .copied()
        .find(|shared| zone == *shared || is_under(&zone, shared) || is_under(shared, &zone))
        .or_else(|| BROAD_ZONES.iter().copied().find(|broad| zone == *broad))
}

/// Version of the `psl` crate, whose number follows the Public Suffix List it compiles
/// in; `check` prints it (a unit test keeps it equal to Cargo.lock).
pub const PSL_VERSION: &str = "2.1.247";

/// Which section of the Public Suffix List an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuffixSection {
    /// Registries' own suffixes (`co.jp`, `ne.jp`, `lg.jp` …).
    Icann,
    /// Companies whose customers get names under them (`sakura.ne.jp`, `blogspot.com`,
    /// `r2.dev` …).
    Private,
}

impl SuffixSection {
    pub fn as_str(self) -> &'static str {
        match self {
            SuffixSection::Icann => "ICANN section",
            SuffixSection::Private => "private section",
        }
    }
}

/// The public suffix a wildcard ranges directly over, if any: the literal labels right of
/// the pattern's rightmost wildcard are an entry of the Public Suffix List (`*.co.jp`,
/// `x*.sakura.ne.jp`, `a.*.blogspot.com`), so the wildcard stands for names anyone may
/// register. A wildcard under a registered name (`*.sharepoint.com`) is not one.
pub fn public_suffix_of(pattern: &DomainPattern) -> Option<(String, SuffixSection)> {
    let zone = pattern.wildcard_zone()?;
    let suffix = psl::suffix(zone.as_bytes())?;
    let section = match suffix.typ()? {
        psl::Type::Icann => SuffixSection::Icann,
        psl::Type::Private => SuffixSection::Private,
    };
    (suffix == zone.as_str()).then_some((zone, section))
}

fn is_under(name: &str, zone: &str) -> bool {
    name.len() > zone.len()
        && name.ends_with(zone)
        && name.as_bytes()[name.len() - zone.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(p: &str) -> Option<&'static str> {
        shared_zone_of(&DomainPattern::parse(p).unwrap())
    }

    #[test]
    fn flags_wildcards_over_shared_zones() {
        assert_eq!(
            zone("*.blob.core.windows.net"),
            Some("blob.core.windows.net")
        );
        assert_eq!(
            zone("*.x.blob.core.windows.net"),
            Some("blob.core.windows.net")
        );
        assert_eq!(zone("*.windows.net"), Some("blob.core.windows.net"));
        assert_eq!(zone("*.azureedge.net"), Some("azureedge.net"));
        assert_eq!(zone("*.microsoft.com"), Some("microsoft.com"));
        assert_eq!(zone("*.office.com"), Some("office.com"));
        assert_eq!(
            zone("*.mediaservices.windows.net"),
            Some("mediaservices.windows.net")
        );
    }

    fn suffix(p: &str) -> Option<(String, SuffixSection)> {
        public_suffix_of(&DomainPattern::parse(p).unwrap())
    }

    #[test]
    fn flags_wildcards_at_public_suffixes() {
        let icann = |z: &str| Some((z.to_string(), SuffixSection::Icann));
        let private = |z: &str| Some((z.to_string(), SuffixSection::Private));
        assert_eq!(suffix("*.co.jp"), icann("co.jp"));
        assert_eq!(suffix("*.ne.jp"), icann("ne.jp"));
        assert_eq!(suffix("*.lg.jp"), icann("lg.jp"));
        assert_eq!(suffix("x*.co.jp"), icann("co.jp"));
        assert_eq!(suffix("autodiscover.*.co.jp"), icann("co.jp"));
        assert_eq!(suffix("*.sakura.ne.jp"), private("sakura.ne.jp"));
        assert_eq!(suffix("*.blogspot.com"), private("blogspot.com"));
        assert_eq!(suffix("*.r2.dev"), private("r2.dev"));
        // Inside a wildcard rule of the list (`*.kawasaki.jp`), but not its exception.
        assert_eq!(suffix("*.foo.kawasaki.jp"), icann("foo.kawasaki.jp"));
        assert_eq!(suffix("*.city.kawasaki.jp"), None);
        for fine in [
            "*.sharepoint.com",
            "*.microsoftonline.com",
            "*.city.example.lg.jp",
            "*.example.co.jp",
            "blogspot.com",
            "co.jp",
        ] {
            assert_eq!(suffix(fine), None, "{fine}");
        }
    }

    #[test]
    fn psl_version_is_the_locked_one() {
        let lock = include_str!("../../Cargo.lock");
        let want = format!("name = \"psl\"\nversion = \"{PSL_VERSION}\"");
        assert!(
            lock.contains(&want),
            "Cargo.lock has another psl than {PSL_VERSION}"
        );
    }

    #[test]
    fn leaves_exact_names_and_other_zones_alone() {
        assert_eq!(zone("mlccdn.blob.core.windows.net"), None);
        assert_eq!(zone("*.sharepoint.com"), None);
        assert_eq!(zone("*.lync.com"), None);
        assert_eq!(zone("*.teams.microsoft.com"), None);
        assert_eq!(zone("*.login.windows.net"), None);
        assert_eq!(zone("autodiscover.*.onmicrosoft.com"), None);
        assert_eq!(zone("*.notwindows.net"), None);
    }
}
