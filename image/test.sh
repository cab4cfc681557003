#!/usr/bin/env bash
# Boot test of the appliance image: boots it in QEMU (KVM when /dev/kvm works, software
# emulation otherwise), waits for /readyz, sends a CONNECT through the proxy to an origin
# on this machine's loopback, and checks that a destination that is not allowlisted is
# refused. Prints the timings.
#
#   sudo image/test.sh [IMAGE.qcow2]
#
# Without IMAGE it builds the boot-test image first (needs root and the Debian mirror):
# the package from target/release/lbo-proxy (packaging/build-deb.sh), then image/build.sh
# with image/boot-test/ as config and local allowlist, to target/image/boot-test.qcow2.
# With IMAGE, that image must have been built with image/boot-test/ the same way.
#
# Networking is QEMU's user mode with restrict=on: the guest reaches nothing but what is
# forwarded. Host 127.0.0.1:(free ports) -> guest :3128 and :9090; guest 10.0.2.100:8080
# -> an origin on host 127.0.0.1 (socat per connection). The disk is opened with
# snapshot=on, so the image is left as it was.
#
# Needs: qemu-system-x86 (qemu-system-x86_64), socat, curl, python3.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
boot_limit=900   # seconds until /readyz must answer (software emulation is slow)

die() { echo "test.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

[[ $# -le 1 ]] || die "usage: image/test.sh [IMAGE.qcow2]"
for tool in qemu-system-x86_64 socat curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install qemu-system-x86 socat curl python3)"
done

if [[ $# -eq 1 ]]; then
    image=$1
    [[ -f $image ]] || die "$image: no such file"
else
    image="$repo/target/image/boot-test.qcow2"
    mkdir -p "$repo/target/image"
    version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)-1"
    started=$(date +%s)
    package=$("$repo/packaging/build-deb.sh" "$version")
    "$here/build.sh" --force --config "$here/boot-test/lbo-proxy.toml" \
        --allowlist "$here/boot-test/boot-test.toml" --firewall "$here/boot-test/lbo-site.nft" \
        "$package" "$image"
    log "image built in $(( $(date +%s) - started ))s: $image ($(du -h "$image" | cut -f1))"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lbo-boot-test.XXXXXX")
pids=()
cleanup() {
    local rc=$? pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $rc -ne 0 && -f $work/serial.log ]]; then
        echo "--- last lines of the serial console ---" >&2
        tail -n 40 "$work/serial.log" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
proxy_port=$(free_port)
admin_port=$(free_port)
origin_port=$(free_port)

# The origin: a static page on the host's loopback.
mkdir "$work/www"
echo "lbo-proxy boot test origin" > "$work/www/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$origin_port" >"$work/origin.log" 2>&1 &
pids+=($!)

# KVM needs the CPU's virtualisation flag as well as /dev/kvm: some virtual machines offer
# /dev/kvm without nested virtualisation, and a guest there hangs before its first line.
if grep -qw -e vmx -e svm /proc/cpuinfo \
    && echo quit | qemu-system-x86_64 -accel kvm -M none -nodefaults -display none -monitor stdio >/dev/null 2>&1; then
    accel=kvm
else
    accel=tcg
fi

log "booting $image ($accel)"
booted=$(date +%s)
qemu-system-x86_64 -accel "$accel" -m 1024 -smp 2 \
    -drive "file=$image,if=virtio,format=qcow2,snapshot=on" \
    -nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$proxy_port-:3128,hostfwd=tcp:127.0.0.1:$admin_port-:9090,guestfwd=tcp:10.0.2.100:8080-cmd:socat - TCP:127.0.0.1:$origin_port" \
    -display none -serial "file:$work/serial.log" -monitor none -no-reboot &
qemu=$!
pids+=("$qemu")

ready=""
while (( $(date +%s) - booted < boot_limit )); do
    kill -0 "$qemu" 2>/dev/null || die "QEMU exited before the proxy was ready"
    if ready=$(curl -sf --max-time 5 "http://127.0.0.1:$admin_port/readyz"); then break; fi
    ready=""
    sleep 2
done
[[ -n $ready ]] || die "no /readyz within ${boot_limit}s"
log "boot to ready: $(( $(date +%s) - booted ))s ($accel): $ready"

page=$(curl -sS --max-time 30 --proxytunnel -x "http://127.0.0.1:$proxy_port" http://10.0.2.100:8080/)
[[ $page == "lbo-proxy boot test origin" ]] || die "CONNECT through the proxy returned: $page"
log "CONNECT 10.0.2.100:8080 through the appliance: \"$page\""

refused=$(curl -s -o /dev/null --max-time 30 -w '%{http_connect}' --proxytunnel \
    -x "http://127.0.0.1:$proxy_port" https://www.example.com/ || true)
[[ $refused == 503 ]] || die "CONNECT www.example.com:443 answered $refused, expected 503 (no security cloud)"
log "CONNECT www.example.com:443 (not allowlisted, no security cloud): $refused"

log "boot test passed"
