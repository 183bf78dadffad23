# shellcheck shell=bash
#
# testbed.sh - integration-test testbed for xl-ext / haagent.
#
# Sourced (not executed) by bash integration tests run by automake's test
# driver: exit 0 = pass, 77 = skip, 99 = hard error, anything else = fail.
#
# It builds, on one machine and entirely inside private network namespaces:
#   - a "switch" namespace  xtb<ID>sw  holding bridge br0,
#   - N "hosts"             xtb<ID>h1..hN  (eth0 = 10.77.0.<i>/24),
#   - optionally a client   xtb<ID>c   (10.77.0.200) and a storage namespace
#     xtb<ID>st (10.77.0.250) running tgtd (userspace iSCSI target),
#   - one corosync 3 (knet) instance per host, each also in its own mount
#     namespace with a private tmpfs /run.
# Nothing (no bridge, veth or address) is created in the root namespace.
# Everything is removed on exit by a trap (EXIT/INT/TERM), pids are killed
# by pid only (never by name), and tb_assert_clean verifies it.
#
# Typical use:
#   . "$(dirname "$0")/lib/testbed.sh"
#   tb_init
#   tb_hosts 3
#   tb_corosync_start
#   tb_corosync_wait_members 1 3 30 || tb_fail "no quorum"
#   tb_tgtd_start
#   url=$(tb_tgt_lun_add 1 iqn.2024-01.org.example:t1 1 16) || tb_fail "lun"
#   tb_exec 1 iscsi-inq -e 1 -c 131 "$url"
#
# Works with `set -u`. Not designed for `set -e` (functions return non-zero
# as a result, e.g. tb_wait_until on timeout).
# Rules for tests: do not replace the EXIT/INT/TERM traps (register extra
# teardown with tb_defer); call the functions that start things (tb_hosts,
# tb_client_ns, tb_corosync_start, tb_tgtd_start, tb_defer) in the main
# shell, not in $(...) or a pipeline; tb_fail/tb_error inside $(...) only
# leave that subshell, so check its status. Processes a test starts itself
# inside a testbed namespace (tb_exec i cmd &) are killed by tb_cleanup.
# iscsi-inq parses -c with atoi(): give page codes in decimal (-c 131 for
# 0x83; "-c 0x83" silently reads page 0).
#
# Environment knobs:
#   TB_KEEP=1              keep TB_DIR (configs, logs) after cleanup
#   TB_FAIL_AT=<name>      tb_checkpoint <name> fails there (tests cleanup)
#   TB_NET_PREFIX=a.b.c    /24 used inside the namespaces (default 10.77.0)
#   TB_COROSYNC_TOKEN=ms   totem token (default 1000)
#   TB_COROSYNC_QUORUM_OPTS  extra lines for the quorum{} section
#                          (e.g. "two_node: 1")
#   CI=true                never skip: not being root is a hard error (99)

[ -n "${TB__LIB_LOADED:-}" ] && return 0
TB__LIB_LOADED=1

TB_NET_PREFIX=${TB_NET_PREFIX:-10.77.0}
TB_CLIENT_IP="$TB_NET_PREFIX.200"
TB_STORAGE_IP="$TB_NET_PREFIX.250"
TB_ISCSI_PORT=3260
TB_POLL=${TB_POLL:-0.2}
TB_ID=""
TB_DIR=""
TB_NHOSTS=0
TB_TGT_CTL_PORT=""
TB_LAST_WAIT_MS=0
TB__CLEANED=0
TB__IN_CLEANUP=0
TB__IN_EXIT=0
TB__PENDING_SIG=""
TB__PID_SNAPSHOT=""
TB__DEFER=()
TB__NSIG=0
TB__STILL=()
TB__DAEMON_PID=""

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

# tb_now_ms: echo the wall clock in milliseconds (no fork with bash >= 5).
tb_now_ms() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		local t=${EPOCHREALTIME//[.,]/}
		echo $((10#$t / 1000))
	else
		date +%s%3N
	fi
}

# tb__ms secs: echo secs (integer or decimal, e.g. 2.5) in milliseconds.
tb__ms() {
	local int=${1%%.*} frac=000
	[[ $1 == *.* ]] && frac="${1#*.}000"
	echo $((10#${int:-0} * 1000 + 10#${frac:0:3}))
}

# tb_log msg...: timestamped diagnostic line on stderr.
tb_log() {
	local now=${EPOCHREALTIME:-$(date +%s.%N)} t frac
	now=${now/,/.}
	frac=${now#*.}
	printf -v t '%(%H:%M:%S)T' "${now%.*}"
	printf '[%s.%s tb%s] %s\n' "$t" "${frac:0:3}" "${TB_ID:+:$TB_ID}" "$*" >&2
}

# tb_pass msg...: print "PASS: msg" on stdout.
tb_pass() {
	echo "PASS: $*"
}

# tb_fail msg...: print "FAIL: msg" and exit 1 (the EXIT trap cleans up).
# Inside $(...) it only leaves that subshell: check the caller's status.
tb_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# tb_error msg...: print "ERROR: msg" and exit 99 (hard error, e.g. broken
# environment or testbed setup failure).
tb_error() {
	echo "ERROR: $*" >&2
	exit 99
}

# tb_skip msg...: print "SKIP: msg" and exit 77, or exit 99 when CI=true.
tb_skip() {
	if [ "${CI:-}" = true ]; then
		echo "ERROR: would skip, but CI=true never skips: $*" >&2
		exit 99
	fi
	echo "SKIP: $*"
	exit 77
}

# tb_require cmd package: exit 99 naming the Debian package if cmd is missing.
tb_require() {
	command -v "$1" >/dev/null 2>&1 ||
		tb_error "required command '$1' not found (install Debian package '$2')"
}

# tb_checkpoint name: fail here if TB_FAIL_AT=name (to exercise cleanup).
tb_checkpoint() {
	if [ "${TB_FAIL_AT:-}" = "$1" ]; then
		tb_fail "injected failure at checkpoint '$1' (TB_FAIL_AT)"
	fi
	return 0
}

# tb_wait_until timeout_s cmd...: run cmd every TB_POLL s until it succeeds
# (return 0) or timeout_s elapsed (return 1). cmd output is not redirected.
# Sets TB_LAST_WAIT_MS to the time spent.
tb_wait_until() {
	local timeout=$1
	shift
	local t0 deadline now
	t0=$(tb_now_ms)
	deadline=$((t0 + $(tb__ms "$timeout")))
	while :; do
		if "$@"; then
			now=$(tb_now_ms)
			TB_LAST_WAIT_MS=$((now - t0))
			return 0
		fi
		now=$(tb_now_ms)
		if ((now >= deadline)); then
			TB_LAST_WAIT_MS=$((now - t0))
			return 1
		fi
		sleep "$TB_POLL"
	done
}

# tb_defer cmd...: register a command run (LIFO) at the start of tb_cleanup,
# before daemons are stopped. Do not call from a subshell.
tb_defer() {
	TB__DEFER+=("$(printf '%q ' "$@")")
}

# ---------------------------------------------------------------------------
# Process bookkeeping (by pid + start time, never by name)
# ---------------------------------------------------------------------------

# tb__stat pid: echo "state starttime" of pid, or fail if it does not exist.
tb__stat() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$s" ] || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	echo "$1 ${20}"
}

# tb__alive pid [starttime]: true if pid runs (not a zombie) and, when
# given, still has the same start time (guards against pid reuse).
tb__alive() {
	local st
	st=$(tb__stat "$1") || return 1
	case ${st%% *} in Z | X | x) return 1 ;; esac
	[ -z "${2:-}" ] || [ "${st#* }" = "$2" ]
}

# tb__comm pid: echo /proc/pid/comm.
tb__comm() {
	cat "/proc/$1/comm" 2>/dev/null
}

# tb__record_pid pid label: remember a started process for cleanup.
tb__record_pid() {
	local st
	st=$(tb__stat "$1") || st="? 0"
	echo "$1 ${st#* } $2" >>"$TB_DIR/pids"
}

# tb_pids: print the recorded processes, one "pid starttime label" a line.
tb_pids() {
	if [ -n "$TB_DIR" ] && [ -f "$TB_DIR/pids" ]; then
		cat "$TB_DIR/pids"
	else
		printf '%s' "$TB__PID_SNAPSHOT"
	fi
}

# tb__reap pid: collect the exit status of a dead child of this shell
# (no-op for the disowned daemons, which bash reaps on SIGCHLD).
tb__reap() {
	wait "$1" 2>/dev/null
	return 0
}

# tb__shm_leftovers: list /dev/shm files left by our dead corosyncs
# (libqb's blackbox, 8 MiB each, is not removed on SIGKILL).
tb__shm_leftovers() {
	local pid start label f
	while read -r pid start label; do
		case $label in corosync-h*) ;; *) continue ;; esac
		tb__alive "$pid" "$start" && continue
		for f in /dev/shm/qb-corosync-"$pid"-*; do
			[ -e "$f" ] && echo "$f"
		done
	done <<<"$(tb_pids)"
	return 0
}

# tb__kill_list grace_s "pid start label"...: TERM every live one, wait up
# to grace_s, KILL survivors, wait again. Sets TB__NSIG to the number
# signalled (no output: must run in this shell so it can reap children).
tb__kill_list() {
	local grace=$1
	shift
	local line pid start label n=0 live=()
	for line in "$@"; do
		read -r pid start label <<<"$line"
		[ -n "$pid" ] || continue
		if tb__alive "$pid" "$start"; then
			kill -TERM "$pid" 2>/dev/null && n=$((n + 1))
			live+=("$pid $start $label")
		fi
	done
	local round
	for round in term kill; do
		tb__wait_dead "$grace" "${live[@]}"
		live=("${TB__STILL[@]}")
		((${#live[@]} == 0)) && break
		[ "$round" = kill ] && break
		for line in "${live[@]}"; do
			read -r pid start label <<<"$line"
			tb_log "$label (pid $pid) ignored SIGTERM for ${grace}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		done
		grace=2
	done
	for line in "${live[@]}"; do
		tb_log "WARNING: $line survived SIGKILL"
	done
	TB__NSIG=$n
}

# tb__wait_dead timeout_s "pid start label"...: wait until all are dead;
# leaves the survivors in the array TB__STILL.
tb__wait_dead() {
	local timeout=$1 deadline line pid start label
	shift
	TB__STILL=("$@")
	deadline=$(($(tb_now_ms) + timeout * 1000))
	while ((${#TB__STILL[@]})); do
		local still=()
		for line in "${TB__STILL[@]}"; do
			read -r pid start label <<<"$line"
			if tb__alive "$pid" "$start"; then
				still+=("$line")
			else
				tb__reap "$pid"
			fi
		done
		TB__STILL=("${still[@]}")
		((${#TB__STILL[@]} == 0)) && break
		(($(tb_now_ms) >= deadline)) && break
		sleep 0.1
	done
	return 0
}

# tb__find_comm pid comm: echo the pid of the process named comm among pid
# and its descendants (for exec chains that fork instead of exec'ing).
tb__find_comm() {
	local root=$1 want=$2 p f s ppid
	local queue=("$root")
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		if [ "$(tb__comm "$p")" = "$want" ]; then
			echo "$p"
			return 0
		fi
		for f in /proc/[0-9]*/stat; do
			s=$(cat "$f" 2>/dev/null) || continue
			s=${s##*) }
			ppid=${s#* }
			ppid=${ppid%% *}
			[ "$ppid" = "$p" ] || continue
			s=${f#/proc/}
			queue+=("${s%/stat}")
		done
	done
	return 1
}

# tb__start_daemon label comm log cmd...: start cmd in the background,
# wait (<= 5 s) until the process (or a descendant) is named comm, record
# and echo that pid through TB__DAEMON_PID. Hard error if it dies.
tb__start_daemon() {
	local label=$1 comm=$2 log=$3
	shift 3
	"$@" >"$log" 2>&1 </dev/null &
	local wrapper=$!
	# out of the job table: no "Killed" notices (bash still reaps it)
	disown "$wrapper" 2>/dev/null
	tb__record_pid "$wrapper" "$label-wrapper"
	local deadline pid=""
	deadline=$(($(tb_now_ms) + 5000))
	while :; do
		if ! tb__alive "$wrapper"; then
			tb__reap "$wrapper"
			tb_log "$label: output:"
			tail -n 20 "$log" >&2
			tb_error "$label: '$*' exited during startup (log: $log)"
		fi
		if [ "$(tb__comm "$wrapper")" = "$comm" ]; then
			pid=$wrapper
			break
		fi
		# Only look for a forked child once the chain had time to exec.
		if (($(tb_now_ms) + 4000 >= deadline)); then
			pid=$(tb__find_comm "$wrapper" "$comm") && break
			pid=""
		fi
		(($(tb_now_ms) >= deadline)) &&
			tb_error "$label: no process named '$comm' under pid $wrapper after 5 s"
		sleep 0.05
	done
	if [ "$pid" != "$wrapper" ]; then
		tb_log "$label: exec chain forked: wrapper pid $wrapper, $comm pid $pid"
		tb__record_pid "$pid" "$label"
	else
		# same process: relabel the wrapper line
		sed -i "s/^$pid \(.*\) $label-wrapper\$/$pid \1 $label/" "$TB_DIR/pids"
	fi
	TB__DAEMON_PID=$pid
}

# ---------------------------------------------------------------------------
# Init / exit
# ---------------------------------------------------------------------------

# tb__on_exit: EXIT trap: clean up (again from the start if an exit cut a
# cleanup short; it is idempotent), keep the script's exit status.
tb__on_exit() {
	local rc=$?
	TB__IN_EXIT=1
	trap '' INT TERM
	TB__IN_CLEANUP=0
	tb_cleanup
	exit "$rc"
}

# tb__on_signal SIG: INT/TERM trap: exit 130/143 (fail), EXIT trap cleans.
tb__on_signal() {
	local code=130
	[ "$1" = TERM ] && code=143
	echo "FAIL: interrupted by SIG$1" >&2
	exit "$code"
}

# tb_init: check root and tools (skip 77 / error 99), choose run id TB_ID
# (5 hex digits), make TB_DIR, install the EXIT/INT/TERM cleanup trap.
# Also picks TB_TGT_CTL_PORT (tgtd control "port", unique per run).
tb_init() {
	[ -z "$TB_ID" ] || return 0
	if [ "$(id -u)" != 0 ]; then
		tb_skip "integration testbed needs root (network namespaces, corosync, tgtd)"
	fi
	tb_require ip iproute2
	tb_require unshare util-linux
	tb_require timeout coreutils
	tb_require corosync corosync
	tb_require corosync-quorumtool corosync
	tb_require tgtd tgt
	tb_require tgtadm tgt
	local try id port
	for ((try = 0; try < 10; try++)); do
		id=$(printf '%05x' $(((RANDOM * 32768 + RANDOM + $$ * 7919) & 0xfffff)))
		# tgtd accepts control ports up to 32767
		port=$((10000 + 16#$id % 22000))
		ip netns list 2>/dev/null | grep -q "^xtb$id" && continue
		[ -e "/var/run/tgtd/socket.$port" ] && continue
		TB_ID=$id
		TB_TGT_CTL_PORT=$port
		break
	done
	[ -n "$TB_ID" ] || tb_error "could not pick a free run id"
	TB_DIR=$(mktemp -d /tmp/xltb.XXXXXX) || tb_error "mktemp -d failed"
	: >"$TB_DIR/pids"
	: >"$TB_DIR/netns"
	trap 'tb__on_exit' EXIT
	trap 'tb__on_signal INT' INT
	trap 'tb__on_signal TERM' TERM
	tb_log "run id $TB_ID, dir $TB_DIR"
}

# ---------------------------------------------------------------------------
# Namespaces
# ---------------------------------------------------------------------------

# tb_ns i: echo the namespace of host i (1..N), or of "sw" (switch),
# "c" (client), "st" (storage / tgtd).
tb_ns() {
	case ${1:-} in
	sw | c | st) echo "xtb${TB_ID}$1" ;;
	*)
		[[ ${1:-} =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= TB_NHOSTS)) ||
			tb_error "tb_ns: no host '${1:-}' (hosts: 1..$TB_NHOSTS)"
		echo "xtb${TB_ID}h$1"
		;;
	esac
}

# tb_ip i: echo the IPv4 address of host i (or "c", "st").
tb_ip() {
	case ${1:-} in
	c) echo "$TB_CLIENT_IP" ;;
	st) echo "$TB_STORAGE_IP" ;;
	*)
		tb_ns "$1" >/dev/null || return 1
		echo "$TB_NET_PREFIX.$1"
		;;
	esac
}

# tb_exec i cmd...: run cmd inside host i's (or "c"/"st"/"sw") namespace.
tb_exec() {
	local ns
	ns=$(tb_ns "$1") || return 1
	shift
	ip netns exec "$ns" "$@"
}

# tb__netns_add name: create a namespace (recorded for cleanup), lo up.
tb__netns_add() {
	echo "$1" >>"$TB_DIR/netns"
	ip netns add "$1" || tb_error "ip netns add $1 failed"
	ip -n "$1" link set lo up || tb_error "lo up in $1 failed"
}

# tb__attach ns addr peer: new namespace ns, veth eth0 (addr/24) whose peer
# (named peer) is enslaved to br0 in the switch namespace.
tb__attach() {
	local ns=$1 addr=$2 peer=$3 sw
	sw=$(tb_ns sw)
	tb__netns_add "$ns"
	ip -n "$ns" link add eth0 type veth peer name "$peer" netns "$sw" ||
		tb_error "veth eth0/$peer for $ns failed"
	ip -n "$sw" link set "$peer" master br0 up || tb_error "enslaving $peer failed"
	ip -n "$ns" addr add "$addr/24" dev eth0 || tb_error "address $addr in $ns failed"
	ip -n "$ns" link set eth0 up || tb_error "eth0 up in $ns failed"
}

# tb_hosts N: create the switch namespace (bridge br0) and hosts 1..N
# (N <= 99), host i = namespace xtb<ID>h<i>, eth0 = TB_NET_PREFIX.i/24.
# Sets TB_NHOSTS. Setup errors exit 99.
tb_hosts() {
	local n=${1:-}
	[[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 99)) || tb_error "tb_hosts: bad host count '$n'"
	((TB_NHOSTS == 0)) || tb_error "tb_hosts: hosts already created"
	[ -n "$TB_ID" ] || tb_error "tb_hosts: call tb_init first"
	local sw i
	sw=$(tb_ns sw)
	tb__netns_add "$sw"
	ip -n "$sw" link add br0 type bridge || tb_error "bridge in $sw failed"
	ip -n "$sw" link set br0 up || tb_error "br0 up failed"
	TB_NHOSTS=$n
	for ((i = 1; i <= n; i++)); do
		tb__attach "$(tb_ns "$i")" "$(tb_ip "$i")" "xtb${TB_ID}p$i"
	done
	tb_log "created $n host namespaces xtb${TB_ID}h1..h$n on bridge in $sw"
}

# tb_link_rate i rate: shape host i's egress on eth0 to rate (tc tbf, e.g. 1gbit),
# the physical limit of a slower network; "off" removes it.
tb_link_rate() {
	local ns
	ns=$(tb_ns "$1") || return 1
	if [ "$2" = off ]; then
		ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null
		return 0
	fi
	# burst: 2 ms at 1 Gbit/s; queue: 50 ms (with less, TCP through tbf loses a third of the rate here)
	ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$2" burst 256kb latency 50ms ||
		tb_error "tc tbf rate $2 on $ns/eth0 failed"
}

# tb_client_ns: create the client namespace xtb<ID>c (TB_CLIENT_IP) on the
# bridge, for probes; use it with tb_exec c ... Idempotent.
tb_client_ns() {
	((TB_NHOSTS > 0)) || tb_error "tb_client_ns: call tb_hosts first"
	local ns
	ns=$(tb_ns c)
	ip netns list | grep -q "^$ns\\b" && return 0
	tb__attach "$ns" "$TB_CLIENT_IP" "xtb${TB_ID}pc"
}

# ---------------------------------------------------------------------------
# corosync
# ---------------------------------------------------------------------------

# tb__corosync_conf i: write TB_DIR/h<i>/corosync.conf for host i.
tb__corosync_conf() {
	local i=$1 j dir
	dir="$TB_DIR/h$i"
	mkdir -p "$dir/state"
	# totem encryption on, as haagent(8) tells admins to run it: one key for the run
	if [ ! -s "$TB_DIR/authkey" ]; then
		(umask 077 && head -c 256 /dev/urandom >"$TB_DIR/authkey") ||
			tb_error "cannot write the corosync key"
	fi
	{
		cat <<EOF
# generated by testbed.sh for host $i of run $TB_ID
totem {
	version: 2
	cluster_name: xtb$TB_ID
	transport: knet
	crypto_cipher: aes256
	crypto_hash: sha256
	keyfile: $TB_DIR/authkey
	token: ${TB_COROSYNC_TOKEN:-1000}
}
nodelist {
EOF
		for ((j = 1; j <= TB_NHOSTS; j++)); do
			printf '\tnode {\n\t\tnodeid: %d\n\t\tname: h%d\n\t\tring0_addr: %s\n\t}\n' \
				"$j" "$j" "$(tb_ip "$j")"
		done
		cat <<EOF
}
quorum {
	provider: corosync_votequorum
${TB_COROSYNC_QUORUM_OPTS:-}
}
logging {
	to_logfile: yes
	logfile: $dir/corosync.log
	to_syslog: no
	to_stderr: no
	timestamp: hires
}
system {
	state_dir: $dir/state
}
EOF
	} >"$dir/corosync.conf"
	echo "$TB_NHOSTS" >"$dir/nodes"
}

# tb_corosync_pid i: echo the pid of host i's corosync (last started).
tb_corosync_pid() {
	cat "$TB_DIR/h$1/corosync.pid" 2>/dev/null
}

# tb_corosync_start [i...]: write configs and start corosync on hosts i...
# (default: all), each in its netns + own mount namespace with tmpfs /run.
# Records the real corosync pid. Does not wait for membership.
tb_corosync_start() {
	((TB_NHOSTS > 0)) || tb_error "tb_corosync_start: call tb_hosts first"
	local nodes=("$@") i ns dir
	((${#nodes[@]})) || mapfile -t nodes < <(seq 1 "$TB_NHOSTS")
	for i in "${nodes[@]}"; do
		ns=$(tb_ns "$i")
		dir="$TB_DIR/h$i"
		if [ -f "$dir/corosync.pid" ] && tb__alive "$(cat "$dir/corosync.pid")"; then
			tb_error "tb_corosync_start: corosync already running on host $i"
		fi
		tb__corosync_conf "$i"
		# shellcheck disable=SC2016
		tb__start_daemon "corosync-h$i" corosync "$dir/corosync.out" \
			ip netns exec "$ns" unshare -m sh -c \
			'mount -t tmpfs tmpfs /run && exec corosync -f -c "$1"' sh "$dir/corosync.conf"
		echo "$TB__DAEMON_PID" >"$dir/corosync.pid"
		tb_log "corosync on host $i: pid $TB__DAEMON_PID"
	done
}

# tb_corosync_kill i: SIGKILL host i's corosync by pid, wait until gone.
tb_corosync_kill() {
	local pid
	pid=$(tb_corosync_pid "$1")
	[ -n "$pid" ] && tb__alive "$pid" || {
		tb_log "tb_corosync_kill: corosync on host $1 is not running"
		return 1
	}
	kill -KILL "$pid"
	tb_wait_until 5 eval '! tb__alive '"$pid" || tb_error "corosync pid $pid survived SIGKILL"
	tb__reap "$pid"
	tb_log "corosync on host $1 (pid $pid) killed with SIGKILL"
}

# tb_corosync_stop [i...]: SIGTERM the corosync of hosts i... (default:
# all), wait for them to exit, SIGKILL after 5 s.
tb_corosync_stop() {
	local i pid lines=() nodes=("$@")
	((${#nodes[@]})) || mapfile -t nodes < <(seq 1 "$TB_NHOSTS")
	for i in "${nodes[@]}"; do
		pid=$(tb_corosync_pid "$i")
		[ -n "$pid" ] || continue
		lines+=("$(grep "^$pid .* corosync-h$i\$" "$TB_DIR/pids" | tail -n 1)")
	done
	((${#lines[@]})) && tb__kill_list 5 "${lines[@]}"
	return 0
}

# tb_corosync_status i: run corosync-quorumtool -s in host i's namespace,
# echo "nodes=<n> members=<m> quorate=<0|1> total_votes=<v> expected=<e>".
# Returns 1 if the tool fails to talk to corosync. The raw output is kept
# in TB_DIR/h<i>/quorumtool.last (this often runs inside $(...)).
tb_corosync_status() {
	local out ns
	ns=$(tb_ns "$1") || return 1
	out=$(timeout 5 ip netns exec "$ns" corosync-quorumtool -s 2>&1)
	# its exit status is 0 quorate, 2 not quorate, 1 error: parse the text
	printf '%s\n' "$out" >"$TB_DIR/h$1/quorumtool.last" 2>/dev/null
	grep -q '^Quorum provider:' <<<"$out" || return 1
	awk '
		/^Nodes:/            { nodes = $2 }
		/^Quorate:/          { quorate = ($2 == "Yes") }
		/^Total votes:/      { votes = $3 }
		/^Expected votes:/   { expected = $3 }
		/^Membership information/ { inmem = 1; next }
		inmem && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { members++ }
		END { printf "nodes=%d members=%d quorate=%d total_votes=%d expected=%d\n",
			nodes, members, quorate, votes, expected }' <<<"$out"
}

# tb_corosync_wait_members i N timeout_s: poll until host i sees exactly N
# members (both "Nodes:" and member lines) and, if N is more than half the
# configured nodes, is quorate. Sets TB_LAST_WAIT_MS. Returns 1 (with the
# last corosync-quorumtool output on stderr) on timeout.
tb_corosync_wait_members() {
	local i=$1 want=$2 timeout=$3 configured st t0 now
	configured=$(cat "$TB_DIR/h$i/nodes" 2>/dev/null || echo "$TB_NHOSTS")
	local need_q=0
	((2 * want > configured)) && need_q=1
	t0=$(tb_now_ms)
	rm -f "$TB_DIR/h$i/quorumtool.last"
	while :; do
		st=$(tb_corosync_status "$i") && {
			local nodes members quorate
			nodes=$(sed -n 's/.*nodes=\([0-9]*\).*/\1/p' <<<"$st")
			members=$(sed -n 's/.*members=\([0-9]*\).*/\1/p' <<<"$st")
			quorate=$(sed -n 's/.*quorate=\([0-9]*\).*/\1/p' <<<"$st")
			if [ "$nodes" = "$want" ] && [ "$members" = "$want" ] &&
				{ ((need_q == 0)) || [ "$quorate" = 1 ]; }; then
				now=$(tb_now_ms)
				TB_LAST_WAIT_MS=$((now - t0))
				return 0
			fi
		}
		now=$(tb_now_ms)
		if ((now - t0 >= $(tb__ms "$timeout"))); then
			TB_LAST_WAIT_MS=$((now - t0))
			echo "tb_corosync_wait_members: host $i did not see $want members" \
				"(quorate required: $need_q) within ${timeout}s; last status: ${st:-none}" >&2
			local pid
			pid=$(tb_corosync_pid "$i")
			if [ -z "$pid" ] || ! tb__alive "$pid"; then
				echo "tb_corosync_wait_members: corosync of host $i (pid ${pid:-none}) is not running; log tail:" >&2
				tail -n 15 "$TB_DIR/h$i/corosync.log" "$TB_DIR/h$i/corosync.out" >&2 2>/dev/null
			fi
			echo "--- last corosync-quorumtool -s on host $i:" >&2
			cat "$TB_DIR/h$i/quorumtool.last" >&2 2>/dev/null
			echo "---" >&2
			return 1
		fi
		sleep "$TB_POLL"
	done
}

# ---------------------------------------------------------------------------
# tgtd (userspace iSCSI target) in namespace xtb<ID>st
# ---------------------------------------------------------------------------

# tb_tgtadm args...: tgtadm on this run's tgtd (adds -C TB_TGT_CTL_PORT),
# bounded to 10 s. The control socket is a filesystem path
# (/var/run/tgtd/socket.<port>), so this runs from the root namespace.
tb_tgtadm() {
	timeout 10 tgtadm -C "$TB_TGT_CTL_PORT" "$@"
}

# tb_tgtd_start: create namespace xtb<ID>st (TB_STORAGE_IP) on the bridge,
# start tgtd -f there (portal TB_STORAGE_IP:3260, control port
# TB_TGT_CTL_PORT), wait (<= 10 s) until tgtadm answers. Hard error if not.
# Arguments are ignored (tgtd always gets its own namespace). Once per run.
tb_tgtd_start() {
	((TB_NHOSTS > 0)) || tb_error "tb_tgtd_start: call tb_hosts first"
	[ ! -f "$TB_DIR/tgtd.pid" ] || tb_error "tb_tgtd_start: tgtd already started"
	local ns
	ns=$(tb_ns st)
	tb__attach "$ns" "$TB_STORAGE_IP" "xtb${TB_ID}ps"
	: >"$TB_DIR/tgt_tids"
	# another run may have taken the port since tb_init: move on (<= 32767)
	while [ -e "/var/run/tgtd/socket.$TB_TGT_CTL_PORT" ]; do
		TB_TGT_CTL_PORT=$((TB_TGT_CTL_PORT >= 32767 ? 1024 : TB_TGT_CTL_PORT + 1))
	done
	tb__start_daemon tgtd tgtd "$TB_DIR/tgtd.log" \
		ip netns exec "$ns" tgtd -f --iscsi "portal=$TB_STORAGE_IP:$TB_ISCSI_PORT" \
		--control-port "$TB_TGT_CTL_PORT"
	echo "$TB__DAEMON_PID" >"$TB_DIR/tgtd.pid"
	tb_wait_until 10 eval 'tb_tgtadm --lld iscsi --mode system --op show >/dev/null 2>&1' ||
		tb_error "tgtd (pid $TB__DAEMON_PID) does not answer on control port $TB_TGT_CTL_PORT (log: $TB_DIR/tgtd.log)"
	tb_log "tgtd pid $TB__DAEMON_PID, portal $TB_STORAGE_IP:$TB_ISCSI_PORT, control port $TB_TGT_CTL_PORT (up in ${TB_LAST_WAIT_MS} ms)"
}

# tb_tgt_lun_add tid iqn lun size_mb: create target tid (iqn) if needed,
# bound to ALL initiators, add a sparse size_mb MiB file under TB_DIR as
# logical unit lun (>= 1). Echo iscsi://TB_STORAGE_IP:3260/iqn/lun.
# Use as: url=$(tb_tgt_lun_add ...) || tb_fail ...
tb_tgt_lun_add() {
	local tid=$1 iqn=$2 lun=$3 size=$4 show existing file
	[ -f "$TB_DIR/tgtd.pid" ] || tb_fail "tb_tgt_lun_add: tgtd not started"
	[[ $tid =~ ^[0-9]+$ ]] && ((tid >= 1)) || tb_fail "tb_tgt_lun_add: bad tid '$tid'"
	[[ $lun =~ ^[0-9]+$ ]] && ((lun >= 1)) || tb_fail "tb_tgt_lun_add: bad lun '$lun' (must be >= 1)"
	[[ $size =~ ^[0-9]+$ ]] && ((size >= 1)) || tb_fail "tb_tgt_lun_add: bad size '$size'"
	show=$(tb_tgtadm --lld iscsi --mode target --op show) || tb_fail "tgtadm show failed"
	existing=$(sed -n "s/^Target $tid: //p" <<<"$show")
	if [ -z "$existing" ]; then
		tb_tgtadm --lld iscsi --op new --mode target --tid "$tid" -T "$iqn" >&2 ||
			tb_fail "tgtadm: cannot create target $tid ($iqn)"
		echo "$tid" >>"$TB_DIR/tgt_tids"
		tb_tgtadm --lld iscsi --op bind --mode target --tid "$tid" -I ALL >&2 ||
			tb_fail "tgtadm: cannot bind target $tid to ALL"
	elif [ "$existing" != "$iqn" ]; then
		tb_fail "tb_tgt_lun_add: target $tid exists with iqn $existing, not $iqn"
	fi
	file="$TB_DIR/tgt-t$tid-l$lun.img"
	truncate -s "${size}M" "$file" || tb_fail "cannot create $file"
	tb_tgtadm --lld iscsi --op new --mode logicalunit --tid "$tid" --lun "$lun" -b "$file" >&2 ||
		tb_fail "tgtadm: cannot add lun $lun to target $tid"
	echo "iscsi://$TB_STORAGE_IP:$TB_ISCSI_PORT/$iqn/$lun"
}

# tb_tgtd_stop: delete every target (--force if needed), then the system
# (tgtd ignores SIGTERM while targets exist), wait <= 5 s, SIGKILL by pid
# as last resort; remove the control socket files. Idempotent.
tb_tgtd_stop() {
	[ -n "$TB_DIR" ] && [ -f "$TB_DIR/tgtd.pid" ] || return 0
	local pid line tid tids
	pid=$(cat "$TB_DIR/tgtd.pid")
	line=$(grep "^$pid " "$TB_DIR/pids" | tail -n 1)
	if tb__alive "$pid"; then
		tids=$( {
			cat "$TB_DIR/tgt_tids" 2>/dev/null
			tb_tgtadm --lld iscsi --mode target --op show 2>/dev/null |
				sed -n 's/^Target \([0-9]*\): .*/\1/p'
		} | sort -un)
		for tid in $tids; do
			tb_tgtadm --lld iscsi --op delete --mode target --tid "$tid" >/dev/null 2>&1 ||
				tb_tgtadm --lld iscsi --op delete --mode target --tid "$tid" --force >/dev/null 2>&1 ||
				tb_log "tgtadm: could not delete target $tid"
		done
		tb_tgtadm --op delete --mode system >/dev/null 2>&1 ||
			tb_log "tgtadm --op delete --mode system failed"
		if ! tb_wait_until 5 eval '! tb__alive '"$pid"; then
			tb_log "tgtd (pid $pid) still alive 5 s after system delete: SIGKILL"
			tb__kill_list 2 "$line"
		else
			tb_log "tgtd (pid $pid) exited ${TB_LAST_WAIT_MS} ms after system delete"
		fi
		tb__reap "$pid"
	fi
	# tgtd leaves its socket and lock file behind; /var/run/tgtd itself is
	# kept (another run's tgtd may be creating its socket there right now)
	rm -f "/var/run/tgtd/socket.$TB_TGT_CTL_PORT" "/var/run/tgtd/socket.$TB_TGT_CTL_PORT.lock"
	mv "$TB_DIR/tgtd.pid" "$TB_DIR/tgtd.pid.stopped"
	return 0
}

# tb_tgtd_restart: a storage controller failure and its recovery. SIGKILL this run's tgtd by
# pid (every session drops at once), start a new tgtd in the same namespace, on the same portal
# and control port, and re-create each target as it was (tid, IQN, initiator ACL) with each
# logical unit (LUN number, backing file): same data, same identity (VPD 0x83 follows tid and
# LUN). Persistent reservations and registrations are gone, as from a target without
# persistence (APTPL). Sets TB_TGTD_DOWN_MS (kill to answering again). Hard error on failure.
tb_tgtd_restart() {
	[ -f "$TB_DIR/tgtd.pid" ] || tb_error "tb_tgtd_restart: tgtd not started"
	local pid conf line tid="" t0 ns
	pid=$(cat "$TB_DIR/tgtd.pid")
	conf=$(tb_tgtadm --lld iscsi --mode target --op show) ||
		tb_error "tb_tgtd_restart: tgtd (pid $pid) does not answer tgtadm"
	t0=$(tb_now_ms)
	kill -KILL "$pid" 2>/dev/null
	tb_wait_until 5 eval '! tb__alive '"$pid" || tb_error "tb_tgtd_restart: tgtd (pid $pid) survived SIGKILL"
	tb__reap "$pid"
	rm -f "/var/run/tgtd/socket.$TB_TGT_CTL_PORT" "/var/run/tgtd/socket.$TB_TGT_CTL_PORT.lock"
	ns=$(tb_ns st)
	tb__start_daemon tgtd tgtd "$TB_DIR/tgtd.log.restarted" \
		ip netns exec "$ns" tgtd -f --iscsi "portal=$TB_STORAGE_IP:$TB_ISCSI_PORT" \
		--control-port "$TB_TGT_CTL_PORT"
	echo "$TB__DAEMON_PID" >"$TB_DIR/tgtd.pid"
	tb_wait_until 10 eval 'tb_tgtadm --lld iscsi --mode system --op show >/dev/null 2>&1' ||
		tb_error "restarted tgtd (pid $TB__DAEMON_PID) does not answer on control port $TB_TGT_CTL_PORT"
	# the LUNs first, the ACLs last: no initiator logs in to a target that lacks LUNs
	local acl=() lun="" in_acl=0 entry
	while IFS= read -r line; do
		case $line in
		"Target "*)
			tid=${line#Target }
			tid=${tid%%:*}
			in_acl=0
			tb_tgtadm --lld iscsi --op new --mode target --tid "$tid" -T "${line#*: }" >&2 ||
				tb_error "tb_tgtd_restart: cannot create target $tid again"
			;;
		*"LUN: "*) lun=${line##*LUN: } ;;
		*"Backing store path: /"*)
			tb_tgtadm --lld iscsi --op new --mode logicalunit --tid "$tid" --lun "$lun" \
				-b "${line#*Backing store path: }" >&2 ||
				tb_error "tb_tgtd_restart: cannot add LUN $lun to target $tid again"
			;;
		*"ACL information:"*) in_acl=1 ;;
		*"Account information:"*) in_acl=0 ;;
		*)
			entry=${line//[[:space:]]/}
			((in_acl)) && [ -n "$entry" ] && acl+=("$tid $entry")
			;;
		esac
	done <<<"$conf"
	for line in "${acl[@]}"; do
		read -r tid entry <<<"$line"
		case $entry in
		iqn.* | eui.* | naa.*) tb_tgtadm --lld iscsi --op bind --mode target --tid "$tid" -Q "$entry" >&2 ;;
		*) tb_tgtadm --lld iscsi --op bind --mode target --tid "$tid" -I "$entry" >&2 ;;
		esac || tb_error "tb_tgtd_restart: cannot bind target $tid to $entry again"
	done
	TB_TGTD_DOWN_MS=$(($(tb_now_ms) - t0))
	tb_log "tgtd restarted: pid $pid killed, pid $TB__DAEMON_PID serves the same targets (down ${TB_TGTD_DOWN_MS} ms)"
}

# ---------------------------------------------------------------------------
# Cleanup and verification
# ---------------------------------------------------------------------------

# tb_cleanup: idempotent teardown, safe after partial setup: deferred
# commands, tgtd, every recorded pid (TERM, 3 s, KILL), the /dev/shm
# blackbox files of our corosyncs, any leftover process inside our
# namespaces, every namespace xtb<ID>*, TB_DIR (kept if TB_KEEP=1).
# Prints a one-line summary on stderr.
tb_cleanup() {
	[ -n "$TB_ID" ] && [ "$TB__CLEANED" = 0 ] && [ "$TB__IN_CLEANUP" = 0 ] || return 0
	TB__IN_CLEANUP=1
	# A signal must not cut the teardown short: note it, act on it after.
	if [ "$TB__IN_EXIT" = 0 ]; then
		TB__PENDING_SIG=""
		trap 'TB__PENDING_SIG=INT' INT
		trap 'TB__PENDING_SIG=TERM' TERM
	fi
	local i nkilled=0 nns=0 ns pids lines=() line extra=0
	for ((i = ${#TB__DEFER[@]} - 1; i >= 0; i--)); do
		eval "${TB__DEFER[i]}" || tb_log "deferred '${TB__DEFER[i]}' failed"
	done
	tb_tgtd_stop
	if [ -f "$TB_DIR/pids" ]; then
		while IFS= read -r line; do lines+=("$line"); done <"$TB_DIR/pids"
		if ((${#lines[@]})); then
			tb__kill_list 3 "${lines[@]}"
			nkilled=$TB__NSIG
		fi
		TB__PID_SNAPSHOT=$(cat "$TB_DIR/pids")
	fi
	local shm
	shm=$(tb__shm_leftovers)
	# shellcheck disable=SC2086
	[ -z "$shm" ] || rm -f $shm
	local all_ns
	all_ns=$( {
		cat "$TB_DIR/netns" 2>/dev/null
		ip netns list 2>/dev/null | awk '{print $1}' | grep "^xtb$TB_ID"
	} | sort -u)
	for ns in $all_ns; do
		ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
		# processes we started inside our namespaces but did not record
		pids=$(ip netns pids "$ns" 2>/dev/null)
		if [ -n "$pids" ]; then
			lines=()
			for i in $pids; do
				line=$(tb__stat "$i") || continue
				lines+=("$i ${line#* } netns-$ns:$(tb__comm "$i")")
			done
			if ((${#lines[@]})); then
				tb__kill_list 3 "${lines[@]}"
				extra=$((extra + TB__NSIG))
			fi
		fi
		ip netns del "$ns" && nns=$((nns + 1))
	done
	local dirmsg="removed"
	if [ "${TB_KEEP:-0}" = 1 ]; then
		dirmsg="kept at $TB_DIR"
	elif [ -n "$TB_DIR" ] && [ -d "$TB_DIR" ]; then
		rm -rf "$TB_DIR"
	fi
	TB__CLEANED=1
	TB__IN_CLEANUP=0
	local straymsg=""
	((extra > 0)) && straymsg=" + $extra stray process(es) found in our namespaces"
	tb_log "cleanup: signalled $nkilled recorded process(es)$straymsg, deleted $nns namespace(s), dir $dirmsg"
	if [ "$TB__IN_EXIT" = 0 ]; then
		trap 'tb__on_signal INT' INT
		trap 'tb__on_signal TERM' TERM
		[ -z "$TB__PENDING_SIG" ] || tb__on_signal "$TB__PENDING_SIG"
	fi
	return 0
}

# tb_assert_clean: return 1 with a message per problem if any namespace
# xtb<ID>*, any recorded pid, any root-ns link named xtb<ID>*, this run's
# tgtd control socket, a dead corosync's /dev/shm/qb-corosync-<pid>-* file
# or (after tb_cleanup, unless TB_KEEP=1) TB_DIR still exists; 0 if clean.
tb_assert_clean() {
	local bad=0 leftover line pid start label
	leftover=$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^xtb$TB_ID")
	if [ -n "$leftover" ]; then
		echo "tb_assert_clean: namespaces left: $(echo "$leftover" | tr "\n" " ")" >&2
		bad=1
	fi
	while read -r pid start label; do
		[ -n "$pid" ] || continue
		if tb__alive "$pid" "$start"; then
			echo "tb_assert_clean: process $label (pid $pid, $(tb__comm "$pid")) still alive" >&2
			bad=1
		fi
	done <<<"$(tb_pids)"
	leftover=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep "^xtb$TB_ID")
	if [ -n "$leftover" ]; then
		echo "tb_assert_clean: links left in the root namespace: $(echo "$leftover" | tr "\n" " ")" >&2
		bad=1
	fi
	leftover=$(tb__shm_leftovers)
	if [ -n "$leftover" ]; then
		echo "tb_assert_clean: corosync shm files left: $(echo "$leftover" | tr "\n" " ")" >&2
		bad=1
	fi
	if [ -n "$TB_TGT_CTL_PORT" ] && [ -e "/var/run/tgtd/socket.$TB_TGT_CTL_PORT" ]; then
		echo "tb_assert_clean: tgtd control socket /var/run/tgtd/socket.$TB_TGT_CTL_PORT left" >&2
		bad=1
	fi
	if [ "${TB_KEEP:-0}" != 1 ] && [ "$TB__CLEANED" = 1 ] && [ -n "$TB_DIR" ] && [ -d "$TB_DIR" ]; then
		echo "tb_assert_clean: work dir $TB_DIR left" >&2
		bad=1
	fi
	return $bad
}
