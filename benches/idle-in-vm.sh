#!/usr/bin/env bash
# Holds 100,000 idle tunnels through lbo-proxy inside a throwaway virtual machine, for a host
# whose open-file limit cannot be raised (a container, a sandbox without CAP_SYS_RESOURCE):
# 100,000 tunnels are 200,000 descriptors in the proxy alone.
#
# The VM boots Debian's kernel (the appliance's, linux-image-amd64) with a small initramfs
# that mounts this host's root read-only over 9p and runs the load bench's idle workload
# there as root, where the bench raises RLIMIT_NOFILE to fs.nr_open like the service's
# LimitNOFILE. Only the guest's loopback is used: the VM has no network card. Memory
# figures (VmRSS, slab) do not depend on how fast the guest runs, so software emulation
# (no KVM) gives the same answer, only slower.
#
#   benches/idle-in-vm.sh [TUNNELS]   # default 100000; prints the bench's report
#
# Needs qemu-system-x86, linux-image-amd64 and busybox-static (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

tunnels=${1:-100000}
memory=${LBO_VM_MEMORY:-8G}
limit_s=${LBO_VM_TIMEOUT:-3600}

need=(qemu-system-x86 linux-image-amd64 busybox-static kmod cpio)
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

kernel=$(ls /boot/vmlinuz-* | sort -V | tail -n 1)
release=${kernel#/boot/vmlinuz-}
bench=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null |
  grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bench" ] || { echo "the load bench did not build" >&2; exit 1; }

work=$(mktemp -d /tmp/lbo-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/modules"
cp /bin/busybox "$work/root/bin/"
# virtio-pci and the 9p file system, in the order modprobe would load them.
n=0
for module in $(for m in virtio_pci 9pnet_virtio 9p; do modprobe -S "$release" --show-depends "$m"; done |
  awk '$1 == "insmod" && !seen[$2]++ { print $2 }'); do
  n=$((n + 1))
  cp "$module" "$work/root/modules/$(printf %02d "$n")-$(basename "$module")"
done

# The guest's init: mount the host, run the bench in it, power off. Kernel parameters of
# the form KEY=VALUE reach init as its environment, which carries the bench's settings.
cat >"$work/root/init" <<'EOF'
#!/bin/busybox sh
b=/bin/busybox
$b mkdir -p /proc /sys /dev /host
$b mount -t proc proc /proc
$b mount -t devtmpfs dev /dev
for m in /modules/*.ko; do $b insmod "$m"; done
if $b mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=1048576 host /host; then
  $b mount -t proc proc /host/proc
  $b mount -t sysfs sys /host/sys
  $b mount -t devtmpfs dev /host/dev
  $b mount -t tmpfs -o size=1G tmp /host/tmp
  $b chroot /host /bin/sh -c '
    ip link set lo up
    sysctl -q -w fs.file-max=4000000 net.ipv4.ip_local_port_range="1024 65535" \
      net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
    cd "$LBO_VM_DIR" && "$LBO_VM_BENCH" --bench
    echo "lbo-vm: bench exit $?"'
else
  echo "lbo-vm: the host's root did not mount"
fi
$b poweroff -f
EOF
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

accel=tcg,thread=multi
if [ -r /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
echo "lbo-vm: $tunnels idle tunnels, kernel $release, accel ${accel%%,*}, $memory of memory" >&2
timeout "$limit_s" qemu-system-x86_64 -accel "$accel" -smp "$(nproc)" -m "$memory" \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init LBO_VM_DIR=$PWD LBO_VM_BENCH=$bench \
LBO_BENCH_IDLE=$tunnels LBO_BENCH_ROWS=lbo LBO_BENCH_WORKLOADS=idle" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -nic none -nographic -no-reboot </dev/null |
  tr -d '\r' | tee target/idle-in-vm.log | sed -n '/lbo-proxy load benchmark/,/lbo-vm:/p'
echo "lbo-vm: the whole console is in target/idle-in-vm.log" >&2
