# hooks-common.sh - what the LSB script (resources/lsb/xl-ext-domain) and the OCF agent
# (resources/ocf/xl-ext) share, inlined into both when they are built (never sourced at run
# time): reading xl-ext's view of a domain, stopping one, moving one with "xl-ext migrate" or
# "haagent ctl", and taking a guest's shared LUNs over before it is started.
#
# The hooks decide nothing about placement or migration: the target comes from the cluster
# manager (Pacemaker's migrate_target), from haagent's plan ("haagent ctl where") or from the
# configured peer; the migration, its checks and the reservation hand-over are xl-ext's
# (the one orchestrator). What is here is the order of the calls and what each outcome means.
#
# Callers set: XH_NAME (domain), XH_XLEXT, XH_HAAGENT (binaries), XH_BACKEND (may be empty),
# XH_SHUTDOWN_TIMEOUT, XH_MIGRATE_TIMEOUT, XH_TRANSPORT (ssh|tcp), XH_SSH_COMMAND,
# XH_MIG_KEY, XH_MIG_PORT, XH_DOWNTIME_MS, XH_BANDWIDTH, XH_HAAGENT_SOCKET, XH_TMP (a private
# directory), and define xh_log LEVEL MESSAGE (LEVEL: err, warn, info, debug).
# Every function returns 0 for success; none exits.

# xh_xl args...: xl-ext with the configured backend.
xh_xl() {
	if [ -n "$XH_BACKEND" ]; then
		"$XH_XLEXT" -b "$XH_BACKEND" "$@"
	else
		"$XH_XLEXT" "$@"
	fi
}

# xh_where_here: how XH_NAME is present on this host, from one "xl-ext list": running,
# paused (still ours), incoming (name--incoming: arriving by migration), migratedaway
# (name--migratedaway: handed to another host, not destroyed yet), crashed, dying, none.
# Returns 1 (and prints "unknown") when xl-ext cannot list the domains.
xh_where_here() {
	_xh_list=$(xh_xl list 2>"$XH_TMP/list.err") || {
		xh_log err "xl-ext list failed: $(tail -n 1 "$XH_TMP/list.err")"
		echo unknown
		return 1
	}
	printf '%s\n' "$_xh_list" | awk -v n="$XH_NAME" '
		NR == 1 { next }
		$1 == n { s = $5; if (s ~ /[ds]/) st = "dying"; else if (s ~ /c/) st = "crashed";
			else if (s ~ /p/) st = "paused"; else st = "running" }
		$1 == n "--incoming" { inc = 1 }
		$1 == n "--migratedaway" { away = 1 }
		END {
			if (st != "") print st
			else if (inc) print "incoming"
			else if (away) print "migratedaway"
			else print "none"
		}'
}

# xh_wait_state seconds state...: wait (polling every 0.2 s) until xh_where_here prints one
# of the states; prints the last state seen; 1 on timeout.
xh_wait_state() {
	# a deadline on the wall clock: each look (xl-ext list) takes its own time, seconds on a
	# loaded dom0, so counting polls would wait many times longer than asked
	_xh_deadline=$(($(xh_now_ms) + $1 * 1000))
	shift
	while :; do
		_xh_st=$(xh_where_here)
		for _xh_want in "$@"; do
			if [ "$_xh_st" = "$_xh_want" ]; then
				echo "$_xh_st"
				return 0
			fi
		done
		[ "$(xh_now_ms)" -ge "$_xh_deadline" ] && break
		sleep 0.2
	done
	echo "$_xh_st"
	return 1
}

# xh_now_ms: wall clock in ms (for the durations the hooks log).
xh_now_ms() {
	date +%s%3N
}

# xh_shutdown: stop XH_NAME here the classic way: a clean shutdown, and destroy once
# XH_SHUTDOWN_TIMEOUT seconds have passed (at once if the backend has no clean shutdown). A
# half-received copy (name--incoming) that does not settle is destroyed; a copy already
# handed away (name--migratedaway) is never touched (it may be the only one). 0 once no copy
# of the guest runs here.
xh_shutdown() {
	_xh_st=$(xh_where_here) || return 1
	case $_xh_st in
	none) return 0 ;;
	migratedaway)
		_xh_st=$(xh_wait_state "$XH_SHUTDOWN_TIMEOUT" none running paused) || {
			xh_log err "$XH_NAME--migratedaway is still here after ${XH_SHUTDOWN_TIMEOUT}s: a migration to another host did not finish; it is left alone (the other host may run it): check both hosts, then destroy one copy"
			return 1
		}
		[ "$_xh_st" = none ] && return 0
		;;
	incoming)
		_xh_st=$(xh_wait_state "$XH_SHUTDOWN_TIMEOUT" none running paused) || {
			xh_log warn "$XH_NAME--incoming did not settle in ${XH_SHUTDOWN_TIMEOUT}s: destroying the half-received copy"
			xh_xl destroy "$XH_NAME--incoming" 2>>"$XH_TMP/xl.err"
			xh_wait_state 30 none running paused >/dev/null
			_xh_st=$(xh_where_here)
			[ "$_xh_st" = none ] && return 0
		}
		[ "$_xh_st" = none ] && return 0
		;;
	esac
	_xh_t0=$(xh_now_ms)
	if [ "$XH_SHUTDOWN_TIMEOUT" -gt 0 ] && [ "$_xh_st" != crashed ] && [ "$_xh_st" != dying ]; then
		if xh_xl shutdown "$XH_NAME" >"$XH_TMP/shutdown.out" 2>&1; then
			xh_log info "$XH_NAME: shutdown requested, waiting up to ${XH_SHUTDOWN_TIMEOUT}s"
			if xh_wait_state "$XH_SHUTDOWN_TIMEOUT" none >/dev/null; then
				xh_log info "$XH_NAME: shut down in $(($(xh_now_ms) - _xh_t0)) ms"
				return 0
			fi
			xh_log warn "$XH_NAME: still running ${XH_SHUTDOWN_TIMEOUT}s after the shutdown request: destroying it"
		elif grep -q "unknown command" "$XH_TMP/shutdown.out"; then
			xh_log info "$XH_NAME: backend ${XH_BACKEND:-default} has no clean shutdown: destroying it"
		else
			xh_log warn "$XH_NAME: shutdown failed ($(tail -n 1 "$XH_TMP/shutdown.out")): destroying it"
		fi
	fi
	for _xh_try in 1 2 3 4 5; do
		xh_xl destroy "$XH_NAME" >"$XH_TMP/destroy.out" 2>&1
		if xh_wait_state 10 none >/dev/null; then
			xh_log info "$XH_NAME: stopped (destroyed) in $(($(xh_now_ms) - _xh_t0)) ms"
			return 0
		fi
		xh_log warn "$XH_NAME: destroy attempt $_xh_try: $(tail -n 1 "$XH_TMP/destroy.out")"
	done
	xh_log err "$XH_NAME: could not be destroyed; it still runs here"
	return 1
}

# xh_json_num file key: a number from xl-ext's --json report (one decimal).
xh_json_num() {
	sed -n "s/.*\"$2\": *\([-0-9.e+]*\).*/\1/p" "$1" | head -n 1 |
		awk '{ printf "%.1f\n", $1 }'
}

# xh_migrate target: live-migrate XH_NAME to target with "xl-ext migrate" over the configured
# transport (ssh: "<ssh_command> target xl-ext migrate-receive"; tcp: target:port with the
# pre-shared key, to a receiver listening there: haagent's, or "xl-ext migrate-receive
# --listen"), bounded by XH_MIGRATE_TIMEOUT (SIGTERM before the switch-over cancels it: the
# guest keeps running here). Logs the outcome with the report's downtime. Returns xl-ext's
# status (0: the target runs the guest).
xh_migrate() {
	_xh_target=$1
	set -- migrate --json
	case $XH_TRANSPORT in
	tcp) set -- "$@" --tcp "$_xh_target:$XH_MIG_PORT" --key "$XH_MIG_KEY" ;;
	*) [ -n "$XH_SSH_COMMAND" ] && set -- "$@" -s "$XH_SSH_COMMAND" ;;
	esac
	[ -n "$XH_DOWNTIME_MS" ] && set -- "$@" --downtime-ms "$XH_DOWNTIME_MS"
	[ -n "$XH_BANDWIDTH" ] && set -- "$@" --bandwidth "$XH_BANDWIDTH"
	set -- "$@" "$XH_NAME" "$_xh_target"
	xh_log info "$XH_NAME: live-migrating to $_xh_target over $XH_TRANSPORT"
	_xh_t0=$(xh_now_ms)
	if [ -n "$XH_BACKEND" ]; then
		timeout -s TERM "$XH_MIGRATE_TIMEOUT" "$XH_XLEXT" -b "$XH_BACKEND" "$@" \
			>"$XH_TMP/migrate.json" 2>"$XH_TMP/migrate.err"
	else
		timeout -s TERM "$XH_MIGRATE_TIMEOUT" "$XH_XLEXT" "$@" \
			>"$XH_TMP/migrate.json" 2>"$XH_TMP/migrate.err"
	fi
	_xh_rc=$?
	_xh_ms=$(($(xh_now_ms) - _xh_t0))
	if [ "$_xh_rc" -eq 0 ]; then
		xh_log info "$XH_NAME: live-migrated to $_xh_target in $_xh_ms ms, downtime $(xh_json_num "$XH_TMP/migrate.json" downtime_ms) ms"
		return 0
	fi
	[ "$_xh_rc" -eq 124 ] && echo "timed out after ${XH_MIGRATE_TIMEOUT}s" >>"$XH_TMP/migrate.err"
	xh_log err "$XH_NAME: live migration to $_xh_target failed after $_xh_ms ms: $(grep -v '^ *$' "$XH_TMP/migrate.err" | tail -n 1)"
	return "$_xh_rc"
}

# xh_haagent args...: "haagent ctl args" on the local daemon.
xh_haagent() {
	if [ -n "$XH_HAAGENT_SOCKET" ]; then
		"$XH_HAAGENT" ctl "$@" --socket "$XH_HAAGENT_SOCKET"
	else
		"$XH_HAAGENT" ctl "$@"
	fi
}

# xh_haagent_up: the local haagent answers (and is in sync).
xh_haagent_up() {
	[ -x "$XH_HAAGENT" ] || return 1
	xh_haagent status 2>/dev/null | grep -q "in sync"
}

# xh_field line key: the value of key=value in one "haagent ctl" line (reason: the rest).
xh_field() {
	if [ "$2" = reason ]; then
		printf '%s\n' "$1" | sed -n 's/.* reason=//p'
	else
		printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
	fi
}

# xh_haagent_move: hand XH_NAME to haagent: if it is already moving (its node is failing or
# draining), wait; otherwise ask for a live migration to the node haagent's plan names. 0
# once the guest runs elsewhere (haagent's view) and no copy of it is left here; 1 (with the
# reason logged) when haagent has no target, refuses, or the migration failed or timed out.
xh_haagent_move() {
	_xh_w=$(xh_haagent where "$XH_NAME" 2>"$XH_TMP/ha.err") || {
		xh_log err "$XH_NAME: haagent: $(tail -n 1 "$XH_TMP/ha.err")"
		return 1
	}
	_xh_owner=$(xh_field "$_xh_w" owner)
	_xh_target=$(xh_field "$_xh_w" target)
	_xh_fail0=$(xh_field "$_xh_w" failures)
	if [ "$(xh_field "$_xh_w" state)" != migrating ]; then
		if [ "$_xh_target" = - ] || [ -z "$_xh_target" ]; then
			xh_log err "$XH_NAME: haagent has no node to take it: $(xh_field "$_xh_w" reason)"
			return 1
		fi
		if ! xh_haagent migrate "$XH_NAME" "$_xh_target" >"$XH_TMP/ha.out" 2>"$XH_TMP/ha.err"; then
			# refused because it started moving meanwhile: wait for that move instead
			if ! grep -q "is being moved" "$XH_TMP/ha.err"; then
				xh_log err "$XH_NAME: haagent refused the migration to $_xh_target: $(tail -n 1 "$XH_TMP/ha.err")"
				return 1
			fi
		fi
		xh_log info "$XH_NAME: haagent live-migrates it from $_xh_owner to $_xh_target"
	else
		xh_log info "$XH_NAME: haagent is already moving it from $_xh_owner to $_xh_target"
	fi
	_xh_t0=$(xh_now_ms)
	_xh_seen=0
	# wall-clock bounds (each look takes its own time): the whole move, and 30 s for haagent
	# to begin it
	while [ "$(($(xh_now_ms) - _xh_t0))" -lt "$((XH_MIGRATE_TIMEOUT * 1000))" ]; do
		_xh_w=$(xh_haagent where "$XH_NAME" 2>/dev/null)
		_xh_st=$(xh_where_here)
		[ "$(xh_field "$_xh_w" state)" = migrating ] && _xh_seen=1
		if [ "$_xh_st" = none ] && [ "$(xh_field "$_xh_w" owner)" != "$_xh_owner" ] &&
			[ "$(xh_field "$_xh_w" state)" = running ]; then
			xh_log info "$XH_NAME: haagent moved it to $(xh_field "$_xh_w" owner) in $(($(xh_now_ms) - _xh_t0)) ms"
			return 0
		fi
		if [ "$(xh_field "$_xh_w" state)" = running ] &&
			[ "$(xh_field "$_xh_w" owner)" = "$_xh_owner" ] &&
			[ "$(xh_field "$_xh_w" failures)" != "$_xh_fail0" ] &&
			{ [ "$_xh_st" = running ] || [ "$_xh_st" = paused ]; }; then
			xh_log err "$XH_NAME: haagent's live migration failed (attempt $(xh_field "$_xh_w" failures)); it still runs here"
			return 1
		fi
		[ "$_xh_seen" = 0 ] && [ "$(($(xh_now_ms) - _xh_t0))" -gt 30000 ] &&
			[ "$(xh_field "$_xh_w" state)" = running ] && {
			xh_log err "$XH_NAME: haagent did not start the migration within 30 s: $(xh_field "$_xh_w" reason)"
			return 1
		}
		sleep 0.2
	done
	xh_log err "$XH_NAME: haagent did not move it within ${XH_MIGRATE_TIMEOUT}s"
	return 1
}

# xh_cfg_fields file: "name<TAB>value" and "disk<TAB>spec" lines read from an xl.cfg (parsed,
# never sourced: name = "..." and the quoted strings of disk = [ ... ], which may span lines).
xh_cfg_fields() {
	awk -v q="'" '
		{ sub(/#.*/, ""); buf = buf " " $0 }
		END {
			str = "(\"[^\"]*\"|" q "[^" q "]*" q ")"
			if (match(buf, "[ \t;]name[ \t]*=[ \t]*" str)) {
				s = substr(buf, RSTART, RLENGTH)
				sub(/^[^=]*=[ \t]*/, "", s)
				print "name\t" substr(s, 2, length(s) - 2)
			}
			if (match(buf, "[ \t;]disk[ \t]*=[ \t]*\\[[^]]*\\]")) {
				l = substr(buf, RSTART, RLENGTH)
				sub(/^[^[]*\[/, "", l)
				while (match(l, str)) {
					print "disk\t" substr(l, RSTART + 1, RLENGTH - 2)
					l = substr(l, RSTART + RLENGTH)
				}
			}
		}' "$1"
}

# xh_takeover cfg: before XH_NAME is created here, make sure the writable iSCSI LUNs of its
# xl.cfg are not held by another host: a foreign key still registered or holding the
# reservation (a host that died, or that is cut off and may still write) is preempted with
# "xl-ext pr SPEC fence KEY" (this host's key then holds the LUN). Nothing to do on a LUN that
# is free or already this host's. 1 when a LUN cannot be read or fenced.
xh_takeover() {
	xh_cfg_fields "$1" | sed -n 's/^disk\t//p' >"$XH_TMP/disks"
	while IFS= read -r _xh_spec; do
		[ -n "$_xh_spec" ] || continue
		_xh_class=$(xh_xl disk-check -n "$_xh_spec" 2>/dev/null) || continue
		case $_xh_class in *'"kind":"iscsi"'*) ;; *) continue ;; esac
		case $_xh_class in *'"readonly":true'*) continue ;; esac
		_xh_show=$(xh_xl pr "$_xh_spec" show 2>"$XH_TMP/pr.err") || {
			xh_log err "$XH_NAME: cannot read the reservation of its disk '$_xh_spec': $(tail -n 1 "$XH_TMP/pr.err")"
			return 1
		}
		_xh_holder=$(printf '%s\n' "$_xh_show" | sed -n 's/^reservation: holder \(0x[0-9a-f]*\)\((self)\)\{0,1\} .*/\1\2/p')
		_xh_foreign=$(printf '%s\n' "$_xh_show" | sed -n 's/^keys://p' | tr ' ' '\n' |
			grep '^0x[0-9a-f]*$' | sort -u)
		if [ -z "$_xh_foreign" ]; then
			case $_xh_holder in
			"") xh_log info "$XH_NAME: its LUN '$_xh_spec' is free" ;;
			*"(self)") xh_log info "$XH_NAME: its LUN '$_xh_spec' is already this host's" ;;
			esac
			continue
		fi
		if [ "$XH_TAKEOVER" != yes ]; then
			xh_log err "$XH_NAME: its LUN '$_xh_spec' is held by key(s) $(printf '%s' "$_xh_foreign" | tr '\n' ' ')and takeover is off: not started"
			return 1
		fi
		for _xh_key in $_xh_foreign; do
			if xh_xl pr "$_xh_spec" fence "$_xh_key" >"$XH_TMP/pr.out" 2>&1; then
				xh_log warn "$XH_NAME: LUN '$_xh_spec' taken over: key $_xh_key (holder: ${_xh_holder:-none}) preempted, its host can no longer write it"
			else
				xh_log err "$XH_NAME: cannot take LUN '$_xh_spec' over from key $_xh_key: $(tail -n 1 "$XH_TMP/pr.out")"
				return 1
			fi
		done
	done <"$XH_TMP/disks"
	return 0
}

# xh_create cfg timeout: "xl-ext create cfg", then wait until the guest runs. 0 when it does.
xh_create() {
	_xh_t0=$(xh_now_ms)
	if ! xh_xl create "$1" >"$XH_TMP/create.out" 2>&1; then
		xh_log err "$XH_NAME: xl-ext create $1 failed: $(grep -v '^ *$' "$XH_TMP/create.out" | tail -n 1)"
		return 1
	fi
	if ! xh_wait_state "$2" running >/dev/null; then
		xh_log err "$XH_NAME: created but not running after $2 s"
		return 1
	fi
	xh_log info "$XH_NAME: started (cold boot) in $(($(xh_now_ms) - _xh_t0)) ms"
	return 0
}
