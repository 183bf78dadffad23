#!/bin/bash
# demo.sh - the simulated-cluster demonstration (scripts/quickstart demo runs it).
#
#   demo.sh BUILD_DIR
#
# Builds a small cluster on this machine out of network namespaces: three dom0 hosts on a
# private bridge, corosync on each, a tgtd iSCSI target with a LUN every host sees, four sim
# guests on host 1 and a client in a namespace of its own that probes each guest's UDP service
# every 10 ms. Then it shows the two ways to empty a host:
#   1. the classic one, as Heartbeat's init.d stop/start does it: the LSB hook
#      (resources/lsb/xl-ext-domain, stop_mode shutdown) stops vm1 on host 2 and cold-boots it
#      on host 1; the client sees the guest gone for the stop and the boot, and a new boot id;
#   2. haagent's: host 1 is marked failing and its four guests are live-migrated to hosts 2
#      and 3; the client sees a gap of about the migration's downtime, and the same boot id.
# and prints what the client saw for each guest. Every claim is checked: a guest that lost
# more probes than its downtime explains, rebooted, or ran twice ends the demo with an error
# (exit 1). Everything is removed on exit, also on Ctrl-C.
set -u

build=${1:?usage: demo.sh BUILD_DIR}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
XLEXT=$build/xl-ext/xl-ext
HAAGENT=$build/haagent/haagent
LSB=$build/resources/lsb/xl-ext-domain
PROBE=${PROBE:-$build/tests/integration/probe}
for f in "$XLEXT" "$HAAGENT" "$LSB" "$PROBE"; do
	[ -x "$f" ] || { echo "demo: $f is not built (scripts/quickstart demo builds it)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 2; }
# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib/testbed.sh
. "$here/../tests/integration/lib/testbed.sh"
# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib/simhost.sh
. "$here/../tests/integration/lib/simhost.sh"

# The testbed's own messages (and the commands' chatter) go to a log that outlives the
# cluster; the terminal gets the story and, when a check fails, one line naming it.
LOG=$build/demo.log
exec 3>&2 2>"$LOG"
tb_fail() {
	echo "FAIL: $*" >&2
	echo "demo: FAILED: $* (details in $LOG)" >&3
	exit 1
}
GUESTS="vm1 vm2 vm3 vm4"
field() { sed -n "s/.*$2=\([0-9.a-z,]*\).*/\1/p" <<<"$1"; }
say() { echo "   $*"; }

tb_init
echo "== three simulated dom0 hosts on a private bridge, and a client host"
tb_hosts 3
tb_client_ns
sim_setup
for i in 1 2 3; do
	say "host h$i: namespace $(tb_ns "$i"), address $(tb_ip "$i")"
done

echo "== corosync on every host"
tb_corosync_start 1 2 3
for i in 1 2 3; do
	tb_corosync_wait_members "$i" 3 30 || tb_fail "host h$i: no 3-node cluster"
done
tb_exec 1 corosync-quorumtool -s | sed -n '/Quorate/p;/Total votes/p' | sed 's/^/   /'

echo "== shared iSCSI storage"
tb_tgtd_start
url=$(tb_tgt_lun_add 1 "iqn.2026-11.org.xl-ext:demo$TB_ID" 1 64)
for i in 1 2 3; do
	desig=$(tb_exec "$i" timeout 20 iscsi-inq -e 1 -c 131 "$url" 2>&1 | grep -m1 Designator)
	say "host h$i sees $url: ${desig:-?}"
done

echo "== four guests on h1 (32 MiB each, writing 4 MiB/s of their memory), a client probing each every 10 ms"
mkdir -p "$TB_DIR/xen"
n=0
for g in $GUESTS; do
	n=$((n + 1))
	sim_guest_cfg "$TB_DIR/xen/$g.cfg" "$g" 32 1 pv "$TB_NET_PREFIX.10$n" "dirty_mibps=4,seed=$n"
	IP[n]=$TB_NET_PREFIX.10$n
done
for g in vm2 vm3 vm4; do
	sim_x 1 create "$TB_DIR/xen/$g.cfg" >/dev/null || tb_fail "create $g on h1"
done
sim_x 2 create "$TB_DIR/xen/vm1.cfg" >/dev/null || tb_fail "create vm1 on h2"
for n in 1 2 3 4; do
	tb_wait_until 20 eval "tb_exec c '$PROBE' ${IP[$n]} 200 2>/dev/null | grep -q 'answered=[1-9]'" ||
		tb_fail "vm$n does not answer the client at ${IP[$n]}"
	say "vm$n at ${IP[$n]} answers"
done

probe_start() { # probe_start n: a client probing vm<n> until stopped
	rm -f "$TB_DIR/probe$1" "$TB_DIR/probe$1.err"
	# exec: $! is the client itself, which prints its summary when it gets SIGTERM
	(exec ip netns exec "$(tb_ns c)" "$PROBE" "${IP[$1]}" 600000 10 0 >"$TB_DIR/probe$1" 2>"$TB_DIR/probe$1.err") &
	PROBE_PID[$1]=$!
	tb_wait_until 20 grep -q 'first reply' "$TB_DIR/probe$1.err" || tb_fail "the client gets no reply from vm$1"
}
probe_stop() { # probe_stop n host: once vm<n> answers from host, stop its client; summary in $P
	tb_wait_until 20 eval "tb_exec c '$PROBE' ${IP[$1]} 100 2>/dev/null | grep -q 'hosts=.*$2\$'" ||
		tb_fail "vm$1 does not answer from $2"
	kill -TERM "${PROBE_PID[$1]}" 2>/dev/null
	wait "${PROBE_PID[$1]}"
	P=$(cat "$TB_DIR/probe$1")
	echo "probe vm$1: $P" >&2
}

echo "== the classic way, as Heartbeat's init.d stop/start: vm1 stopped on h2, cold-booted on h1"
for i in 1 2; do
	cat >"$TB_DIR/h$i.hook.conf" <<EOF
config_dir = $TB_DIR/xen
backend = sim
xl_ext = $XLEXT
stop_mode = shutdown
shutdown_timeout = 5
log_file = $TB_DIR/h$i.hook.log
haagent_socket = $TB_DIR/h$i/no-haagent.sock
EOF
done
hook() { # hook i action: the LSB hook on host i, for vm1
	tb_exec "$1" env XLEXT_SIM_ROOT="$TB_DIR/sim$1" XLEXT_SIM_HOST="h$1" \
		XLEXT_DOMAIN_CONF="$TB_DIR/h$1.hook.conf" "$LSB" vm1 "$2" >/dev/null 2>&1
}
probe_start 1
hook 2 stop || tb_fail "the hook's stop of vm1 on h2 failed: $(tail -n 3 "$TB_DIR/h2.hook.log")"
hook 1 start || tb_fail "the hook's start of vm1 on h1 failed: $(tail -n 3 "$TB_DIR/h1.hook.log")"
probe_stop 1 h1
classic=$P
stop_ms=$(sed -n 's/.*\(stopped (destroyed)\|shut down\) in \([0-9]*\) ms.*/\2/p' "$TB_DIR/h2.hook.log" | tail -n 1)
boot_ms=$(sed -n 's/.*started (cold boot) in \([0-9]*\) ms.*/\1/p' "$TB_DIR/h1.hook.log" | tail -n 1)
[ "$(field "$classic" reboots)" = 1 ] || tb_fail "vm1 was not rebooted by stop/start: $classic"
say "h2's stop took ${stop_ms:-?} ms, h1's boot ${boot_ms:-?} ms; the client saw vm1 gone for $(field "$classic" max_gap_ms) ms, and a new boot id"

echo "== haagent on every host (corosync CPG and votequorum), live migration over authenticated TCP"
KEY=$TB_DIR/migrate.key
head -c 32 /dev/urandom >"$KEY"
chmod 600 "$KEY"
# the fence agent records its call: nothing in this demo may fence a node
# shellcheck disable=SC2016
printf '#!/bin/sh\necho "$1" >>%s/fenced\n' "$TB_DIR" >"$TB_DIR/fence"
chmod +x "$TB_DIR/fence"
for i in 1 2 3; do
	mkdir -p "$TB_DIR/h$i/ctl"
	{
		echo "cluster = corosync"
		echo "group = demo$TB_ID"
		echo "hypervisor = sim"
		echo "dom0_reserve_mib = 64"
		echo "socket = $TB_DIR/h$i/ctl/haagent.sock"
		echo "state_file = $TB_DIR/h$i/state.json"
		echo "migration_key = $KEY"
		echo "migration_port = 8002"
		echo "fence_command = $TB_DIR/fence"
		for g in $GUESTS; do
			printf '[guest %s]\nconfig = %s\nfallback = cold-restart\n' "$g" "$TB_DIR/xen/$g.cfg"
		done
	} >"$TB_DIR/h$i/haagent.conf"
	# shellcheck disable=SC2046
	tb__start_daemon "haagent-h$i" haagent "$TB_DIR/h$i/haagent.log" \
		ip netns exec "$(tb_ns "$i")" env $(sim_env "$i") XLEXT_SIM_HOST_MIB=512 \
		"$HAAGENT" -f -v -c "$TB_DIR/h$i/haagent.conf"
done
ctl() { "$HAAGENT" ctl "$@" --socket "$TB_DIR/h2/ctl/haagent.sock"; }
tb_wait_until 30 eval "ctl status 2>/dev/null | grep -q 'quorate, in sync; 3 nodes, 4 guests'" ||
	tb_fail "the agents are not in sync with 3 nodes and 4 guests: $(ctl status 2>&1)"
ctl guests | sed 's/^/   /'

echo "== h1 marked failing: haagent empties it by live migration"
for n in 1 2 3 4; do probe_start "$n"; done
t0=$(tb_now_ms)
ctl mark-failing h1 --reason "demo: planned evacuation" | sed 's/^/   /'
declare -A seen TO
left=4
while ((left > 0 && $(tb_now_ms) - t0 < 120000)); do
	g_out=$(ctl guests 2>/dev/null)
	left=0
	while read -r g node state _; do
		[ "$node" = h1 ] || [ "$state" != running ] && left=$((left + 1))
		key="$g $node $state"
		[ -n "${seen[$key]:-}" ] && continue
		seen[$key]=1
		at=$(awk -v t="$(($(tb_now_ms) - t0))" 'BEGIN {printf "+%5.2f s", t / 1000}')
		if [ "$state" = migrating ]; then
			say "$at $g leaves $node by live migration"
		elif [ "$node" != h1 ] && [ "$state" = running ]; then
			say "$at $g runs on $node"
			TO[$g]=$node
		fi
	done < <(tail -n +2 <<<"$g_out")
	((left > 0)) && sleep 0.05
done
t_empty=$(($(tb_now_ms) - t0))
((left == 0)) || tb_fail "h1 is not empty after 120 s: $(ctl guests)"
[ -z "$(sim_domains 1)" ] || tb_fail "h1 still runs: $(sim_domains 1)"
say "h1 empty $t_empty ms after the mark"

echo "== what the client saw"
printf '   %-6s %-10s %-12s %-12s %-17s %s\n' guest moved downtime "client gap" "lost in a row" "boot id"
for n in 1 2 3 4; do
	g=vm$n
	to=${TO[$g]:-}
	down=$(sed -n "s/.*migration of $g to .* done in .*, downtime \([0-9.]*\) ms.*/\1/p" \
		"$TB_DIR/h1/haagent.log" | tail -n 1)
	{ [ -n "$to" ] && [ -n "$down" ]; } || tb_fail "no completed migration of $g in h1's haagent log"
	probe_stop "$n" "$to"
	p=$P
	lost=$(field "$p" max_lost_run)
	allowed=$(sim_probe_allowed_lost "$down" "$p")
	boot=unchanged
	[ "$(field "$p" reboots)" = 0 ] || boot=CHANGED
	printf '   %-6s %-10s %-12s %-12s %-17s %s\n' "$g" "h1 -> $to" "$down ms" "$(field "$p" max_gap_ms) ms" \
		"$lost (allowed $allowed)" "$boot"
	((lost <= allowed)) || tb_fail "$g: the client lost $lost probes in a row; downtime $down ms allows $allowed"
	[ "$boot" = unchanged ] || tb_fail "$g was rebooted by its live migration: $p"
	[ "$(field "$p" counter_backwards)" = 0 ] || tb_fail "$g's memory went back: $p"
done
printf '   %-6s %-10s %-12s %-12s %-17s %s\n' "vm1" "h2 -> h1" "(stop/start)" "$(field "$classic" max_gap_ms) ms" \
	"$(field "$classic" max_lost_run)" "new (cold boot)"
for g in $GUESTS; do
	c=0
	for i in 1 2 3; do sim_domains "$i" | grep -q "^$g r" && c=$((c + 1)); done
	[ "$c" = 1 ] || tb_fail "$g runs on $c hosts"
done
[ ! -e "$TB_DIR/fenced" ] || tb_fail "a node was fenced: $(cat "$TB_DIR/fenced")"
say "every guest runs on exactly one host; no node was fenced"
echo "== done; tearing the cluster down (the testbed's log: $LOG)"
tb_cleanup
exit 0
