#!/usr/bin/env bash
# Builds the lbo-proxy appliance image: Debian 12 (bookworm, amd64), BIOS boot, one ext4
# partition, our .deb installed and its service enabled, systemd-networkd, nftables,
# chrony and journald limits, written as a qcow2 disk.
#
#   sudo image/build.sh [options] PACKAGE.deb OUTPUT.qcow2
#
#   PACKAGE.deb            the lbo-proxy package (packaging/build-deb.sh; its binary must
#                          be built against a glibc no newer than bookworm's 2.36)
#   OUTPUT.qcow2           the image to write (refused if it exists, unless --force)
#
# Options:
#   --config FILE          config to install as /etc/lbo-proxy/lbo-proxy.toml
#                          (default: the package's: loopback clients only, so the image
#                          boots and serves nothing yet)
#   --allowlist FILE       a local allowlist for /etc/lbo-proxy/allowlists/; repeatable
#   --extra FILE           another file for /etc/lbo-proxy/ (parent password, CA bundle);
#                          repeatable; installed root:lbo-proxy 0640
#   --firewall FILE        the site's firewall legs (interfaces, admin network) for
#                          /etc/nftables.d/lbo-site.nft (default: none set, so no leg
#                          accepts anything new until first boot sets them)
#   --authorized-keys FILE install these keys for root's SSH login (key only); without
#                          it, SSH has no key to accept until one is added on the console
#   --mirror URL           Debian mirror (default: the one this machine's apt uses for
#                          bookworm main; its security mirror likewise)
#   --size SIZE            size of the disk (default: 4G)
#   --hostname NAME        (default: lbo-proxy)
#   --boot-disk DEV        disk the appliance boots from, for GRUB updates (default: /dev/vda)
#   --keep-work            keep the work directory (rootfs and raw disk) for inspection
#   --force                overwrite OUTPUT
#
# Needs (Debian host): debootstrap, qemu-utils, fdisk (sfdisk), e2fsprogs, mount (losetup),
# util-linux, apt. Network: only the Debian mirror, through debootstrap. Everything after
# debootstrap works offline. Root has an empty password that must be changed at the first
# console login (image/README.md, First boot); SSH never accepts passwords.

set -euo pipefail

SUITE=bookworm
ARCH=amd64
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

# --- arguments ------------------------------------------------------------------------

config=""
firewall=""
allowlists=()
extras=()
authorized_keys=""
mirror=""
size="4G"
hostname="lbo-proxy"
boot_disk="/dev/vda"
keep_work=0
force=0
positional=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --config) config=${2:?--config needs a file}; shift 2 ;;
        --allowlist) allowlists+=("${2:?--allowlist needs a file}"); shift 2 ;;
        --extra) extras+=("${2:?--extra needs a file}"); shift 2 ;;
        --firewall) firewall=${2:?--firewall needs a file}; shift 2 ;;
        --authorized-keys) authorized_keys=${2:?--authorized-keys needs a file}; shift 2 ;;
        --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
        --size) size=${2:?--size needs a size}; shift 2 ;;
        --hostname) hostname=${2:?--hostname needs a name}; shift 2 ;;
        --boot-disk) boot_disk=${2:?--boot-disk needs a device}; shift 2 ;;
        --keep-work) keep_work=1; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage ;;
        --) shift; positional+=("$@"); break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) positional+=("$1"); shift ;;
    esac
done
[[ ${#positional[@]} -eq 2 ]] || usage
package=${positional[0]}
output=${positional[1]}

# --- checks before touching anything -------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, loop devices, chroot)"
[[ $(uname -s) == Linux ]] || die "needs Linux"

for tool in debootstrap qemu-img sfdisk losetup partx mkfs.ext4 blkid mount umount mountpoint chroot findmnt dpkg-deb apt-get; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install debootstrap qemu-utils fdisk e2fsprogs mount util-linux)"
done

[[ -f $package ]] || die "$package: no such file"
[[ $(dpkg-deb --field "$package" Package Architecture 2>/dev/null | tr '\n' ' ') == "Package: lbo-proxy Architecture: amd64 " ]] \
    || die "$package: not an lbo-proxy amd64 package (packaging/build-deb.sh)"
[[ -z $config || -f $config ]] || die "$config: no such file"
[[ -z $firewall || -f $firewall ]] || die "$firewall: no such file"
for f in "${allowlists[@]}" "${extras[@]}"; do [[ -f $f ]] || die "$f: no such file"; done
[[ -z $authorized_keys || -f $authorized_keys ]] || die "$authorized_keys: no such file"
[[ $hostname =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || die "--hostname: use a-z, 0-9 and '-'"
[[ $output == *.qcow2 ]] || die "$output: the output name must end in .qcow2"
[[ ! -e $output || $force -eq 1 ]] || die "$output exists (use --force to overwrite)"
outdir=$(cd "$(dirname "$output")" && pwd) || die "$(dirname "$output"): no such directory"
output="$outdir/$(basename "$output")"

# The mirrors this machine's apt already uses (apt parses both source formats): no host
# name is written into the build.
apt_mirror() { # apt_mirror SUITE: the first configured mirror with SUITE main for amd64
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT) $(ARCHITECTURE)' 'Identifier: Packages' \
        | awk -v s="$1" '$2 == s && $3 == "main" && $4 == "amd64" { print $1; exit }'
}
security_mirror=""
if [[ -z $mirror ]]; then
    mirror=$(apt_mirror "$SUITE")
    [[ -n $mirror ]] || die "this machine's apt sources have no '$SUITE main' (amd64); give --mirror"
    security_mirror=$(apt_mirror "$SUITE-security")
fi

# --- work area and cleanup -----------------------------------------------------------

work=$(mktemp -d /var/tmp/lbo-image.XXXXXX)
root="$work/rootfs"      # debootstrap target: the appliance's files
mnt="$work/mnt"          # the disk's partition, mounted
raw="$work/disk.raw"
loop=""
mounts=()                # mounted paths, unmounted in reverse order

mount_at() { # mount_at TARGET MOUNT-ARGS...
    local target=$1; shift
    mount "$@" "$target"
    mounts+=("$target")
}

cleanup() {
    local rc=$? i
    set +e
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
    done
    # debootstrap mounts /proc and /sys in the rootfs itself and may leave them on failure.
    for m in "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev"; do
        mountpoint -q "$m" 2>/dev/null && umount -l "$m"
    done
    [[ -n $loop ]] && losetup -d "$loop"
    if [[ $keep_work -eq 1 ]]; then
        echo "work directory kept: $work" >&2
    elif findmnt -rn -o TARGET | grep -qF "$work"; then
        echo "something is still mounted under $work; not removing it" >&2
    else
        rm -rf --one-file-system "$work"
    fi
    rm -f "$output.partial"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# --- 1. Debian base into a directory ------------------------------------------------

packages=(
    linux-image-amd64 grub-pc initramfs-tools
    systemd-sysv dbus systemd-resolved chrony nftables openssh-server
    adduser ca-certificates iproute2 logrotate less curl
)

log "debootstrap $SUITE ($ARCH) from $mirror"
# Every package is installed here, so nothing later needs the network (systemd-resolved
# takes over /etc/resolv.conf inside the rootfs, which would break apt in the chroot).
debootstrap --arch="$ARCH" --components=main --include="$(IFS=,; echo "${packages[*]}")" \
    "$SUITE" "$root" "$mirror"

# --- 2. The appliance's files -------------------------------------------------------

log "configuring the system"
echo "$hostname" > "$root/etc/hostname"
cat > "$root/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$hostname
::1		localhost ip6-localhost ip6-loopback
EOF

{
    echo "deb $mirror $SUITE main"
    echo "deb $mirror $SUITE-updates main"
    [[ -z $security_mirror ]] || echo "deb $security_mirror $SUITE-security main"
} > "$root/etc/apt/sources.list"

root_uuid=$(cat /proc/sys/kernel/random/uuid)
cat > "$root/etc/fstab" <<EOF
UUID=$root_uuid	/	ext4	errors=remount-ro	0	1
EOF

# The appliance's own files (image/rootfs/): network (DHCP until the site's addresses are
# set), nftables, journald limits, resolved without LLMNR/mDNS, sysctl for many sockets.
cp -r --no-preserve=ownership "$here/rootfs/." "$root/"
[[ -z $firewall ]] || install -m 0644 "$firewall" "$root/etc/nftables.d/lbo-site.nft"
# The rule set must load where it will run.
in_root nft -c -f /etc/nftables.conf || die "the firewall rules do not load (--firewall)"
in_root systemctl enable systemd-networkd.service systemd-resolved.service nftables.service chrony.service ssh.service

# Serial and VGA console (boot menu and kernel), short menu.
sed -i \
    -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \
    -e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"/' \
    "$root/etc/default/grub"
cat >> "$root/etc/default/grub" <<'EOF'
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
EOF
# Where GRUB is reinstalled when the grub-pc package is upgraded on the appliance.
echo "grub-pc grub-pc/install_devices multiselect $boot_disk" | in_root debconf-set-selections

log "installing $(basename "$package")"
# The package creates the user, enables the service and runs "lbo-proxy check" (as the
# service user, with bookworm's glibc) on its default config.
cp "$package" "$root/tmp/lbo-proxy.deb"
in_root dpkg -i /tmp/lbo-proxy.deb
rm "$root/tmp/lbo-proxy.deb"
[[ -z $config ]] || install -m 0640 "$config" "$root/etc/lbo-proxy/lbo-proxy.toml"
for f in "${allowlists[@]}"; do install -m 0640 "$f" "$root/etc/lbo-proxy/allowlists/$(basename "$f")"; done
for f in "${extras[@]}"; do install -m 0640 "$f" "$root/etc/lbo-proxy/$(basename "$f")"; done
in_root chown -R root:lbo-proxy /etc/lbo-proxy

install -d -m 0700 "$root/root/.ssh"
[[ -z $authorized_keys ]] || install -m 0600 "$authorized_keys" "$root/root/.ssh/authorized_keys"
# Every appliance gets its own host keys on first boot.
rm -f "$root"/etc/ssh/ssh_host_*
install -d "$root/etc/systemd/system/ssh.service.d"
# The keys must exist before Debian's own "sshd -t" check, so the list is restated.
cat > "$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
cat > "$root/etc/ssh/sshd_config.d/lbo-proxy.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
# The first console login sets root's password (empty until then; SSH refuses empty ones).
in_root passwd --delete root
in_root chage --lastday 0 root

# The config that will run must pass where it will run, as the service user.
log "checking the config inside the image"
in_root setpriv --reuid=lbo-proxy --regid=lbo-proxy --init-groups \
    lbo-proxy check --config /etc/lbo-proxy/lbo-proxy.toml >/dev/null \
    || die "lbo-proxy check failed inside the image (--config, --allowlist or --extra files)"

# Each appliance gets its own machine id on first boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
in_root apt-get clean

# --- 3. Disk: partition, filesystem, copy, boot loader ------------------------------

log "creating a $size disk"
truncate -s "$size" "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$raw"
loop=$(losetup --find --show --partscan "$raw")
part="${loop}p1"
for _ in $(seq 50); do [[ -b $part ]] && break; sleep 0.1; done
# Without udev (containers, minimal build hosts) the partition node may not appear by
# itself: ask the kernel for it explicitly.
[[ -b $part ]] || partx --add "$loop" 2>/dev/null || true
for _ in $(seq 50); do [[ -b $part ]] && break; sleep 0.1; done
[[ -b $part ]] || die "$part did not appear"

mkfs.ext4 -q -U "$root_uuid" -L lbo-root "$part"
mkdir -p "$mnt"
mount_at "$mnt" "$part"
log "copying the root filesystem"
cp -a "$root/." "$mnt/"

mount_at "$mnt/dev" --bind /dev
mount_at "$mnt/proc" -t proc proc
mount_at "$mnt/sys" -t sysfs sysfs
log "installing GRUB"
chroot "$mnt" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin grub-install --target=i386-pc "$loop"
chroot "$mnt" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin update-grub
# grub-mkconfig writes root=UUID only when /dev/disk/by-uuid/ has the link, which needs
# udev on the build host; otherwise it names the loop device, which the appliance will not
# have. Later update-grub runs on the appliance itself write UUIDs.
sed -i "s|root=$part |root=UUID=$root_uuid |" "$mnt/boot/grub/grub.cfg"
grep -q "root=UUID=$root_uuid" "$mnt/boot/grub/grub.cfg" \
    || die "grub.cfg does not boot root=UUID=$root_uuid"
! grep -q "/dev/loop" "$mnt/boot/grub/grub.cfg" \
    || die "grub.cfg still names a loop device"

for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}"; done
mounts=()
sync
losetup -d "$loop"
loop=""

# --- 4. qcow2 ----------------------------------------------------------------------

log "writing $output"
qemu-img convert -f raw -O qcow2 -c "$raw" "$output.partial"
mv -f "$output.partial" "$output"
log "done: $output (lbo-proxy.service enabled; the first console login sets root's password)"
