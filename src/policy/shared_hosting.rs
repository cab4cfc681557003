//! Zones where anyone can host content. A wildcard over one of them would let a stranger's
//! storage account, web app or CDN endpoint break out directly, so no direct category may
//! hold one, whatever a published list says.

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
