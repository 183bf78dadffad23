/*
 * dirtylog_mprotect.c - the portable method of the dirty log (see dirtylog.h): the range is
 * write-protected with mprotect and a SIGSEGV handler logs each page's first write.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/dirtylog_int.h"

/* On a VMA-count failure the mprotect fault handler unprotects this many pages at once. */
#define MP_WIDE_PAGES 512

/*
 * The SIGSEGV handler finds the dirtylog of a faulting address in this fixed registry: it can
 * neither take locks nor allocate. A slot's fields are written while it is SLOT_FREE and
 * published by the store of its state; `users` counts handlers looking at the slot, so that
 * close can wait for them before the bitmap is freed.
 *
 * Why a fetch loses no write. A fetch (and enable) does:
 *     seq++ (odd); swap every bitmap word with 0, giving the fetched set S; mprotect the whole
 *     range read-only; seq++ (even)
 * and the handler, for a write fault on page P:
 *     s1 = seq; set bit P; mprotect P writable; s2 = seq; if (s1 != s2 || s1 odd) set bit P again
 * Invariant: whenever P is writable, either bit P is set, or P is in the set S of a fetch that has
 * not yet made P read-only. Enable establishes it (all read-only). The handler keeps it: P
 * becomes writable only after bit P was set; if a fetch swapped that bit out before the handler's
 * mprotect, either that fetch's mprotect comes later (P is read-only again, the write faults
 * anew) or it came earlier, and then the fetch's first seq++ preceded the handler's second read
 * of seq, so the handler sets bit P again, now for the next round. A fetch keeps it: between its
 * swap and its mprotect, the pages it cleared are in its S.
 * Now take a write W to page P. If W lands after the fetch's mprotect reached P, P was
 * read-only then, so P became writable again through the handler: bit P was set after the swap,
 * and a later fetch reports P. If W lands before, P was writable: bit P was set (swapped into S,
 * or set after the swap and so left for the next fetch), or P was already in S. When P is in S
 * the caller reads P after the fetch returned, hence after W. Either way W is not lost.
 */
enum mp_slot_state {
	SLOT_FREE = 0,
	SLOT_OPEN = 1,    /* registered, logging disabled, range writable */
	SLOT_ENABLED = 2, /* logging */
};

struct mp_slot {
	atomic_int state;
	atomic_uint users;
	atomic_ulong seq;
	uintptr_t base;
	uintptr_t end;
	size_t npages;
	_Atomic uint64_t *bits;
};

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
                   ATOMIC_LONG_LOCK_FREE == 2,
               "the SIGSEGV handler needs lock-free atomics");

static struct mp_slot mp_slots[DIRTYLOG_MPROTECT_MAX];
static pthread_mutex_t mp_registry_lock = PTHREAD_MUTEX_INITIALIZER;
/* The SIGSEGV disposition our handler last replaced: faults that are not ours go there. */
static struct sigaction mp_previous_action;

static void mp_set_bits(struct mp_slot *slot, size_t first, size_t count)
{
	for (size_t i = first; i < first + count; i++)
		atomic_fetch_or(&slot->bits[i / WORD_BITS], UINT64_C(1) << (i % WORD_BITS));
}

/*
 * Make pages [*first_r, *first_r + *count_r) writable, starting with the one faulting page. If
 * the kernel refuses (each writable island costs a VMA and vm.max_map_count is finite), widen to
 * an aligned block, then to the whole range; the extra pages are logged dirty first, which is
 * safe (they are merely sent again). Returns false when nothing could be unprotected.
 */
static bool mp_unprotect(struct mp_slot *slot, size_t *first_r, size_t *count_r)
{
	size_t page = *first_r;
	size_t first = page - page % MP_WIDE_PAGES;
	size_t count = MP_WIDE_PAGES;

	if (mprotect((void *)(slot->base + page * PAGE_SIZE_BYTES), PAGE_SIZE_BYTES,
	             PROT_READ | PROT_WRITE) == 0)
		return true;
	if (first + count > slot->npages)
		count = slot->npages - first;
	mp_set_bits(slot, first, count);
	if (mprotect((void *)(slot->base + first * PAGE_SIZE_BYTES), count * PAGE_SIZE_BYTES,
	             PROT_READ | PROT_WRITE) == 0) {
		*first_r = first;
		*count_r = count;
		return true;
	}
	mp_set_bits(slot, 0, slot->npages);
	if (mprotect((void *)slot->base, slot->npages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) ==
	    0) {
		*first_r = 0;
		*count_r = slot->npages;
		return true;
	}
	return false;
}

/* Handle a write fault inside a registered range; false if it cannot be resolved. */
static bool mp_handle_fault(struct mp_slot *slot, int state, uintptr_t addr)
{
	uintptr_t page_start = addr & ~(PAGE_SIZE_BYTES - 1);
	size_t first = (page_start - slot->base) / PAGE_SIZE_BYTES;
	size_t count = 1;
	unsigned long s1, s2;

	if (state != SLOT_ENABLED)
		/* A write that faulted just before disable made the range writable: let it
		 * retry. The range's protection is ours while the dirtylog is open. */
		return mprotect((void *)page_start, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) == 0;

	s1 = atomic_load(&slot->seq);
	mp_set_bits(slot, first, 1);
	if (!mp_unprotect(slot, &first, &count))
		return false;
	s2 = atomic_load(&slot->seq);
	if (s1 != s2 || (s1 & 1))
		mp_set_bits(slot, first, count); /* a fetch may have taken the bit: see above */
	return true;
}

/* Pass a fault that is not ours to whoever handled SIGSEGV before us, or to the default. */
static void mp_chain(int sig, siginfo_t *info, void *ucontext)
{
	const struct sigaction *prev = &mp_previous_action;
	struct sigaction dfl;

	if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
		prev->sa_sigaction(sig, info, ucontext);
		return;
	}
	if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler != SIG_DFL &&
	    prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
		return;
	}
	/* Default action (an ignored SIGSEGV from a fault kills too). A real fault recurs when
	 * the instruction restarts and then kills the process with the genuine siginfo; a
	 * SIGSEGV sent with kill() does not recur, so send it again. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGSEGV, &dfl, NULL);
	if (info->si_code <= 0)
		raise(sig);
}

static void mp_sigsegv_handler(int sig, siginfo_t *info, void *ucontext)
{
	int saved_errno = errno;
	uintptr_t addr = (uintptr_t)info->si_addr;

	/* Only a write to a present, read-only page can be ours; SEGV_MAPERR never is. */
	if (info->si_code == SEGV_ACCERR) {
		for (size_t i = 0; i < DIRTYLOG_MPROTECT_MAX; i++) {
			struct mp_slot *slot = &mp_slots[i];
			int state;
			bool handled = false, mine = false;

			atomic_fetch_add(&slot->users, 1);
			state = atomic_load(&slot->state);
			if (state != SLOT_FREE && addr >= slot->base && addr < slot->end) {
				mine = true;
				handled = mp_handle_fault(slot, state, addr);
			}
			atomic_fetch_sub(&slot->users, 1);
			if (handled) {
				errno = saved_errno;
				return;
			}
			if (mine)
				break;
		}
	}
	errno = saved_errno;
	mp_chain(sig, info, ucontext);
}

/*
 * Make sure our handler is the installed one, keeping whatever was there to pass other faults
 * on to. Checked at open and at every enable: something else (a test harness, a runtime) may
 * have replaced it meanwhile, and a handler that is not ours would take tracked write faults
 * for crashes. Never uninstalled: it passes on every fault that is not ours.
 */
static int mp_ensure_handler_locked(void)
{
	struct sigaction current, ours;

	if (sigaction(SIGSEGV, NULL, &current) < 0)
		return err_from_errno(errno);
	if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == mp_sigsegv_handler)
		return 0;
	mp_previous_action = current;
	memset(&ours, 0, sizeof(ours));
	ours.sa_sigaction = mp_sigsegv_handler;
	ours.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&ours.sa_mask);
	if (sigaction(SIGSEGV, &ours, NULL) < 0)
		return err_from_errno(errno);
	return 0;
}

static int mp_init(struct dirtylog *dl)
{
	uintptr_t end = dl->base + range_bytes(dl);
	struct mp_slot *slot = NULL;
	_Atomic uint64_t *bits;
	int rc;

	bits = calloc(words_for(dl->npages), sizeof(*bits));
	if (!bits)
		return ERR_NOMEM;

	pthread_mutex_lock(&mp_registry_lock);
	for (size_t i = 0; i < DIRTYLOG_MPROTECT_MAX; i++) {
		struct mp_slot *s = &mp_slots[i];

		if (atomic_load(&s->state) == SLOT_FREE) {
			if (!slot)
				slot = s;
			continue;
		}
		if (dl->base < s->end && s->base < end) {
			log_error("dirty log at %p (%zu pages) overlaps the one at %p (%zu pages)",
			          (void *)dl->base, dl->npages, (void *)s->base, s->npages);
			rc = ERR_EXISTS;
			goto out_unlock;
		}
	}
	if (!slot) {
		log_error("dirty log at %p: all %d mprotect dirty-log slots are in use; close one "
		          "or use the uffd method",
		          (void *)dl->base, DIRTYLOG_MPROTECT_MAX);
		rc = ERR_NOSPACE;
		goto out_unlock;
	}
	rc = mp_ensure_handler_locked();
	if (rc < 0) {
		log_error("dirty log at %p: cannot install the SIGSEGV handler: %s",
		          (void *)dl->base, err_str(rc));
		goto out_unlock;
	}
	/* Handlers may still be reading the slot's old fields: wait until none is. */
	while (atomic_load(&slot->users) != 0)
		sched_yield();
	slot->base = dl->base;
	slot->end = end;
	slot->npages = dl->npages;
	slot->bits = bits;
	atomic_store(&slot->seq, 0);
	atomic_store(&slot->state, SLOT_OPEN);
	dl->slot = slot;
	bits = NULL;
	rc = 0;
out_unlock:
	pthread_mutex_unlock(&mp_registry_lock);
	free(bits);
	return rc;
}

/*
 * mprotect the range in chunks of DIRTYLOG_CHUNK_PAGES: each call holds the address space's
 * lock for writing, which every fault of the writers (and our handler's own mprotect) waits
 * for. The argument above holds per page, so splitting the call changes nothing there.
 */
static int mp_protect_range(struct dirtylog *dl, int prot)
{
	const size_t chunk = (size_t)DIRTYLOG_CHUNK_PAGES * PAGE_SIZE_BYTES, len = range_bytes(dl);

	for (size_t off = 0; off < len; off += chunk)
		if (mprotect((void *)(dl->base + off), len - off < chunk ? len - off : chunk,
		             prot) < 0)
			return -1;
	return 0;
}

/* Swap the bitmap out (into out, when given) and write-protect the range: see the argument. */
static int mp_swap_and_protect(struct dirtylog *dl, uint64_t *out, size_t *ndirty_r)
{
	struct mp_slot *slot = dl->slot;
	size_t nwords = words_for(dl->npages);
	size_t ndirty = 0;

	atomic_fetch_add(&slot->seq, 1);
	for (size_t w = 0; w < nwords; w++) {
		uint64_t word = atomic_exchange(&slot->bits[w], 0);

		if (out)
			out[w] = word;
		ndirty += (size_t)__builtin_popcountll(word);
	}
	if (mp_protect_range(dl, PROT_READ) < 0) {
		int err = errno;

		/* Some pages may still be writable with their bits gone: log them all. */
		mp_set_bits(slot, 0, dl->npages);
		atomic_fetch_add(&slot->seq, 1);
		log_error_errno(err, "dirty log at %p (%zu pages): cannot write-protect the range",
		                (void *)dl->base, dl->npages);
		return err_from_errno(err);
	}
	atomic_fetch_add(&slot->seq, 1);
	if (ndirty_r)
		*ndirty_r = ndirty;
	return 0;
}

static int mp_enable(struct dirtylog *dl)
{
	int rc;

	pthread_mutex_lock(&mp_registry_lock);
	rc = mp_ensure_handler_locked();
	pthread_mutex_unlock(&mp_registry_lock);
	if (rc < 0) {
		log_error("dirty log at %p: cannot install the SIGSEGV handler: %s",
		          (void *)dl->base, err_str(rc));
		return rc;
	}
	/* Enabled before protecting: a write faulting in between must be logged, not waved
	 * through (that would leave its page writable and untracked). */
	atomic_store(&dl->slot->state, SLOT_ENABLED);
	return mp_swap_and_protect(dl, NULL, NULL);
}

static int mp_fetch(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r)
{
	return mp_swap_and_protect(dl, bitmap, ndirty_r);
}

/* A bit is only ever cleared by a fetch's swap: each one set now is in the next fetch. */
static int mp_peek(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r)
{
	size_t ndirty = 0;

	for (size_t w = 0; w < words_for(dl->npages); w++) {
		bitmap[w] = atomic_load(&dl->slot->bits[w]);
		ndirty += (size_t)__builtin_popcountll(bitmap[w]);
	}
	*ndirty_r = ndirty;
	return 0;
}

static int mp_disable(struct dirtylog *dl)
{
	if (mp_protect_range(dl, PROT_READ | PROT_WRITE) < 0) {
		int err = errno;

		log_error_errno(err, "dirty log at %p (%zu pages): cannot unprotect the range",
		                (void *)dl->base, dl->npages);
		return err_from_errno(err);
	}
	atomic_store(&dl->slot->state, SLOT_OPEN);
	return 0;
}

static void mp_fini(struct dirtylog *dl)
{
	struct mp_slot *slot = dl->slot;
	_Atomic uint64_t *bits;

	if (!slot)
		return;
	pthread_mutex_lock(&mp_registry_lock);
	atomic_store(&slot->state, SLOT_FREE);
	while (atomic_load(&slot->users) != 0)
		sched_yield();
	bits = slot->bits;
	slot->bits = NULL;
	slot->base = slot->end = 0;
	slot->npages = 0;
	pthread_mutex_unlock(&mp_registry_lock);
	free(bits);
	dl->slot = NULL;
}

const struct dirtylog_ops dirtylog_mprotect_ops = {
    .init = mp_init,
    .enable = mp_enable,
    .fetch = mp_fetch,
    .peek = mp_peek,
    .disable = mp_disable,
    .fini = mp_fini,
};
