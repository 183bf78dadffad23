#!/bin/bash
# build-dom0-image.sh [CACHE_ROOT] - build (or reuse) the dom0 image of the real-Xen tests.
#
# The image is debootstrap --variant=minbase bookworm from the Debian mirror configured in this
# machine's apt sources, plus tests/xen/dom0/packages. Its /sbin/xh-init only mounts the per-run second disk
# (/dev/vdb) and executes the real init from there (tests/xen/dom0/xh-init, copied per run), so
# the image holds no per-run secret, not the project's build and not the init being worked on.
#
# Output, cached outside the repository and keyed on a hash of this script, the package list,
# and the apt sources:
#   CACHE_ROOT/xen-<hash>/dom0.img    ext4 root filesystem (raw, read-only; boot it via an overlay)
#   CACHE_ROOT/xen-<hash>/xen         the uncompressed Xen 4.17 hypervisor (multiboot kernel)
#   CACHE_ROOT/xen-<hash>/vmlinuz     Debian's kernel (dom0 and the PVH guest)
#   CACHE_ROOT/xen-<hash>/initrd.img  its initramfs (virtio_blk + ext4 for dom0's root)
# The directory is built under a temporary name and renamed when complete, so a crashed build
# never leaves a half image under the final name. Prints the directory on stdout.
# CACHE_ROOT defaults to $XH_CACHE or /var/cache/xl-ext-test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${1:-${XH_CACHE:-/var/cache/xl-ext-test}}

log() { printf '[%(%H:%M:%S)T build-dom0] %s\n' -1 "$*" >&2; }

# The Debian sources of this machine (deb822 or one-line), Debian's own archives only.
debian_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		case $f in
		*.sources)
			awk 'BEGIN{RS=""; ORS="\n\n"} /URIs:[^\n]*debian/ && !/^#/' "$f" | grep -v '^#' ;;
		*) grep -E '^deb .*debian' "$f" || true ;;
		esac
	done
}

# The primary mirror: first Debian URI serving "bookworm" itself (not -security).
debian_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^http/) { print $i; exit } }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ && !/security/ {
			n = split($0, l, "\n"); for (i = 1; i <= n; i++) if (l[i] ~ /^URIs:/) { split(l[i], u, " "); print u[2]; exit } }' "$f"
	done
}

sources=$(debian_sources)
mirror=$(debian_mirror | head -n 1)
[ -n "$mirror" ] || { echo "build-dom0-image: no Debian bookworm mirror in /etc/apt/sources.list*" >&2; exit 99; }
packages=$(sed 's/#.*//' "$here/dom0/packages" | xargs)

key=$( {
	cat "$0" "$here/dom0/packages"
	echo "$sources"
} | sha256sum | cut -c1-16)
out="$cache_root/xen-$key"
if [ -f "$out/dom0.img" ] && [ -f "$out/xen" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
	log "cached image $out"
	echo "$out"
	exit 0
fi

for t in debootstrap mkfs.ext4 chroot; do
	command -v "$t" >/dev/null || { echo "build-dom0-image: '$t' missing (run .ci/install-deps)" >&2; exit 99; }
done
mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.xen-$key.XXXXXX")
root="$tmp/root"
cleanup() {
	local m
	for m in "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

t0=$SECONDS
log "debootstrap minbase bookworm from $mirror into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
	tail -n 30 "$tmp/debootstrap.log" >&2
	exit 1
}
log "debootstrap done in $((SECONDS - t0)) s"

t1=$SECONDS
rm -f "$root/etc/apt/sources.list"
printf '%s\n' "$sources" >"$root/etc/apt/sources.list.d/debian.sources.tmp"
if grep -q '^Types:' "$root/etc/apt/sources.list.d/debian.sources.tmp"; then
	mv "$root/etc/apt/sources.list.d/debian.sources.tmp" "$root/etc/apt/sources.list.d/debian.sources"
else
	mv "$root/etc/apt/sources.list.d/debian.sources.tmp" "$root/etc/apt/sources.list"
fi
# no service may start inside the chroot
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# shellcheck disable=SC2086
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c "
	apt-get update -q && apt-get install -y -q --no-install-recommends $packages
	apt-get clean" >"$tmp/apt.log" 2>&1 || {
	tail -n 30 "$tmp/apt.log" >&2
	exit 1
}
umount "$root/dev/pts" "$root/dev" "$root/sys" "$root/proc"
rm -f "$root/usr/sbin/policy-rc.d"
log "packages installed in $((SECONDS - t1)) s"

cat >"$root/sbin/xh-init" <<'STUB'
#!/bin/sh
# PID 1 of the test dom0: run the init of this run's disk (tests/xen/dom0/xh-init).
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
mkdir -p /xh
mount -t ext4 -o ro /dev/vdb /xh && [ -x /xh/xh-init ] && exec /xh/xh-init
echo "xh-init: XH-FAILED no per-run disk with xh-init on /dev/vdb" >/dev/console
exec /bin/sh </dev/console >/dev/console 2>&1
STUB
chmod 755 "$root/sbin/xh-init"
# no per-image secrets: host keys are made at boot, root logs in with the per-run key only
rm -f "$root"/etc/ssh/ssh_host_*
echo "root:*" | chroot "$root" chpasswd -e
rm -rf "$root/var/lib/apt/lists"/* "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale"

xen=$(ls "$root"/boot/xen-4.17*.gz | head -n 1)
vmlinuz=$(ls "$root"/boot/vmlinuz-* | head -n 1)
initrd=$(ls "$root"/boot/initrd.img-* | head -n 1)
zcat "$xen" >"$tmp/xen"
cp "$vmlinuz" "$tmp/vmlinuz"
cp "$initrd" "$tmp/initrd.img"

t2=$SECONDS
size_mb=$(($(du -sm "$root" | cut -f1) + 512))
truncate -s "${size_mb}M" "$tmp/dom0.img"
mkfs.ext4 -q -F -L xh-dom0 -d "$root" "$tmp/dom0.img"
chmod 444 "$tmp/dom0.img"
log "ext4 image of ${size_mb} MiB in $((SECONDS - t2)) s"
rm -rf "$root" "$tmp"/*.log
cp "$0" "$here/dom0/packages" "$tmp/" 2>/dev/null || true
mv -T "$tmp" "$out" 2>/dev/null || {
	# another run finished the same image first
	[ -f "$out/dom0.img" ] || exit 1
}
trap - EXIT
[ -d "$tmp" ] && rm -rf "$tmp"
log "image $out built in $((SECONDS - t0)) s"
echo "$out"
