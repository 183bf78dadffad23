#!/bin/bash
# demo.sh - the simulated-cluster demonstration (scripts/quickstart demo runs it).
#
#   demo.sh BUILD_DIR
#
# Builds a small cluster on this machine out of network namespaces: three dom0 hosts on a
# private bridge, corosync and haagent on each, a tgtd iSCSI target with a LUN every host
# sees, four sim guests on host 1 and a client in a namespace of its own. Then it runs
# "haagent drill --mode both" from the client: h1 is emptied twice while the client probes
# every guest 100 times a second and sends it HTTP requests,
#   1. by haagent's live evacuation (mark-failing): the client sees a gap of about each
#      migration's downtime, and the same boot id;
#   2. the classic way of Heartbeat's init.d stop/start (mark-failing --cold): each guest is
#      shut down on h1 and cold-booted elsewhere; the client sees it gone for the shutdown
#      and the boot, and a new boot id;
# and prints the drill's table; the plot and the report stay in BUILD_DIR/drill. Every claim
# is checked (the drill's --check: a guest that lost more probes than its downtime explains,
# rebooted by a live migration, kept its boot id across a stop/start or ran twice ends the
# demo with an error, exit 1). Everything is removed on exit, also on Ctrl-C. DRILL_MODE=migrate
# or stopstart runs one mode only; DRILL_REPEAT=N runs the drill N times and prints p50/p95
# over the runs instead of one run's tables (make bench-drill).
set -u

build=${1:?usage: demo.sh BUILD_DIR}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
XLEXT=$build/xl-ext/xl-ext
HAAGENT=$build/haagent/haagent
for f in "$XLEXT" "$HAAGENT"; do
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

echo "== four guests on h1 (32 MiB each, writing 4 MiB/s of their memory)"
mkdir -p "$TB_DIR/xen"
n=0
for g in $GUESTS; do
	n=$((n + 1))
	sim_guest_cfg "$TB_DIR/xen/$g.cfg" "$g" 32 1 pv "$TB_NET_PREFIX.10$n" "dirty_mibps=4,seed=$n"
	IP[n]=$TB_NET_PREFIX.10$n
	sim_x 1 create "$TB_DIR/xen/$g.cfg" >/dev/null || tb_fail "create $g on h1"
	say "$g on h1 at ${IP[$n]}"
done

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
		# capped, as on a link the guests share: uncapped, the migration streams of this
		# 2-core machine stall every guest of h1 for ~100 ms in about 1 drill in 5 (0: no cap)
		echo "migration_bandwidth_mibps = ${DEMO_MIGRATION_BANDWIDTH:-200}"
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

echo "== the drill: h1 emptied twice while a client probes every guest (100/s) and sends it HTTP requests"
say "1. migrate: haagent marks h1 failing and live-migrates its guests to h2 and h3"
say "2. stopstart: the classic way of Heartbeat's init.d scripts: each guest is stopped"
say "   on h1 and cold-booted elsewhere (haagent ctl mark-failing h1 --cold)"
say "between and after the two, the guests go back to h1 by live migration"
OUT=$build/drill
rm -rf "$OUT"
args=()
for n in 1 2 3 4; do args+=(--guest "vm$n=${IP[$n]}"); done
for i in 2 1 3; do args+=(--socket "$TB_DIR/h$i/ctl/haagent.sock"); done
REPEAT=${DRILL_REPEAT:-1}
for ((k = 1; k <= REPEAT; k++)); do
	out=$OUT
	((REPEAT > 1)) && out=$OUT/run$k && say "drill $k of $REPEAT"
	# the client's namespace: the drill reaches the guests over the bridge, the agents by socket
	tb_exec c "$HAAGENT" drill --node h1 --mode "${DRILL_MODE:-both}" --before 3 --after 3 \
		--out "$out" --check "${args[@]}" >"$TB_DIR/drill.out" 2>&3
	rc=$?
	if ((REPEAT == 1)); then
		sed 's/^/   /' "$TB_DIR/drill.out"
	else
		cat "$TB_DIR/drill.out" >&2
	fi
	((rc == 0)) || tb_fail "the drill failed (exit $rc)"
done
((REPEAT > 1)) && python3 "$here/../tests/bench/drill-summary.py" "$OUT"/run* | sed 's/^/   /'
for g in $GUESTS; do
	c=0
	for i in 1 2 3; do sim_domains "$i" | grep -q "^$g r" && c=$((c + 1)); done
	[ "$c" = 1 ] || tb_fail "$g runs on $c hosts"
done
[ ! -e "$TB_DIR/fenced" ] || tb_fail "a node was fenced: $(cat "$TB_DIR/fenced")"
say "every guest runs on exactly one host; no node was fenced"
if ((REPEAT == 1)); then
	say "the plot: $OUT/drill.png (and drill.svg); the report: $OUT/report.txt, report.json"
else
	say "each run's report and plot: $OUT/run1 .. $OUT/run$REPEAT"
fi
echo "== done; tearing the cluster down (the testbed's log: $LOG)"
tb_cleanup
exit 0
