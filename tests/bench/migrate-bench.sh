#!/bin/bash
# migrate-bench.sh - the live-migration benchmark on two namespaced hosts (sim backend).
#
# Run by hand (make bench, as root); not a timed test. Every figure is measured in this run:
#   1. goodput of migration / goodput of a raw TCP stream over the same path (the same
#      "--tcp" socket set-up), unthrottled (for each --streams value of STREAMS), on a link
#      shaped to 1 Gbit/s, and with --bandwidth 1Gbit on the unshaped path;
#   2. 1 GiB guest (all in use), 32 MiB/s uniform dirtying, 1 Gbit/s link: downtime p50/p95
#      over RUNS runs, total time and bytes vs memory, the project's policy and Xen's side by side;
#   3. 512 MiB guest with a 128 MiB hot set dirtied at 400 MiB/s, 1 Gbit/s link: each
#      --on-stall mode: bytes sent / memory, downtime, completion;
#   4. the sim's memory and what a client sees: a fresh 1 GiB guest with half its memory in
#      use, random pages of that half dirtied at 32 MiB/s, probed every 10 ms (and every
#      FINE_MS, default 1 ms, for the switch-over gap) from a client namespace, migrated back and forth MEM_RUNS times with --bandwidth 1Gbit and then
#      unshaped: per migration the round-0 and round-1 payload rates, total time, reported
#      downtime beside the client's switch-over gap and its longest other gap, and the source
#      guest's allocated RAM (its memfd's st_blocks) before, at most during, and after.
#   5. each --compress mode on the workload of 4 (QEMU's benchmark's), link shaped to 1 Gbit/s:
#      total time, bytes, downtime, pages sent as deltas, CPU seconds per GiB moved at each end;
#   6. the peer: the same workload in QEMU (TCG), a bare guest (qemu-peer/dirtier.c) migrated
#      over the same link with max-bandwidth 1 Gbit/s, plain and with XBZRLE;
#   7. the prediction model: migrate --estimate's prediction against the migration that follows,
#      for each cell of MODEL_GRID (guest MiB:workload:link) and each --mode of MODEL_MODES, and
#      the error distribution per mode and over all;
#   8. post-copy and hybrid against pre-copy with throttling on the guest of 3 (a 128 MiB hot
#      set at 400 MiB/s, 1 Gbit/s): total time, bytes / memory, downtime, throttle, the guest's
#      own write rate during the migration against its rate just before (what throttling
#      takes from it), fault wait p50/p99, pages pulled and pushed; p50 of PC_RUNS (default 3).
# Part 2 also runs the adaptive policy with --compress auto. Every migration's CPU time (user +
# system, both ends) is taken with GNU time.
# Environment: RUNS (default 10), BENCH_MIB (default 1024), BENCH_PARTS (default "1 2 3 4 5 6"),
# MEM_RUNS (default 4), STREAMS (default "1 2 4": part 1's unshaped --streams values), IDLE_S (default 10: part 4's idle probe before the migrations),
# COMPRESS_RUNS (default 3: part 5's migrations per mode), QEMU_RUNS (default 3: part 6's).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib/testbed.sh"
. "$here/../integration/lib/simhost.sh"
: "${TCPBLAST:?TCPBLAST must name the tcpblast binary}"
: "${PROBE:?PROBE must name the probe client (tests/integration/probe)}"
RUNS=${RUNS:-10}
MIB=${BENCH_MIB:-1024}
PARTS=${BENCH_PARTS:-1 2 3 4 5 6 7 8}
PC_RUNS=${PC_RUNS:-3}
MEM_RUNS=${MEM_RUNS:-4}
STREAMS=${STREAMS:-1 2 4}
# part 7's cells: MiB:workload:link
MODEL_GRID=${MODEL_GRID:-256:dirty_mibps=0:1gbit 256:dirty_mibps=16,pattern=hotset,hot_mib=64:200mbit 512:dirty_mibps=32,pattern=uniform:1gbit 1024:dirty_mibps=32,pattern=uniform:1gbit 512:dirty_mibps=64,pattern=hotset,hot_mib=128:1gbit 256:dirty_mibps=8,pattern=uniform:100mbit 512:dirty_mibps=400,pattern=hotset,hot_mib=64:1gbit 2048:dirty_mibps=16,pattern=hotset,hot_mib=256:1gbit 512:dirty_mibps=32,pattern=hotset,hot_mib=128:off}
MODEL_MODES=${MODEL_MODES:-precopy postcopy hybrid}
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
# target what value op limit: whether one of the benchmark's targets was met (op <= or >=),
# for the verdict table at the end; a figure not measured (empty) is said so
: >"$TB_DIR/targets"
target() {
	local verdict
	verdict=$(awk -v v="$2" -v op="$3" -v l="$4" 'BEGIN {
		if (v == "") { print "not measured"; exit }
		ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0)
		print ok ? "met" : "MISSED" }')
	printf '  %-62s %10s %2s %-6s %s\n' "$1" "${2:-?}" "$3" "$4" "$verdict" >>"$TB_DIR/targets"
}
# CPU time stolen by the hypervisor under this machine (virtual machines): "steal total" ticks
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }
read -r steal0 total0 < <(cpu_ticks)

# raw_tcp from to mib [mbit [memfd]]: Mbit/s of one raw stream host from -> host to (paced at
# mbit; with memfd the sink also writes what it reads into a new memory file, as a migration's
# destination writes guest memory)
raw_tcp() {
	local from=$1 to=$2 mib=$3 pace=${4:-} sinkopt=${5:-} out
	: >"$TB_DIR/sink.err"
	# shellcheck disable=SC2086 # sinkopt: nothing or "memfd"
	tb_exec "$to" "$TCPBLAST" sink "$(tb_ip "$to"):$PORT" $sinkopt >"$TB_DIR/sink.out" 2>"$TB_DIR/sink.err" &
	local sp=$!
	tb_wait_until 5 grep -q listening "$TB_DIR/sink.err" || tb_fail "tcpblast sink did not start"
	tb_exec "$from" "$TCPBLAST" send "$(tb_ip "$to"):$PORT" "$mib" $pace || tb_fail "tcpblast send failed"
	wait "$sp"
	out=$(cat "$TB_DIR/sink.out")
	sed -n 's/.*mbps=\([0-9.]*\).*/\1/p' <<<"$out"
}

# Every xl-ext run here goes through GNU time: the CPU seconds (user + system) of each end of a
# migration land in the file XLEXT_TIME_FILE names
REAL_XLEXT=$XLEXT
XLEXT=$TB_DIR/xl-ext-timed
printf '#!/bin/sh\nexec /usr/bin/time -q -f "%%U %%S" -o "${XLEXT_TIME_FILE:-/dev/null}" %s "$@"\n' \
	"$REAL_XLEXT" >"$XLEXT"
chmod +x "$XLEXT"
cpu_s() { awk '{ print $1 + $2 }' "$1" 2>/dev/null; }

# migrate_tcp from to name [migrate options]: migrate over --tcp; the JSON report in $TB_DIR/m.json,
# the CPU seconds of the sender and the receiver in $TB_DIR/send.time and recv.time
migrate_tcp() {
	local from=$1 to=$2 name=$3 rp
	shift 3
	: >"$TB_DIR/recv.err"
	(XLEXT_TIME_FILE=$TB_DIR/recv.time sim_exec "$to" -v migrate-receive \
		--listen "$(tb_ip "$to"):$PORT" --key "$KEY" --accept-timeout 120 >/dev/null \
		2>"$TB_DIR/recv.err") &
	rp=$!
	tb_wait_until 5 grep -q listening "$TB_DIR/recv.err" || tb_fail "receiver did not start"
	XLEXT_TIME_FILE=$TB_DIR/send.time sim_x "$from" migrate --json --no-progress \
		--tcp "$(tb_ip "$to"):$PORT" --key "$KEY" "$@" "$name" >"$TB_DIR/m.json" 2>"$TB_DIR/m.err"
	local rc=$?
	wait "$rp"
	return $rc
}
# cpu_per_gib: "sender receiver" CPU seconds per GiB of guest pages the last migration moved
cpu_per_gib() {
	awk -v s="$(cpu_s "$TB_DIR/send.time")" -v r="$(cpu_s "$TB_DIR/recv.time")" \
		-v p="$(j pages_total)" 'BEGIN { g = p * 4096 / 1073741824; if (g <= 0) g = 1
			printf "%.2f %.2f", s / g, r / g }'
}

j() { sim_json "$TB_DIR/m.json" "$1"; }
# phases: the downtime's phases of the last migration, "suspend/final_copy/target_ready/..." (ms)
phases() {
	local p out=""
	for p in suspend final_copy target_ready rename_and_go target_start; do
		out+="${out:+/}$(j $p)"
	done
	echo "$out"
}
# payload goodput of round 0 in Mbit/s: pages x 4 KiB / duration
round0_mbps() {
	tr -d ' \n' <"$TB_DIR/m.json" | sed -n 's/.*"rounds":\[{"round":0,"pages":\([0-9]*\),"zero_pages":[0-9]*,"bytes":\([0-9]*\),"duration_ms":\([0-9.e+-]*\),.*/\1 \2 \3/p' |
		awk '{ printf "%.1f", $1 * 4096 * 8 / ($3 * 1000) }'
}

median_of() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "nan" }'; }
pct_of() { # pct_of P: the P-th percentile (nearest rank) of the numbers on stdin
	sort -n | awk -v p="$1" '{ a[NR] = $1 } END { if (!NR) { print "nan"; exit } r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print a[r] }'
}

guest() { # guest name mib workload [ip]
	sim_guest_cfg "$TB_DIR/$1.cfg" "$1" "$2" 2 pv "${4:-}" "$3"
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
		# unshaped: each --streams value of STREAMS, the runs interleaved with the raw stream's
		streams=$([ $shaped = yes ] && echo 1 || echo "$STREAMS")
		raw=()
		rawmem=()
		declare -A mig=()
		for r in 1 2 3; do
			raw+=("$(raw_tcp 1 2 "$MIB")")
			for n in $streams; do
				migrate_tcp $from $((3 - from)) gp --streams "$n" || { cat "$TB_DIR/m.err" "$TB_DIR/recv.err" 2>/dev/null; tb_fail "goodput migration --streams $n"; }
				mig[$n]+="$(round0_mbps) "
				from=$((3 - from))
			done
			# after a migration, as a migration comes after one: the memory the last one's
			# source gave back is what the next destination fills first
			[ $shaped = yes ] || rawmem+=("$(raw_tcp 1 2 "$MIB" "" memfd)")
		done
		raw_m=$(printf '%s\n' "${raw[@]}" | median_of)
		label=$([ $shaped = yes ] && echo "link shaped to 1 Gbit/s" || echo "unshaped veth")
		best=0
		for n in $streams; do
			mig_m=$(printf '%s\n' ${mig[$n]} | median_of)
			ratio=$(awk -v a="$mig_m" -v b="$raw_m" 'BEGIN { printf "%.3f", a / b }')
			say "goodput, $label, --streams $n: raw TCP ${raw_m} Mbit/s (runs: ${raw[*]}), migration round 0 ${mig_m} Mbit/s (runs: ${mig[$n]% }), ratio $ratio"
			if [ $shaped = no ]; then
				rawmem_m=$(printf '%s\n' "${rawmem[@]}" | median_of)
				say "  against raw TCP whose sink writes into a new memory file (the destination's own cost): ${rawmem_m} Mbit/s (runs: ${rawmem[*]}), ratio $(awk -v a="$mig_m" -v b="$rawmem_m" 'BEGIN { printf "%.3f", a / b }')"
			fi
			best=$(awk -v a="$ratio" -v b="$best" 'BEGIN { print (a > b) ? a : b }')
		done
		unset mig
		if [ $shaped = yes ]; then
			target "goodput / raw TCP, link shaped to 1 Gbit/s (median of 3)" "$ratio" ">=" 0.95
		else
			target "goodput / raw TCP, unshaped (median of 3, best --streams)" "$best" ">=" 0.7
		fi
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
	# adaptive+auto: the adaptive policy with --compress auto and a page cache the size of memory
	for policy in adaptive xen adaptive+auto; do
		: >"$TB_DIR/runs.$policy"
		opts=(--policy "${policy%+auto}")
		[ "$policy" = adaptive+auto ] && opts+=(--compress auto --compress-cache "${MIB}MiB")
		for ((r = 1; r <= RUNS; r++)); do
			migrate_tcp $from $((3 - from)) cv "${opts[@]}" ||
				{ cat "$TB_DIR/m.err"; tb_fail "convergent migration ($policy, run $r)"; }
			echo "$(j downtime_ms) $(j total_time_ms) $(j bytes_per_memory) $(grep -c '"round":' "$TB_DIR/m.json") $(cpu_per_gib) $(phases)" >>"$TB_DIR/runs.$policy"
			from=$((3 - from))
		done
	done
	say "convergent: ${MIB} MiB guest, 32 MiB/s uniform, link 1 Gbit/s (memory/bandwidth = ${ideal_s} s), $RUNS runs each"
	say "  (adaptive+auto: --compress auto --compress-cache ${MIB}MiB; cpu: CPU seconds per GiB of pages moved, sender / receiver, p50)"
	say "$(printf '  %-13s %12s %12s %14s %14s %12s %8s %13s' policy downtime_p50 downtime_p95 total_p50_s total/ideal bytes/mem rounds cpu_s/GiB)"
	for policy in adaptive xen adaptive+auto; do
		f=$TB_DIR/runs.$policy
		d50=$(awk '{ print $1 }' "$f" | pct_of 50)
		d95=$(awk '{ print $1 }' "$f" | pct_of 95)
		t50=$(awk '{ print $2 / 1000 }' "$f" | pct_of 50)
		b50=$(awk '{ print $3 }' "$f" | pct_of 50)
		r50=$(awk '{ print $4 }' "$f" | pct_of 50)
		tr=$(awk -v t="$t50" -v i="$ideal_s" 'BEGIN { printf "%.3f", t / i }')
		cs=$(awk '{ print $5 }' "$f" | pct_of 50)
		cr=$(awk '{ print $6 }' "$f" | pct_of 50)
		say "$(printf '  %-13s %10.1fms %10.1fms %14.3f %14.3f %12.3f %8s %6s/%-6s' $policy "$d50" "$d95" "$t50" "$tr" "$b50" "$r50" "$cs" "$cr")"
		if [ $policy = adaptive ]; then
			target "convergent, adaptive policy: downtime p95 (ms)" "$d95" "<=" 20
			target "convergent, adaptive policy: total p50 / (memory / bandwidth)" "$tr" "<=" 1.45
		fi
		if [ $policy = adaptive+auto ]; then
			target "convergent, --compress auto: downtime p95 (ms)" "$d95" "<=" 10
			target "convergent, --compress auto: total p50 / (memory / bandwidth)" "$tr" "<=" 1.2
			target "convergent, --compress auto: bytes / memory, p50" "$b50" "<=" 1.1
		fi
		say "    downtimes (ms): $(awk '{ printf "%.1f ", $1 }' "$f")"
		say "    phases of the downtimes over 10 ms: $(awk '$1 > 10 { printf "%.1f (%s) ", $1, $7 }' "$f")"
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
	# throttle+auto: --on-stall throttle with --compress auto (a hot page sent again is a delta)
	for mode in abort force throttle throttle+auto; do
		opts=(--on-stall "${mode%+auto}")
		[ $mode = throttle+auto ] && opts+=(--compress auto --compress-cache "${half}MiB")
		if migrate_tcp $from $((3 - from)) nc "${opts[@]}"; then
			done_s=completed
			from=$((3 - from))
		else
			done_s="not migrated ($(sed -n 's/.*"error": *"\(.*\)".*/\1/p' "$TB_DIR/m.json" | head -1)); guest kept running on the source"
		fi
		say "$(printf '  --on-stall %-13s bytes/memory %.3f  downtime %s ms  rounds %s  max throttle %s%%  %s' $mode "$(j bytes_per_memory)" "$(j downtime_ms)" "$(grep -c '"round":' "$TB_DIR/m.json")" "$(j max_throttle_pct)" "$done_s")"
		if [ $mode = throttle ]; then
			target "non-convergent, --on-stall throttle: bytes / memory" "$(j bytes_per_memory)" "<=" 3
			target "non-convergent, --on-stall throttle: downtime (ms)" "$(j downtime_ms)" "<=" 300
		fi
		if [ $mode = throttle+auto ]; then
			target "non-convergent, --compress auto: bytes / memory" "$(j bytes_per_memory)" "<=" 1.5
			target "non-convergent, --compress auto: max throttle (%)" "$(j max_throttle_pct)" "<=" 50
		fi
	done
	sim_x "$from" destroy nc
	tb_link_rate 1 off
	tb_link_rate 2 off
fi
# ---------------------------------------------------------------- 4. the sim's memory, the client's view
# rounds_payload: "round0_ms round0_mbps round1_mbps" (payload: pages x 4 KiB / duration)
rounds_payload() {
	tr -d ' \n' <"$TB_DIR/m.json" | sed 's/},{/}\n{/g' |
		sed -n 's/.*"round":\([01]\),"pages":\([0-9]*\),.*"duration_ms":\([0-9.e+-]*\),.*/\1 \2 \3/p' |
		awk '{ ms[$1] = $3; r[$1] = $3 > 0 ? $2 * 4096 * 8 / ($3 * 1000) : 0 }
			END { printf "%.0f %.0f %.0f", ms[0], r[0], r[1] }'
}
# dom_pid i name: the pid of domain name's process on host i
dom_pid() {
	grep -l "\"name\":\"$2\"" "$TB_DIR"/sim"$1"/dom/*/info.json 2>/dev/null | head -1 |
		xargs -r sed -n 's/.*"pid":\([0-9]*\).*/\1/p'
}
# ram_fd pid: /proc/pid/fd/N of the guest RAM memfd of a domain process
ram_fd() {
	local l
	l=$(ls -l "/proc/$1/fd" 2>/dev/null | grep -m1 'memfd:xl-ext-sim-ram') || return 1
	l=${l%% ->*}
	echo "/proc/$1/fd/${l##* }"
}
# ram_kib pid: KiB allocated to the guest RAM memfd of a domain process (st_blocks / 2)
ram_kib() {
	local f
	f=$(ram_fd "$1") || return 1
	stat -L -c %b "$f" 2>/dev/null | awk '{ print int($1 / 2) }'
}
# ram_sampler pid file: every 50 ms, "max last" KiB of the domain's RAM into file, until it exits
ram_sampler() {
	local f b k max=0
	f=$(ram_fd "$1") || return 0
	while b=$(stat -L -c %b "$f" 2>/dev/null) && [ -n "$b" ]; do
		k=$((b / 2))
		((k > max)) && max=$k
		echo "$max $k" >"$2.tmp" && mv "$2.tmp" "$2"
		sleep 0.05
	done
}
# gap_report gaps stalls: annotate the client's logged gaps (>= 20 ms) with the CPU stalls of
# this machine they overlap (stallwatch), print them indented, and leave on the last line
# "longest other gap not explained by a stall" (ms, or <20 when none was logged)
gap_report() {
	awk -v t="${3:-0}" -v what="${4:-the migrate command}" '
	BEGIN { n = 0 }
	FNR == NR { if ($1 == "stall") { sb[n] = $7 - $3 / 1000; se[n] = $7; sd[n] = $3 " ms on " $2; n++ } next }
	/probe: gap/ {
		g = $3; for (i = 1; i <= NF; i++) if ($i == "at") { e = $(i + 1); sub(",", "", e); e += 0 }
		why = ""; for (k = 0; k < n; k++) if (sb[k] < e && se[k] > e - g / 1000) why = why " " sd[k]
		sw = index($0, "switch-over") > 0
		printf "      %s, %.3f s after %s%s\n", $0, e - t, what, why == "" ? "" : "; this machine stalled:" why
		if (!sw && why == "" && g > m) m = g
	}
	END { print (m ? m : "<20") }' "$2" "$1"
}
# watched_probe_start / watched_probe_stop ip host: the client probe and stallwatch together
# A second client probes every FINE_MS (default 1) ms for the switch-over gap alone: replies to
# 10 ms probes come in 10 ms steps (the gaps it logs are 10.0, 20.0, 30.0 ms), so its switch-over
# gap exceeds an exact downtime by 0 to 20 ms from probing alone; at 1 ms, by 0 to 2 ms.
FINE_MS=${FINE_MS:-1}
watched_probe_start() {
	"$STALLWATCH" 3600000 10 >"$TB_DIR/stalls" 2>/dev/null &
	SW_PID=$!
	(exec ip netns exec "$(tb_ns c)" "$PROBE" "$1" 600000 "$FINE_MS" >"$TB_DIR/fine.out" 2>"$TB_DIR/fine.err") &
	FINE_PID=$!
	sim_probe_start "$TB_DIR/probe.out" "$1" 20
	tb_wait_until 20 grep -q 'first reply' "$TB_DIR/fine.err" ||
		tb_fail "the ${FINE_MS} ms probe got no reply from $1: $(cat "$TB_DIR/fine.err")"
}
watched_probe_stop() {
	sim_probe_stop "$@"
	kill -TERM "$SW_PID" "$FINE_PID" 2>/dev/null
	wait "$SW_PID" "$FINE_PID"
}
if [[ " $PARTS " == *" 4 "* ]]; then
	: "${STALLWATCH:?STALLWATCH must name tests/bench/stallwatch}"
	tb_client_ns
	gip=$TB_NET_PREFIX.101
	half=$((MIB / 2))
	say "memory and client view: ${MIB} MiB guest, ${half} MiB in use, random pages of it dirtied at 32 MiB/s, probed every 10 ms and every ${FINE_MS} ms; $MEM_RUNS migrations per cap, the first of a fresh guest"
	say "  (other_gap: the client's longest gap outside the switch-over; other_sim: the longest of those not overlapping a stall of this machine's CPUs, which stallwatch sees without any migration too)"
	for cap in 1Gbit none; do
		name=mm$cap
		opts=()
		[ $cap = none ] || opts=(--bandwidth $cap)
		guest $name "$MIB" "dirty_mibps=32,pattern=hotset,hot_mib=$half,fill_mib=$half,seed=4" "$gip"
		tb_wait_until 10 eval "tb_exec c '$PROBE' $gip 300 | grep -q 'answered=[1-9]'" ||
			tb_fail "$name's probe service does not answer"
		if [ $cap = 1Gbit ]; then
			watched_probe_start "$gip"
			t_idle=${EPOCHREALTIME/,/.}
			sleep "${IDLE_S:-10}"
			watched_probe_stop
			say "  idle, ${IDLE_S:-10} s without migration: $(cut -d' ' -f1-5 "$TB_DIR/probe.out"); $(grep -c '^stall' "$TB_DIR/stalls") CPU stalls of 10 ms or more, longest $(awk '$1 == "stall" && $3 > m { m = $3 } END { print m + 0 }' "$TB_DIR/stalls") ms"
			gap_report "$TB_DIR/probe.out.err" "$TB_DIR/stalls" "$t_idle" "the start" | sed '$d' |
				tee -a "$TB_DIR/summary"
			say "$(printf '  %-8s %3s %8s %9s %9s %7s %9s %9s %9s %9s %9s %8s %8s %8s' cap run total_s r0_Mbps r1_Mbps r0/r1 downtime client_sw client_sw10 other_gap other_sim ram_bef ram_max ram_aft)"
			say "  (client_sw: the switch-over gap of the ${FINE_MS} ms probe; client_sw10: of the 10 ms probe; r0/r1 \"-\": no round 1, the guest moved after round 0)"
		fi
		: >"$TB_DIR/mem.$cap"
		from=1
		for ((r = 1; r <= MEM_RUNS; r++)); do
			pid=$(dom_pid $from $name)
			before=$(ram_kib "$pid")
			rm -f "$TB_DIR/ram"
			ram_sampler "$pid" "$TB_DIR/ram" &
			sp=$!
			watched_probe_start "$gip"
			t_mig=${EPOCHREALTIME/,/.}
			migrate_tcp $from $((3 - from)) $name "${opts[@]}" ||
				{ cat "$TB_DIR/m.err"; tb_fail "migration of $name ($cap, run $r)"; }
			watched_probe_stop "$gip" h$((3 - from))
			wait "$sp"
			read -r rmax rlast <"$TB_DIR/ram" 2>/dev/null || { rmax=0; rlast=0; }
			read -r r0ms r0 r1 < <(rounds_payload)
			sw10=$(sed -n 's/.*switch_gap_ms=\([0-9.]*\).*/\1/p' "$TB_DIR/probe.out")
			sw=$(sed -n 's/.*switch_gap_ms=\([0-9.]*\).*/\1/p' "$TB_DIR/fine.out")
			og=$(sed -n 's/.*max_other_gap_ms=\([0-9.]*\).*/\1/p' "$TB_DIR/probe.out")
			gap_report "$TB_DIR/probe.out.err" "$TB_DIR/stalls" "$t_mig" >"$TB_DIR/gaps"
			osim=$(tail -1 "$TB_DIR/gaps")
			dt=$(j downtime_ms)
			echo "$r $(j total_time_ms) $r0ms $r0 $r1 $dt $sw $og $before $rmax $rlast $osim $sw10" >>"$TB_DIR/mem.$cap"
			say "$(printf '  %-8s %3s %8.3f %9.0f %9.0f %7s %9.1f %9.1f %11.1f %9.1f %9s %8.0f %8.0f %8.0f' $cap $r \
				"$(j total_time_ms | awk '{ print $1 / 1000 }')" \
				"$r0" "$r1" "$(awk -v a="$r0" -v b="$r1" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')" \
				"$dt" "$sw" "$sw10" "$og" "$osim" \
				"$(awk -v k="$before" 'BEGIN { print k / 1024 }')" "$(awk -v k="$rmax" 'BEGIN { print k / 1024 }')" \
				"$(awk -v k="$rlast" 'BEGIN { print k / 1024 }')")"
			sed '$d' "$TB_DIR/gaps" | tee -a "$TB_DIR/summary"
			from=$((3 - from))
		done
		f=$TB_DIR/mem.$cap
		first_over_later() { # column: the first run's value over the median of the later ones
			awk -v c="$1" -v f="$(awk -v c="$1" 'NR == 1 { print $c }' "$f")" \
				-v m="$(awk -v c="$1" 'NR > 1 { print $c }' "$f" | median_of)" \
				'BEGIN { printf "%.2f", (m > 0 ? f / m : 0) }'
		}
		say "  $cap: destination RAM after the last migration $(awk -v k="$(ram_kib "$(dom_pid $from $name)")" 'BEGIN { printf "%.0f", k / 1024 }') MiB; first migration / median of the later ones: total $(first_over_later 2)x, round 0 $(first_over_later 3)x"
		# the rate ratio of the migrations that had a round 1 (none: not measured)
		r01=$(awk '$5 > 0 { print $4 / $5 }' "$f" | pct_of 50 | grep -v nan)
		swd95=$(awk '{ print $7 - $6 }' "$f" | pct_of 95)
		say "  $cap: round-0 / round-1 rate p50 ${r01:-(no migration had a round 1)}; client switch-over gap (${FINE_MS} ms probe) - reported downtime p50 $(awk '{ print $7 - $6 }' "$f" | pct_of 50) ms, p95 $swd95 ms (10 ms probe: p50 $(awk '{ print $13 - $6 }' "$f" | pct_of 50), p95 $(awk '{ print $13 - $6 }' "$f" | pct_of 95) ms); longest other gap p50 $(awk '{ print $8 }' "$f" | pct_of 50) ms, p95 $(awk '{ print $8 }' "$f" | pct_of 95) ms; not explained by a CPU stall: $(awk '{ printf "%s ", $12 }' "$f")ms"
		target "memory, cap $cap: first migration's total / the later ones'" "$(first_over_later 2)" "<=" 1.1
		[ $cap = none ] && target "memory, unshaped: round-0 rate / round-1 rate, p50" "$r01" ">=" 0.8
		target "memory, cap $cap: client switch-over gap - downtime, p95 (ms)" "$swd95" "<=" 10
		# other_sim is "<20" when no such gap reached the probe's 20 ms log threshold: 20 is
		# then its bound
		target "memory, cap $cap: longest other gap not from a CPU stall (ms)" \
			"$(awk '{ v = $12; sub(/^</, "", v); if (v + 0 > m) m = v + 0 } END { print m + 0 }' "$f")" "<=" 25
		sim_x "$from" destroy $name
	done
fi
tb_link_rate 1 off
tb_link_rate 2 off
# ---------------------------------------------------------------- 5. each --compress mode
# The QEMU-peer workload: 1 GiB guest, 512 MiB of it in use, random pages of those 512 MiB
# dirtied at 32 MiB/s, link shaped to 1 Gbit/s; COMPRESS_RUNS (default 3) migrations per mode.
if [[ " $PARTS " == *" 5 "* ]]; then
	tb_link_rate 1 $LINK
	tb_link_rate 2 $LINK
	half=$((MIB / 2))
	guest cm "$MIB" "dirty_mibps=32,pattern=hotset,hot_mib=$half,fill_mib=$half,seed=6"
	ideal_s=$(awk -v m="$half" -v b="$LINK_BPS" 'BEGIN { printf "%.3f", m * 1048576 * 8 / b }')
	say "--compress: ${MIB} MiB guest, ${half} MiB in use, random pages of it dirtied at 32 MiB/s, link 1 Gbit/s (memory in use / bandwidth = ${ideal_s} s); ${COMPRESS_RUNS:-3} runs per mode, p50 (downtime also p95); the page cache ${half}MiB (the pages in use)"
	say "$(printf '  %-11s %9s %9s %10s %12s %12s %9s %9s %13s' mode total_s total/ideal bytes/mem sent_MiB downtime_p50 dt_p95 delta_pgs cpu_s/GiB)"
	from=1
	for mode in none delta lz4 zstd delta+zstd auto; do
		f=$TB_DIR/cm.$mode
		: >"$f"
		for ((r = 1; r <= ${COMPRESS_RUNS:-3}; r++)); do
			migrate_tcp $from $((3 - from)) cm --compress $mode --compress-cache "${half}MiB" ||
				{ cat "$TB_DIR/m.err"; tb_fail "migration --compress $mode (run $r)"; }
			dp=$(j delta_pages)
			echo "$(j total_time_ms) $(j bytes_per_memory) $(j bytes_total) $(j downtime_ms) ${dp:-0} $(cpu_per_gib)" >>"$f"
			from=$((3 - from))
		done
		t50=$(awk '{ print $1 / 1000 }' "$f" | pct_of 50)
		say "$(printf '  %-11s %9.3f %9.3f %10.3f %12.1f %10.1fms %7.1fms %9.0f %6s/%-6s' $mode "$t50" \
			"$(awk -v t="$t50" -v i="$ideal_s" 'BEGIN { print t / i }')" \
			"$(awk '{ print $2 }' "$f" | pct_of 50)" "$(awk '{ print $3 / 1048576 }' "$f" | pct_of 50)" \
			"$(awk '{ print $4 }' "$f" | pct_of 50)" "$(awk '{ print $4 }' "$f" | pct_of 95)" \
			"$(awk '{ print $5 + 0 }' "$f" | pct_of 50)" "$(awk '{ print $6 }' "$f" | pct_of 50)" \
			"$(awk '{ print $7 }' "$f" | pct_of 50)")"
	done
	sim_x "$from" destroy cm
	tb_link_rate 1 off
	tb_link_rate 2 off
fi

# ---------------------------------------------------------------- 6. QEMU, the peer
# The same workload in QEMU 7.2 (TCG): a 1 GiB guest (tests/bench/qemu-peer/dirtier.c) that
# fills 512 MiB with pages that do not compress and writes 8 bytes of random pages of them at
# 32 MiB/s, migrated between the two namespaced hosts over the same 1 Gbit/s link with
# max-bandwidth 1 Gbit/s and downtime-limit 20 ms, QEMU_RUNS (default 3) times plain and with
# XBZRLE (cache 512 MiB).
if [[ " $PARTS " == *" 6 "* ]]; then
	: "${DIRTIER:?DIRTIER must name tests/bench/qemu-peer/dirtier.elf}"
	QMP="$here/qemu-peer/qmp.py"
	tb_link_rate 1 $LINK
	tb_link_rate 2 $LINK
	half=$((MIB / 2))
	# qemu_start i name [incoming]: QEMU on host i with the dirtier; monitor $TB_DIR/name.qmp
	qemu_start() {
		local i=$1 name=$2 incoming=()
		[ -z "${3:-}" ] || incoming=(-incoming "tcp:$(tb_ip "$i"):4444")
		rm -f "$TB_DIR/$name.qmp" "$TB_DIR/$name.serial"
		tb__start_daemon "qemu-$name" qemu-system-x86 "$TB_DIR/$name.log" \
			ip netns exec "$(tb_ns "$i")" qemu-system-x86_64 -accel tcg -m "$MIB" -nodefaults \
			-display none -no-reboot -serial "file:$TB_DIR/$name.serial" -kernel "$DIRTIER" \
			-append "touch_mib=$half dirty_mibps=32 seed=7" \
			-qmp "unix:$TB_DIR/$name.qmp,server=on,wait=off" "${incoming[@]}"
		echo "$TB__DAEMON_PID" >"$TB_DIR/$name.pid"
	}
	qemu_stop() { # qemu_stop name: quit it and wait for its process
		local pid
		pid=$(cat "$TB_DIR/$1.pid")
		"$QMP" "$TB_DIR/$1.qmp" quit >/dev/null 2>&1 || kill "$pid" 2>/dev/null
		tb_wait_until 10 eval "! tb__alive $pid" || kill -9 "$pid" 2>/dev/null
	}
	say "QEMU $(qemu-system-x86_64 --version | head -1 | awk '{ print $4 }') (TCG), the same workload: ${MIB} MiB guest, ${half} MiB in use, 8 bytes of random pages of it written at 32 MiB/s, link 1 Gbit/s, max-bandwidth 1 Gbit/s, downtime-limit 20 ms (xl-ext's --downtime-ms default; QEMU's is 300), its other defaults; ${QEMU_RUNS:-3} runs each"
	say "$(printf '  %-14s %9s %9s %10s %12s %10s %9s' qemu total_s total/ideal bytes/mem sent_MiB downtime_ms xbzrle_pgs)"
	ideal_s=$(awk -v m="$half" -v b="$LINK_BPS" 'BEGIN { printf "%.3f", m * 1048576 * 8 / b }')
	qemu_start 1 q1
	tb_wait_until 120 grep -qs "dirtier: touched" "$TB_DIR/q1.serial" ||
		tb_fail "the QEMU guest did not fill its memory: $(cat "$TB_DIR/q1.serial" "$TB_DIR/q1.log" 2>/dev/null)"
	src=q1 from=1 n=1
	for mode in plain xbzrle; do
		f=$TB_DIR/qemu.$mode
		: >"$f"
		for ((r = 1; r <= ${QEMU_RUNS:-3}; r++)); do
			n=$((n + 1))
			to=$((3 - from))
			qemu_start $to q$n incoming
			"$QMP" "$TB_DIR/$src.qmp" migrate-set-parameters '{"max-bandwidth": 125000000, "downtime-limit": 20}' >/dev/null ||
				tb_fail "QEMU: migrate-set-parameters"
			if [ $mode = xbzrle ]; then
				"$QMP" "$TB_DIR/$src.qmp" migrate-set-capabilities '{"capabilities": [{"capability": "xbzrle", "state": true}]}' >/dev/null &&
					"$QMP" "$TB_DIR/$src.qmp" migrate-set-parameters "{\"xbzrle-cache-size\": $((half * 1048576))}" >/dev/null ||
					tb_fail "QEMU: XBZRLE could not be set"
			fi
			"$QMP" "$TB_DIR/q$n.qmp" query-status >/dev/null || tb_fail "QEMU on h$to did not start"
			"$QMP" "$TB_DIR/$src.qmp" migrate "{\"uri\": \"tcp:$(tb_ip $to):4444\"}" >/dev/null ||
				tb_fail "QEMU: migrate h$from -> h$to"
			"$QMP" "$TB_DIR/$src.qmp" --wait-migration 300 >"$TB_DIR/q.json" ||
				tb_fail "QEMU migration h$from -> h$to ($mode, run $r)"
			"$QMP" "$TB_DIR/q$n.qmp" query-status | grep -q '"running"' ||
				tb_fail "the QEMU guest does not run on h$to after its migration"
			qemu_stop $src
			python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["total_time_ms"], d["downtime_ms"], d["transferred_bytes"], d["xbzrle_pages"] or 0)' "$TB_DIR/q.json" >>"$f"
			src=q$n from=$to
		done
		t50=$(awk '{ print $1 / 1000 }' "$f" | pct_of 50)
		say "$(printf '  %-14s %9.3f %9.3f %10.3f %12.1f %10s %9s' "$mode" "$t50" \
			"$(awk -v t="$t50" -v i="$ideal_s" 'BEGIN { print t / i }')" \
			"$(awk -v m="$MIB" '{ print $3 / (m * 1048576) }' "$f" | pct_of 50)" \
			"$(awk '{ print $3 / 1048576 }' "$f" | pct_of 50)" \
			"$(awk '{ print $2 }' "$f" | pct_of 50)" "$(awk '{ print $4 }' "$f" | pct_of 50)")"
		say "    downtimes (ms): $(awk '{ printf "%s ", $2 }' "$f"); totals (s): $(awk '{ printf "%.3f ", $1 / 1000 }' "$f")"
	done
	qemu_stop $src
	tb_link_rate 1 off
	tb_link_rate 2 off
fi

# ---------------------------------------------------------------- 7. the prediction model
if [[ " $PARTS " == *" 7 "* ]]; then
	say "model: migrate --estimate's prediction (a 4 x 250 ms dirty sample; --bandwidth: the rate of a raw 64 MiB stream on the same path just before, in the same direction with the guest running, whose sink writes into new memory as a receiver does, or the engine's own rate, measured by the estimate, where lower: on an unshaped link the engine, not the link, bounds a migration) against the migration that follows it, for each mode of MODEL_MODES ($MODEL_MODES)"
	say "$(printf '  %-44s %-8s %7s %7s %8s %8s %8s %8s %9s %9s' 'MiB:workload:link' mode pred_s meas_s pred_b/m meas_b/m pred_dt meas_dt err_total err_bytes)"
	: >"$TB_DIR/model.err"
	i=0
	for cell in $MODEL_GRID; do
		IFS=: read -r mib wl link <<<"$cell"
		tb_link_rate 1 "$link"
		tb_link_rate 2 "$link"
		i=$((i + 1))
		guest "md$i" "$mib" "$wl,fill_mib=$mib,seed=7"
		from=1
		for mode in $MODEL_MODES; do
			# the link as the migration will find it: same direction, the guest running
			# (on these 2 cores its vCPU competes with the streams' ends)
			rate=$(raw_tcp $from $((3 - from)) 64 "" memfd)
			sim_x $from migrate --dry-run --estimate --bandwidth "${rate%.*}Mbit" -s "" "md$i" "$(sim_rune $((3 - from)))" \
				>/dev/null 2>"$TB_DIR/est.err" || { cat "$TB_DIR/est.err"; tb_fail "estimate md$i"; }
			case $mode in
			precopy) pred=$(grep 'estimate: pre-copy' "$TB_DIR/est.err") ;;
			postcopy) pred=$(grep 'estimate: post-copy' "$TB_DIR/est.err") ;;
			hybrid) pred=$(grep 'estimate: hybrid' "$TB_DIR/est.err") ;;
			esac
			p_dt=$(sed -n 's/.*downtime \([0-9.]*\) ms.*/\1/p' <<<"$pred")
			p_t=$(sed -n 's/.*total \([0-9.]*\) s,.*/\1/p' <<<"$pred")
			p_b=$(sed -n 's/.*sent (\([0-9.]*\) x memory).*/\1/p' <<<"$pred")
			migrate_tcp $from $((3 - from)) "md$i" --mode "$mode" || { cat "$TB_DIR/m.err"; tb_fail "migration md$i ($mode)"; }
			from=$((3 - from))
			m_t=$(awk -v t="$(j total_time_ms)" 'BEGIN { printf "%.3f", t / 1000 }')
			m_b=$(j bytes_per_memory)
			m_dt=$(j downtime_ms)
			e_t=$(awk -v p="$p_t" -v m="$m_t" 'BEGIN { printf "%.1f", (p - m) / m * 100 }')
			e_b=$(awk -v p="$p_b" -v m="$m_b" 'BEGIN { printf "%.1f", (p - m) / m * 100 }')
			echo "$mode $e_t $e_b" >>"$TB_DIR/model.err"
			say "$(printf '  %-44s %-8s %7s %7s %8s %8s %8s %8s %8s%% %8s%%' "$cell" "$mode" "$p_t" "$m_t" "$p_b" "$m_b" "$p_dt" "$m_dt" "$e_t" "$e_b")"
		done
		sim_x $from destroy "md$i"
	done
	tb_link_rate 1 off
	tb_link_rate 2 off
	for mode in $MODEL_MODES all; do
		sel() { awk -v m="$mode" -v c="$1" '$1 == m || m == "all" { v = $c; print (v < 0 ? -v : v) }' "$TB_DIR/model.err"; }
		et50=$(sel 2 | pct_of 50) et90=$(sel 2 | pct_of 90) eb50=$(sel 3 | pct_of 50) eb90=$(sel 3 | pct_of 90)
		say "  $mode: |error| of total time p50 ${et50} %, p90 ${et90} %; of bytes p50 ${eb50} %, p90 ${eb90} % ($(sel 2 | wc -l) migrations)"
	done
	target "model: total time, |error| p50 (%)" "$et50" "<=" 5
	target "model: total time, |error| p90 (%)" "$et90" "<=" 10
	target "model: bytes, |error| p50 (%)" "$eb50" "<=" 5
	target "model: bytes, |error| p90 (%)" "$eb90" "<=" 10
fi

# ---------------------------------------------------------------- 8. post-copy and hybrid
if [[ " $PARTS " == *" 8 "* ]]; then
	tb_link_rate 1 $LINK
	tb_link_rate 2 $LINK
	half=$((MIB / 2))
	guest pc "$half" "dirty_mibps=400,pattern=hotset,hot_mib=$((half / 4)),fill_mib=$half,seed=5"
	counter() { sim_x "$1" sim-check --status pc | grep -o '"counter":[0-9]*' | cut -d: -f2; }
	from=1
	say "post-copy: ${half} MiB guest, $((half / 4)) MiB hot set at 400 MiB/s, link 1 Gbit/s; p50 of $PC_RUNS migrations per mode"
	say "$(printf '  %-17s %8s %9s %11s %9s %10s %10s %10s %9s %9s' mode total_s bytes/mem downtime_ms throttle% guest_kept fault_p50 fault_p99 pulled pushed)"
	for mode in precopy-throttle postcopy hybrid; do
		: >"$TB_DIR/pc.$mode"
		for ((r = 1; r <= PC_RUNS; r++)); do
			to=$((3 - from))
			# the guest's own page writes per second over 2 s before, then during the migration
			c0=$(counter $from) t0=$(tb_now_ms)
			sleep 2
			c1=$(counter $from) t1=$(tb_now_ms)
			case $mode in
			precopy-throttle) opts=(--on-stall throttle) ;;
			*) opts=(--mode "$mode") ;;
			esac
			c2=$(counter $from) t2=$(tb_now_ms)
			migrate_tcp $from $to pc "${opts[@]}" || { cat "$TB_DIR/m.err"; tb_fail "migration of pc ($mode)"; }
			c3=$(counter $to) t3=$(tb_now_ms)
			kept=$(awk -v a=$((c1 - c0)) -v ta=$((t1 - t0)) -v b=$((c3 - c2)) -v tb=$((t3 - t2)) \
				'BEGIN { printf "%.3f", (b / tb) / (a / ta) }')
			echo "$(awk -v t="$(j total_time_ms)" 'BEGIN { printf "%.3f", t / 1000 }') $(j bytes_per_memory) $(j downtime_ms) $(j max_throttle_pct) $kept $(j fault_p50_ms) $(j fault_p99_ms) $(j pages_pulled) $(j pages_pushed)" >>"$TB_DIR/pc.$mode"
			from=$to
		done
		row=()
		for col in 1 2 3 4 5 6 7 8 9; do
			row+=("$(awk -v c=$col '{ print ($c == "" ? "-" : $c) }' "$TB_DIR/pc.$mode" | median_of)")
		done
		say "$(printf '  %-17s %8s %9s %11s %9s %10s %10s %10s %9s %9s' "$mode" "${row[@]}")"
		if [ "$mode" != precopy-throttle ]; then
			target "$mode, 400 MiB/s hot set: downtime p50 (ms)" "${row[2]}" "<=" 20
			target "$mode, 400 MiB/s hot set: bytes / memory" "${row[1]}" "<=" 1.1
			target "$mode, 400 MiB/s hot set: max throttle (%)" "${row[3]}" "<=" 0
		fi
	done
	sim_x "$from" destroy pc
	tb_link_rate 1 off
	tb_link_rate 2 off
fi

read -r steal1 total1 < <(cpu_ticks)
say "== CPU steal during the run: $(awk -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.1f%%", t ? 100 * s / t : 0 }') of this machine's CPU time went to other guests of its host"
if [ -s "$TB_DIR/targets" ]; then
	say "== targets: $(grep -c ' met$' "$TB_DIR/targets") of $(wc -l <"$TB_DIR/targets") met"
	say "$(printf '  %-62s %10s %2s %-6s %s' target measured "" limit verdict)"
	tee -a "$TB_DIR/summary" <"$TB_DIR/targets"
fi
say "== every figure above was measured in this run; the source guest's RAM (ram_bef/ram_max/ram_aft) should not grow beyond what the guest dirties"
