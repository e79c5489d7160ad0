#!/bin/sh
# Stage 2 of the Switchboard test VM: PID 1 inside the guest, in the host's root (read-only over 9p, under a
# tmpfs overlay). Stage 1 (the initramfs that test/vm/prepare.sh builds) passes these kernel command line
# values as environment variables:
#   sbrepo     the checkout, at the same absolute path as on the host; the agent's cwd
#   sbnode     the host's node binary
#   sbmodules  the cached kernel's /lib/modules/<release> dir
# It prepares the guest, then runs test/vm/guest-agent.mjs on the virtio-serial port named sb.cmd until the
# host hangs up, and powers off. Its output goes to the serial console, which vm.ts shows on boot failures.
# shellcheck disable=SC2154 # sbrepo, sbnode and sbmodules come from the kernel command line
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

log() { echo "switchboard-vm stage 2 [$(cut -d' ' -f1 /proc/uptime 2>/dev/null)s]: $*"; }
# PID 1 must not exit (the kernel would panic): power off instead, which ends QEMU (-no-reboot).
off() {
  log "$*; powering off"
  echo o >/proc/sysrq-trigger
  sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
if [ -z "${sbrepo:-}" ] || [ -z "${sbnode:-}" ] || [ -z "${sbmodules:-}" ]; then
  off "the kernel command line lacks sbrepo=, sbnode= or sbmodules="
fi
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
# Fresh tmpfs over the host's /run, /tmp and /var/tmp: ip netns needs /run/netns, iptables /run/xtables.lock,
# and the host's files there must not leak in. Not over a dir that holds the checkout, node or the kernel
# cache (SWITCHBOARD_VM_CACHE may be under /tmp): the overlay keeps those dirs writable anyway.
fresh_tmpfs() {
  for keep in "$sbrepo" "$sbnode" "$sbmodules"; do
    case "$keep/" in
      "$1"/*)
        log "keeping the host's $1 (it holds $keep)"
        return 0
        ;;
    esac
  done
  mount -t tmpfs -o "mode=$2" "$(basename "$1")" "$1"
}
fresh_tmpfs /run 0755
fresh_tmpfs /tmp 1777
fresh_tmpfs /var/tmp 1777

# The host has no /lib/modules for this kernel. Linking it into the overlay makes every modprobe work: the
# kernel's request_module (kernel.modprobe is /sbin/modprobe, the host's kmod) and tools that call modprobe.
release="$(uname -r)"
if ! { mkdir -p /usr/lib/modules && rm -rf "/usr/lib/modules/$release" && ln -s "$sbmodules" "/usr/lib/modules/$release"; }; then
  off "cannot link $sbmodules to /usr/lib/modules/$release"
fi
echo /sbin/modprobe >/proc/sys/kernel/modprobe

hostname switchboard-vm
ip link set lo up || log "ip link set lo up failed"
sysctl -qw net.ipv4.ip_forward=1 || log "cannot enable net.ipv4.ip_forward"

# Preloaded so the first test does not pay for autoloading; anything else still autoloads on demand.
# One modprobe for all of them (each process start is slow under emulation); only on failure, one by one to
# name the missing ones.
preload="virtio_console
  ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_lc dummy veth
  nf_conntrack nf_tables nft_compat nft_chain_nat nft_masq nft_reject_ipv4 nft_reject_ipv6
  ip_set ip_set_hash_ip ip_set_hash_ipport ip_set_hash_ipportip ip_set_hash_ipportnet ip_set_bitmap_port
  xt_set xt_comment xt_mark xt_conntrack xt_addrtype xt_MASQUERADE nf_reject_ipv4 ipt_REJECT
  nf_reject_ipv6 ip6t_REJECT xt_statistic xt_recent xt_tcpudp xt_ipvs"
# shellcheck disable=SC2086 # word splitting is the point
if ! modprobe -q -a $preload; then
  missing=""
  for m in $preload; do modprobe -q "$m" || missing="$missing $m"; done
  log "could not load:$missing"
fi
log "modules loaded"
# IPv6 is built into Debian's kernel (CONFIG_IPV6=y); the kernel lab is dual-stack and fails without it.
[ -d /proc/sys/net/ipv6 ] || log "the kernel has no IPv6: the kernel lab will refuse to run"

port=""
tries=0
while [ -z "$port" ] && [ $tries -lt 200 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ -f "$p/name" ] && [ "$(cat "$p/name")" = sb.cmd ] && [ -c "/dev/${p##*/}" ] && port="/dev/${p##*/}"
  done
  [ -n "$port" ] || { tries=$((tries + 1)); sleep 0.05; }
done
[ -n "$port" ] || off "no virtio-serial port named sb.cmd"

log "starting the agent on $port"
cd "$sbrepo" || off "no checkout at $sbrepo"
"$sbnode" "$sbrepo/test/vm/guest-agent.mjs" "$port"
off "agent exited with status $?"
