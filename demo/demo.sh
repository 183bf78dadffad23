#!/bin/bash
# demo.sh - the simulated-cluster demonstration (scripts/quickstart demo runs it).
#
# Builds a small cluster on this machine out of network namespaces: three dom0 hosts on a
# private bridge, corosync on each (quorum, then a node killed and seen leaving), a tgtd iSCSI
# target with a shared LUN that every host reads, and xl-ext's view of each simulated host.
# Everything is removed on exit.
set -u
build=${1:?usage: demo.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
XLEXT=$build/xl-ext/xl-ext
# shellcheck source=../tests/integration/lib/testbed.sh
. "$here/../tests/integration/lib/testbed.sh"

tb_init
echo "== three simulated dom0 hosts on a private bridge"
tb_hosts 3
for i in 1 2 3; do
	echo "   host $i: namespace $(tb_ns "$i"), address $(tb_ip "$i")"
done

echo "== corosync on every host"
tb_corosync_start
tb_corosync_wait_members 1 3 30 || tb_fail "cluster did not form"
tb_exec 1 corosync-quorumtool -s | sed -n '/Quorate/p;/Total votes/p' | sed 's/^/   /'

echo "== shared iSCSI storage"
tb_tgtd_start
url=$(tb_tgt_lun_add 1 "iqn.2026-11.org.xl-ext:demo$TB_ID" 1 64)
for i in 1 2 3; do
	desig=$(tb_exec "$i" timeout 20 iscsi-inq -e 1 -c 131 "$url" 2>&1 | grep -m1 Designator)
	echo "   host $i sees $url: ${desig:-?}"
done

echo "== xl-ext on each simulated host"
for i in 1 2 3; do
	mkdir -p "$TB_DIR/sim$i"
	tb_exec "$i" env XLEXT_SIM_ROOT="$TB_DIR/sim$i" "$XLEXT" -b sim info | sed "s/^/   host $i: /" | head -3
done

echo "== node 3 fails"
tb_corosync_kill 3
tb_corosync_wait_members 1 2 20 && echo "   host 1 sees 2 members and stays quorate"
echo "== done; tearing the cluster down"
