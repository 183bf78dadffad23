# shellcheck shell=bash
#
# xenhost.sh - real Xen 4.17 hosts under QEMU (TCG) for the tests, on top of testbed.sh.
#
# Sourced by tests after setting XH_BUILD (the project's build directory). It reuses
# testbed.sh's run id, work dir, pid bookkeeping, namespaces, tgtd and cleanup trap:
#   - the switch namespace's bridge br0 gets one tap per Xen host; QEMU runs in that namespace,
#     so the dom0s (eth0 bridged into xenbr0) and their guests sit on the test /24:
#       dom0 of host i   TB_NET_PREFIX.(10+i)      guest k   TB_NET_PREFIX.(50+k)
#       client (probes)  TB_CLIENT_IP              tgtd      TB_STORAGE_IP
#   - each host boots the cached read-only dom0 image through its own qcow2 overlay, plus one
#     per-run read-only disk (ext4) with the project's build (make install DESTDIR), this run's
#     ssh public key and the guest's artefacts;
#   - QEMU's pid is recorded like every testbed daemon: tb_cleanup kills it by pid, on success
#     or failure; the overlays live in TB_DIR and go with it.
#
# Typical use:
#   . "$top_srcdir/tests/xen/lib/xenhost.sh"
#   xh_init                 # tb_init, namespaces, client, ssh key
#   xh_image                # build or reuse the dom0 image (XH_IMAGE)
#   xh_rundisk              # the per-run disk
#   xh_boot 1; xh_boot 2; xh_wait_ready 1; xh_wait_ready 2
#   xh_ssh 1 xl list
#   xh_kill 2
#
# Knobs: XH_CACHE (image cache root, default /var/cache/xl-ext-test), XH_MEM (MiB per host VM,
# default 2048), XH_DOM0_MEM (default 1024), XH_BOOT_TIMEOUT (s, default 300).

[ -n "${XH__LIB_LOADED:-}" ] && return 0
XH__LIB_LOADED=1

XH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../integration/lib/testbed.sh
. "$XH_LIB_DIR/../../integration/lib/testbed.sh"

XH_SRC=$(cd "$XH_LIB_DIR/../../.." && pwd)
XH_BUILD=${XH_BUILD:-${top_builddir:-}}
XH_MEM=${XH_MEM:-2048}
XH_DOM0_MEM=${XH_DOM0_MEM:-1024}
XH_BOOT_TIMEOUT=${XH_BOOT_TIMEOUT:-300}
# TESTBED.md: -smap (dom0 crashes in create_bounce_frame), -rdtscp (PVH guests die).
# Once a guest ran beside dom0, dom0's processes crashed at random: ld.so assertions, segfaults
# and GPs in libc's string functions, stock xl's "malloc(): smallbin double linked list
# corrupted". That is the signature of vector registers seen from another domain: Xen switches
# the FPU lazily on AMD (CR0.TS, #NM), and the emulated AVX instructions glibc picks seem not
# to fault on CR0.TS. So no AVX for anyone, and Xen switches the FPU eagerly (XH_XEN_ARGS);
# XSAVEOPT/XSAVEC/XSAVES and PKU are off too, for plain XSAVE/XRSTOR switches.
XH_CPU=${XH_CPU:-max,-smap,-rdtscp,-xsaveopt,-xsavec,-xsaves,-pku,-avx,-avx2,-fma,-f16c}
XH_XEN_ARGS=${XH_XEN_ARGS:-spec-ctrl=eager-fpu}
XH_IMAGE=""
XH_KEY=""
XH_RUNDISK=""
XH_NHOSTS=0

# xh_phase_start / xh_phase_end name: time a phase; the end prints "TIME: name N s" on stdout
# and appends it to TB_DIR/phases.
declare -A XH__PHASE_T0=()
xh_phase_start() { XH__PHASE_T0[$1]=$(tb_now_ms); }
xh_phase_end() {
	local t=$(($(tb_now_ms) - ${XH__PHASE_T0[$1]:-0}))
	printf 'TIME: %-34s %6d.%01d s\n' "$1" $((t / 1000)) $((t % 1000 / 100)) | tee -a "$TB_DIR/phases"
}

# xh_dom0_ip i: the address of host i's dom0.
xh_dom0_ip() { echo "$TB_NET_PREFIX.$((10 + $1))"; }
# xh_guest_ip k: the address of test guest k.
xh_guest_ip() { echo "$TB_NET_PREFIX.$((50 + $1))"; }
# xh_guest_mac k: the MAC of test guest k (Xen's OUI).
xh_guest_mac() { printf '00:16:3e:77:%02x:%02x\n' $((16#${TB_ID:0:2})) "$1"; }

# xh_init: testbed (root, run id, trap), the switch namespace with its bridge (and one unused
# host namespace, which testbed.sh needs before tgtd and the client), the client namespace
# and this run's ssh key. Checks the tools the real-Xen tests need.
xh_init() {
	tb_init
	tb_require qemu-system-x86_64 qemu-system-x86
	tb_require qemu-img qemu-utils
	tb_require mkfs.ext4 e2fsprogs
	tb_require ssh openssh-client
	tb_require ssh-keygen openssh-client
	tb_require debootstrap debootstrap
	[ -n "$XH_BUILD" ] && [ -x "$XH_BUILD/xl-ext/xl-ext" ] ||
		tb_error "XH_BUILD ('$XH_BUILD') is not a built tree (no xl-ext/xl-ext)"
	tb_hosts 1
	tb_client_ns
	XH_KEY="$TB_DIR/id_ed25519"
	ssh-keygen -q -t ed25519 -N "" -C "xl-ext-test-$TB_ID" -f "$XH_KEY" ||
		tb_error "ssh-keygen failed"
	tb_defer xh__teardown
}

# xh_image: build the dom0 image or reuse the cached one; sets XH_IMAGE.
xh_image() {
	XH_IMAGE=$("$XH_SRC/tests/xen/build-dom0-image.sh") || tb_error "building the dom0 image failed"
}

# xh_guest_modules dir: copy the guest kernel's xen-blkfront and xen-netfront (modules in
# Debian's kernel) out of the dom0 image (debugfs, no mount) into dir/<version>/...; echo
# dir/<version>, build-guest.sh's MODULES_DIR.
xh_guest_modules() {
	local dir=$1 ver m
	ver=$(debugfs -R "ls -p /lib/modules" "$XH_IMAGE/dom0.img" 2>/dev/null |
		awk -F/ '$6 ~ /^[0-9]/ {print $6; exit}')
	[ -n "$ver" ] || tb_error "no /lib/modules/<version> in $XH_IMAGE/dom0.img"
	for m in kernel/drivers/block/xen-blkfront.ko kernel/drivers/net/xen-netfront.ko; do
		mkdir -p "$dir/$ver/$(dirname "$m")"
		debugfs -R "dump /lib/modules/$ver/$m $dir/$ver/$m" "$XH_IMAGE/dom0.img" >/dev/null 2>&1
		[ -s "$dir/$ver/$m" ] || tb_error "cannot copy /lib/modules/$ver/$m out of the dom0 image"
	done
	echo "$dir/$ver"
}

# xh_rundisk [dir...]: the per-run disk: dom0's init (tests/xen/dom0/xh-init), the project's
# build installed with DESTDIR under install/, authorized_keys, and each extra dir copied under
# guest/. Sets XH_RUNDISK.
xh_rundisk() {
	local d="$TB_DIR/rundisk" extra
	mkdir -p "$d/install" "$d/guest"
	make -s -C "$XH_BUILD" install DESTDIR="$d/install" >"$TB_DIR/install.log" 2>&1 ||
		tb_error "make install DESTDIR=$d/install failed (log: $TB_DIR/install.log)"
	cp "$XH_KEY.pub" "$d/authorized_keys"
	install -m 755 "$XH_SRC/tests/xen/dom0/xh-init" "$d/xh-init"
	for extra in "$@"; do
		cp -a "$extra"/. "$d/guest/" || tb_error "cannot copy $extra to the per-run disk"
	done
	XH_RUNDISK="$TB_DIR/rundisk.img"
	truncate -s $(($(du -sm "$d" | cut -f1) + 64))M "$XH_RUNDISK"
	mkfs.ext4 -q -F -L xh-run -d "$d" "$XH_RUNDISK" || tb_error "mkfs.ext4 -d of the per-run disk failed"
}

# xh_boot i: boot Xen host i under QEMU in the switch namespace: overlay on the cached image,
# tap xtb<ID>t<i> on br0, serial log TB_DIR/xh<i>.serial, pid in TB_DIR/xh<i>.pid.
xh_boot() {
	local i=$1 sw tap ov
	[ -n "$XH_IMAGE" ] && [ -n "$XH_RUNDISK" ] || tb_error "xh_boot: call xh_image and xh_rundisk first"
	sw=$(tb_ns sw)
	tap="xtb${TB_ID}t$i"
	ov="$TB_DIR/xh$i.qcow2"
	rm -f "$ov"
	qemu-img create -q -f qcow2 -b "$XH_IMAGE/dom0.img" -F raw "$ov" ||
		tb_error "qemu-img: overlay for host $i failed"
	if ! ip -n "$sw" link show "$tap" >/dev/null 2>&1; then
		ip -n "$sw" tuntap add dev "$tap" mode tap || tb_error "tap $tap failed"
		ip -n "$sw" link set "$tap" master br0 up || tb_error "enslaving $tap failed"
	fi
	local args="console=hvc0 earlyprintk=xen root=/dev/vda rw init=/sbin/xh-init net.ifnames=0"
	args+=" xh_name=xh$i xh_ip=$(xh_dom0_ip "$i")/24"
	((i > XH_NHOSTS)) && XH_NHOSTS=$i
	: >"$TB_DIR/xh$i.serial"
	tb__start_daemon "xh$i" qemu-system-x86 "$TB_DIR/xh$i.qemu.log" \
		ip netns exec "$sw" qemu-system-x86_64 -name "xh$i-$TB_ID" \
		-accel tcg,thread=multi -cpu "$XH_CPU" -smp 1 -m "$XH_MEM" \
		-nodefaults -display none -no-reboot -no-user-config \
		-serial "file:$TB_DIR/xh$i.serial" \
		-kernel "$XH_IMAGE/xen" \
		-append "console=com1 com1=115200,8n1 dom0_mem=${XH_DOM0_MEM}M,max:${XH_DOM0_MEM}M dom0_max_vcpus=1 noreboot $XH_XEN_ARGS" \
		-initrd "$XH_IMAGE/vmlinuz $args,$XH_IMAGE/initrd.img" \
		-drive "file=$ov,format=qcow2,if=virtio,cache=unsafe" \
		-drive "file=$XH_RUNDISK,format=raw,if=virtio,readonly=on" \
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
		-device "virtio-net-pci,netdev=n0,mac=52:54:00:77:$(printf %02x $((16#${TB_ID:0:2}))):$(printf %02x "$i")"
	echo "$TB__DAEMON_PID" >"$TB_DIR/xh$i.pid"
	tb_log "host $i: qemu pid $TB__DAEMON_PID, dom0 $(xh_dom0_ip "$i"), serial $TB_DIR/xh$i.serial"
}

# xh_pid i: QEMU's pid for host i (empty if never booted).
xh_pid() { cat "$TB_DIR/xh$1.pid" 2>/dev/null; }

# xh_alive i: true while host i's QEMU runs.
xh_alive() {
	local pid
	pid=$(xh_pid "$1")
	[ -n "$pid" ] && tb__alive "$pid"
}

# xh_ssh i cmd...: run a shell command line in host i's dom0 (from the client namespace, with
# this run's key), bounded by XH_SSH_TIMEOUT (default 600 s). Stdin is passed through. One
# multiplexed connection per host: a key exchange costs seconds of emulated CPU in dom0.
xh_ssh() {
	local i=$1
	shift
	tb_exec c timeout "${XH_SSH_TIMEOUT:-600}" ssh -i "$XH_KEY" -o BatchMode=yes \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
		-o ConnectTimeout=10 -o ServerAliveInterval=10 -o ServerAliveCountMax=3 \
		-o ControlMaster=auto -o "ControlPath=$TB_DIR/ssh-%h" -o ControlPersist=600 \
		"root@$(xh_dom0_ip "$i")" "$@"
}

# xh_wait_ready i: wait (XH_BOOT_TIMEOUT) until host i's dom0 answers `xl info` over ssh.
# Fails early when QEMU dies or the init reports a failure.
xh_wait_ready() {
	local i=$1 deadline
	deadline=$(($(tb_now_ms) + XH_BOOT_TIMEOUT * 1000))
	while :; do
		xh_alive "$i" || {
			tail -n 30 "$TB_DIR/xh$i.serial" >&2
			tb_error "host $i: QEMU exited during boot (serial: $TB_DIR/xh$i.serial)"
		}
		if grep -q "XH-FAILED" "$TB_DIR/xh$i.serial" 2>/dev/null; then
			tail -n 30 "$TB_DIR/xh$i.serial" >&2
			tb_error "host $i: dom0 init failed"
		fi
		if grep -q "XH-READY" "$TB_DIR/xh$i.serial" 2>/dev/null &&
			XH_SSH_TIMEOUT=30 xh_ssh "$i" xl info >/dev/null 2>&1; then
			return 0
		fi
		if (($(tb_now_ms) >= deadline)); then
			tail -n 30 "$TB_DIR/xh$i.serial" >&2
			tb_error "host $i: dom0 not ready after $XH_BOOT_TIMEOUT s"
		fi
		sleep 2
	done
}

# xh_kill i: SIGKILL host i's QEMU (a power cut), wait until it is gone.
xh_kill() {
	local pid
	pid=$(xh_pid "$1")
	[ -n "$pid" ] || return 0
	if tb__alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		tb_wait_until 10 eval "! tb__alive $pid" || tb_log "host $1: qemu $pid survives SIGKILL"
	fi
	tb__reap "$pid"
	# the ssh master of a dead host would hold new sessions until its keepalive gives up
	rm -f "$TB_DIR/ssh-$(xh_dom0_ip "$1")"
	return 0
}

# xh_dom0_faults i: echo the userland crashes host i's dom0 kernel logged on its console
# (emulation faults show up there first), one per line; empty when there were none.
xh_dom0_faults() {
	grep -a -E "segfault at|general protection fault|Inconsistency detected by ld.so|Segmentation fault|double linked list corrupted" \
		"$TB_DIR/xh$1.serial" 2>/dev/null | cut -c1-160
}

# xh__teardown: deferred by xh_init: power every host off by pid (tb_cleanup then removes the
# namespaces, with the taps, and TB_DIR, with the overlays).
xh__teardown() {
	local i
	for ((i = 1; i <= XH_NHOSTS; i++)); do
		xh_kill "$i"
	done
}

# xh_lun_setup size_mb: start tgtd with target 1 (XH_IQN), LUN 1 of size_mb MiB.
# Sets XH_PORTAL, XH_IQN, XH_LUN_URL.
XH_IQN=""
XH_PORTAL=""
XH_LUN_URL=""
xh_lun_setup() {
	XH_IQN="iqn.2026-01.org.xl-ext.test:xh$TB_ID"
	XH_PORTAL="$TB_STORAGE_IP:$TB_ISCSI_PORT"
	tb_tgtd_start
	XH_LUN_URL=$(tb_tgt_lun_add 1 "$XH_IQN" 1 "$1") || tb_error "creating the LUN failed"
}

# xh_lun_dev: the LUN's by-path name in a dom0 (the name xl-ext classifies as shared iSCSI).
xh_lun_dev() { echo "/dev/disk/by-path/ip-$XH_PORTAL-iscsi-$XH_IQN-lun-1"; }

# xh_iscsi_login i: open-iscsi discovery + login in host i's dom0, then the by-path symlink
# (no udev there) to the LUN's sd device.
xh_iscsi_login() {
	local i=$1 dev
	dev=$(xh_lun_dev)
	xh_ssh "$i" "set -e
		iscsiadm -m discovery -t st -p $XH_PORTAL >/dev/null
		iscsiadm -m node -T $XH_IQN -p $XH_PORTAL --login >/dev/null
		for n in \$(seq 100); do
			sd=\$(iscsiadm -m session -P 3 | sed -n 's/.*Attached scsi disk \([a-z]*\).*/\1/p' | head -n 1)
			[ -n \"\$sd\" ] && [ -b /dev/\$sd ] && break
			sleep 0.2
		done
		[ -n \"\$sd\" ] || { echo 'no scsi disk after login' >&2; exit 1; }
		mkdir -p /dev/disk/by-path
		ln -sfn ../../\$sd $dev
		readlink -f $dev" ||
		tb_error "host $i: iSCSI login to $XH_PORTAL $XH_IQN failed"
}

# xh_dom_list i: 'name state' lines of host i's domUs (xl list, without Domain-0). Fails
# when xl list did not answer (an empty list is not the same as no answer).
xh_dom_list() {
	local out
	out=$(XH_SSH_TIMEOUT=60 xh_ssh "$1" xl list 2>/dev/null) && grep -q '^Domain-0' <<<"$out" ||
		return 1
	awk 'NR > 1 && $1 != "Domain-0" {print $1, $5}' <<<"$out"
}

# xh_dom_running i name: true if host i runs domain name (state r or b, not paused/dying).
xh_dom_running() {
	xh_dom_list "$1" | awk -v n="$2" '$1 == n && $2 !~ /[psdc]/ {f = 1} END {exit !f}'
}

# xh_guest_cfg k name disk [memory_mib]: echo the xl.cfg of test guest k from the guest's
# template (tests/xen/guest/guest.cfg.in); disk is one disk spec ("phy:/dev/...,xvda,w") or
# empty for none, memory_mib replaces the template's 96. The kernel is dom0's own (Debian's
# /vmlinuz link), the initramfs the guest agent's on the per-run disk.
xh_guest_cfg() {
	local k=$1 name=$2 disk=$3 mem=${4:-96} disk_sed="s|^disk = .*|disk = []|"
	[ -z "$disk" ] || disk_sed="s|@DISK@|$disk|g"
	sed -e "s|@NAME@|$name|g" -e "s|@KERNEL@|/vmlinuz|g" \
		-e "s|@RAMDISK@|/xh/guest/guest-initrd.gz|g" -e "s|@BRIDGE@|xenbr0|g" \
		-e "s|@MAC@|$(xh_guest_mac "$k")|g" -e "s|@IP@|$(xh_guest_ip "$k")/24|g" \
		-e "s|@EXTRA@|xlext.hz=10|g" -e "s|^memory = .*|memory = $mem|" \
		-e "s|^maxmem = .*|maxmem = $mem|" \
		-e "$disk_sed" \
		"$XH_SRC/tests/xen/guest/guest.cfg.in"
}

# xh_guest_create i k name disk [memory_mib [xl-create-option...]]: write /root/<name>.cfg in
# host i's dom0 and `xl create` it (e.g. with -p to hold it paused), or XH_CREATE's command
# (e.g. "xl-ext -b xen create"). Returns the command's status.
xh_guest_create() {
	local i=$1 k=$2 name=$3 disk=$4 mem=${5:-96}
	shift 5 2>/dev/null || shift $#
	xh_guest_cfg "$k" "$name" "$disk" "$mem" | xh_ssh "$i" "cat >/root/$name.cfg" ||
		tb_fail "host $i: cannot write /root/$name.cfg"
	xh_ssh "$i" "${XH_CREATE:-xl create}" "$@" "/root/$name.cfg"
}

# xh_probe k duration_ms [interval_ms]: probe test guest k from the client namespace; prints
# probe's key=value summary line.
xh_probe() {
	tb_exec c "$XH_BUILD/tests/integration/probe" "$(xh_guest_ip "$1")" "$2" "${3:-10}"
}

# xh_probe_get line key: the value of key in a probe summary line.
xh_probe_get() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
