# shellcheck shell=bash
#
# hanode.sh - whole cluster nodes for Heartbeat and Pacemaker tests, on top of testbed.sh and
# simhost.sh (TESTBED.md, "Pacemaker 2.1.5 and Heartbeat 3.0.6 in namespaces").
#
# Each host i of tb_hosts gets a "holder": one long-lived process in the host's network
# namespace that also holds its own mount and UTS namespace (host name h<i>). Inside it:
#   - a private tmpfs on /run (with /run/xl-ext/sim bound to $TB_DIR/sim<i>, so the sim
#     host's domains are the host's own and simhost.sh still finds and kills them by pid)
#     and on /dev/shm (libqb's IPC files);
#   - /etc/hosts naming every host, and the per-node directories a test asks for, bound over
#     the system's (hn_bind before hn_start: copies made with cp -a, so owners stay);
#   - "reboot guards": pkill, systemctl (/sbin/reboot) and systemd (/sbin/init) are replaced
#     by a script that only records the call in $TB_DIR/h<i>/reboot-requests. Heartbeat's
#     ResourceManager answers a stop that fails 10 times with 'pkill -9 heartbeat' and
#     'reboot -nf': on this machine that would kill every test's heartbeat and reboot it.
# Everything the tests run on a node goes through hn_exec (nsenter into the holder).
# Cleanup is testbed.sh's: the holders are recorded daemons, and whatever else runs in a
# host's network namespace is killed by pid when the namespace is removed.
#
#   hn_bind i src dst           bind src over dst inside node i (before hn_start i)
#   hn_start i                  start node i's holder (after tb_hosts and sim_setup)
#   hn_exec i cmd...            run cmd on node i (network, mount and UTS namespaces)
#   hn_holder i                 the holder's pid
#   hn_root i path              path as seen from outside (through /proc/<holder>/root)
#   hn_reboot_requests          print every recorded reboot / pkill request of the run
#   hn_ns_pids i                pids of the processes in node i's network namespace

declare -ga HN_BINDS 2>/dev/null || true

hn_bind() {
	local i=$1
	HN_BINDS[i]="${HN_BINDS[i]:-}$(printf '%q %q' "$2" "$3")"$'\n'
}

hn_holder() {
	cat "$TB_DIR/h$1/holder.pid"
}

hn_root() {
	echo "/proc/$(hn_holder "$1")/root$2"
}

# The script the holder runs (bash, in the new mount and UTS namespaces).
hn__holder_script() {
	local i=$1 j
	cat <<EOF
set -e
hostname h$i
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/xl-ext/sim /run/resource-agents /run/heartbeat/ccm /run/heartbeat/crm \\
	/run/heartbeat/dopd /run/crm /run/pacemaker /run/corosync
chown hacluster:haclient /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd /run/crm \\
	/run/pacemaker 2>/dev/null || true
chmod 0750 /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd /run/crm
mount --bind $(printf '%q' "$TB_DIR/sim$i") /run/xl-ext/sim
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount --bind $(printf '%q' "$TB_DIR/h$i/hosts") /etc/hosts
EOF
	while read -r src dst; do
		[ -n "$src" ] || continue
		echo "mount --bind $src $dst"
	done <<<"${HN_BINDS[i]:-}"
	for j in /usr/bin/pkill /usr/bin/systemctl /usr/lib/systemd/systemd; do
		[ -e "$j" ] && echo "mount --bind $(printf '%q' "$TB_DIR/h$i/reboot-guard") $j"
	done
	echo "echo ready >$(printf '%q' "$TB_DIR/h$i/holder.ready")"
	echo "exec sleep infinity"
}

hn_start() {
	local i=$1 j dir="$TB_DIR/h$1"
	mkdir -p "$dir"
	{
		echo "127.0.0.1 localhost"
		for ((j = 1; j <= TB_NHOSTS; j++)); do
			echo "$(tb_ip "$j") h$j"
		done
	} >"$dir/hosts"
	cat >"$dir/reboot-guard" <<EOF
#!/bin/sh
# test guard: a cluster manager asked for a reboot or a kill by name; record it, do nothing
echo "\$(date +%T) h$i: \$0 \$*" >>$(printf '%q' "$dir/reboot-requests")
exit 1
EOF
	chmod 755 "$dir/reboot-guard"
	hn__holder_script "$i" >"$dir/holder.sh"
	rm -f "$dir/holder.ready"
	# ip netns exec, unshare and bash all exec: $! stays the holder's pid (recorded at once,
	# with its start time, for testbed.sh's cleanup); a loaded machine may take a while
	ip netns exec "$(tb_ns "$i")" unshare --mount --uts --propagation private \
		bash "$dir/holder.sh" >"$dir/holder.log" 2>&1 </dev/null &
	echo $! >"$dir/holder.pid"
	disown $! 2>/dev/null
	tb__record_pid "$(cat "$dir/holder.pid")" "holder-h$i"
	tb_wait_until 60 eval "test -e '$dir/holder.ready' || ! tb__alive $(cat "$dir/holder.pid")"
	[ -e "$dir/holder.ready" ] && tb__alive "$(cat "$dir/holder.pid")" ||
		tb_error "node h$i: holder not ready (log: $(cat "$dir/holder.log"))"
}

hn_exec() {
	local i=$1
	shift
	nsenter -t "$(hn_holder "$i")" -m -n -u -- "$@"
}

hn_reboot_requests() {
	cat "$TB_DIR"/h*/reboot-requests 2>/dev/null
}

hn_ns_pids() {
	ip netns pids "$(tb_ns "$1")" 2>/dev/null
}

# hn_kill_ns i: SIGKILL every process of node i's network namespace but its holder, by pid
# (what a power cut does to a host's daemons and guests).
hn_kill_ns() {
	local i=$1 holder pid n=0 round
	holder=$(hn_holder "$i")
	for round in 1 2 3; do
		for pid in $(hn_ns_pids "$i"); do
			[ "$pid" = "$holder" ] && continue
			kill -KILL "$pid" 2>/dev/null && n=$((n + 1))
		done
		sleep 0.2
	done
	tb_log "node h$i: $n process(es) killed with SIGKILL"
}
