/*
 * postcopy.h - the post-copy phase of migrate --mode postcopy|hybrid (sim backend).
 *
 * At the switch-over the sender sends the vCPU/device state, page 0 and a bitmap of the pages
 * the destination does not hold yet (POSTCOPY_NEED), then END; the guest resumes on the
 * destination at once. A page it touches before it arrived faults (userfaultfd, MISSING mode,
 * on the guest's memory): the destination asks for it and its next --prepage neighbours
 * (PAGE_REQ) on a connection of its own, the post-copy channel, and the source answers before
 * anything else; meanwhile the source pushes every other page it still holds, the pages the
 * guest dirtied last first, then onward from the last page asked for. The destination installs
 * each page once (UFFDIO_COPY, which wakes the faulting thread) and says DONE when it holds
 * them all; the source's copy is destroyed only then.
 *
 * The risk post-copy takes: from the switch-over to DONE the guest's memory is split between
 * the hosts. If the source or the link dies then, the destination cannot finish the guest: it
 * pauses it for good (a vCPU that touches a missing page stays blocked; nothing ever reads a
 * missing page as zeros) and says so, and the source never resumes its copy after GO. No host
 * runs the guest from stale memory, and never two.
 */
#ifndef XLEXT_PRECOPY_POSTCOPY_H
#define XLEXT_PRECOPY_POSTCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mig_report;
struct mig_params;

#define PC_PREPAGE_DEFAULT 16u  /* neighbours asked for with each faulting page */
#define PC_PREPAGE_MAX     512u /* at most half a PAGE_REQ's worth */
/* the longest a destination waits for a page it asked for, or a source for the destination's
 * next word, before the post-copy phase fails */
#define PC_POSTCOPY_STALL_MS 20000
/* how long the sender waits for the destination to accept the post-copy channel */
#define PC_POSTCOPY_READY_MS 15000

/*
 * Whether this host can receive a post-copy migration: userfaultfd with missing-page faults on
 * shared memory. When not, why in why. XLEXT_NO_USERFAULTFD=1 in the environment answers no
 * (for tests of the refusal).
 */
bool pc_postcopy_supported(char *why, size_t len);

/* --- the sender ---------------------------------------------------------------------------- */

/*
 * Open the post-copy channel (params->extra->open), tag it with JOIN (index) and wait for the
 * destination's POSTCOPY_READY. A refusal is logged with the destination's reason. Returns the
 * connection's fd or a negative error.
 */
int pc_postcopy_connect(const struct mig_params *params, const uint8_t *token, uint32_t index);

/*
 * Serve the post-copy phase on fd from now on, in a thread: requests first, the rest pushed.
 * need (nr_pages bits; taken over) are the pages the destination does not hold; hot (may be
 * NULL; copied) those to push first. mem_fd is duplicated. report->pc holds the phase.
 */
int pc_postcopy_serve(struct mig_report *report, int fd, int mem_fd, uint64_t nr_pages,
                      uint64_t *need, const uint64_t *hot, uint64_t bandwidth_Bps);

/*
 * Hybrid, before the switch-over: wait (at most timeout_ms) for the destination's
 * POSTCOPY_DROPPED on the channel, the answer to a POSTCOPY_STALE record. 0 or an error
 * (logged).
 */
int pc_postcopy_await_dropped(int fd, int timeout_ms);

/* --- the receiver -------------------------------------------------------------------------- */

/* The answer to POSTCOPY_STALE: pages dropped. */
int pc_postcopy_say_dropped(int fd, uint64_t pages);

/*
 * Keep fd and need (nr_pages bits; taken over) as the destination's post-copy phase, in
 * report->pc, until pc_postcopy_attach.
 */
int pc_postcopy_expect(struct mig_report *report, int fd, uint64_t nr_pages, uint64_t *need,
                       unsigned prepage);

/* The pages the destination still needs (its bitmap), NULL without a post-copy phase. */
const uint64_t *pc_postcopy_need(const struct mig_report *report);

/*
 * Start serving the guest's page faults: uffd is registered (missing mode) on the guest's
 * memory, mapped at base in the guest's process (taken over). Each fault asks for its page and
 * the sender's --prepage neighbours. keep_fd (taken over; -1: none) is held open for the
 * phase and closed with it: the backend's connection to the guest, which then knows that its
 * server died when it closes early.
 */
int pc_postcopy_attach(struct mig_report *report, int uffd, uint64_t base, int keep_fd);
/* That connection, or -1. */
int pc_postcopy_keep_fd(const struct mig_report *report);

/* --- either end ----------------------------------------------------------------------------- */

/*
 * Wait for the phase to end: the destination holds every page (0), or it failed (an error,
 * logged). Fills report->postcopy and frees the phase. 0 when there was none.
 */
int pc_postcopy_finish(struct mig_report *report);
/*
 * Wait for the phase's outcome as pc_postcopy_finish does, but leave it running (a receiver's
 * still zero-fills the holes the guest touches, and its keep_fd stays open) until
 * pc_postcopy_finish.
 */
int pc_postcopy_wait(struct mig_report *report);

/* Whether the phase has already failed (without waiting): before GO, the guest can resume at
 * the source instead. */
bool pc_postcopy_failed(const struct mig_report *report);

/* Stop the phase at once (the migration failed before the guest ran on the destination). */
void pc_postcopy_cancel(struct mig_report *report);

#endif
