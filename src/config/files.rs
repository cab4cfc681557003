//! The files and directories a run opens beyond those the other tables read while they
//! validate: checked here, on the same conditions the run will meet, so `check` (the
//! package's "check before restart" and the unit's `ExecStartPre`) refuses what would
//! take the service down. The others are read where they are validated: allowlists
//! (`allowlists.dir`, `local_dir`), `auth_file`, `password_file`, the tenant-restriction
//! CA and bundle, the admin `token_file`.

use std::path::Path;

use super::error::Problems;
use super::log::{AccessLogConfig, AccessLogTarget};
use super::schema::File;
use super::validate::resolve;

/// Group and others may not write a secret; others may not read it (0640 with the
/// service's group is fine).
const FORBIDDEN_SECRET_MODE: u32 = 0o027;

/// A secret's file must not be readable by others or writable by its group.
#[cfg(unix)]
pub(super) fn secret_mode(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & FORBIDDEN_SECRET_MODE != 0 {
        return Err(format!(
            "{}: mode {mode:04o} lets others read or change it; use 0640 root:lbo-proxy (chmod 640)",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn secret_mode(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Everything a run opens that no other table reads while validating.
pub(super) fn check(p: &mut Problems<'_>, file: &File, base: Option<&Path>, log: &AccessLogConfig) {
    if let (AccessLogTarget::File(path), Some(key)) = (&log.target, &file.log.access) {
        if let Err(e) = appendable(path) {
            p.at(key.span(), "log.access", e);
        }
    }
    for parent in &file.upstream.parents {
        if let (true, Some(ca)) = (parent.tls, &parent.tls_ca_file) {
            if let Err(e) = certificates(&resolve(base, ca.get_ref())) {
                p.at(ca.span(), "upstream.parent.tls_ca_file", e);
            }
        }
    }
    if file.direct.dns.is_empty() {
        system_resolver(p);
    }
}

/// The access-log file as the writer opens it (append, created if missing): an existing
/// regular file we may write, or a new one in an existing directory we may write.
fn appendable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("{shown} is a directory; name a file in it")),
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("{shown}: cannot be appended to: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => writable_dir(dir),
                Ok(_) => Err(format!("{}: not a directory", dir.display())),
                Err(e) => Err(format!(
                    "{shown}: its directory {} is missing ({e}); create it for the service user",
                    dir.display()
                )),
            }
        }
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// Whether this process may create files in `dir` (`access(2)`, as the run would try).
#[cfg(unix)]
fn writable_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Err(format!("{}: not a valid path", dir.display()));
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "{}: the access log cannot be created there: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(unix))]
fn writable_dir(_: &Path) -> Result<(), String> {
    Ok(())
}

/// A PEM bundle with at least one certificate, as the parent's TLS settings read it.
fn certificates(path: &Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut n = 0;
    for cert in
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?
    {
        cert.map_err(|e| format!("{}: {e}", path.display()))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(())
}

/// Without `direct.dns` the direct route reads the system's resolver configuration
/// (`/etc/resolv.conf`) when it starts: read it the same way.
fn system_resolver(p: &mut Problems<'_>) {
    if let Err(e) = hickory_resolver::system_conf::read_system_conf() {
        p.file(
            "direct.dns",
            format!("not set, and the system resolver configuration cannot be read: {e}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_must_be_a_file_the_run_can_open() {
        let dir = tempfile::tempdir().unwrap();
        assert!(appendable(&dir.path().join("new.log")).is_ok());
        let e = appendable(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        let e = appendable(&dir.path().join("missing/access.log")).unwrap_err();
        assert!(e.contains("missing") && e.contains("directory"), "{e}");
        std::fs::write(dir.path().join("old.log"), "").unwrap();
        assert!(appendable(&dir.path().join("old.log")).is_ok());
        let e = appendable(&dir.path().join("old.log/x")).unwrap_err();
        assert!(e.to_lowercase().contains("not a directory"), "{e}");
    }

    #[test]
    fn a_ca_bundle_needs_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not pem\n").unwrap();
        assert!(certificates(&f).is_err());
        assert!(certificates(&dir.path().join("none.pem")).is_err());
    }
}
