//! A throwaway copy of this machine's root for the package tests: an overlay whose upper
//! layer is a temporary directory, mounted in a private mount namespace (`unshare`) and
//! entered with `chroot`. dpkg and the maintainer scripts write only to the upper layer:
//! the host's files and its dpkg database stay as they were, and no mount outlives the
//! command. Needs root; without it the test fails.

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct ThrowawayRoot {
    /// Holds `upper/` and `work/` (the overlay's layers), `merged/` (its mount point)
    /// and `share/` (seen inside as /mnt/share); removed on drop.
    dir: tempfile::TempDir,
}

impl ThrowawayRoot {
    pub fn new() -> Self {
        let uid = Command::new("id").arg("-u").output().expect("id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the package tests install into an overlay of / and need root"
        );
        let dir = tempfile::tempdir().unwrap();
        for sub in ["upper", "work", "merged", "share"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    /// A host directory that the commands see as /mnt/share (packages go here).
    pub fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    /// Runs `script` with /bin/sh inside the throwaway root, as root, with a clean
    /// environment; returns its output (stderr includes the mount steps' errors).
    pub fn sh(&self, script: &str) -> Output {
        let d = self.dir.path();
        let p = |s: &str| d.join(s).display().to_string();
        let enter = format!(
            "set -e
             mount -t overlay overlay -o lowerdir=/,upperdir={upper},workdir={work} {m}
             mount -t proc proc {m}/proc
             mount --rbind /dev {m}/dev
             mkdir -p {m}/mnt/share
             mount --bind {share} {m}/mnt/share
             exec chroot {m} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
                 DEBIAN_FRONTEND=noninteractive /bin/sh -c \"$1\"",
            upper = p("upper"),
            work = p("work"),
            m = p("merged"),
            share = p("share"),
        );
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &enter,
                "sh",
            ])
            .arg(script)
            .output()
            .expect("unshare (util-linux) is missing")
    }
}

/// The output's stdout and stderr as one text, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
