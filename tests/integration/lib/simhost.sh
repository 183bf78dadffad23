# simhost.sh - simulated Xen hosts on top of testbed.sh: one sim state directory per host
# namespace, xl-ext run inside it, and cleanup of every sim domain process by pid.
#
#   sim_setup                  after tb_hosts: per-host state dirs, cleanup registered
#   sim_x i args...            run xl-ext on host i (sim backend)
#   sim_exec i args...         exec xl-ext on host i: "(sim_exec 1 migrate ...) &" makes $!
#                              the pid of xl-ext itself, for signalling it
#   sim_rune i [args...]       the command that runs "xl-ext migrate-receive" on host i,
#                              for "xl-ext migrate -s '' <dom> <rune>"
#   sim_guest_cfg file name memory vcpus type ip workload
#   sim_kill_all_domains       kill every sim domain process of this run, by pid
#   sim_exactly_one name i     the guest exists on host i (its "name state" line is printed)
#                              and no copy of it (nor name--incoming) on the other host of two
#   sim_wait_precopy i name    wait (bounded) until a migration of domain name on host i is in
#                              pre-copy (its dirty logging on), to act "mid-stream" on the
#                              event rather than after a guessed delay
#   sim_probe_start file ip [gap_ms]  probe ip every 10 ms from the client namespace
#                              (tb_client_ns); gaps >= gap_ms are logged on stderr
#   sim_probe_stop [ip host]   until this: once ip answers from host (bounded wait), the
#                              summary line is left in file; the window is the event's (a
#                              migration and the guest answering where it went), not a
#                              guessed length

: "${XLEXT:?XLEXT must name the xl-ext binary}"
declare -ga SIM_HOST_MIB 2>/dev/null || true

sim_setup() {
	local i
	for ((i = 1; i <= TB_NHOSTS; i++)); do
		mkdir -p "$TB_DIR/sim$i"
	done
	tb_defer sim_kill_all_domains
}

sim_env() {
	echo "XLEXT_BACKEND=sim XLEXT_SIM_ROOT=$TB_DIR/sim$1 XLEXT_SIM_HOST=h$1 ${SIM_HOST_MIB[$1]:+XLEXT_SIM_HOST_MIB=${SIM_HOST_MIB[$1]}}"
}

sim_x() {
	local i=$1
	shift
	# shellcheck disable=SC2046
	tb_exec "$i" env $(sim_env "$i") "$XLEXT" "$@"
}

sim_exec() {
	local i=$1
	shift
	# shellcheck disable=SC2046
	exec ip netns exec "$(tb_ns "$i")" env $(sim_env "$i") "$XLEXT" "$@"
}

sim_rune() {
	local i=$1
	shift
	echo "exec ip netns exec $(tb_ns "$i") env $(sim_env "$i") $XLEXT migrate-receive $*"
}

sim_guest_cfg() {
	local file=$1 name=$2 mem=$3 vcpus=$4 type=$5 ip=$6 workload=$7
	{
		echo "name = \"$name\""
		echo "type = \"$type\""
		echo "memory = $mem"
		echo "vcpus = $vcpus"
		[ -n "$ip" ] && echo "vif = [ \"mac=00:16:3e:00:00:01,ip=$ip\" ]"
		echo "workload = \"$workload\""
	} >"$file"
}

# Pids of every sim domain process of this run (from their state files).
sim_domain_pids() {
	local f
	for f in "$TB_DIR"/sim*/dom/*/info.json; do
		[ -f "$f" ] || continue
		sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$f"
	done
}

sim_kill_all_domains() {
	local pid
	for pid in $(sim_domain_pids); do
		kill -TERM "$pid" 2>/dev/null
	done
	sleep 0.3
	for pid in $(sim_domain_pids); do
		kill -KILL "$pid" 2>/dev/null
	done
	return 0
}

# Running domains (name state) on host i, one per line.
sim_domains() {
	sim_x "$1" list | awk 'NR > 1 { print $1, $5 }'
}

# JSON number field from a file: sim_json file key
sim_json() {
	sed -n "s/^ *\"$2\": *\\([-0-9.e+]*\\),*\$/\\1/p" "$1" | head -1
}

sim_exactly_one() {
	local name=$1 host=$2 other=$((3 - $2)) on_host on_other
	on_host=$(sim_domains "$host" | awk -v n="$name" '$1 == n')
	on_other=$(sim_domains "$other" | awk -v n="$name" '$1 ~ "^"n')
	[ -n "$on_host" ] || tb_fail "$name is not on host $host"
	[ -z "$on_other" ] || tb_fail "$name also exists on host $other: $on_other"
	echo "$on_host"
}

# sim_copycheck_start [copycheck options]: watch every sim host of the run in the background
# for a guest that runs on two hosts at once (tests/integration/copycheck.c: no fork per
# sample; a host whose $TB_DIR/h<i>/dead exists is not read). -a: paused copies count too;
# -g PREFIX: only guests named so.
sim_copycheck_start() {
	local i hosts=()
	for ((i = 1; i <= TB_NHOSTS; i++)); do
		hosts+=("h$i=$TB_DIR/sim$i:$TB_DIR/h$i/dead")
	done
	"${COPYCHECK:-$top_builddir/tests/integration/copycheck}" -i 5 -o "$TB_DIR/twice" "$@" \
		"${hosts[@]}" >"$TB_DIR/copycheck.out" 2>"$TB_DIR/copycheck.err" &
	SIM_COPYCHECK_PID=$!
	tb_defer sim_copycheck_kill
}

sim_copycheck_kill() {
	[ -n "${SIM_COPYCHECK_PID:-}" ] || return 0
	kill -TERM "$SIM_COPYCHECK_PID" 2>/dev/null && wait "$SIM_COPYCHECK_PID"
	SIM_COPYCHECK_PID=
	return 0
}

# sim_copycheck_ok: no guest ran twice so far (the test fails otherwise)
sim_copycheck_ok() {
	[ ! -s "$TB_DIR/twice" ] ||
		{ cat "$TB_DIR/twice" "$TB_DIR/copycheck.err" >&2; tb_fail "a guest ran on two hosts at once"; }
}

# sim_copycheck_stop: stop the checker, fail the test if a guest ran twice, and set
# SIM_COPYCHECK_SUMMARY to the checker's summary line. Call it in the test's own shell, not in
# $(...): a tb_fail there would only end the subshell, and the test would pass. Called in a
# subshell anyway, it prints the summary and, after an overlap, stops the test (SIGTERM to
# the test's shell, which fails it).
sim_copycheck_stop() {
	if ((BASH_SUBSHELL > 0)); then
		[ -n "${SIM_COPYCHECK_PID:-}" ] && kill -TERM "$SIM_COPYCHECK_PID" 2>/dev/null
		tb_wait_until 10 eval "grep -q '^copycheck: samples=' '$TB_DIR/copycheck.out'"
		if [ -s "$TB_DIR/twice" ]; then
			cat "$TB_DIR/twice" "$TB_DIR/copycheck.err" >&2
			echo "FAIL: a guest ran on two hosts at once (sim_copycheck_stop in a subshell)" >&2
			kill -TERM $$
		fi
		cat "$TB_DIR/copycheck.out"
		return 0
	fi
	sim_copycheck_kill
	sim_copycheck_ok
	SIM_COPYCHECK_SUMMARY=$(cat "$TB_DIR/copycheck.out")
}

sim_wait_precopy() {
	tb_wait_until 30 eval "sim_x $1 sim-check --status $2 | grep -Eq '\"dirtylog\":\"(uffd|mprotect)\"'"
}

sim_probe_start() {
	: "${PROBE:?PROBE must name the probe client}"
	# exec: $! is the probe itself, which prints its summary when it gets SIGTERM
	(exec ip netns exec "$(tb_ns c)" "$PROBE" "$2" 3600000 10 "${3:-0}" >"$1" 2>"$1.err") &
	SIM_PROBE_PID=$!
	# the client runs and sees the guest before the caller moves it
	tb_wait_until 20 grep -q 'first reply' "$1.err" ||
		tb_fail "the probe client got no reply from $2: $(cat "$1.err")"
}

# How many probes (10 ms apart) a client may lose in a row across a live move whose reported
# downtime is $1 ms; $2 is the probe's summary line. Nothing answers while the guest is paused:
# ceil(downtime / 10) + 1. Requests already queued in the source guest's socket when it pauses
# are lost too (a sim guest's sockets are dom0's, not guest memory as a netfront ring is), and
# how many were queued is bounded by the longest other gap between replies the client saw (the
# guest's thread waiting for a CPU on a loaded host): one per 10 ms beyond the interval.
sim_probe_allowed_lost() {
	local other
	other=$(sed -n 's/.*max_other_gap_ms=\([0-9.]*\).*/\1/p' <<<"$2")
	awk -v d="$1" -v o="${other:-0}" 'BEGIN {
		q = int((o - 10 + 9.999) / 10); if (q < 0) q = 0
		print int((d + 9.999) / 10) + 1 + q }'
}

sim_probe_stop() {
	[ -z "${2:-}" ] ||
		tb_wait_until 10 eval "tb_exec c '$PROBE' $1 100 | grep -q 'hosts=.*$2\$'" ||
		tb_log "sim_probe_stop: $1 did not answer from $2"
	kill -TERM "$SIM_PROBE_PID" 2>/dev/null
	wait "$SIM_PROBE_PID"
}
