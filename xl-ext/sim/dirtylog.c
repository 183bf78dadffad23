/*
 * dirtylog.c - fetch-and-clear dirty-page logging over a memfd mapping (see dirtylog.h): the
 * public calls and the choice of method. The methods sit behind a small vtable
 * (dirtylog_int.h): userfaultfd asynchronous write-protection read back with PAGEMAP_SCAN
 * (dirtylog_uffd.c), and a portable fallback that write-protects the range with mprotect and
 * logs write faults in a SIGSEGV handler (dirtylog_mprotect.c).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/dirtylog_int.h"

void dirtylog_set_bits(uint64_t *bitmap, size_t first, size_t count)
{
	size_t end = first + count;

	while (first < end && first % WORD_BITS != 0) {
		bitmap[first / WORD_BITS] |= UINT64_C(1) << (first % WORD_BITS);
		first++;
	}
	while (first + WORD_BITS <= end) {
		bitmap[first / WORD_BITS] = ~UINT64_C(0);
		first += WORD_BITS;
	}
	while (first < end) {
		bitmap[first / WORD_BITS] |= UINT64_C(1) << (first % WORD_BITS);
		first++;
	}
}

const char *dirtylog_method_name(enum dirtylog_method m)
{
	switch (m) {
	case DIRTYLOG_AUTO:
		return "auto";
	case DIRTYLOG_UFFD:
		return "uffd";
	case DIRTYLOG_MPROTECT:
		return "mprotect";
	}
	return "unknown";
}

int dirtylog_probe(enum dirtylog_method m)
{
	if (sysconf(_SC_PAGESIZE) != (long)DIRTYLOG_PAGE_SIZE && m != DIRTYLOG_AUTO)
		return ERR_NOTSUP;
	switch (m) {
	case DIRTYLOG_AUTO:
	case DIRTYLOG_MPROTECT:
		return 0;
	case DIRTYLOG_UFFD:
		return dirtylog_uffd_probe();
	}
	return ERR_INVAL;
}

/* Resolve DIRTYLOG_AUTO: the environment first, then what the kernel supports. */
static int dirtylog_choose(enum dirtylog_method *method_r)
{
	const char *env = getenv("XLEXT_DIRTYLOG");

	if (*method_r != DIRTYLOG_AUTO)
		return 0;
	if (env && strcmp(env, "uffd") == 0) {
		*method_r = DIRTYLOG_UFFD;
		return 0;
	}
	if (env && strcmp(env, "mprotect") == 0) {
		*method_r = DIRTYLOG_MPROTECT;
		return 0;
	}
	if (env && *env && strcmp(env, "auto") != 0) {
		log_error("XLEXT_DIRTYLOG=%s: unknown dirty-log method (use uffd, mprotect or "
		          "auto)",
		          env);
		return ERR_INVAL;
	}
	*method_r = dirtylog_probe(DIRTYLOG_UFFD) == 0 ? DIRTYLOG_UFFD : DIRTYLOG_MPROTECT;
	return 0;
}

int dirtylog_open(struct dirtylog **dl_r, void *base, size_t npages, enum dirtylog_method method)
{
	struct dirtylog *dl = NULL;
	int rc;

	if (!dl_r || !base || npages == 0 || (uintptr_t)base % PAGE_SIZE_BYTES != 0 ||
	    npages > (UINTPTR_MAX - (uintptr_t)base) / PAGE_SIZE_BYTES ||
	    (method != DIRTYLOG_AUTO && method != DIRTYLOG_UFFD && method != DIRTYLOG_MPROTECT)) {
		log_error("dirty log at %p (%zu pages): need a page-aligned, non-empty range and a "
		          "known method",
		          base, npages);
		return ERR_INVAL;
	}
	if (sysconf(_SC_PAGESIZE) != (long)DIRTYLOG_PAGE_SIZE) {
		log_error("dirty log at %p: only %u-byte pages are supported", base,
		          DIRTYLOG_PAGE_SIZE);
		return ERR_NOTSUP;
	}
	rc = dirtylog_choose(&method);
	if (rc < 0)
		return rc;
	/* The range must be mapped throughout and writable (the kernel would accept holes for
	 * uffd and silently track nothing there). Its protection is ours from now on. */
	if (mprotect(base, npages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) < 0) {
		log_error_errno(errno, "dirty log at %p (%zu pages): the range is not %s", base,
		                npages, errno == ENOMEM ? "entirely mapped" : "a writable mapping");
		return errno == ENOMEM ? ERR_INVAL : err_from_errno(errno);
	}

	dl = calloc(1, sizeof(*dl));
	if (!dl)
		return ERR_NOMEM;
	dl->method = method;
	dl->ops = method == DIRTYLOG_UFFD ? &dirtylog_uffd_ops : &dirtylog_mprotect_ops;
	dl->base = (uintptr_t)base;
	dl->npages = npages;
	dl->uffd = -1;
	dl->pagemap_fd = -1;
	pthread_mutex_init(&dl->lock, NULL);

	rc = dl->ops->init(dl);
	if (rc < 0)
		goto out;
	log_debug("dirty log at %p (%zu pages) uses %s", base, npages,
	          dirtylog_method_name(method));
	*dl_r = dl;
	dl = NULL;
out:
	if (dl) {
		dl->ops->fini(dl);
		pthread_mutex_destroy(&dl->lock);
		free(dl);
	}
	return rc;
}

int dirtylog_enable(struct dirtylog *dl)
{
	int rc;

	if (!dl)
		return ERR_INVAL;
	pthread_mutex_lock(&dl->lock);
	rc = dl->ops->enable(dl);
	if (rc == 0)
		dl->enabled = true;
	else
		(void)dl->ops->disable(dl); /* back to a writable, untracked range */
	pthread_mutex_unlock(&dl->lock);
	return rc;
}

/*
 * A fetch (clean) or a peek into bitmap. When the method fails, a fetch reports every page (what
 * it cleaned cannot be told apart), a peek none (a page wrongly named would be left unsent).
 */
static int harvest(struct dirtylog *dl, uint64_t *bitmap, size_t nbits, size_t *ndirty_r,
                   bool clean)
{
	size_t ndirty = 0;
	bool off;
	int rc = ERR_BUSY;

	if (!dl || !bitmap || nbits < dl->npages)
		return ERR_INVAL;
	memset(bitmap, 0, words_for(nbits) * sizeof(*bitmap));
	pthread_mutex_lock(&dl->lock);
	off = !dl->enabled;
	if (!off)
		rc = clean ? dl->ops->fetch(dl, bitmap, &ndirty)
		           : dl->ops->peek(dl, bitmap, &ndirty);
	if (rc < 0 && !off) {
		memset(bitmap, 0, words_for(nbits) * sizeof(*bitmap));
		if (clean)
			dirtylog_set_bits(bitmap, 0, dl->npages);
		ndirty = clean ? dl->npages : 0;
	}
	pthread_mutex_unlock(&dl->lock);
	if (off)
		log_error("dirty log at %p: %s while logging is disabled", (void *)dl->base,
		          clean ? "fetch" : "peek");
	if (ndirty_r)
		*ndirty_r = ndirty;
	return rc;
}

int dirtylog_fetch_and_clear(struct dirtylog *dl, uint64_t *bitmap, size_t nbits, size_t *ndirty_r)
{
	return harvest(dl, bitmap, nbits, ndirty_r, true);
}

int dirtylog_peek(struct dirtylog *dl, uint64_t *bitmap, size_t nbits, size_t *ndirty_r)
{
	return harvest(dl, bitmap, nbits, ndirty_r, false);
}

int dirtylog_disable(struct dirtylog *dl)
{
	int rc = 0;

	if (!dl)
		return ERR_INVAL;
	pthread_mutex_lock(&dl->lock);
	if (dl->enabled) {
		rc = dl->ops->disable(dl);
		if (rc == 0)
			dl->enabled = false;
	}
	pthread_mutex_unlock(&dl->lock);
	return rc;
}

void dirtylog_close(struct dirtylog *dl)
{
	if (!dl)
		return;
	(void)dirtylog_disable(dl);
	dl->ops->fini(dl);
	pthread_mutex_destroy(&dl->lock);
	free(dl);
}

enum dirtylog_method dirtylog_get_method(const struct dirtylog *dl)
{
	return dl->method;
}
