#!/bin/bash
# migrate-bench.sh - the live-migration benchmark on two namespaced hosts (sim backend).
#
# Run by hand (make bench, as root); not a timed test. Every figure is measured in this run:
#   1. goodput of migration / goodput of a raw TCP stream over the same path (the same
#      "--tcp" socket set-up), unthrottled, on a link shaped to 1 Gbit/s, and with
#      --bandwidth 1Gbit on the unshaped path;
#   2. 1 GiB guest (all in use), 32 MiB/s uniform dirtying, 1 Gbit/s link: downtime p50/p95
#      over RUNS runs, total time and bytes vs memory, the project's policy and Xen's side by side;
#   3. 512 MiB guest with a 128 MiB hot set dirtied at 400 MiB/s, 1 Gbit/s link: each
#      --on-stall mode: bytes sent / memory, downtime, completion.
# Environment: RUNS (default 10), BENCH_MIB (default 1024) and BENCH_PARTS (default "1 2 3").
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib/testbed.sh"
. "$here/../integration/lib/simhost.sh"
: "${TCPBLAST:?TCPBLAST must name the tcpblast binary}"
RUNS=${RUNS:-10}
MIB=${BENCH_MIB:-1024}
PARTS=${BENCH_PARTS:-1 2 3}
LINK=1gbit
LINK_BPS=1000000000
PORT=8002

tb_init
tb_hosts 2
sim_setup
declare -a SIM_HOST_MIB=()
SIM_HOST_MIB[1]=$((3 * MIB))
SIM_HOST_MIB[2]=$((3 * MIB))
KEY=$TB_DIR/key
head -c 32 /dev/urandom >"$KEY"
chmod 600 "$KEY"

say() { printf '%s\n' "$*" | tee -a "$TB_DIR/summary"; }
# CPU time stolen by the hypervisor under this machine (virtual machines): "steal total" ticks
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }
read -r steal0 total0 < <(cpu_ticks)

# raw_tcp from to mib [mbit]: Mbit/s of one raw stream host from -> host to (paced at mbit)
raw_tcp() {
	local from=$1 to=$2 mib=$3 pace=${4:-} out
	: >"$TB_DIR/sink.err"
	tb_exec "$to" "$TCPBLAST" sink "$(tb_ip "$to"):$PORT" >"$TB_DIR/sink.out" 2>"$TB_DIR/sink.err" &
	local sp=$!
	tb_wait_until 5 grep -q listening "$TB_DIR/sink.err" || tb_fail "tcpblast sink did not start"
	tb_exec "$from" "$TCPBLAST" send "$(tb_ip "$to"):$PORT" "$mib" $pace || tb_fail "tcpblast send failed"
	wait "$sp"
	out=$(cat "$TB_DIR/sink.out")
	sed -n 's/.*mbps=\([0-9.]*\).*/\1/p' <<<"$out"
}

# migrate_tcp from to name [migrate options]: migrate over --tcp; the JSON report in $TB_DIR/m.json
migrate_tcp() {
	local from=$1 to=$2 name=$3 rp
	shift 3
	: >"$TB_DIR/recv.err"
	(sim_exec "$to" -v migrate-receive --listen "$(tb_ip "$to"):$PORT" --key "$KEY" \
		--accept-timeout 120 >/dev/null 2>"$TB_DIR/recv.err") &
	rp=$!
	tb_wait_until 5 grep -q listening "$TB_DIR/recv.err" || tb_fail "receiver did not start"
	sim_x "$from" migrate --json --no-progress --tcp "$(tb_ip "$to"):$PORT" --key "$KEY" "$@" \
		"$name" >"$TB_DIR/m.json" 2>"$TB_DIR/m.err"
	local rc=$?
	wait "$rp"
	return $rc
}

j() { sim_json "$TB_DIR/m.json" "$1"; }
# payload goodput of round 0 in Mbit/s: pages x 4 KiB / duration
round0_mbps() {
	tr -d ' \n' <"$TB_DIR/m.json" | sed -n 's/.*"rounds":\[{"round":0,"pages":\([0-9]*\),"zero_pages":[0-9]*,"bytes":\([0-9]*\),"duration_ms":\([0-9.e+-]*\),.*/\1 \2 \3/p' |
		awk '{ printf "%.1f", $1 * 4096 * 8 / ($3 * 1000) }'
}

median_of() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "nan" }'; }
pct_of() { # pct_of P: the P-th percentile (nearest rank) of the numbers on stdin
	sort -n | awk -v p="$1" '{ a[NR] = $1 } END { if (!NR) { print "nan"; exit } r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print a[r] }'
}

guest() { # guest name mib workload
	sim_guest_cfg "$TB_DIR/$1.cfg" "$1" "$2" 2 pv "" "$3"
	sim_x 1 create "$TB_DIR/$1.cfg" >/dev/null || tb_fail "create $1"
}

say "== xl-ext migration benchmark: sim backend, 2 namespaced hosts, $(nproc) CPUs, $(date -u +%FT%TZ)"

# ---------------------------------------------------------------- 1. goodput vs raw TCP
if [[ " $PARTS " == *" 1 "* ]]; then
	guest gp "$MIB" "dirty_mibps=0,fill_mib=$MIB,seed=1"
	from=1
	for shaped in no yes; do
		if [ $shaped = yes ]; then
			tb_link_rate 1 $LINK
			tb_link_rate 2 $LINK
		fi
		raw=()
		mig=()
		for r in 1 2 3; do
			raw+=("$(raw_tcp 1 2 "$MIB")")
			migrate_tcp $from $((3 - from)) gp || { cat "$TB_DIR/m.err" "$TB_DIR/recv.err" 2>/dev/null; tb_fail "goodput migration"; }
			mig+=("$(round0_mbps)")
			from=$((3 - from))
		done
		raw_m=$(printf '%s\n' "${raw[@]}" | median_of)
		mig_m=$(printf '%s\n' "${mig[@]}" | median_of)
		label=$([ $shaped = yes ] && echo "link shaped to 1 Gbit/s" || echo "unshaped veth")
		say "goodput, $label: raw TCP ${raw_m} Mbit/s (runs: ${raw[*]}), migration round 0 ${mig_m} Mbit/s (runs: ${mig[*]}), ratio $(awk -v a="$mig_m" -v b="$raw_m" 'BEGIN { printf "%.3f", a / b }')"
	done
	tb_link_rate 1 off
	tb_link_rate 2 off
	# --bandwidth 1Gbit on the unshaped path, against a raw stream the kernel paces at 1 Gbit/s
	raw=()
	mig=()
	for r in 1 2 3; do
		raw+=("$(raw_tcp 1 2 "$MIB" 1000)")
		migrate_tcp $from $((3 - from)) gp --bandwidth 1Gbit || tb_fail "goodput migration --bandwidth"
		mig+=("$(round0_mbps)")
		from=$((3 - from))
	done
	raw_m=$(printf '%s\n' "${raw[@]}" | median_of)
	mig_m=$(printf '%s\n' "${mig[@]}" | median_of)
	say "goodput, --bandwidth 1Gbit on the unshaped path: raw TCP paced at 1 Gbit/s ${raw_m} Mbit/s (runs: ${raw[*]}), migration round 0 ${mig_m} Mbit/s (runs: ${mig[*]}), ratio $(awk -v a="$mig_m" -v b="$raw_m" 'BEGIN { printf "%.3f", a / b }'), to the nominal 1000 Mbit/s $(awk -v a="$mig_m" 'BEGIN { printf "%.3f", a / 1000 }')"
	sim_x "$from" destroy gp
fi

# ---------------------------------------------------------------- 2. convergent guest, two policies
if [[ " $PARTS " == *" 2 "* ]]; then
	tb_link_rate 1 $LINK
	tb_link_rate 2 $LINK
	guest cv "$MIB" "dirty_mibps=32,pattern=uniform,fill_mib=$MIB,seed=2"
	ideal_s=$(awk -v m="$MIB" -v b="$LINK_BPS" 'BEGIN { printf "%.3f", m * 1048576 * 8 / b }')
	from=1
	for policy in adaptive xen; do
		: >"$TB_DIR/runs.$policy"
		for ((r = 1; r <= RUNS; r++)); do
			migrate_tcp $from $((3 - from)) cv --policy $policy ||
				{ cat "$TB_DIR/m.err"; tb_fail "convergent migration ($policy, run $r)"; }
			echo "$(j downtime_ms) $(j total_time_ms) $(j bytes_per_memory) $(grep -c '"round":' "$TB_DIR/m.json")" >>"$TB_DIR/runs.$policy"
			from=$((3 - from))
		done
	done
	say "convergent: ${MIB} MiB guest, 32 MiB/s uniform, link 1 Gbit/s (memory/bandwidth = ${ideal_s} s), $RUNS runs each"
	say "$(printf '  %-9s %12s %12s %14s %14s %12s %8s' policy downtime_p50 downtime_p95 total_p50_s total/ideal bytes/mem rounds)"
	for policy in adaptive xen; do
		f=$TB_DIR/runs.$policy
		d50=$(awk '{ print $1 }' "$f" | pct_of 50)
		d95=$(awk '{ print $1 }' "$f" | pct_of 95)
		t50=$(awk '{ print $2 / 1000 }' "$f" | pct_of 50)
		b50=$(awk '{ print $3 }' "$f" | pct_of 50)
		r50=$(awk '{ print $4 }' "$f" | pct_of 50)
		say "$(printf '  %-9s %10.1fms %10.1fms %14.3f %14.3f %12.3f %8s' $policy "$d50" "$d95" "$t50" "$(awk -v t="$t50" -v i="$ideal_s" 'BEGIN { print t / i }')" "$b50" "$r50")"
		say "    downtimes (ms): $(awk '{ printf "%.1f ", $1 }' "$f")"
	done
	sim_x "$from" destroy cv
fi

# ---------------------------------------------------------------- 3. non-convergent guest, each --on-stall
if [[ " $PARTS " == *" 3 "* ]]; then
	tb_link_rate 1 $LINK
	tb_link_rate 2 $LINK
	half=$((MIB / 2))
	guest nc "$half" "dirty_mibps=400,pattern=hotset,hot_mib=$((half / 4)),fill_mib=$half,seed=3"
	from=1
	say "non-convergent: ${half} MiB guest, $((half / 4)) MiB hot set at 400 MiB/s, link 1 Gbit/s"
	for mode in abort force throttle; do
		if migrate_tcp $from $((3 - from)) nc --on-stall $mode; then
			done_s=completed
			from=$((3 - from))
		else
			done_s="not migrated ($(sed -n 's/.*"error": *"\(.*\)".*/\1/p' "$TB_DIR/m.json" | head -1)); guest kept running on the source"
		fi
		say "$(printf '  --on-stall %-8s bytes/memory %.3f  downtime %s ms  rounds %s  max throttle %s%%  %s' $mode "$(j bytes_per_memory)" "$(j downtime_ms)" "$(grep -c '"round":' "$TB_DIR/m.json")" "$(j max_throttle_pct)" "$done_s")"
	done
	sim_x "$from" destroy nc
fi
tb_link_rate 1 off
tb_link_rate 2 off
read -r steal1 total1 < <(cpu_ticks)
say "== CPU steal during the run: $(awk -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.1f%%", t ? 100 * s / t : 0 }') of this machine's CPU time went to other guests of its host"
say "== summary also in the log above; targets: goodput >= 0.95 x raw TCP at 1 Gbit/s; convergent downtime p95 <= 20 ms and total <= 1.45 x memory/bandwidth; non-convergent <= 3 x memory, downtime <= 300 ms with throttle"
