#!/bin/bash
# check-xen.sh BUILD_DIR - the real-Xen tests: two Xen 4.17 hosts under QEMU (TCG), a shared
# iSCSI LUN served by tgtd, a PVH guest whose disk is that LUN, stock xl as the reference peer.
#
#   1. stock `xl migrate` host1 -> host2 over a plain TCP pipe (-s "", socat): the baseline
#   2. `xl-ext migrate` (xen backend) there and back: out over the same kind of pipe as xl
#      (figures beside xl's), back over ssh between the dom0s, where both ends are xl-ext: the
#      LUN's reservation (taken by the source first, `xl-ext pr DEV acquire`) is handed over
#      through the kernel initiator's sessions (SG_IO); counter never resets, journal
#      continuous, never two copies running, the destination alone holds the LUN afterwards;
#      while it does, `xl-ext migrate` to a pipe (no hand-over possible) is refused
#   3. wire compatibility: stock xl migrate -> xl-ext migrate-receive, xl-ext migrate -> stock
#      xl migrate-receive
#   4. the estimate (log-dirty bitmaps); `xl-ext create` of an xl.cfg through libxl, a second
#      copy of the name refused, a copy on the LUN the other host holds refused; pre-flight
#      refusals (local writable disk, destination short of memory, name clash): the domain is
#      untouched and still running on the source
#   5. the destination host VM killed mid-migration: the guest keeps running on the source,
#      the command reports the failure, nothing is left half-created on either side
#   6. (runs before 5) corosync + haagent on both dom0s: the guest's dom0 marked failing,
#      haagent live-migrates the guest through the xen backend (direct transport, pre-shared
#      key); counter never resets, journal continuous, never two copies; the node cleared
#   8. (after 6, before 5) Heartbeat 3.0.6 in v1 mode on both dom0s with the LSB hook as the
#      guest's resource: hb_standby on the guest's dom0 -> the hook's stop live-migrates it;
#      counter never resets, journal continuous, never two copies
#   7. (last; boots the host test 5 killed again) corosync on both dom0s plus a third voting
#      member in a test namespace, haagent on both dom0s: the guest's host VM is killed; the
#      survivor, quorate, fences it by reservation (its key preempted on the LUN) and restarts
#      the guest once through libxl, which takes the LUN on the kernel initiator's session
#      before the guest runs; the restarted guest's journal continues, nothing lost
#
# Root only (network namespaces, QEMU taps, tgtd). Prints PASS:/FAIL: lines and TIME: lines
# for each phase. A migration that fails may be retried once (reported); a second failure
# fails the test. Exit 0 if every test passed, 1 otherwise, 99 on a broken environment.
# Knobs: XH_TESTS="1 2 3 4 5 6 7 8" (which tests; the default), XH_CACHE, XH_KEEP_GOING=0 (stop at the first failed test), TB_KEEP=1.

set -u
XH_BUILD=$(cd "${1:-${top_builddir:-.}}" && pwd)
export XH_BUILD
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/xenhost.sh
. "$here/lib/xenhost.sh"

PORT=8002
# 20 probes a second: each probe crosses dom0's bridge and netback, emulated too
PROBE_MS=${XH_PROBE_MS:-50}
GUEST=g1
# the guest's memory: a migration under TCG moves about 1 MiB/s, so keep it small. Not below
# 96: Debian's kernel alone is a 58 MiB segment for the PVH domain builder, and with 64 MiB
# xl create fails ("segment kernel too large (0x3a00 > 0x4000 - 0x1000 pages)")
GUEST_MEM=${XH_GUEST_MEM:-96}
GUEST_HOST=1 # where GUEST runs; the tests go from there to the other host and back
other() { echo $((3 - GUEST_HOST)); }
FAILED=0
declare -A FIG=()

fail_test() {
	echo "FAIL: $*"
	FAILED=$((FAILED + 1))
	[ "${XH_KEEP_GOING:-1}" = 1 ] || exit 1
}

# want_test n: true if test n is selected (XH_TESTS, default "1 2 3 4 5 6 7 8").
want_test() { [[ " ${XH_TESTS:-1 2 3 4 5 6 7 8} " == *" $1 "* ]] || { echo "NOT RUN: test $1 (XH_TESTS)"; false; }; }

lun_disk() { echo "phy:$(xh_lun_dev),xvda,w"; }

# ---------------------------------------------------------------------------- observation

# monitor_start file: poll `xl list` on both dom0s every 2 s into file, one line per
# sample: "<ms> <running copies of GUEST> h1=<name:state,...> h2=<...>". A copy runs when its
# state has none of p(aused) s(hutdown) d(ying) c(rashed): under emulation a running guest is
# often "------" (runnable, waiting for the CPU), not r or b. Sets MON_PID.
MON_PID=""
monitor_start() {
	local file=$1
	: >"$file"
	(
		trap 'exit 0' TERM
		while :; do
			local t l1 l2 n out
			t=$(tb_now_ms)
			# a sample whose xl list did not answer (ssh timed out) is unknown, not empty
			if out=$(XH_SSH_TIMEOUT=20 xh_ssh 1 xl list 2>/dev/null) && grep -q '^Domain-0' <<<"$out"; then
				l1=$(awk 'NR > 1 && $1 != "Domain-0" {printf "%s:%s,", $1, $5}' <<<"$out")
			else
				l1="?"
			fi
			if out=$(XH_SSH_TIMEOUT=20 xh_ssh 2 xl list 2>/dev/null) && grep -q '^Domain-0' <<<"$out"; then
				l2=$(awk 'NR > 1 && $1 != "Domain-0" {printf "%s:%s,", $1, $5}' <<<"$out")
			else
				l2="?"
			fi
			n=$(printf '%s\n%s\n' "${l1//,/$'\n'}" "${l2//,/$'\n'}" |
				awk -F: -v g="$GUEST" '$1 ~ "^" g "(--incoming|--migratedaway)?$" && $2 !~ /[psdc]/ {n++} END {print n + 0}')
			[ "$l1" = "?" ] || [ "$l2" = "?" ] && n="?"
			echo "$t $n h1=${l1:-none} h2=${l2:-none}" >>"$file"
			sleep 2
		done
	) &
	MON_PID=$!
	tb__record_pid "$MON_PID" monitor
}

monitor_stop() {
	[ -n "$MON_PID" ] || return 0
	kill -TERM "$MON_PID" 2>/dev/null
	wait "$MON_PID" 2>/dev/null
	MON_PID=""
}

# monitor_verdict file: echo "samples=N one=A none=B two=C unknown=D none_windows=W"; return 0
# if no sample saw two running copies and the samples with none form at most one window (the
# switch-over, when the guest is paused on both sides).
monitor_verdict() {
	awk '{ n++; if ($2 == "?") u++; else if ($2 == 0) { z++; if (prev != 0) w++ } else if ($2 == 1) o++; else t++;
	       if ($2 != "?") prev = $2 }
	     END { printf "samples=%d one=%d none=%d two=%d unknown=%d none_windows=%d\n", n, o, z, t, u, w;
	           exit !(t == 0 && w <= 1 && o > 0) }' "$1"
}

# probe_start k file: probe guest k at 100 Hz in the background until probe_stop. Sets PROBE_PID.
PROBE_PID=""
probe_start() {
	# ip netns exec execs the probe: $! is the probe itself (SIGTERM makes it print its summary)
	ip netns exec "$(tb_ns c)" "$XH_BUILD/tests/integration/probe" "$(xh_guest_ip "$1")" 3600000 "$PROBE_MS" \
		>"$2" 2>&1 &
	PROBE_PID=$!
	tb__record_pid "$PROBE_PID" probe
}

probe_stop() {
	[ -n "$PROBE_PID" ] || return 0
	kill -TERM "$PROBE_PID" 2>/dev/null
	wait "$PROBE_PID" 2>/dev/null
	PROBE_PID=""
}

# report_faults label: print the dom0 userland crashes logged so far on both hosts' consoles.
report_faults() {
	local i f
	for i in 1 2; do
		f=$(xh_dom0_faults "$i")
		[ -z "$f" ] || echo "$f" | sed "s/^/    $1: host $i dom0 console: /"
	done
}

# guest_answers k: true if guest k answers a probe within 2 s.
guest_answers() {
	local out
	out=$(xh_probe "$1" 2000 100) || return 1
	[ "$(xh_probe_get "$out" answered)" -gt 0 ] 2>/dev/null
}

# where_running name: echo the hosts (1, 2) whose dom0 lists name as a running domain.
where_running() {
	local i
	for i in 1 2; do
		xh_dom_running "$i" "$1" && echo "$i"
	done
}

# journal_check acked: the guest's journal on the LUN, read from the test host (libiscsi).
journal_check() {
	tb_exec 1 "$XH_BUILD/xl-ext/xl-ext" pr -H xtb-checker "$XH_LUN_URL" journal-check "$1" 1:1
}

# ---------------------------------------------------------------------------- one migration

# receiver_start i command log: on host i, socat accepts one connection on PORT and runs
# command for it (as an ssh rune would); its output goes to log. Waits until it listens.
RECV_SSH=""
RECV_PID=""
receiver_start() {
	local i=$1 cmd=$2 log=$3
	xh_ssh "$i" "echo receiver-pid \$\$; exec socat TCP-LISTEN:$PORT,reuseaddr 'EXEC:$cmd'" >"$log" 2>&1 &
	RECV_SSH=$!
	tb__record_pid "$RECV_SSH" "receiver-ssh"
	tb_wait_until 60 eval "xh_ssh $i 'ss -ltn | grep -q :$PORT\\ ' 2>/dev/null" || return 1
	RECV_PID=$(sed -n 's/^receiver-pid //p' "$log")
}

# receiver_stop i: wait (<= 60 s) for the receiver to finish, else kill it on host i by pid.
receiver_stop() {
	[ -n "$RECV_SSH" ] || return 0
	if ! tb_wait_until 60 eval "! tb__alive $RECV_SSH"; then
		echo "    receiver on host $1 still running 60 s after the sender finished: killed"
		[ -z "$RECV_PID" ] || XH_SSH_TIMEOUT=30 xh_ssh "$1" "kill $RECV_PID" >/dev/null 2>&1
		kill -TERM "$RECV_SSH" 2>/dev/null
	fi
	wait "$RECV_SSH" 2>/dev/null
	RECV_SSH=""
	RECV_PID=""
}

# migrate label src dst sender [receiver]: move GUEST from host src to host dst. receiver is the
# command socat runs on dst for the connection (xl migrate-receive or xl-ext migrate-receive),
# sender the command line on src, with @RUNE@ for the pipe's rune, @DST@ for dst's dom0
# address. Without receiver, the sender's own transport (ssh) starts the receiving end. Observes the guest with the
# probe and the monitor, checks the result, retries a failed migration once. Sets FIG[label.*].
# Returns 0 if the migration and every check passed.
migrate() {
	local label=$1 src=$2 dst=$3 sender=$4 receiver=${5:-} attempt rc out t0 t1 pout verdict
	local rune="socat - TCP:$(xh_dom0_ip "$dst"):$PORT" acked0 acked1 where
	sender=${sender//@RUNE@/$rune}
	sender=${sender//@DST@/$(xh_dom0_ip "$dst")}
	for attempt in 1 2; do
		: >"$TB_DIR/$label.recv.$attempt"
		[ -z "$receiver" ] || receiver_start "$dst" "$receiver" "$TB_DIR/$label.recv.$attempt" ||
			{ fail_test "$label: the receiver did not listen on host $dst"; return 1; }
		acked0=$(xh_probe_get "$(xh_probe 1 2000 100)" last_counter)
		probe_start 1 "$TB_DIR/$label.probe.$attempt"
		monitor_start "$TB_DIR/$label.monitor.$attempt"
		t0=$(tb_now_ms)
		xh_ssh "$src" "$sender" >"$TB_DIR/$label.send.$attempt" 2>&1
		rc=$?
		t1=$(tb_now_ms)
		out=$(cat "$TB_DIR/$label.send.$attempt")
		# the guest answering again is the end of the client-visible gap
		tb_wait_until 60 guest_answers 1
		sleep 2
		probe_stop
		monitor_stop
		receiver_stop "$dst"
		pout=$(cat "$TB_DIR/$label.probe.$attempt")
		echo "$out" | sed "s/^/    $label sender: /"
		sed "s/^/    $label receiver: /" "$TB_DIR/$label.recv.$attempt" | tail -n 8
		echo "    $label probe: $pout"
		verdict=$(monitor_verdict "$TB_DIR/$label.monitor.$attempt")
		local vrc=$?
		echo "    $label xl list on both dom0s: $verdict"
		where=$(where_running "$GUEST" | xargs)
		[ "$where" = 1 ] || [ "$where" = 2 ] && GUEST_HOST=$where
		if [ "$rc" = 0 ] && [ "$where" = "$dst" ]; then
			break
		fi
		echo "    $label: attempt $attempt failed (exit $rc, $GUEST running on host(s) '${where:-none}')"
		report_faults "$label"
		local left
		left=$(xh_dom_list "$dst" | grep -v "^$GUEST " || true)
		if [ -n "$left" ]; then
			echo "    $label: left on host $dst after the failure: $(echo $left)"
			xh_ssh "$dst" "for d in \$(xl list | awk 'NR > 2 && \$1 != \"$GUEST\" {print \$2}'); do xl destroy \$d; done" >/dev/null 2>&1
		fi
		if [ "$attempt" = 1 ] && [ "$where" = "$src" ]; then
			echo "RETRY: $label: the migration failed once; the guest still runs on host $src; retrying"
			continue
		fi
		fail_test "$label: migration host $src -> host $dst failed (exit $rc), guest on '${where:-none}'"
		return 1
	done
	FIG[$label.total]=$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))
	FIG[$label.gap]=$(xh_probe_get "$pout" max_gap_ms)
	FIG[$label.attempts]=$attempt
	acked1=$(xh_probe_get "$pout" last_counter)
	local ok=1
	[ "$vrc" = 0 ] || { echo "    $label: copies: $verdict (two running, or no copy before/after)"; ok=0; }
	[ "$(xh_probe_get "$pout" reboots)" = 0 ] || { echo "    $label: the guest restarted (boot id changed)"; ok=0; }
	[ "$(xh_probe_get "$pout" counter_backwards)" = 0 ] || { echo "    $label: the counter went backwards"; ok=0; }
	[ "${acked1:-0}" -gt "${acked0:-0}" ] 2>/dev/null || { echo "    $label: counter did not advance ($acked0 -> $acked1)"; ok=0; }
	out=$(journal_check "$acked1" 2>&1) || { echo "    $label: $out"; ok=0; }
	echo "    $label: $out"
	echo "    $label: total ${FIG[$label.total]} s, longest probe gap ${FIG[$label.gap]} ms, counter $acked0 -> $acked1, attempts $attempt"
	if [ "$ok" = 1 ]; then
		local retried=""
		[ "$attempt" = 1 ] || retried=" (after one retry)"
		tb_pass "$label: host $src -> host $dst in ${FIG[$label.total]} s, longest gap ${FIG[$label.gap]} ms$retried"
		return 0
	fi
	fail_test "$label: checks failed after migrating host $src -> host $dst"
	return 1
}

XL_STOCK_SEND='xl migrate -s "" '"$GUEST"' "@RUNE@"'
XLEXT_SEND='xl-ext -b xen migrate -s "" '"$GUEST"' "@RUNE@"'
XL_STOCK_RECV='xl migrate-receive'
XLEXT_RECV='xl-ext -b xen migrate-receive'
# dom0 to dom0 over ssh, with this run's key (on the per-run disk): xl-ext starts
# `xl-ext migrate-receive` at the other end, so both ends know each other as xl-ext
SSH_DOM0="ssh -i /xh/guest/key/id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
XLEXT_SEND_SSH='xl-ext -b xen migrate --json -s "'"$SSH_DOM0"'" '"$GUEST"' @DST@'

# lun_pr i verbs...: `xl-ext pr` on the LUN's block device in host i's dom0 (SG_IO on the
# kernel initiator's session, the one blkback writes the guest's disk through).
lun_pr() {
	local i=$1
	shift
	xh_ssh "$i" "xl-ext pr $(xh_lun_dev) $*"
}

# lun_owned_by i: true if `xl-ext pr show` in host i's dom0 lists host i's key alone, holding
# the reservation (WERO). Prints what it saw. The key may be listed once per session of the
# host that registered it (a fencer's libiscsi session and the kernel's), no other key.
lun_owned_by() {
	local out
	out=$(lun_pr "$1" show 2>&1)
	echo "$out" | sed "s/^/    LUN seen from host $1: /"
	grep -qE '^keys:( 0x[0-9a-f]{16}\(self\))+$' <<<"$out" &&
		grep -qE '^reservation: holder 0x[0-9a-f]{16}\(self\) type 5' <<<"$out"
}

# ---------------------------------------------------------------------------- setup

xh_phase_start total
xh_init
tb_log "real-Xen tests, build $XH_BUILD, work dir $TB_DIR"

xh_phase_start "dom0 image (build or cache)"
xh_image
xh_phase_end "dom0 image (build or cache)"

xh_phase_start "guest initramfs + per-run disk"
moddir=$(xh_guest_modules "$TB_DIR/modules") || exit 99
"$XH_SRC/tests/xen/guest/build-guest.sh" "$TB_DIR/guest" "$moddir" >/dev/null || tb_error "build-guest.sh failed"
mkdir -p "$TB_DIR/guest/key"
cp "$XH_KEY" "$TB_DIR/guest/key/id_ed25519"
xh_rundisk "$TB_DIR/guest"
xh_phase_end "guest initramfs + per-run disk"

xh_lun_setup 64

xh_phase_start "boot both hosts to xl info"
xh_boot 1
xh_boot 2
xh_wait_ready 1
xh_wait_ready 2
xh_phase_end "boot both hosts to xl info"
xh_ssh 1 "xl info | grep -E '^(xen_version|free_memory|total_memory)'"

xh_phase_start "iSCSI login in both dom0s"
xh_iscsi_login 1
xh_iscsi_login 2
xh_phase_end "iSCSI login in both dom0s"

xh_phase_start "guest create"
xh_guest_create 1 1 "$GUEST" "$(lun_disk)" "$GUEST_MEM" || tb_error "xl create $GUEST on host 1 failed"
tb_wait_until 180 guest_answers 1 || {
	xh_ssh 1 "xl list; tail -n 20 /var/log/xen/*$GUEST*" >&2
	tb_error "guest $GUEST does not answer probes"
}
xh_phase_end "guest create"

# ---------------------------------------------------------------------------- 1: baseline
if want_test 1; then
xh_phase_start "test 1 stock xl"
migrate stock-xl "$GUEST_HOST" "$(other)" "$XL_STOCK_SEND" "$XL_STOCK_RECV"
xh_phase_end "test 1 stock xl"

fi

# ---------------------------------------------------------------------------- 2: xl-ext
if want_test 2; then
xh_phase_start "test 2 xl-ext there and back"
h0=$GUEST_HOST
h1=$((3 - h0))
t2=1
# out over the pipe stock xl used: the figures compare
migrate xl-ext-a "$h0" "$h1" "$XLEXT_SEND" "$XLEXT_RECV" || t2=0
# back over ssh, xl-ext at both ends: the reservation hand-over. The guest's host takes the
# LUN first (register + WERO reservation on its kernel session, which the guest writes
# through); afterwards host h0 must hold it alone, the guest writing on.
if [ "$t2" = 1 ]; then
	ksrc=$(lun_pr "$h1" key | sed -n 's/^key: //p')
	kdst=$(lun_pr "$h0" key | sed -n 's/^key: //p')
	out=$(lun_pr "$h1" acquire show 2>&1)
	echo "$out" | sed "s/^/    host $h1 takes the LUN: /"
	lun_owned_by "$h1" || { echo "    host $h1 does not hold the LUN alone after acquire"; t2=0; }
fi
if [ "$t2" = 1 ] && migrate xl-ext-b "$h1" "$h0" "$XLEXT_SEND_SSH"; then
	# the sender's --json report: what each end did to the LUN
	rep=$(tr -d ' \n' <"$TB_DIR/xl-ext-b.send.${FIG[xl-ext-b.attempts]}")
	echo "    hand-over (--json): $(grep -o '"ownership":{[^}]*}' <<<"$rep"), preempt_ms $(printf %.1f "$(sed -n 's/.*"preempt_ms":\([0-9.]*\).*/\1/p' <<<"$rep")")"
	for want in '"identity_verified":true' '"registered":true' '"handover":"done"' \
		"\"preempted_key\":\"$ksrc\"" "\"holder_after\":\"$kdst\"" "\"keys_after\":\[\"$kdst\"\]"; do
		grep -q "$want" <<<"$rep" || { echo "    hand-over: the --json report lacks $want"; t2=0; }
	done
	if lun_owned_by "$h0"; then
		echo "    hand-over: host $h0's key alone holds the LUN; host $h1's key was preempted"
	else
		echo "    hand-over: host $h0 does not hold the LUN alone"
		t2=0
	fi
	# now held, the LUN must not leave with a peer that cannot take the reservation over: over
	# the pipe the pre-flight gets no answer, so xl-ext refuses before it sends anything
	out=$(xh_ssh "$h0" "${XLEXT_SEND//@RUNE@/socat - TCP:$(xh_dom0_ip "$h1"):$PORT}" 2>&1)
	rc=$?
	echo "$out" | grep -v '^[0-9/]* [0-9:]* socat' | sed "s/^/    reserved, to a pipe: /"
	if [ "$rc" != 0 ] && grep -q "holds the reservation of $(xh_lun_dev)" <<<"$out" &&
		xh_dom_running "$h0" "$GUEST" && guest_answers 1; then
		echo "    reserved, to a pipe: refused, $GUEST still running on host $h0"
	else
		echo "    reserved, to a pipe: exit $rc; expected a refusal naming $(xh_lun_dev), $GUEST running on host $h0"
		t2=0
	fi
else
	t2=0
fi
# stock xl (test 3) knows nothing of reservations: the guest's host gives the LUN back
lun_pr "$GUEST_HOST" giveup show 2>&1 | sed "s/^/    host $GUEST_HOST gives the LUN back: /"
if [ "$t2" = 1 ]; then
	tb_pass "test 2: xl-ext migrate host$h0 -> host$h1 (pipe) -> host$h0 (ssh, reservation handed over by SG_IO; then refused to a pipe while reserved), counter never reset, journal continuous, never two copies"
else
	fail_test "test 2: xl-ext migrate host$h0 -> host$h1 -> host$h0"
fi
xh_phase_end "test 2 xl-ext there and back"
printf 'FIGURES: %-36s %10s %14s\n' "migration ($GUEST_MEM MiB PVH guest)" "total s" "max gap ms"
for l in stock-xl xl-ext-a xl-ext-b; do
	printf 'FIGURES: %-36s %10s %14s\n' "$l$([ "$l" = xl-ext-b ] && echo ' (ssh, hand-over)')" "${FIG[$l.total]:--}" "${FIG[$l.gap]:--}"
done

fi

# ---------------------------------------------------------------------------- 3: wire compat
if want_test 3; then
xh_phase_start "test 3 stock<->xl-ext"
h0=$GUEST_HOST
if migrate xl-to-xlext "$h0" "$((3 - h0))" "$XL_STOCK_SEND" "$XLEXT_RECV" &&
	migrate xlext-to-xl "$((3 - h0))" "$h0" "$XLEXT_SEND" "$XL_STOCK_RECV"; then
	tb_pass "test 3: stock xl migrate -> xl-ext migrate-receive and xl-ext migrate -> stock xl migrate-receive"
else
	fail_test "test 3: wire compatibility with stock xl"
fi
xh_phase_end "test 3 stock<->xl-ext"
for l in xl-to-xlext xlext-to-xl; do
	printf 'FIGURES: %-36s %10s %14s\n' "$l" "${FIG[$l.total]:--}" "${FIG[$l.gap]:--}"
done

fi

# ---------------------------------------------------------------------------- 4: refusals
if want_test 4; then
# From the guest's host S to the other, D, asked over ssh (dom0 to dom0).
S=$GUEST_HOST
D=$((3 - S))
# refused src dst name why pattern: xl-ext migrate must fail saying pattern (an extended regex),
# leave name running on src, and leave dst's domain list as it was.
refused() {
	local src=$1 dst=$2 name=$3 why=$4 pattern=$5 out rc before after
	before=$(xh_dom_list "$dst")
	out=$(xh_ssh "$src" "xl-ext -b xen migrate -s '$SSH_DOM0' $name $(xh_dom0_ip "$dst")" 2>&1)
	rc=$?
	echo "$out" | sed "s/^/    refusal ($why): /"
	after=$(xh_dom_list "$dst")
	if [ "$rc" != 0 ] && xh_dom_running "$src" "$name" && [ "$before" = "$after" ] &&
		grep -qE "$pattern" <<<"$out"; then
		return 0
	fi
	echo "    refusal ($why): exit $rc; running on source: $(xh_dom_running "$src" "$name" && echo yes || echo no); destination before: '$before' after: '$after'; expected message /$pattern/"
	return 1
}
xh_phase_start "test 4 pre-flight refusals"
t4=1
# the estimate on real Xen: four windows of log-dirty bitmaps give the guest's write rate and
# working set, and the model predicts libxc's rounds at the given rate; nothing moves
out=$(xh_ssh $S "xl-ext -b xen migrate --dry-run --estimate --bandwidth 100Mbit -s '$SSH_DOM0' $GUEST $(xh_dom0_ip "$D")" 2>&1)
rc=$?
echo "$out" | grep "estimate:" | sed 's/^/    /'
if [ "$rc" = 0 ] && grep -qE "estimate: $GUEST writes [0-9]+ pages/s .* within a working set of [0-9]+ pages" <<<"$out" &&
	grep -qE "estimate: pre-copy \([a-z]+ policy\) at 100 Mbit/s: [0-9]+ live rounds" <<<"$out" &&
	xh_dom_running "$S" "$GUEST" && ! xh_dom_running "$D" "$GUEST"; then
	echo "    estimate: sampled by log-dirty, predicted at 100 Mbit/s, $GUEST still on host $S only"
else
	echo "    estimate: exit $rc: $out"
	t4=0
fi
# a local writable disk (a loop device on the source's own root filesystem)
loopdev=$(xh_ssh $S "modprobe loop; truncate -s 16M /root/local.img && losetup -f --show /root/local.img") ||
	tb_error "losetup on host $S failed"
xh_guest_create $S 2 local1 "phy:$loopdev,xvda,w" 96 >/dev/null 2>&1 ||
	tb_error "xl create local1 on host $S failed"
if refused $S $D local1 "local disk" "local|not shared|shared storage"; then
	echo "    local disk: refused, local1 still running on host $S"
else
	t4=0
fi
xh_ssh $S "xl destroy local1; losetup -d $loopdev" >/dev/null 2>&1
# not enough free memory on the destination: a paused hog holds its memory
free1=$(xh_ssh $D "xl info" | awk '$1 == "free_memory" {print $3}')
hog=$((free1 - 40))
if xh_guest_create $D 3 hog "" "$hog" -p >/dev/null 2>&1; then
	xh_ssh $D "xl info | grep free_memory"
	if refused $S $D "$GUEST" "destination memory" "memory"; then
		echo "    memory: refused with host $D's free memory below $GUEST's $GUEST_MEM MiB"
	else
		t4=0
	fi
	xh_ssh $D "xl destroy hog" >/dev/null 2>&1
	# Xen scrubs a destroyed domain's memory before it is free again: slow under emulation
	tb_wait_until 180 eval "[ \"\$(xh_ssh $D 'xl info' | awk '\$1 == \"free_memory\" {print \$3}')\" -ge $((free1 - 16)) ] 2>/dev/null" ||
		echo "    memory: host $D's free memory did not come back after destroying the hog"
else
	echo "    memory: could not create a ${hog} MiB hog on host $D"
	t4=0
fi
# a name clash: a paused domain called GUEST on the destination (96 MiB: see GUEST_MEM),
# created by xl-ext itself from the xl.cfg through libxl (what haagent's cold restart does)
if out=$(XH_CREATE="xl-ext -b xen create" xh_guest_create $D 4 "$GUEST" "" 96 -p 2>&1); then
	echo "$out" | sed "s/^/    xl-ext create on host $D: /"
	xh_dom_list $D | grep -q "^$GUEST " ||
		{ echo "    xl-ext create: host $D does not list $GUEST"; t4=0; }
	# never a second copy of a name that exists on the host
	out=$(xh_ssh $D "xl-ext -b xen create -p /root/$GUEST.cfg" 2>&1)
	rc=$?
	echo "$out" | sed "s/^/    xl-ext create again on host $D: /"
	[ "$rc" != 0 ] && grep -q "domain $GUEST already exists here" <<<"$out" &&
		[ "$(xh_dom_list $D | grep -c "^$GUEST ")" = 1 ] ||
		{ echo "    xl-ext create again: exit $rc; expected a refusal and one $GUEST on host $D"; t4=0; }
	if refused $S $D "$GUEST" "name clash" "name|exists|already"; then
		echo "    name clash: refused, $GUEST still running on host $S"
	else
		t4=0
	fi
	xh_ssh $D "xl destroy $GUEST" >/dev/null 2>&1
else
	echo "    name clash: could not create a second $GUEST on host $D: $(tail -n 3 <<<"$out" | xargs)"
	t4=0
fi
# a copy of the guest, under another name, on its LUN that host S holds: refused before it
# runs (the LUN's reservation is another host's), nothing left on host D
lun_pr $S acquire >/dev/null 2>&1
if lun_owned_by $S >/dev/null; then
	out=$(XH_CREATE="xl-ext -b xen create" xh_guest_create $D 5 "${GUEST}copy" "$(lun_disk)" 96 2>&1)
	rc=$?
	echo "$out" | tail -n 3 | sed "s/^/    xl-ext create of a copy on host $D: /"
	[ "$rc" != 0 ] && grep -q "is reserved by key" <<<"$out" &&
		! xh_dom_list $D | grep -q "^${GUEST}copy " ||
		{ echo "    a copy on the LUN host $S holds: exit $rc, expected a refusal and no ${GUEST}copy on host $D"; t4=0; }
	lun_owned_by $S >/dev/null || { echo "    host $S no longer holds the LUN alone after the refused copy"; t4=0; }
	lun_pr $S giveup >/dev/null 2>&1 # test 5 sends over a pipe, which a held LUN forbids
else
	echo "    host $S could not take the LUN for the refused-copy check"
	t4=0
fi
guest_answers 1 || { echo "    $GUEST does not answer after the refusals"; t4=0; }
if [ "$t4" = 1 ]; then
	tb_pass "test 4: the estimate by log-dirty bitmaps; xl-ext create through libxl (a second copy refused, a copy on the LUN the other host holds refused); pre-flight refusals (local disk, destination memory, name clash), guest untouched on the source"
else
	fail_test "test 4: pre-flight refusals"
fi
xh_phase_end "test 4 pre-flight refusals"

fi

# ---------------------------------------------------------------------------- 6: haagent
# (before test 5, which kills a host for good)
# ha_corosync_conf [witness [self]]: corosync.conf of both dom0s: knet between their addresses,
# encrypted with this run's key. Two nodes: votequorum's two_node (each node keeps quorum
# without its peer). With "witness": a third voting member, w3, at host namespace 1's address
# on the test /24 (corosync only, no haagent: test 7), and a plain majority of 3; that
# member's own copy (keyfile, log and state under TB_DIR/witness) with "witness self".
ha_corosync_conf() {
	local witness=${1:-} self=${2:-}
	cat <<EOF
totem {
	version: 2
	cluster_name: xh$TB_ID
	transport: knet
	crypto_cipher: aes256
	crypto_hash: sha256
	token: 3000
$([ "$self" = self ] && printf '\tkeyfile: %s\n' "$TB_DIR/authkey")
}
nodelist {
	node {
		nodeid: 1
		name: h1
		ring0_addr: $(xh_dom0_ip 1)
	}
	node {
		nodeid: 2
		name: h2
		ring0_addr: $(xh_dom0_ip 2)
	}
$([ -n "$witness" ] && printf '\tnode {\n\t\tnodeid: 3\n\t\tname: w3\n\t\tring0_addr: %s\n\t}\n' "$(tb_ip 1)")
}
quorum {
	provider: corosync_votequorum
$([ -z "$witness" ] && printf '\ttwo_node: 1\n')
}
logging {
	to_logfile: yes
	logfile: $([ "$self" = self ] && echo "$TB_DIR/witness/corosync.log" || echo /var/log/corosync.log)
	to_syslog: no
	to_stderr: no
	timestamp: on
}
$([ "$self" = self ] && printf 'system {\n\tstate_dir: %s\n}\n' "$TB_DIR/witness/state")
EOF
}

# ha_conf: haagent.conf of both dom0s: the xen backend, live migration over the direct
# transport with this run's key, the guest's xl.cfg for a cold restart.
ha_conf() {
	cat <<EOF
cluster = corosync
group = xh$TB_ID
hypervisor = xen
dom0_reserve_mib = 0
socket = /run/haagent/haagent.sock
state_file = /var/lib/haagent/state.json
migration_key = /etc/haagent/migration.key
migration_port = $((PORT + 1))
${HA_EXTRA:-}
[guest $GUEST]
config = /root/$GUEST.cfg
EOF
}

# ha_ctl i args...: haagent ctl in host i's dom0.
ha_ctl() {
	local i=$1
	shift
	xh_ssh "$i" "haagent ctl $* --socket /run/haagent/haagent.sock"
}

# ha_stop_agent i: stop haagent in host i's dom0 by its pid. A first SIGTERM drains the node
# (its guests are live-migrated away), a second stops the agent at once: callers stop the
# agent of the node without guests first, so the other has no target left to drain to.
ha_stop_agent() {
	XH_SSH_TIMEOUT=90 xh_ssh "$1" 'p=$(cat /run/haagent.pid 2>/dev/null) || exit 0
		kill $p 2>/dev/null; sleep 1; kill $p 2>/dev/null
		for n in $(seq 1 60); do kill -0 $p 2>/dev/null || break; sleep 1; done
		kill -9 $p 2>/dev/null; rm -f /run/haagent.pid' >/dev/null 2>&1
}

# ha_stop_corosync i: stop corosync in host i's dom0 by its pid.
ha_stop_corosync() {
	XH_SSH_TIMEOUT=90 xh_ssh "$1" 'p=$(cat /run/corosync.pid 2>/dev/null) || exit 0
		kill $p 2>/dev/null
		for n in $(seq 1 60); do kill -0 $p 2>/dev/null || break; sleep 1; done
		kill -9 $p 2>/dev/null; rm -f /run/corosync.pid' >/dev/null 2>&1
}

# ha_log_clean i: true if host i's haagent.log has no libxl failure of the daemon's own
# connection (a worker child must never use it). Prints the first offending lines.
ha_log_clean() {
	local bad
	bad=$(xh_ssh "$1" "grep -E 'Bad file descriptor|libxl_list_domain failed' /var/log/haagent.log | head -n 3")
	[ -z "$bad" ] && return 0
	echo "$bad" | sed "s/^/    host $1 haagent.log: /"
	return 1
}

# ha_owner i: "<owner>/<state>" of GUEST in host i's agent's view.
ha_owner() { ha_ctl "$1" guests 2>/dev/null | awk -v g="$GUEST" 'NR > 1 && $1 == g {print $2 "/" $3}'; }

# ha_start [witness]: corosync and haagent on both dom0s (this run's keys, the guest's xl.cfg
# with the LUN, HA_EXTRA in haagent.conf); with "witness", a third corosync member in host
# namespace 1 (ha_corosync_conf). Waits until both agents are quorate and in sync with 2 nodes
# and the guest. Returns 1 (after printing what it saw) when they are not.
HA_WITNESS_PID=""
ha_start() {
	local witness=${1:-} i ok=1
	[ -s "$TB_DIR/authkey" ] && [ -s "$TB_DIR/mig.key" ] ||
		(umask 077 && head -c 256 /dev/urandom >"$TB_DIR/authkey" && head -c 32 /dev/urandom >"$TB_DIR/mig.key") ||
		tb_error "cannot write the keys of the haagent tests"
	for i in 1 2; do
		xh_alive "$i" || continue
		xh_ssh $i "mkdir -p /etc/corosync /etc/haagent /run/haagent /var/lib/haagent && umask 077 && cat >/etc/corosync/authkey" <"$TB_DIR/authkey" &&
			xh_ssh $i "umask 077 && cat >/etc/haagent/migration.key" <"$TB_DIR/mig.key" &&
			ha_corosync_conf "$witness" | xh_ssh $i "cat >/etc/corosync/corosync.conf" &&
			ha_conf | xh_ssh $i "cat >/etc/haagent/haagent.conf" &&
			xh_guest_cfg 1 "$GUEST" "$(lun_disk)" "$GUEST_MEM" | xh_ssh $i "cat >/root/$GUEST.cfg" ||
			tb_error "host $i: cannot write the haagent configuration"
		# corosync and haagent in the foreground, detached from the ssh session, pids kept
		xh_ssh $i 'setsid corosync -f -c /etc/corosync/corosync.conf </dev/null >/var/log/corosync.out 2>&1 & echo $! >/run/corosync.pid' ||
			tb_error "host $i: corosync did not start"
	done
	if [ -n "$witness" ]; then
		mkdir -p "$TB_DIR/witness/state"
		ha_corosync_conf witness self >"$TB_DIR/witness/corosync.conf"
		# its own mount namespace with a tmpfs /run: no clash with a corosync of the test host
		# shellcheck disable=SC2016
		tb__start_daemon corosync-witness corosync "$TB_DIR/witness/corosync.out" \
			ip netns exec "$(tb_ns 1)" unshare -m sh -c \
			'mount -t tmpfs tmpfs /run && exec corosync -f -c "$1"' sh "$TB_DIR/witness/corosync.conf"
		HA_WITNESS_PID=$TB__DAEMON_PID
	fi
	local votes=2
	[ -z "$witness" ] || votes=3
	for i in 1 2; do
		tb_wait_until 180 eval "xh_ssh $i 'corosync-quorumtool -s' 2>/dev/null | grep -Eq '^Total votes: +$votes'" || {
			xh_ssh $i 'corosync-quorumtool -s; tail -n 20 /var/log/corosync.log /var/log/corosync.out' 2>&1 | sed "s/^/    host $i corosync: /"
			echo "    host $i: no corosync cluster of $votes votes"
			ok=0
		}
	done
	[ "$ok" = 1 ] || return 1
	for i in 1 2; do
		xh_ssh $i 'setsid haagent -f -v -c /etc/haagent/haagent.conf </dev/null >/var/log/haagent.log 2>&1 & echo $! >/run/haagent.pid' ||
			tb_error "host $i: haagent did not start"
	done
	for i in 1 2; do
		tb_wait_until 180 eval "ha_ctl $i status 2>/dev/null | grep -q 'quorate, in sync; 2 nodes, 1 guests'" || {
			ha_ctl $i status 2>&1 | sed "s/^/    host $i haagent status: /"
			echo "    host $i: haagent not in sync with 2 nodes and 1 guest"
			ok=0
		}
	done
	[ "$ok" = 1 ]
}

# ha_stop_witness: stop test 7's third corosync member by pid.
ha_stop_witness() {
	[ -n "$HA_WITNESS_PID" ] || return 0
	kill -TERM "$HA_WITNESS_PID" 2>/dev/null
	tb_wait_until 30 eval "! tb__alive $HA_WITNESS_PID" || kill -KILL "$HA_WITNESS_PID" 2>/dev/null
	HA_WITNESS_PID=""
}

if want_test 6; then
xh_phase_start "test 6 haagent evacuation"
t6=1
S=$GUEST_HOST
D=$((3 - S))
# the guest's host holds the LUN (test 2 leaves it so; alone, test 6 takes it here): the
# migration must hand the reservation over
lun_pr $S acquire | sed "s/^/    host $S: /"
ha_start "" || t6=0
if [ "$t6" = 1 ]; then
	ha_ctl $S guests | sed "s/^/    haagent guests (host $S): /"
	acked0=$(xh_probe_get "$(xh_probe 1 2000 100)" last_counter)
	probe_start 1 "$TB_DIR/ha.probe"
	monitor_start "$TB_DIR/ha.monitor"
	t0=$(tb_now_ms)
	ha_ctl $S mark-failing h$S --reason check-xen-test-6 | sed "s/^/    mark-failing h$S: /"
	# a live migration under emulation takes minutes (tests 2 and 3)
	tb_wait_until 900 eval "[ \"\$(where_running $GUEST | xargs)\" = $D ] && [ \"\$(ha_owner $D)\" = h$D/running ]" ||
		{ echo "    $GUEST is not on host $D alone after 900 s (on '$(where_running $GUEST | xargs)', view '$(ha_owner $D)')"; t6=0; }
	t1=$(tb_now_ms)
	tb_wait_until 60 guest_answers 1
	sleep 2
	probe_stop
	monitor_stop
	pout=$(cat "$TB_DIR/ha.probe")
	echo "    haagent probe: $pout"
	ha_ctl $D events | tail -n 8 | sed "s/^/    haagent events (host $D): /"
	ha_ctl $D events | grep -q "guest $GUEST now runs on h$D (migrated" ||
		{ echo "    $GUEST did not reach host $D by live migration"; t6=0; }
	verdict=$(monitor_verdict "$TB_DIR/ha.monitor") || { echo "    copies: $verdict"; t6=0; }
	echo "    haagent xl list on both dom0s: $verdict"
	[ "$(xh_probe_get "$pout" reboots)" = 0 ] || { echo "    the guest restarted (boot id changed)"; t6=0; }
	[ "$(xh_probe_get "$pout" counter_backwards)" = 0 ] || { echo "    the counter went backwards"; t6=0; }
	acked1=$(xh_probe_get "$pout" last_counter)
	[ "${acked1:-0}" -gt "${acked0:-0}" ] 2>/dev/null || { echo "    counter did not advance ($acked0 -> $acked1)"; t6=0; }
	out=$(journal_check "$acked1" 2>&1) || t6=0
	echo "    haagent: $out"
	lun_owned_by $D || { echo "    host $D does not hold the LUN alone after the hand-over"; t6=0; }
	where=$(where_running "$GUEST" | xargs)
	[ "$where" = 1 ] || [ "$where" = 2 ] && GUEST_HOST=$where
	FIG[haagent.total]=$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))
	FIG[haagent.gap]=$(xh_probe_get "$pout" max_gap_ms)
	FIG[haagent.attempts]=1
	for i in 1 2; do
		ha_log_clean $i || { echo "    host $i: haagent's libxl connection failed (above)"; t6=0; }
	done
	ha_ctl $S clear h$S | sed "s/^/    clear h$S: /"
	tb_wait_until 120 eval "ha_ctl $D nodes 2>/dev/null | grep -Eq '^$S +h$S +ok'" ||
		{ echo "    h$S not back in service: $(ha_ctl $D nodes 2>&1 | xargs)"; t6=0; }
fi
for i in 1 2; do
	[ "$t6" = 1 ] || xh_ssh $i 'tail -n 40 /var/log/haagent.log' 2>/dev/null | sed "s/^/    host $i haagent.log: /"
done
# the agents stop without moving the guest: the guest-less node's first (see ha_stop_agent)
ha_stop_agent $((3 - GUEST_HOST))
ha_stop_agent "$GUEST_HOST"
ha_stop_corosync 1
ha_stop_corosync 2
lun_pr "$GUEST_HOST" giveup >/dev/null 2>&1 # test 5 sends over a pipe, which a held LUN forbids
where=$(where_running "$GUEST" | xargs)
if [ "$where" != "$GUEST_HOST" ] || ! guest_answers 1; then
	echo "    after the agents stopped: $GUEST runs on '${where:-none}', not on host $GUEST_HOST alone, or does not answer"
	t6=0
fi
if [ "$t6" = 1 ]; then
	tb_pass "test 6: corosync + haagent on both dom0s; h$S marked failing -> $GUEST live-migrated to h$D by haagent through the xen backend in ${FIG[haagent.total]} s (longest gap ${FIG[haagent.gap]} ms), counter never reset, journal continuous, never two copies; h$S cleared"
else
	fail_test "test 6: haagent evacuation on real Xen"
fi
xh_phase_end "test 6 haagent evacuation"

fi

# ---------------------------------------------------------------------------- 8: Heartbeat
# (after 6, before 5: both hosts up) Heartbeat 3.0.6 in v1 mode on both dom0s, the LSB hook as
# the guest's resource: the published experiment's set-up (Xen, Heartbeat, an init script that
# live-migrates instead of stopping).
if want_test 8; then
xh_phase_start "test 8 Heartbeat hb_standby"
t8=1
S=$GUEST_HOST
D=$((3 - S))
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TB_DIR/hb.secret") ||
	tb_error "cannot write Heartbeat's key"
for i in 1 2; do
	xh_ssh $i "mkdir -p /etc/ha.d /etc/xl-ext /var/lib/heartbeat /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd
		chown hacluster:haclient /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd 2>/dev/null
		grep -q '^$(xh_dom0_ip 1) xh1\$' /etc/hosts || printf '%s xh1\n%s xh2\n' $(xh_dom0_ip 1) $(xh_dom0_ip 2) >>/etc/hosts
		cp /usr/local/etc/init.d/xl-ext-domain /etc/init.d/xl-ext-domain" ||
		tb_error "host $i: cannot prepare Heartbeat"
	xh_ssh $i "cat >/etc/ha.d/ha.cf" <<EOF
logfile /var/log/ha-log
logfacility none
use_logd no
keepalive 1
warntime 10
deadtime 30
initdead 60
ucast xenbr0 $(xh_dom0_ip $((3 - i)))
auto_failback off
node xh1
node xh2
crm off
EOF
	printf 'auth 1\n1 sha1 %s\n' "$(cat "$TB_DIR/hb.secret")" | xh_ssh $i "umask 077 && cat >/etc/ha.d/authkeys"
	echo "xh$S xl-ext-domain::$GUEST" | xh_ssh $i "cat >/etc/ha.d/haresources"
	xh_ssh $i "umask 022 && cat >/etc/xl-ext/xl-ext-domain.conf" <<EOF
config_dir = /root
backend = xen
stop_mode = auto
placement = peer
peer = xh$((3 - i))
migration_transport = ssh
ssh_command = $SSH_DOM0
migrate_timeout = 900
log_file = /var/log/xl-ext-domain.log
EOF
	xh_guest_cfg 1 "$GUEST" "$(lun_disk)" "$GUEST_MEM" | xh_ssh $i "cat >/root/$GUEST.cfg" ||
		tb_error "host $i: cannot write /root/$GUEST.cfg"
done
for i in 1 2; do
	xh_ssh $i "XLEXT_DOMAIN_CONF=/etc/xl-ext/xl-ext-domain.conf /usr/libexec/heartbeat/heartbeat </dev/null >/var/log/heartbeat.out 2>&1" ||
		{ echo "    host $i: heartbeat did not start: $(xh_ssh $i 'tail -n 5 /var/log/ha-log' | xargs)"; t8=0; }
done
hb_rsc() { xh_ssh "$1" 'cl_status rscstatus' 2>/dev/null; }
# the guest's host holds the LUN: the hook's migration (xl-ext at both ends) hands it over
lun_pr $S acquire | sed "s/^/    host $S: /"
# host S holds its resource group (the guest already runs there: the hook's start leaves it)
tb_wait_until 240 eval "[ \"\$(hb_rsc $S)\" = all ] || [ \"\$(hb_rsc $S)\" = local ]" ||
	{ echo "    Heartbeat on host $S does not hold its resources: '$(hb_rsc $S)'"; t8=0; }
[ "$(where_running "$GUEST" | xargs)" = "$S" ] || { echo "    $GUEST not on host $S alone after Heartbeat started"; t8=0; }
if [ "$t8" = 1 ]; then
	acked0=$(xh_probe_get "$(xh_probe 1 2000 100)" last_counter)
	probe_start 1 "$TB_DIR/hb.probe"
	monitor_start "$TB_DIR/hb.monitor"
	t0=$(tb_now_ms)
	xh_ssh $S /usr/share/heartbeat/hb_standby >/dev/null 2>&1 || { echo "    hb_standby on host $S failed"; t8=0; }
	tb_wait_until 900 eval "[ \"\$(where_running $GUEST | xargs)\" = $D ] && [ \"\$(hb_rsc $D)\" = all ]" ||
		{ echo "    $GUEST not on host $D alone with its resource there after 900 s (on '$(where_running $GUEST | xargs)', host $D: '$(hb_rsc $D)')"; t8=0; }
	t1=$(tb_now_ms)
	tb_wait_until 60 guest_answers 1
	sleep 2
	probe_stop
	monitor_stop
	pout=$(cat "$TB_DIR/hb.probe")
	echo "    Heartbeat probe: $pout"
	xh_ssh $S 'cat /var/log/xl-ext-domain.log' | tail -n 6 | sed "s/^/    host $S hook: /"
	xh_ssh $D 'cat /var/log/xl-ext-domain.log' | tail -n 4 | sed "s/^/    host $D hook: /"
	xh_ssh $S 'cat /var/log/xl-ext-domain.log' | grep -q "live-migrated to xh$D in" ||
		{ echo "    host $S's stop did not live-migrate $GUEST to xh$D"; t8=0; }
	xh_ssh $D 'cat /var/log/xl-ext-domain.log' | grep -q "started (cold boot)" &&
		{ echo "    host $D's start booted a second $GUEST"; t8=0; }
	xh_ssh $S "grep -q 'Running /etc/init.d/xl-ext-domain $GUEST stop' /var/log/ha-log" ||
		{ echo "    Heartbeat did not run the hook's stop on host $S"; t8=0; }
	for i in 1 2; do
		xh_ssh $i "grep 'ERROR: Return code' /var/log/ha-log" | sed "s/^/    host $i ha-log: /" | grep . &&
			{ echo "    a hook failed under Heartbeat on host $i"; t8=0; }
	done
	verdict=$(monitor_verdict "$TB_DIR/hb.monitor") || { echo "    copies: $verdict"; t8=0; }
	echo "    Heartbeat xl list on both dom0s: $verdict"
	[ "$(xh_probe_get "$pout" reboots)" = 0 ] || { echo "    the guest restarted (boot id changed)"; t8=0; }
	[ "$(xh_probe_get "$pout" counter_backwards)" = 0 ] || { echo "    the counter went backwards"; t8=0; }
	acked1=$(xh_probe_get "$pout" last_counter)
	[ "${acked1:-0}" -gt "${acked0:-0}" ] 2>/dev/null || { echo "    counter did not advance ($acked0 -> $acked1)"; t8=0; }
	out=$(journal_check "$acked1" 2>&1) || t8=0
	echo "    Heartbeat: $out"
	lun_owned_by $D >/dev/null || { echo "    host $D does not hold the LUN alone"; t8=0; }
	FIG[heartbeat.total]=$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))
	FIG[heartbeat.gap]=$(xh_probe_get "$pout" max_gap_ms)
	FIG[heartbeat.attempts]=1
fi
[ "$t8" = 1 ] || for i in 1 2; do xh_ssh $i 'tail -n 30 /var/log/ha-log; tail -n 20 /var/log/xl-ext-domain.log' 2>/dev/null | sed "s/^/    host $i: /"; done
# wherever the guest runs now (a failed hook may have restarted it on the other host)
where=$(where_running "$GUEST" | xargs)
[ "$where" = 1 ] || [ "$where" = 2 ] && GUEST_HOST=$where
# Heartbeat stopped without releasing anything (its own stop would run the hooks' stop):
# every Heartbeat process killed outright, the guest stays where it is
for i in 1 2; do
	XH_SSH_TIMEOUT=60 xh_ssh $i 'pkill -KILL -x heartbeat; for n in $(seq 30); do pgrep -x heartbeat >/dev/null || break; sleep 1; done' >/dev/null 2>&1
done
lun_pr "$GUEST_HOST" giveup >/dev/null 2>&1 # test 5 sends over a pipe, which a held LUN forbids
if [ "$t8" = 1 ]; then
	tb_pass "test 8: Heartbeat 3.0.6 (v1, haresources) on both dom0s, hb_standby on host $S -> the LSB hook's stop live-migrated $GUEST to host $D in ${FIG[heartbeat.total]} s (longest gap ${FIG[heartbeat.gap]} ms), host $D's start left it running; counter never reset, journal continuous, never two copies"
else
	fail_test "test 8: Heartbeat hb_standby on real Xen"
fi
xh_phase_end "test 8 Heartbeat hb_standby"

fi

# ---------------------------------------------------------------------------- 5: dest killed
if want_test 5; then
xh_phase_start "test 5 destination killed"
t5=1
# from wherever the guest runs now (test 6 moved it)
S=$GUEST_HOST
D=$((3 - S))
receiver_start $D "$XLEXT_RECV" "$TB_DIR/kill.recv" || tb_error "receiver on host $D"
rune="socat - TCP:$(xh_dom0_ip $D):$PORT"
xh_ssh $S "${XLEXT_SEND//@RUNE@/$rune}" >"$TB_DIR/kill.send" 2>&1 &
spid=$!
tb__record_pid "$spid" sender-kill
# kill the destination once the stream is flowing (its copy exists)
tb_wait_until 120 eval "xh_dom_list $D | grep -q '^$GUEST--incoming'" ||
	echo "    host $D never listed $GUEST--incoming; killing it anyway"
sleep 5
xh_kill $D
t_kill=$(tb_now_ms)
wait "$spid"
rc=$?
t_end=$(tb_now_ms)
sed 's/^/    killed-dest sender: /' "$TB_DIR/kill.send"
echo "    killed-dest: sender exit $rc, $(((t_end - t_kill) / 1000)) s after the kill"
[ "$rc" != 0 ] || { echo "    sender reported success with its destination dead"; t5=0; }
grep -qE "^Migration of $GUEST to .* failed; domain resumed on the source \(.+\)\.$" "$TB_DIR/kill.send" ||
	{ echo "    the sender's last word is not 'Migration of $GUEST to ... failed; domain resumed on the source (why).'"; t5=0; }
where=$(where_running "$GUEST" 2>/dev/null | xargs)
[ "$where" = "$S" ] || { echo "    $GUEST running on '${where:-none}', not on host $S"; t5=0; }
left=$(xh_dom_list $S | grep -v "^$GUEST [^ ]*$" || true)
[ -z "$left" ] || { echo "    left on host $S: $left"; t5=0; }
guest_answers 1 || { echo "    $GUEST does not answer on host $S"; t5=0; }
kill -TERM "$RECV_SSH" 2>/dev/null
wait "$RECV_SSH" 2>/dev/null
# (the killed host is not booted again to look: Xen keeps no domain across a power cut, and
# xh_boot starts from a fresh overlay, so its empty list would prove nothing)
if [ "$t5" = 1 ]; then
	tb_pass "test 5: destination killed mid-migration: guest runs on the source, failure reported, nothing half-created"
else
	fail_test "test 5: destination killed mid-migration"
fi
xh_phase_end "test 5 destination killed"

fi

# ---------------------------------------------------------------------------- 7: host killed
# (last: it powers the guest's host off for good)
if want_test 7; then
xh_phase_start "test 7 host killed, fenced, guest restarted"
t7=1
S=$GUEST_HOST
D=$((3 - S))
# test 5 powered host D off: boot it again (a fresh dom0, logged in to the LUN)
if ! xh_alive $D; then
	xh_boot $D
	xh_wait_ready $D
	xh_iscsi_login $D
fi
# the guest's host holds the LUN (tests 2 and 6 leave it so; alone, test 7 takes it here)
lun_pr $S acquire | sed "s/^/    host $S: /"
lun_owned_by $S >/dev/null || { echo "    host $S does not hold the LUN alone"; t7=0; }
# the dom0s' reservation keys come from their host names (xh1, xh2), not the cluster's
K1=$(lun_pr 1 key | sed -n 's/^key: //p')
K2=$(lun_pr 2 key | sed -n 's/^key: //p')
[ -n "$K1" ] && [ -n "$K2" ] || { echo "    no reservation keys (h1 '$K1', h2 '$K2')"; t7=0; }
KS=$K1 KD=$K2
[ "$S" = 1 ] || { KS=$K2; KD=$K1; }
if [ "$t7" = 1 ]; then
	HA_EXTRA="fence_mode = reservation
node_keys = h1=$K1,h2=$K2" ha_start witness || t7=0
fi
if [ "$t7" = 1 ]; then
	ha_ctl $D guests | sed "s/^/    haagent guests (host $D): /"
	acked0=$(xh_probe_get "$(xh_probe 1 2000 100)" last_counter)
	probe_start 1 "$TB_DIR/fence.probe"
	t0=$(tb_now_ms)
	xh_kill $S
	echo "    host $S powered off (QEMU killed) with $GUEST running, counter $acked0"
	# fence, then a cold restart under emulation: a guest boot takes a minute or more
	tb_wait_until 900 eval "xh_dom_running $D $GUEST && [ \"\$(ha_owner $D)\" = h$D/running ]" ||
		{ echo "    $GUEST not running on host $D after 900 s (view '$(ha_owner $D)')"; t7=0; }
	t1=$(tb_now_ms)
	tb_wait_until 120 guest_answers 1 || { echo "    $GUEST does not answer on host $D"; t7=0; }
	# the restarted guest writes its journal (a LUN it could not write would freeze the counter)
	tb_wait_until 120 eval "[ \"\$(xh_probe_get \"\$(xh_probe 1 2000 100)\" last_counter)\" -gt \"\${acked0:-0}\" ] 2>/dev/null" ||
		echo "    the counter did not pass $acked0 after the restart"
	sleep 2
	probe_stop
	pout=$(cat "$TB_DIR/fence.probe")
	echo "    fence probe: $pout"
	ha_ctl $D events | tail -n 10 | sed "s/^/    haagent events (host $D): /"
	ha_ctl $D events | grep -q "node h$S fenced by h$D" ||
		{ echo "    no event 'node h$S fenced by h$D'"; t7=0; }
	n=$(ha_ctl $D events | grep -c "guest $GUEST now runs on h$D (restarted")
	[ "$n" = 1 ] || { echo "    $GUEST restarted $n times on h$D, not once"; t7=0; }
	[ "$(xh_dom_list $D | grep -c "^$GUEST ")" = 1 ] ||
		{ echo "    host $D lists $(xh_dom_list $D | grep -c "^$GUEST ") copies of $GUEST"; t7=0; }
	# host S's key is gone: whatever it still had in flight is refused (RESERVATION CONFLICT)
	lun_owned_by $D || { echo "    host $D does not hold the LUN alone (host $S's key $KS must be gone)"; t7=0; }
	[ "$(xh_probe_get "$pout" reboots)" = 1 ] || { echo "    boot id changed $(xh_probe_get "$pout" reboots) times, not once"; t7=0; }
	acked1=$(xh_probe_get "$pout" last_counter)
	[ "${acked1:-0}" -gt "${acked0:-0}" ] 2>/dev/null ||
		{ echo "    the restarted guest's journal did not advance ($acked0 -> $acked1): it cannot write its LUN"; t7=0; }
	out=$(journal_check "$acked1" 2>&1) || t7=0
	echo "    fence: $out"
	grep -q "fence: node h$S's key $KS preempted" <<<"$(xh_ssh $D 'cat /var/log/haagent.log')" ||
		{ echo "    host $D's log does not show h$S's key $KS preempted"; t7=0; }
	xh_ssh $D "grep -E 'fence:|cold restart|LUN .* held by|started from' /var/log/haagent.log" | tail -n 6 | sed "s/^/    host $D haagent.log: /"
	ha_log_clean $D || { echo "    host $D: haagent's libxl connection failed (above)"; t7=0; }
	FIG[cold-restart.total]=$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))
	FIG[cold-restart.gap]=$(xh_probe_get "$pout" max_gap_ms)
	FIG[cold-restart.attempts]=1
	GUEST_HOST=$D
fi
[ "$t7" = 1 ] || xh_ssh $D 'tail -n 60 /var/log/haagent.log' 2>/dev/null | sed "s/^/    host $D haagent.log: /"
ha_stop_agent $D
ha_stop_corosync $D
ha_stop_witness
if [ "$t7" = 1 ]; then
	tb_pass "test 7: host $S powered off with $GUEST running; h$D, quorate with the third vote, fenced it by reservation and restarted $GUEST once through libxl in ${FIG[cold-restart.total]} s (longest gap ${FIG[cold-restart.gap]} ms; a live migration's: ${FIG[haagent.gap]:-${FIG[stock-xl.gap]:-?}} ms); host $S's key gone from the LUN, journal continuous"
else
	fail_test "test 7: host killed, fenced, guest restarted"
fi
xh_phase_end "test 7 host killed, fenced, guest restarted"

fi

xh_phase_end total
report_faults "end of run"
# every migration of the run in one table, beside stock xl's (emulation figures: they show the
# migrations are correct and compatible; speed is measured on the sim backend, make bench)
printf 'SUMMARY: %-36s %9s %12s %9s %9s %8s\n' "migration ($GUEST_MEM MiB PVH guest, TCG)" \
	"total s" "max gap ms" "x xl tot" "x xl gap" attempts
for l in stock-xl xl-ext-a xl-ext-b xl-to-xlext xlext-to-xl haagent heartbeat cold-restart; do
	[ -n "${FIG[$l.total]:-}" ] || continue
	awk -v l="$l" -v t="${FIG[$l.total]}" -v g="${FIG[$l.gap]}" -v a="${FIG[$l.attempts]}" \
		-v t0="${FIG[stock-xl.total]:-}" -v g0="${FIG[stock-xl.gap]:-}" 'BEGIN {
		name = l; if (l == "xl-ext-b") name = l " (ssh, hand-over)"; if (l == "haagent") name = "haagent mark-failing (tcp)"; if (l == "cold-restart") name = "haagent fence + cold restart"; if (l == "heartbeat") name = "Heartbeat hb_standby (LSB hook, ssh)"
		rt = (t0 > 0) ? sprintf("%.2f", t / t0) : "-"; rg = (g0 > 0) ? sprintf("%.2f", g / g0) : "-"
		printf "SUMMARY: %-36s %9s %12s %9s %9s %8s\n", name, t, g, rt, rg, a }'
done
if [ "$FAILED" = 0 ]; then
	echo "PASS: check-xen: every real-Xen test passed"
	exit 0
fi
echo "FAIL: check-xen: $FAILED test(s) failed"
exit 1
