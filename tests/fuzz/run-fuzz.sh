#!/bin/bash
# run-fuzz.sh BUILDDIR CORPUS HARNESS... - run each libFuzzer harness for $FUZZ_SECONDS from a
# copy of its corpus (the tree's corpus is not written to), in a network namespace of its own,
# and print a table: executions, edges covered (cov), features (ft), corpus size, crashes.
# A crash leaves its input in $FUZZ_OUT (default a temporary directory) and fails the run:
# fix it, then add the input to tests/fuzz/corpus/<harness>/ as a regression test.
set -u
build=$1
corpus=$2
shift 2
secs=${FUZZ_SECONDS:-30}
out=${FUZZ_OUT:-$(mktemp -d /tmp/xl-ext-fuzz.XXXXXX)}
isolate=()
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
	isolate=(unshare -n)
else
	echo "run-fuzz: not root: the harnesses run without a network namespace of their own" >&2
fi
# leaks inside libraries we call, documented there
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(dirname "$0")/lsan.supp:print_suppressions=0}
rc=0
printf '%-18s %10s %8s %8s %7s %8s  %s\n' harness execs cov ft corpus crashes result
for h in "$@"; do
	work=$out/$h
	mkdir -p "$work/corpus" "$work/crashes"
	cp "$corpus/$h"/* "$work/corpus/" 2>/dev/null
	"${isolate[@]}" "$build/tests/fuzz/$h" -max_total_time="$secs" -max_len=65536 \
		-timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/crashes/" "$work/corpus" >"$work/log" 2>&1
	status=$?
	last=$(grep -E '^#[0-9]+' "$work/log" | tail -1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	ncorp=$(find "$work/corpus" -type f | wc -l)
	ncrash=$(find "$work/crashes" -type f | wc -l)
	result=ok
	if [ "$status" != 0 ] || [ "$ncrash" != 0 ]; then
		result="CRASH (status $status): $work/log, inputs in $work/crashes/"
		rc=1
	fi
	printf '%-18s %10s %8s %8s %7s %8s  %s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$ncorp" \
		"$ncrash" "$result"
done
[ "$rc" = 0 ] && [ -z "${FUZZ_OUT:-}" ] && rm -rf "$out"
exit $rc
