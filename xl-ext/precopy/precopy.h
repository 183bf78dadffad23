/*
 * precopy.h - the pre-copy engine: live rounds, stop-and-copy, and the receiving side.
 *
 * The sender reads guest memory from its file (pread: reading a never-written page allocates
 * nothing) and asks its source (a small vtable the sim backend implements over the domain's
 * control socket) for dirty bitmaps, throttling and the final suspend. Round 0 sends every
 * non-zero page of the data the file holds (holes are zero pages, skipped unread); each later
 * round sends the pages dirtied meanwhile; the policy (policy.h) decides when to stop and copy.
 * A live round leaves out the due pages a peek at the dirty log says were written again (the
 * next round sends them), and round 0 puts off the pieces of memory the guest writes to its end
 * (precopy.c's skip).
 * A bandwidth cap (token bucket) governs the live rounds only; stop-and-copy runs at full
 * speed. Zero pages are never sent as data. The receiver writes pages into the new domain's
 * memory file (pwrite: no page fault, only pages with data allocated), bounds-checking every
 * record (stream.h).
 */
#ifndef XLEXT_PRECOPY_H
#define XLEXT_PRECOPY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "xl-ext/core/hv.h"
#include "xl-ext/precopy/policy.h"

#define MIG_MAX_ROUNDS 64

/*
 * migrate --streams: the connections of a migration besides the first, each authenticated
 * like it. Pages go down the stream of their chunk of guest memory (stream_of_pfn), so a page
 * sent again follows its earlier copy on the same connection and needs no ordering across
 * them; every other record goes down the first.
 */
struct pc_streams {
	/* sender: connect and authenticate one more connection to the receiver; its fd or a
	 * negative error (logged) */
	int (*open)(void *arg);
	/* receiver: the next authenticated connection of a migration within timeout_ms; its fd
	 * or a negative error (logged) */
	int (*accept)(void *arg, int timeout_ms);
	/* receiver: every extra stream came, or the migration failed before (may be NULL) */
	void (*done)(void *arg);
	void *arg;
};

/* How long a receiver waits for each extra stream after the header named them. */
#define PC_STREAM_ACCEPT_MS 10000

/* migrate --mode */
enum mig_mode {
	MIG_MODE_PRECOPY = 0,
	MIG_MODE_POSTCOPY = 1, /* resume on the destination at once, pages on demand */
	MIG_MODE_HYBRID = 2,   /* pre-copy rounds until the policy stops them, then post-copy */
	MIG_MODE_AUTO = 3,     /* the mode the prediction (predict.h) says meets the limits */
};
const char *mig_mode_name(enum mig_mode m);
int mig_mode_parse(const char *s, enum mig_mode *m_r);

struct mig_params {
	struct pc_params policy; /* kind, max_iters, downtime_ms, max_total_bytes, on_stall */
	uint64_t bandwidth_Bps;  /* live-round cap, 0: unlimited */
	bool debug;              /* after stop-and-copy, resend every page for verification */
	bool progress;           /* a progress line per round on stderr */
	volatile sig_atomic_t
	    *cancel;          /* set by a signal handler: abort before the point of no return */
	int send_back_fd;     /* receiver: the channel back to the sender, which xl hands
	                         to libxl_domain_create_restore (0: none) */
	int stall_timeout_ms; /* sender: the longest the receiver may take none of the stream
	                         (stopped, or the path silent) before the migration fails and
	                         the guest resumes here; 0: no limit */
	unsigned compress;    /* COMPRESS_* of codec.h (migrate --compress), 0: none */
	uint64_t compress_cache_bytes;  /* the delta's page cache; 0: PC_CACHE_DEFAULT */
	unsigned streams;               /* sender: connections to send over, 0 or 1: the one fd */
	const struct pc_streams *extra; /* opens (sender) or accepts (receiver) the others */
	enum mig_mode mode;             /* sender: precopy (0), postcopy or hybrid */
	unsigned prepage;               /* receiver: neighbours asked for per fault (postcopy.h) */
};

/* The delta's default page cache: a quarter of the guest's memory, at most this much. */
#define PC_CACHE_DEFAULT_MAX (512ull << 20)

struct mig_round_report {
	unsigned round;
	uint64_t pages;
	uint64_t zero_pages;
	uint64_t skipped; /* due pages left to the next round: written again before their turn */
	unsigned peeks;   /* at the dirty log, for the skip */
	uint64_t peek_us; /* time the peeks took */
	uint64_t bytes;
	uint64_t duration_us;
	uint64_t dirty_after; /* pages dirty when the round ended */
	double dirty_rate_pps;
	double bandwidth_Bps;
	unsigned throttle_pct;
};

struct mig_report {
	int64_t t_start_us;
	int64_t t_pause_us;      /* source paused (stop-and-copy began) */
	int64_t t_suspended_us;  /* the source's vCPUs stopped, state saved */
	int64_t t_stream_end_us; /* last byte of the stream written */
	int64_t t_ready_us;      /* the destination said it holds the domain */
	int64_t t_go_us;         /* renamed away here and GO sent (point of no return) */
	int64_t t_end_us;        /* destination reported it runs */
	unsigned nrounds;
	struct mig_round_report rounds[MIG_MAX_ROUNDS];
	uint64_t final_pages; /* sent while paused */
	uint64_t final_bytes;
	uint64_t total_bytes;
	uint64_t total_pages;
	uint64_t nr_pages; /* guest size */
	enum pc_decision decision;
	const char *reason;
	unsigned max_throttle;
	bool verified; /* a --debug verification pass ran */
	bool stalled;  /* the receiver took no data for stall_timeout_ms */
	uint64_t verify_mismatches;
	char dirtylog_method[16];
	/* bytes of the source guest's memory allocated (its file's blocks) when the migration
	 * began, at most during it (after every round), and when it ended */
	bool source_ram_sampled;
	uint64_t source_ram_before;
	uint64_t source_ram_max;
	uint64_t source_ram_after;
	/* --compress: what was asked, and what was sent how (both ends count what they saw) */
	unsigned compress;
	uint64_t cache_bytes;               /* the sender's page cache */
	uint64_t cache_hits, cache_misses;  /* re-sent pages found in it, or not */
	uint64_t delta_pages, delta_bytes;  /* pages sent as deltas, and the deltas' bytes */
	uint64_t records_lz4, records_zstd; /* page records sent compressed */
	uint64_t compress_in, compress_out; /* those records' bodies before and after */
	uint64_t page_bytes_plain;          /* the pages' bytes had they all been sent whole */
	uint64_t encode_us;                 /* time spent coding deltas and compressing */
	unsigned streams;                   /* connections the stream went over */
	/* --mode postcopy|hybrid: the phase after the switch-over (postcopy.h) */
	enum mig_mode mode;
	struct mig_postcopy_report {
		bool used;           /* the guest resumed on the destination with pages missing */
		bool failed;         /* the phase failed: the guest is paused, see the log */
		uint64_t needed;     /* pages the destination lacked at the switch-over */
		uint64_t pulled;     /* sent because the destination asked (faults) */
		uint64_t prepaged;   /* of those, asked for as a fault's neighbours */
		uint64_t pushed;     /* sent in the background */
		uint64_t zero;       /* installed as zero pages without data */
		uint64_t faults;     /* guest page faults on missing pages */
		uint64_t bytes;      /* the channel's bytes (pages, requests) */
		double fault_p50_us; /* a fault's wait: until its page was installed */
		double fault_p99_us;
		double fault_max_us;
		int64_t t_start_us; /* the phase began (the channel served) */
		int64_t t_end_us;   /* the last page installed (destination) or sent (source) */
	} postcopy;
	struct pc_postcopy *pc; /* the phase while it runs past the stream's end (postcopy.h) */
};

/* Saved vCPU and device-model state: what stop-and-copy sends besides memory. */
#define PC_MAX_VCPUS 128
struct pc_cpu_state {
	unsigned nr_vcpus;
	uint32_t vcpu_len;
	uint8_t *vcpus;  /* nr_vcpus * vcpu_len bytes */
	uint32_t dm_len; /* 0 unless HVM */
	uint8_t *dm;
};
void pc_cpu_state_free(struct pc_cpu_state *s);

struct pc_source_ops {
	/* Start log-dirty; the bitmap (nr_pages bits) stays valid until disable. */
	int (*logdirty_enable)(void *arg, const uint64_t **bitmap_r, char *method, size_t len);
	/* Fetch-and-clear into the bitmap. */
	int (*logdirty_fetch)(void *arg, uint64_t *ndirty_r);
	/* Peek (may be NULL): a bitmap of the pages written since the last fetch, each of which
	 * the next fetch reports, and their count; valid until the next fetch (which clears it)
	 * and changed only by the next peek. */
	int (*logdirty_peek)(void *arg, const uint64_t **bitmap_r, uint64_t *ndirty_r);
	int (*throttle)(void *arg, unsigned pct);
	/* Pause the guest and hand back its vCPU/device state (caller frees with
	 * pc_cpu_state_free). */
	int (*suspend)(void *arg, struct pc_cpu_state *state);
};

struct pc_source {
	const struct pc_source_ops *ops;
	void *arg;
	/* the guest's memory as a file: page pfn at offset pfn * 4096, a hole reads as zeros
	 * (SEEK_DATA/SEEK_HOLE say where data is); read with pread, never mapped */
	int mem_fd;
	uint64_t nr_pages;
	enum hv_domain_type type;
	unsigned nr_vcpus;
};

/*
 * Run pre-copy of src into fd. On success the guest is paused and the whole stream (ending in
 * STREAM_REC_END) is written. On ERR_NOTCONV (policy abort) or ERR_CANCELLED or an I/O error
 * the guest may be running or paused; the caller resumes it. report is filled as far as it got.
 */
int pc_send(const struct pc_source *src, int fd, const struct mig_params *params,
            struct mig_report *report);
/*
 * Give back what pc_send kept past the stream's end so as not to spend the downtime on it
 * (the --compress page cache). The migration's caller calls it once the domain runs on one
 * end (mig_run does); pc_send's next run and the process's exit free it too.
 */
void pc_send_release(void);

/*
 * Receive a stream from fd into the guest memory file mem_fd (nr_pages pages, all holes at
 * first, as pc_source's mem_fd): expects a header matching nr_pages/type/nr_vcpus, writes
 * pages, collects the vCPU/device state, stops after END. Malformed, truncated or foreign
 * input gives ERR_PROTO/ERR_CHECKSUM/ERR_IO with a message. A header that names extra streams
 * takes them from extra (NULL: a stream of one connection only).
 */
int pc_receive(int fd, int mem_fd, uint64_t nr_pages, enum hv_domain_type type, unsigned nr_vcpus,
               const struct pc_streams *extra, struct pc_cpu_state *state,
               struct mig_report *report);

/*
 * Give back what pc_receive kept past the stream's end (its mapping of guest memory, whose
 * unmapping would otherwise fall in the downtime): mig_serve calls it once the migration
 * ended; pc_receive's next run and the process's exit do it too.
 */
void pc_receive_release(void);

/* Print the report as JSON on out. */
struct json_object;
struct json_object *mig_report_json(const struct mig_report *r);
/* A figure for a JSON report, printed with that many decimals; NULL (JSON null) when v < 0, a
 * figure not reached or not measured. */
struct json_object *mig_json_number(double v, int decimals);

/*
 * The receiver's bound on a silent sender: no byte of the stream for this long ends it, and
 * the handshake waits no longer for GO (handshake.c).
 */
#define PC_RECV_STALL_TIMEOUT_MS 120000

#endif
