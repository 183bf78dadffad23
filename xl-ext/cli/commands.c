/*
 * commands.c - xl-ext's command table; help is generated from it.
 */
#include "config.h"

#include "common/cmd.h"
#include "xl-ext/cli/xlext.h"

static const struct cmd_spec xlext_cmds[] = {
    {"create", main_create, "Create a domain from a config file", "[options] <ConfigFile>",
     "  -p                 leave the domain paused after it is created\n"
     "ConfigFile: an xl.cfg file, or (xen backend) a domain's libxl JSON configuration\n"},
    {"list", main_list, "List information about all or some domains", "[options] [Domain]",
     "  -l, --long         also show each domain's type\n"},
    {"destroy", main_destroy, "Terminate a domain immediately", "<Domain>", NULL},
    {"pause", main_pause, "Pause execution of a domain", "<Domain>", NULL},
    {"unpause", main_unpause, "Unpause a paused domain", "<Domain>", NULL},
    {"domid", main_domid, "Convert a domain name to domain id", "<DomainName>", NULL},
    {"domname", main_domname, "Convert a domain id to domain name", "<DomainId>", NULL},
    {"rename", main_rename, "Rename a domain", "<Domain> <NewDomainName>", NULL},
    {"info", main_info, "Get information about the host", "", NULL},
    {"migrate", main_migrate, "Migrate a domain to another host",
     "[options] <Domain> <host>\n"
     "       xl-ext migrate [options] --tcp ADDR:PORT --key FILE <Domain> [<host>]",
     "xl's options:\n"
     "  -C FILE            send FILE instead of the running domain's configuration\n"
     "                     (xen: only name, type, memory, maxmem, vcpus, maxvcpus,\n"
     "                     kernel, ramdisk, cmdline, bootloader, disk and vif are\n"
     "                     converted, other keys are ignored; xl's full parser is in\n"
     "                     xl itself: use 'xl migrate -C' when they matter); the\n"
     "                     disks checked are FILE's, those the destination attaches\n"
     "  -s SSHCMD          run SSHCMD <host> to reach the receiver (default ssh);\n"
     "                     -s \"\" runs <host> itself as the command\n"
     "  -e                 do not daemonize the receiver (passes -e)\n"
     "  -p                 leave the domain paused on the destination\n"
     "  -D                 preserve the domain id\n"
     "  --debug            verify: after stop-and-copy every page is sent again and\n"
     "                     compared page by page on the destination\n"
     "  --live             ignored (compatibility)\n"
     "extensions (xl-ext only; stock xl rejects them):\n"
     "  --dry-run          run only the pre-flight checks (destination reachable and\n"
     "                     speaking the protocol, free memory, no name clash, CPU\n"
     "                     features, same or newer Xen), then stop; nothing changes\n"
     "  --no-preflight     do not ask the destination before the stream: its memory,\n"
     "                     name, CPU, Xen version and LUN identities go unchecked\n"
     "                     (for a -s command that cannot take the extra --preflight\n"
     "                     argument); over --tcp the receiver checks in the handshake\n"
     "  --estimate         sample the domain's dirtying for 1 s with log-dirty mode\n"
     "                     before migrating (switched off afterwards); the sim backend\n"
     "                     also samples its working set and, with --bandwidth, prints\n"
     "                     the predicted rounds, downtime, total time and bytes\n"
     "  --max-downtime-ms MS, --max-total-s S\n"
     "                     refuse before anything moves when the estimate predicts a\n"
     "                     longer downtime or total (imply --estimate; need --bandwidth)\n"
     "  --allow-local-disks\n"
     "                     migrate even with a local writable disk (file, local\n"
     "                     device): it is not moved, a warning names it; without this\n"
     "                     such a domain is refused before anything is suspended\n"
     "  --json             print a JSON report on stdout (with each disk's\n"
     "                     classification: iscsi or local)\n"
     "  --progress, --no-progress\n"
     "                     a line per round on stderr (default: when stderr is a tty)\n"
     "  --reply-timeout S  wait at most S seconds for each answer of the receiver\n"
     "                     after the stream, and while it takes none of the stream\n"
     "                     (default 120); then the domain resumes here if GO was not sent\n"
     "  --tcp ADDR:PORT    connect straight to 'migrate-receive --listen ADDR:PORT'\n"
     "                     instead of running ssh; needs --key\n"
     "  --key FILE         pre-shared key (16-4096 bytes, mode 0600) both ends prove\n"
     "                     they hold before anything is sent\n"
     "pre-copy policy (extensions; sim backend: with xen, libxenguest's fixed policy\n"
     "runs and these are ignored with a warning):\n"
     "  --policy P         pre-copy policy: adaptive (default) or xen (5 iterations or\n"
     "                     fewer than 50 dirty pages, Xen's stock policy)\n"
     "  --max-iters N      at most N live rounds\n"
     "  --downtime-ms MS   switch over once the dirty set fits MS at the measured\n"
     "                     bandwidth (adaptive; default 20), after up to two more\n"
     "                     rounds while each cuts that set fourfold\n"
     "  --bandwidth RATE   cap the live rounds (1Gbit, 500Mbit, 100MiB...); the paused\n"
     "                     stop-and-copy runs at full speed\n"
     "  --max-bytes N      cap the bytes sent (default 3 x memory)\n"
     "  --on-stall MODE    when pre-copy does not converge: abort (guest stays here),\n"
     "                     force (switch over now) or throttle (slow the vCPUs; default)\n"
     "  --compress MODE    none (default), delta (a page sent again goes as its change\n"
     "                     against the copy the destination holds), lz4 or zstd (page\n"
     "                     records compressed), delta+lz4, delta+zstd, or auto (each\n"
     "                     used where this migration measures that it saves more link\n"
     "                     time than it costs CPU time: on a slow link, not on a fast one)\n"
     "  --compress-cache SIZE\n"
     "                     the copies of sent pages delta keeps on this host (256MiB,\n"
     "                     1GiB...; default a quarter of the domain's memory, at most\n"
     "                     512MiB): a page sent again is a delta only when it is there\n"
     "  --streams N        send over N connections (1-16; default 1; needs --tcp): each\n"
     "                     authenticated, pages spread over them by 2 MiB chunks of\n"
     "                     guest memory, a thread per connection at each end (for a\n"
     "                     path faster than one CPU fills)\n"
     "  --mode M           precopy (default); postcopy: the guest resumes on the\n"
     "                     destination at once and its pages follow, each asked for\n"
     "                     when it first touches it, the rest pushed; hybrid: pre-copy\n"
     "                     rounds until the policy would stop or throttle, or a round\n"
     "                     no longer halves the dirty set, then\n"
     "                     post-copy (sim backend, needs --tcp; if the source or the\n"
     "                     link dies before the last page, the guest stays paused on\n"
     "                     the destination for good: restart it from its disks);\n"
     "                     auto: pre-copy when predicted to converge unthrottled, else\n"
     "                     hybrid, else postcopy, the first within --max-downtime-ms\n"
     "                     and --max-total-s (implies --estimate; needs --bandwidth)\n"
     "  --prepage N        post-copy: ask for the N pages after each faulting page\n"
     "                     with it (0-512, default 16)\n"
     "Ctrl-C or SIGTERM before the switch-over cancels: the domain keeps running here\n"
     "(xen: libxl aborts libxenguest's rounds, and a domain already suspended for the\n"
     "final copy is resumed). After the destination said it holds the domain, the\n"
     "switch-over completes.\n"},
    {"estimate", main_estimate, "Predict what migrating a domain to a host would take",
     "[options] <Domain> <host>\n"
     "       xl-ext estimate [options] --bandwidth RATE <Domain>",
     "  -s SSHCMD          as for migrate (default ssh; \"\" runs <host> itself)\n"
     "  --bandwidth RATE   the link's rate, instead of the burst\n"
     "  --burst SIZE       the burst (1MiB-4GiB; default 64MiB)\n"
     "  --policy P         the pre-copy policy to predict: adaptive (default) or xen\n"
     "  --max-downtime-ms MS, --max-total-s S\n"
     "                     the limits the chosen mode must be predicted within\n"
     "The sim backend predicts each mode; xen samples the dirty rate only.\n"
     "\n"
     "It samples the domain's dirtying for 1 s (the hypervisor's dirty tracking;\n"
     "nothing moves), measures the link by sending a burst through the migration's\n"
     "own transport (ssh <host> xl-ext migrate-receive --sink), and prints the\n"
     "predicted live rounds, downtime, total time and bytes of pre-copy, hybrid and\n"
     "post-copy, and the mode 'migrate --mode auto' would choose. Exit 1 when no mode\n"
     "is predicted within the limits (or to converge unthrottled).\n"},
    {"migrate-receive", main_migrate_receive, "Receive a migrating domain (run by migrate)",
     "[options]",
     "xl's options:\n"
     "  -e, -F             do not daemonize (accepted)\n"
     "  -d                 debug: verify the pages the sender resends\n"
     "  -p                 leave the domain paused after it arrives\n"
     "extensions:\n"
     "  --listen ADDR:PORT accept one authenticated 'migrate --tcp' sender there\n"
     "                     (connections that fail authentication are dropped), and\n"
     "                     the extra streams it opens (migrate --streams)\n"
     "  --key FILE         the pre-shared key, as on the sender\n"
     "  --accept-timeout S give up when no sender authenticated within S seconds\n"
     "  --preflight        print this host's facts for the sender's pre-flight checks\n"
     "                     as one JSON line and exit (run by migrate)\n"
     "  --sink             count what stdin carries to its end, print it, and exit\n"
     "                     (the burst of 'xl-ext estimate')\n"},
    {"sim-check", main_sim_check, "Verify a paused simulated domain's memory image",
     "[--status] <Domain>",
     "  -s, --status       print the running domain's counter and state instead\n"},
    {"disk-check", main_disk_check, "Classify a disk spec; print an iSCSI LUN's identity as JSON",
     "[options] <disk-spec|block-device>", storage_disk_check_help},
    {"pr", main_pr, "Persistent reservations, block and journal I/O on an iSCSI LUN",
     "[options] <iscsi-url|disk-spec|block-device> <verb> [args] [<verb> [args]...]",
     storage_pr_help},
    {"help", main_help, "Show the command list or one command's usage", "[command]", NULL},
    {"version", main_version, "Show xl-ext's version and backends", "", NULL},
};

const struct cmd_table xlext_table = {
    .prog = "xl-ext",
    .cmds = xlext_cmds,
    .ncmds = sizeof(xlext_cmds) / sizeof(xlext_cmds[0]),
};
