#!/bin/bash
# build-guest.sh OUTDIR [MODULES_DIR] - the real-Xen test guest's initramfs.
#
# Builds tests/xen/guest/agent.c statically (with the project's journal codec, error and log
# modules compiled in) and packs OUTDIR/guest-initrd.gz: a gzipped cpio (newc) holding the
# agent as /init and a static busybox (/bin/busybox and its applet links, for debugging from
# the console). Needs gcc, glibc's static libraries (libc6-dev), libxxhash-dev, busybox-static,
# cpio and gzip; never root. Quiet on success: prints one line, the initrd's path and size.
#
# MODULES_DIR is the guest kernel's /lib/modules/<version> (e.g. inside the dom0 image whose
# vmlinuz the guest boots): Debian's kernel has xen-blkfront and xen-netfront as modules, and
# the agent loads them from the initramfs. Without it the guest only works with a kernel that
# has both built in (a warning says so). GUEST_MODULES_EXTRA adds more modules of MODULES_DIR
# (paths relative to it, loaded in that order after the Xen frontends), e.g. virtio ones for a
# smoke boot of the initrd under plain QEMU.
set -euo pipefail

die() {
	echo "build-guest.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || [ $# -eq 2 ] || {
	echo "usage: build-guest.sh OUTDIR [MODULES_DIR]" >&2
	exit 2
}
outdir=$1
moddir=${2:-}
modules="kernel/drivers/block/xen-blkfront.ko kernel/drivers/net/xen-netfront.ko ${GUEST_MODULES_EXTRA:-}"
if [ -n "$moddir" ]; then
	for m in $modules; do
		[ -f "$moddir/$m" ] || die "no $moddir/$m (MODULES_DIR: the guest kernel's /lib/modules/<version>)"
	done
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
busybox=${BUSYBOX:-/bin/busybox}
CC=${CC:-gcc}

command -v "$CC" >/dev/null || die "no C compiler '$CC' (install gcc)"
command -v cpio >/dev/null || die "no cpio (install the cpio package)"
[ -f /usr/include/xxhash.h ] || die "no /usr/include/xxhash.h (install libxxhash-dev)"
[ -x "$busybox" ] || die "no $busybox (install busybox-static)"
file_out=$(LC_ALL=C file -L "$busybox" 2>/dev/null || true)
case $file_out in
*dynamically*) die "$busybox is dynamically linked (install busybox-static, not busybox)" ;;
esac

mkdir -p "$outdir" || die "cannot create $outdir"
outdir=$(cd "$outdir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/build-guest.XXXXXX") || die "cannot create a work directory"
trap 'rm -rf "$work"' EXIT

# The sources include "config.h" for _GNU_SOURCE only: a two-line one stands in for configure's.
printf "#ifndef _GNU_SOURCE\n#define _GNU_SOURCE 1\n#endif\n" >"$work/config.h"
"$CC" -static -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread \
	-I"$work" -I"$top" -o "$work/agent" \
	"$here/agent.c" "$top/xl-ext/storage/journal.c" "$top/common/error.c" "$top/common/log.c" \
	>"$work/cc.log" 2>&1 || {
	cat "$work/cc.log" >&2
	die "compiling the agent failed"
}
strip "$work/agent" 2>/dev/null || true

root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" \
	"$root/usr/bin" "$root/usr/sbin"
install -m 0755 "$work/agent" "$root/init"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full 2>/dev/null); do
	[ "$applet" = bin/busybox ] && continue
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

mkdir -p "$root/etc"
: >"$root/etc/xlext-modules"
if [ -n "$moddir" ]; then
	kver=$(basename "$moddir")
	for m in $modules; do
		install -D -m 0644 "$moddir/$m" "$root/lib/modules/$kver/$m"
		echo "/lib/modules/$kver/$m" >>"$root/etc/xlext-modules"
	done
else
	echo "build-guest.sh: warning: no MODULES_DIR: no xen-blkfront/xen-netfront in the initrd" >&2
fi

# Reproducible: fixed timestamps and owner, sorted names, gzip without a name or time.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n >"$work/guest-initrd.gz" ||
	die "packing the initramfs failed"
if ! cmp -s "$work/guest-initrd.gz" "$outdir/guest-initrd.gz"; then
	mv -f "$work/guest-initrd.gz" "$outdir/guest-initrd.gz"
fi
echo "$outdir/guest-initrd.gz $(stat -c %s "$outdir/guest-initrd.gz") bytes"
