/*  SPDX-License-Identifier: BSD-3-Clause
 *
 * ioband SPDK shim: the part of the ioband bdev module that needs SPDK's macros, inline
 * functions and struct layouts. It registers the bdev module "ioband" and the
 * bdev_ioband_* RPC methods, owns the bdev nodes (struct spdk_bdev, base descriptor,
 * shared-writer claim, io_device, channels), moves every I/O between the thread that
 * submitted it and the owner thread, and submits to the base. Every decision (scheduling,
 * RPC semantics, config) is Rust's (ioband_shim.h lists the boundary).
 *
 * Cross-core strategy: a replica of the shares on every thread. Every SPDK thread that
 * gets a channel of an ioband bdev also gets a per-thread context (the channel of a
 * module-level io_device, SPDK's idiom for per-thread state) holding Rust's replica of the
 * shares and a poller. An I/O submitted there is scheduled there by the replica,
 * submitted to the base on that thread's own channel of the base, and completed there: no
 * message and no lock per I/O. The replicas and the owner (the app thread, where the
 * control plane runs) exchange reports and grants once a millisecond (Rust's side; see
 * the engine's span module). I/O submitted on the owner thread, and I/O a replica cannot
 * take yet (a device it has not heard of, a reset), go to the owner as before: sent with
 * spdk_thread_send_msg, scheduled by the owner's engine on the owner's base channel, and
 * completed back on the submitting thread.
 */

#include "spdk/stdinc.h"
#include "spdk/bdev.h"
#include "spdk/bdev_module.h"
#include "spdk/env.h"
#include "spdk/json.h"
#include "spdk/jsonrpc.h"
#include "spdk/log.h"
#include "spdk/queue.h"
#include "spdk/rpc.h"
#include "spdk/string.h"
#include "spdk/thread.h"
#include "spdk/uuid.h"

#include "ioband_check.h"
#include "ioband_shim.h"

/* Namespace of the generated bdev UUIDs (sha1 of base UUID and name). */
#define IOBAND_NAMESPACE_UUID "8c1e1c55-6a4e-4f0e-9d4b-10ba0dd00b1e"
/* Owner poller period: re-drive of queues held by a timed limit. */
#define IOBAND_POLL_US 50

static struct spdk_bdev_module ioband_if;

struct ioband_node {
	struct spdk_bdev bdev;
	struct spdk_bdev_desc *base_desc;
	struct spdk_bdev *base_bdev;
	/* The owner thread's channel to the base: every dispatched I/O goes through it. */
	struct spdk_io_channel *owner_base_ch;
	uint64_t dev_id;
	/* I/O that reached the owner and is not completed yet (owner thread only). */
	uint64_t outstanding;
	bool destruct_pending;
	bool unregistering;
	void *unregister_request;
	TAILQ_ENTRY(ioband_node) link;
};

/* The per-thread context of every non-owner thread with an ioband channel. */
struct ioband_thread {
	/* Rust's replica (NULL: none; the thread's I/O goes to the owner). */
	void *rs;
	struct spdk_poller *poller;
	/* The thread itself, for its pass tick without a thread-local lookup per I/O. */
	struct spdk_thread *thread;
};

struct ioband_channel {
	struct ioband_node *node;
	uint64_t thread_id;
	/* Off the owner thread: this thread's channel to the base and its context. */
	struct spdk_io_channel *base_ch;
	struct spdk_io_channel *thread_ch;
	struct ioband_thread *t;
	/* The channel's lane (Rust's; NULL: none): see lane_submit. */
	struct ioband_lane *lane;
};

_Static_assert(sizeof(struct ioband_lane) == IOBAND_LANE_SIZE, "struct ioband_lane is ffi::Lane");

enum ioband_status_kind {
	IOBAND_KIND_SUCCESS,
	IOBAND_KIND_NVME,
	IOBAND_KIND_FAILED,
	IOBAND_KIND_ABORTED,
};

struct ioband_io {
	/* Rust's per-I/O area (its ticket). First, so it is 8-aligned like driver_ctx. */
	uint64_t rs[IOBAND_RS_IO_AREA / 8];
	struct spdk_bdev_io_wait_entry wait;
	struct ioband_node *node;
	uint64_t thread_id;
	enum ioband_status_kind kind;
	/* Scheduled by the submitting thread's replica (on `ich`), not by the owner. */
	bool local;
	/* Dispatched by the channel's lane (no Rust on its path): its cost and pass tick. */
	bool lane;
	uint32_t lane_cost;
	uint64_t lane_tick;
	struct ioband_channel *ich;
	uint32_t cdw0;
	int sct;
	int sc;
	/* Completions whose message could not be sent yet (owner thread only). */
	TAILQ_ENTRY(ioband_io) retry_link;
};

static TAILQ_HEAD(, ioband_node) g_nodes = TAILQ_HEAD_INITIALIZER(g_nodes);
static TAILQ_HEAD(, ioband_io) g_complete_retry = TAILQ_HEAD_INITIALIZER(g_complete_retry);
static struct spdk_thread *g_owner;
static struct spdk_poller *g_poller;
/* The io_device whose channels are the per-thread contexts. */
static int g_thread_dev;
/* Interrupt mode (fixed before modules start): the pass tick needs a clock read then. */
static bool g_intr;

static void owner_submit(void *arg);
static void complete_on_thread(void *arg);

/* ---- small helpers ------------------------------------------------------------------- */

static struct ioband_io *
io_ctx(struct spdk_bdev_io *bdev_io)
{
	return (struct ioband_io *)bdev_io->driver_ctx;
}

static struct ioband_node *
io_node(struct spdk_bdev_io *bdev_io)
{
	return SPDK_CONTAINEROF(bdev_io->bdev, struct ioband_node, bdev);
}

/*
 * The engine's clock: at most one clock read per poll pass of the thread, none per I/O.
 *
 * An SPDK thread reads the TSC once when a pass of it begins (spdk_thread_poll's `now`,
 * from the reactor) and once after each poller it runs, and keeps the reading as its
 * "last tsc". In poll mode that is the pass tick: this returns it and reads nothing. In
 * interrupt mode the thread refreshes it only after a pass (it may have slept since), so
 * the first call in a pass reads the clock and the rest of the pass reuses that reading.
 * These are the module's only spdk_get_ticks() calls (a unit test holds it to that).
 */
uint64_t
ioband_shim_pass_ticks(void)
{
	static __thread uint64_t pass_last_tsc = UINT64_MAX;
	static __thread uint64_t pass_ticks;
	struct spdk_thread *thread = spdk_get_thread();
	uint64_t last;

	if (thread == NULL) {
		/* Not an SPDK thread (never the I/O path). */
		return spdk_get_ticks();
	}
	last = spdk_thread_get_last_tsc(thread);
	if (!g_intr) {
		return last;
	}
	if (last != pass_last_tsc) {
		pass_last_tsc = last;
		pass_ticks = spdk_get_ticks();
	}
	return pass_ticks;
}

/* The pass tick on a replica's thread, whose spdk_thread is known: in poll mode a field
 * read, no thread-local lookup (the I/O path's only time source off the owner). */
static inline uint64_t
thread_now(const struct ioband_thread *t)
{
	return g_intr ? ioband_shim_pass_ticks() : spdk_thread_get_last_tsc(t->thread);
}

int
ioband_shim_bdev_exists(const char *name)
{
	return spdk_bdev_get_by_name(name) != NULL;
}

size_t
ioband_shim_io_area_offset(void)
{
	return offsetof(struct spdk_bdev_io, driver_ctx) + offsetof(struct ioband_io, rs);
}

void
ioband_shim_log(int level, const char *message)
{
	switch (level) {
	case 0:
		SPDK_ERRLOG("%s\n", message);
		break;
	case 1:
		SPDK_WARNLOG("%s\n", message);
		break;
	default:
		SPDK_NOTICELOG("%s\n", message);
		break;
	}
}

/* ---- completion on the submitting thread --------------------------------------------- */

static void
complete_on_thread(void *arg)
{
	struct spdk_bdev_io *bdev_io = arg;
	struct ioband_io *ctx = io_ctx(bdev_io);

	switch (ctx->kind) {
	case IOBAND_KIND_SUCCESS:
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_SUCCESS);
		break;
	case IOBAND_KIND_NVME:
		spdk_bdev_io_complete_nvme_status(bdev_io, ctx->cdw0, ctx->sct, ctx->sc);
		break;
	case IOBAND_KIND_ABORTED:
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_ABORTED);
		break;
	default:
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_FAILED);
		break;
	}
}

static void
send_completion(struct spdk_bdev_io *bdev_io)
{
	struct spdk_thread *thread = spdk_bdev_io_get_thread(bdev_io);

	if (thread == spdk_get_thread()) {
		complete_on_thread(bdev_io);
	} else if (spdk_thread_send_msg(thread, complete_on_thread, bdev_io) != 0) {
		/* Message pool exhausted: the owner poller sends it again. */
		TAILQ_INSERT_TAIL(&g_complete_retry, io_ctx(bdev_io), retry_link);
	}
}

static void node_free(void *io_device);

/* Gives back what the node holds on the base; the node itself goes with the io_device. */
static void
node_release(struct ioband_node *node)
{
	spdk_put_io_channel(node->owner_base_ch);
	node->owner_base_ch = NULL;
	/* Closing the descriptor releases the shared claim too. */
	spdk_bdev_close(node->base_desc);
	node->base_desc = NULL;
}

static void
finish_destruct(void *arg)
{
	struct ioband_node *node = arg;

	node_release(node);
	spdk_bdev_destruct_done(&node->bdev, 0);
	spdk_io_device_unregister(node, node_free);
}

static void
node_io_done(struct ioband_node *node)
{
	assert(node->outstanding > 0);
	node->outstanding--;
	if (node->outstanding == 0 && node->destruct_pending) {
		node->destruct_pending = false;
		/* Not from inside Rust's call chain: the next turn of the owner thread. */
		if (spdk_thread_send_msg(g_owner, finish_destruct, node) != 0) {
			finish_destruct(node);
		}
	}
}

void
ioband_shim_complete(void *io, int status)
{
	struct spdk_bdev_io *bdev_io = io;
	struct ioband_io *ctx = io_ctx(bdev_io);

	if (status == IOBAND_STATUS_FAILED) {
		ctx->kind = IOBAND_KIND_FAILED;
	} else if (status == IOBAND_STATUS_ABORTED) {
		ctx->kind = IOBAND_KIND_ABORTED;
	}
	if (ctx->local) {
		/* A replica's I/O: scheduled, and completed, on its submitting thread. */
		complete_on_thread(bdev_io);
		return;
	}
	node_io_done(ctx->node);
	send_completion(bdev_io);
}

/* ---- the submitting thread ----------------------------------------------------------- */

static void
to_owner(struct spdk_bdev_io *bdev_io)
{
	if (spdk_get_thread() == g_owner) {
		owner_submit(bdev_io);
	} else if (spdk_thread_send_msg(g_owner, owner_submit, bdev_io) != 0) {
		/* No message buffer: let the bdev layer retry it (not allowed for resets). */
		spdk_bdev_io_complete(bdev_io, bdev_io->type == SPDK_BDEV_IO_TYPE_RESET ?
				      SPDK_BDEV_IO_STATUS_FAILED : SPDK_BDEV_IO_STATUS_NOMEM);
	}
}

/*
 * The engine's kind of an I/O, and the bytes it is charged for.
 *
 * READ and WRITE: their length. WRITE_ZEROES: its length too, as an "other" I/O: the range
 * must read back as zeroes, and a device may write every block of it, so it is charged as
 * the write it may be (SPDK's QoS and blk-iocost charge it nothing; here a tenant cannot
 * zero a device past its share). UNMAP and FLUSH move no data: one I/O of no bytes, which
 * the byte policies charge as their least I/O (one sector) and `weight` as any I/O.
 */
static int
io_kind(struct spdk_bdev_io *bdev_io, uint64_t *bytes)
{
	*bytes = 0;
	switch (bdev_io->type) {
	case SPDK_BDEV_IO_TYPE_READ:
		*bytes = bdev_io->u.bdev.num_blocks * bdev_io->bdev->blocklen;
		return IOBAND_IO_READ;
	case SPDK_BDEV_IO_TYPE_WRITE:
		*bytes = bdev_io->u.bdev.num_blocks * bdev_io->bdev->blocklen;
		return IOBAND_IO_WRITE;
	case SPDK_BDEV_IO_TYPE_WRITE_ZEROES:
		*bytes = bdev_io->u.bdev.num_blocks * bdev_io->bdev->blocklen;
		return IOBAND_IO_OTHER;
	case SPDK_BDEV_IO_TYPE_RESET:
		return IOBAND_IO_RESET;
	default:
		return IOBAND_IO_OTHER;
	}
}

static int base_submit_once(struct spdk_bdev_io *bdev_io);

/*
 * The fast lane: a READ or WRITE of a channel whose lane is open, with a slot and budget
 * left, goes straight to the base on this thread and is counted in the lane; Rust settles
 * the counts with the share once per pass of the thread's poller (see the engine's lane
 * module for why that is what per-I/O scheduling would have done). Counted before the
 * submission (a base may complete inside it), taken back if the base refuses it, which
 * then takes the slow path. Returns whether the lane took it.
 */
static inline bool
lane_submit(struct ioband_channel *ich, struct spdk_bdev_io *bdev_io)
{
	struct ioband_lane *l = ich->lane;
	struct ioband_io *ctx = io_ctx(bdev_io);
	uint64_t bytes, cost, now, last_cost;
	bool read = bdev_io->type == SPDK_BDEV_IO_TYPE_READ;

	if (l == NULL || !l->open || l->at_base >= l->slot_limit || l->cost >= l->cost_budget ||
	    (!read && bdev_io->type != SPDK_BDEV_IO_TYPE_WRITE)) {
		return false;
	}
	bytes = bdev_io->u.bdev.num_blocks * bdev_io->bdev->blocklen;
	cost = l->sectors ? spdk_max(bytes >> 9, 1) : 1;
	if (cost > UINT32_MAX) {
		return false;
	}
	now = thread_now(ich->t);
	ctx->local = true;
	ctx->lane = true;
	ctx->ich = ich;
	ctx->lane_cost = (uint32_t)cost;
	ctx->lane_tick = now;
	if (l->first_tick == UINT64_MAX) {
		l->first_tick = now;
	}
	l->last_tick = now;
	l->at_base++;
	if (read) {
		l->read_ios++;
		l->read_bytes += bytes;
	} else {
		l->write_ios++;
		l->write_bytes += bytes;
	}
	l->cost += cost;
	last_cost = l->last_cost;
	l->last_cost = cost;
	if (spdk_likely(base_submit_once(bdev_io) == 0)) {
		return true;
	}
	/* Not submitted (no bdev_io now, or refused): taken back, the slow path decides. */
	l->at_base--;
	if (read) {
		l->read_ios--;
		l->read_bytes -= bytes;
	} else {
		l->write_ios--;
		l->write_bytes -= bytes;
	}
	l->cost -= cost;
	l->last_cost = last_cost;
	ctx->lane = false;
	ctx->local = false;
	ctx->ich = NULL;
	return false;
}

/* A lane's I/O came back from the base: counted, completed, and settled at once if the
 * lane is closed (something may wait for its slot in the share). */
static void
lane_done(struct spdk_bdev_io *orig)
{
	struct ioband_io *ctx = io_ctx(orig);
	struct ioband_channel *ich = ctx->ich;
	struct ioband_lane *l = ich->lane;
	struct ioband_thread *t = ich->t;
	uint64_t now = thread_now(t);
	uint64_t latency = now - ctx->lane_tick;

	if (l->first_tick == UINT64_MAX) {
		l->first_tick = now;
	}
	l->last_tick = now;
	l->completed++;
	l->completed_cost += ctx->lane_cost;
	l->completed_bytes += orig->u.bdev.num_blocks * orig->bdev->blocklen;
	l->latency_sum += latency;
	l->at_base--;
	if (latency < l->latency_min) {
		l->latency_min = latency;
	}
	if (l->at_base + l->others < 2 && latency < l->latency_min_drained) {
		l->latency_min_drained = latency;
	}
	ctx->lane = false;
	complete_on_thread(orig);
	if (!l->open) {
		ioband_rs_thread_lane_settle(t->rs);
	}
}

/* Schedules the I/O with this thread's replica, or sends it to the owner. */
static void
submit_here(struct ioband_channel *ich, struct spdk_bdev_io *bdev_io)
{
	struct ioband_io *ctx = io_ctx(bdev_io);
	uint64_t bytes;
	int kind, rc;

	if (lane_submit(ich, bdev_io)) {
		return;
	}
	if (ich->t == NULL || ich->t->rs == NULL) {
		to_owner(bdev_io);
		return;
	}
	kind = io_kind(bdev_io, &bytes);
	ctx->local = true;
	ctx->ich = ich;
	rc = ioband_rs_thread_submit(ich->t->rs, ctx->node->dev_id, bdev_io, kind, bytes,
				     ctx->thread_id, thread_now(ich->t));
	if (rc == 0) {
		return;
	}
	ctx->local = false;
	ctx->ich = NULL;
	if (rc == 1) {
		to_owner(bdev_io);
	} else {
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_FAILED);
	}
}

static void
read_get_buf_cb(struct spdk_io_channel *ch, struct spdk_bdev_io *bdev_io, bool success)
{
	if (!success) {
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_FAILED);
		return;
	}
	submit_here(spdk_io_channel_get_ctx(ch), bdev_io);
}

static void
ioband_submit_request(struct spdk_io_channel *ch, struct spdk_bdev_io *bdev_io)
{
	struct ioband_channel *ich = spdk_io_channel_get_ctx(ch);
	struct ioband_io *ctx = io_ctx(bdev_io);

	ctx->node = io_node(bdev_io);
	ctx->thread_id = ich->thread_id;
	ctx->kind = IOBAND_KIND_FAILED;
	ctx->local = false;
	ctx->lane = false;
	ctx->ich = NULL;

	switch (bdev_io->type) {
	case SPDK_BDEV_IO_TYPE_READ:
		/*
		 * A read the caller gave a buffer goes on as it is when the bdev asks no
		 * alignment: what spdk_bdev_io_get_buf would find before calling back at once
		 * (a buffer present and aligned), without the call, the alignment scan and the
		 * callback per read. Otherwise the buffer comes from the submitting thread's
		 * cache (or a bounce buffer), as SPDK decides.
		 */
		if (spdk_likely(bdev_io->bdev->required_alignment == 0 &&
				bdev_io->u.bdev.iovs != NULL &&
				bdev_io->u.bdev.iovs[0].iov_base != NULL)) {
			submit_here(ich, bdev_io);
			return;
		}
		spdk_bdev_io_get_buf(bdev_io, read_get_buf_cb,
				     bdev_io->u.bdev.num_blocks * bdev_io->bdev->blocklen);
		return;
	case SPDK_BDEV_IO_TYPE_WRITE:
	case SPDK_BDEV_IO_TYPE_WRITE_ZEROES:
	case SPDK_BDEV_IO_TYPE_UNMAP:
	case SPDK_BDEV_IO_TYPE_FLUSH:
		submit_here(ich, bdev_io);
		return;
	case SPDK_BDEV_IO_TYPE_RESET:
		/* A reset drains the share's queue for the device: the owner's business. */
		to_owner(bdev_io);
		return;
	default:
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_FAILED);
		return;
	}
}

/* ---- the owner thread ---------------------------------------------------------------- */

static void
owner_submit(void *arg)
{
	struct spdk_bdev_io *bdev_io = arg;
	struct ioband_io *ctx = io_ctx(bdev_io);
	struct ioband_node *node = ctx->node;
	uint64_t bytes;
	int kind = io_kind(bdev_io, &bytes);

	node->outstanding++;
	if (ioband_rs_submit(node->dev_id, bdev_io, kind, bytes, ctx->thread_id) != 0) {
		ioband_shim_complete(bdev_io, IOBAND_STATUS_FAILED);
	}
}

static void
base_io_done(struct spdk_bdev_io *base_io, bool success, void *cb_arg)
{
	struct spdk_bdev_io *orig = cb_arg;
	struct ioband_io *ctx = io_ctx(orig);

	if (success) {
		ctx->kind = IOBAND_KIND_SUCCESS;
	} else {
		/* Keeps NVMe status (and a generic error for other bases) for the submitter. */
		ctx->kind = IOBAND_KIND_NVME;
		spdk_bdev_io_get_nvme_status(base_io, &ctx->cdw0, &ctx->sct, &ctx->sc);
	}
	spdk_bdev_free_io(base_io);
	if (ctx->lane) {
		lane_done(orig);
	} else if (ctx->local) {
		ioband_rs_thread_done(ctx->ich->t->rs, orig, thread_now(ctx->ich->t));
	} else {
		ioband_rs_done(ctx->node->dev_id, orig);
	}
}


static void
init_ext_io_opts(struct spdk_bdev_io *bdev_io, struct spdk_bdev_ext_io_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->memory_domain = bdev_io->u.bdev.memory_domain;
	opts->memory_domain_ctx = bdev_io->u.bdev.memory_domain_ctx;
	opts->metadata = bdev_io->u.bdev.md_buf;
	opts->dif_check_flags_exclude_mask = ~bdev_io->u.bdev.dif_check_flags;
}

/*
 * Whether a READ or WRITE may go to the base as a plain vectored I/O: what the _ext call
 * would pass is then nothing (no metadata buffer, no memory domain, and no DIF check on
 * the base for the caller's flags to mask), which is what the plain call passes, without
 * the options to fill and SPDK's checks of them.
 */
static inline bool
plain_rw(const struct ioband_node *node, const struct spdk_bdev_io *bdev_io)
{
	return node->base_bdev->dif_check_flags == 0 && bdev_io->u.bdev.md_buf == NULL &&
	       bdev_io->u.bdev.memory_domain == NULL;
}

/* One submission to the base: 0 or a negative errno (-ENOMEM: no bdev_io now). */
static int
base_submit_once(struct spdk_bdev_io *bdev_io)
{
	struct ioband_io *ctx = io_ctx(bdev_io);
	struct ioband_node *node = ctx->node;
	struct spdk_bdev_desc *desc = node->base_desc;
	struct spdk_io_channel *ch = ctx->local ? ctx->ich->base_ch : node->owner_base_ch;
	struct spdk_bdev_ext_io_opts opts;
	int rc;

	switch (bdev_io->type) {
	case SPDK_BDEV_IO_TYPE_READ:
		if (spdk_likely(plain_rw(node, bdev_io))) {
			rc = spdk_bdev_readv_blocks(desc, ch, bdev_io->u.bdev.iovs,
						    bdev_io->u.bdev.iovcnt,
						    bdev_io->u.bdev.offset_blocks,
						    bdev_io->u.bdev.num_blocks, base_io_done, bdev_io);
			break;
		}
		init_ext_io_opts(bdev_io, &opts);
		rc = spdk_bdev_readv_blocks_ext(desc, ch, bdev_io->u.bdev.iovs, bdev_io->u.bdev.iovcnt,
						bdev_io->u.bdev.offset_blocks,
						bdev_io->u.bdev.num_blocks, base_io_done, bdev_io, &opts);
		break;
	case SPDK_BDEV_IO_TYPE_WRITE:
		if (spdk_likely(plain_rw(node, bdev_io))) {
			rc = spdk_bdev_writev_blocks(desc, ch, bdev_io->u.bdev.iovs,
						     bdev_io->u.bdev.iovcnt,
						     bdev_io->u.bdev.offset_blocks,
						     bdev_io->u.bdev.num_blocks, base_io_done, bdev_io);
			break;
		}
		init_ext_io_opts(bdev_io, &opts);
		rc = spdk_bdev_writev_blocks_ext(desc, ch, bdev_io->u.bdev.iovs, bdev_io->u.bdev.iovcnt,
						 bdev_io->u.bdev.offset_blocks,
						 bdev_io->u.bdev.num_blocks, base_io_done, bdev_io, &opts);
		break;
	case SPDK_BDEV_IO_TYPE_WRITE_ZEROES:
		rc = spdk_bdev_write_zeroes_blocks(desc, ch, bdev_io->u.bdev.offset_blocks,
						   bdev_io->u.bdev.num_blocks, base_io_done, bdev_io);
		break;
	case SPDK_BDEV_IO_TYPE_UNMAP:
		rc = spdk_bdev_unmap_blocks(desc, ch, bdev_io->u.bdev.offset_blocks,
					    bdev_io->u.bdev.num_blocks, base_io_done, bdev_io);
		break;
	case SPDK_BDEV_IO_TYPE_FLUSH:
		rc = spdk_bdev_flush_blocks(desc, ch, bdev_io->u.bdev.offset_blocks,
					    bdev_io->u.bdev.num_blocks, base_io_done, bdev_io);
		break;
	case SPDK_BDEV_IO_TYPE_RESET:
		rc = spdk_bdev_reset(desc, ch, base_io_done, bdev_io);
		break;
	default:
		rc = -ENOTSUP;
		break;
	}
	return rc;
}

static void
io_wait_cb(void *arg)
{
	struct ioband_thread *t = arg;

	if (t != NULL) {
		ioband_rs_thread_io_wait_done(t->rs);
	} else {
		ioband_rs_io_wait_done();
	}
}

int
ioband_shim_io_wait(void *io)
{
	struct spdk_bdev_io *bdev_io = io;
	struct ioband_io *ctx = io_ctx(bdev_io);
	struct ioband_node *node = ctx->node;

	struct ioband_thread *t = ctx->local ? ctx->ich->t : NULL;
	struct spdk_io_channel *ch = ctx->local ? ctx->ich->base_ch : node->owner_base_ch;

	ctx->wait.bdev = node->base_bdev;
	ctx->wait.cb_fn = io_wait_cb;
	ctx->wait.cb_arg = t;
	if (spdk_bdev_queue_io_wait(node->base_bdev, ch, &ctx->wait) == 0) {
		return 0;
	}
	/* The thread's bdev_io cache is not empty after all: try again on the next turn. */
	return spdk_thread_send_msg(spdk_get_thread(), io_wait_cb, t);
}

int
ioband_shim_dispatch(void *bdev_io)
{
	return base_submit_once(bdev_io);
}

static int
owner_poll(void *arg)
{
	int busy = 0;
	struct ioband_io *ctx;

	(void)arg;
	while ((ctx = TAILQ_FIRST(&g_complete_retry)) != NULL) {
		struct spdk_bdev_io *bdev_io = spdk_bdev_io_from_ctx(ctx);

		if (spdk_thread_send_msg(spdk_bdev_io_get_thread(bdev_io), complete_on_thread,
					 bdev_io) != 0) {
			break;
		}
		TAILQ_REMOVE(&g_complete_retry, ctx, retry_link);
		busy = 1;
	}
	busy |= ioband_rs_poll();
	return busy ? SPDK_POLLER_BUSY : SPDK_POLLER_IDLE;
}

/* ---- channels ------------------------------------------------------------------------ */

static int
thread_poll(void *arg)
{
	struct ioband_thread *t = arg;

	return ioband_rs_thread_poll(t->rs) ? SPDK_POLLER_BUSY : SPDK_POLLER_IDLE;
}

static int
thread_ctx_create(void *io_device, void *ctx_buf)
{
	struct ioband_thread *t = ctx_buf;

	(void)io_device;
	t->thread = spdk_get_thread();
	t->rs = ioband_rs_thread_create((uint64_t)(uintptr_t)t->thread);
	t->poller = NULL;
	if (t->rs != NULL) {
		t->poller = SPDK_POLLER_REGISTER(thread_poll, t, IOBAND_POLL_US);
		if (t->poller == NULL) {
			ioband_rs_thread_destroy(t->rs);
			t->rs = NULL;
		}
	}
	return 0;
}

/* A replica on its way out: kept (with a poller, so that its thread cannot exit) until
 * the owner has acknowledged, after which no message comes to the thread. */
struct ioband_leaver {
	void *rs;
	struct spdk_poller *poller;
};

static int
leave_poll(void *arg)
{
	struct ioband_leaver *l = arg;

	if (!ioband_rs_thread_left(l->rs)) {
		return SPDK_POLLER_IDLE;
	}
	ioband_rs_thread_destroy(l->rs);
	spdk_poller_unregister(&l->poller);
	free(l);
	return SPDK_POLLER_BUSY;
}

static void
thread_ctx_destroy(void *io_device, void *ctx_buf)
{
	struct ioband_thread *t = ctx_buf;
	struct ioband_leaver *l;

	(void)io_device;
	spdk_poller_unregister(&t->poller);
	if (t->rs == NULL) {
		return;
	}
	ioband_rs_thread_leave(t->rs);
	l = calloc(1, sizeof(*l));
	if (l != NULL) {
		l->rs = t->rs;
		l->poller = SPDK_POLLER_REGISTER(leave_poll, l, IOBAND_POLL_US);
	}
	if (l == NULL || l->poller == NULL) {
		/* Cannot wait for the owner: free now (its late messages find no replica). */
		free(l);
		ioband_rs_thread_destroy(t->rs);
	}
	t->rs = NULL;
}

static int
ioband_ch_create(void *io_device, void *ctx_buf)
{
	struct ioband_channel *ich = ctx_buf;
	struct ioband_node *node = io_device;

	ich->node = node;
	ich->thread_id = spdk_thread_get_id(spdk_get_thread());
	ich->base_ch = NULL;
	ich->thread_ch = NULL;
	ich->t = NULL;
	ich->lane = NULL;
	if (spdk_get_thread() == g_owner) {
		return 0;
	}
	/* Off the owner: this thread's own channel to the base and its replica. Without
	 * them the thread's I/O goes to the owner, as it always may. */
	ich->base_ch = spdk_bdev_get_io_channel(node->base_desc);
	if (ich->base_ch == NULL) {
		return 0;
	}
	ich->thread_ch = spdk_get_io_channel(&g_thread_dev);
	if (ich->thread_ch == NULL) {
		spdk_put_io_channel(ich->base_ch);
		ich->base_ch = NULL;
		return 0;
	}
	ich->t = spdk_io_channel_get_ctx(ich->thread_ch);
	if (ich->t->rs != NULL) {
		ich->lane = ioband_rs_thread_lane(ich->t->rs, node->dev_id, ich->thread_id);
	}
	return 0;
}

static void
ioband_ch_destroy(void *io_device, void *ctx_buf)
{
	struct ioband_channel *ich = ctx_buf;

	(void)io_device;
	if (ich->lane != NULL) {
		ioband_rs_thread_lane_free(ich->t->rs, ich->lane);
		ich->lane = NULL;
	}
	if (ich->thread_ch != NULL) {
		spdk_put_io_channel(ich->thread_ch);
		ich->thread_ch = NULL;
		ich->t = NULL;
	}
	if (ich->base_ch != NULL) {
		spdk_put_io_channel(ich->base_ch);
		ich->base_ch = NULL;
	}
}

/* ---- bdev function table ------------------------------------------------------------- */

static void
node_free(void *io_device)
{
	struct ioband_node *node = io_device;

	ioband_rs_node_freed(node->dev_id);
	free(node->bdev.name);
	free(node);
}

static int
ioband_destruct(void *ctx)
{
	struct ioband_node *node = ctx;

	TAILQ_REMOVE(&g_nodes, node, link);
	/* Rust completes (aborts) what is still queued for this device in the engine. */
	ioband_rs_node_destruct(node->dev_id);
	if (node->outstanding > 0) {
		/* In flight at the base: finish when the last completes (node_io_done). */
		node->destruct_pending = true;
		return 1;
	}
	node_release(node);
	spdk_io_device_unregister(node, node_free);
	return 0;
}

static bool
ioband_io_type_supported(void *ctx, enum spdk_bdev_io_type io_type)
{
	struct ioband_node *node = ctx;

	switch (io_type) {
	case SPDK_BDEV_IO_TYPE_READ:
	case SPDK_BDEV_IO_TYPE_WRITE:
	case SPDK_BDEV_IO_TYPE_WRITE_ZEROES:
	case SPDK_BDEV_IO_TYPE_UNMAP:
	case SPDK_BDEV_IO_TYPE_FLUSH:
	case SPDK_BDEV_IO_TYPE_RESET:
		return spdk_bdev_io_type_supported(node->base_bdev, io_type);
	default:
		return false;
	}
}

static struct spdk_io_channel *
ioband_get_io_channel(void *ctx)
{
	return spdk_get_io_channel(ctx);
}

static int
ioband_dump_info_json(void *ctx, struct spdk_json_write_ctx *w)
{
	struct ioband_node *node = ctx;

	ioband_rs_dump_info(node->dev_id, w);
	return 0;
}

static const struct spdk_bdev_fn_table ioband_fn_table = {
	.destruct = ioband_destruct,
	.submit_request = ioband_submit_request,
	.io_type_supported = ioband_io_type_supported,
	.get_io_channel = ioband_get_io_channel,
	.dump_info_json = ioband_dump_info_json,
};

/* ---- nodes --------------------------------------------------------------------------- */

static void
base_event_cb(enum spdk_bdev_event_type type, struct spdk_bdev *bdev, void *event_ctx)
{
	struct ioband_node *node = event_ctx;

	switch (type) {
	case SPDK_BDEV_EVENT_REMOVE:
		if (!node->unregistering) {
			node->unregistering = true;
			spdk_bdev_unregister(&node->bdev, NULL, NULL);
		}
		break;
	case SPDK_BDEV_EVENT_RESIZE:
		spdk_bdev_notify_blockcnt_change(&node->bdev, spdk_bdev_get_num_blocks(bdev));
		break;
	default:
		break;
	}
}

int
ioband_shim_node_create(const char *name, const char *base, uint64_t dev_id, uint64_t claim_key,
			void **node_out)
{
	struct spdk_bdev_claim_opts claim_opts;
	struct spdk_uuid ns_uuid;
	struct ioband_node *node;
	struct spdk_bdev *bb;
	char uuid_src[SPDK_UUID_STRING_LEN + 512];
	int rc;

	if (spdk_get_thread() != g_owner) {
		return -EINVAL;
	}
	if (spdk_bdev_get_by_name(name) != NULL) {
		return -EEXIST;
	}
	node = calloc(1, sizeof(*node));
	if (node == NULL) {
		return -ENOMEM;
	}
	node->bdev.name = strdup(name);
	if (node->bdev.name == NULL) {
		free(node);
		return -ENOMEM;
	}
	node->dev_id = dev_id;
	/* Read-only open: a writer open fails once the base is claimed; the shared-writer
	 * claim below promotes the descriptor to read-write. */
	rc = spdk_bdev_open_ext(base, false, base_event_cb, node, &node->base_desc);
	if (rc != 0) {
		free(node->bdev.name);
		free(node);
		return rc;
	}
	bb = spdk_bdev_desc_get_bdev(node->base_desc);
	node->base_bdev = bb;

	spdk_bdev_claim_opts_init(&claim_opts, sizeof(claim_opts));
	snprintf(claim_opts.name, sizeof(claim_opts.name), "ioband");
	claim_opts.shared_claim_key = claim_key;
	rc = spdk_bdev_module_claim_bdev_desc(node->base_desc, SPDK_BDEV_CLAIM_READ_MANY_WRITE_SHARED,
					      &claim_opts, &ioband_if);
	if (rc != 0) {
		spdk_bdev_close(node->base_desc);
		free(node->bdev.name);
		free(node);
		return rc;
	}

	node->bdev.product_name = "ioband";
	node->bdev.write_cache = bb->write_cache;
	node->bdev.required_alignment = bb->required_alignment;
	node->bdev.optimal_io_boundary = bb->optimal_io_boundary;
	node->bdev.blocklen = bb->blocklen;
	node->bdev.blockcnt = bb->blockcnt;
	node->bdev.md_interleave = bb->md_interleave;
	node->bdev.md_len = bb->md_len;
	node->bdev.dif_type = bb->dif_type;
	node->bdev.dif_is_head_of_md = bb->dif_is_head_of_md;
	node->bdev.dif_check_flags = bb->dif_check_flags;
	node->bdev.dif_pi_format = bb->dif_pi_format;
	node->bdev.ctxt = node;
	node->bdev.fn_table = &ioband_fn_table;
	node->bdev.module = &ioband_if;

	/* A stable UUID per (base UUID, ioband name). */
	spdk_uuid_parse(&ns_uuid, IOBAND_NAMESPACE_UUID);
	spdk_uuid_fmt_lower(uuid_src, sizeof(uuid_src), &bb->uuid);
	snprintf(uuid_src + strlen(uuid_src), sizeof(uuid_src) - strlen(uuid_src), "/%s", name);
	spdk_uuid_generate_sha1(&node->bdev.uuid, &ns_uuid, uuid_src, strlen(uuid_src));

	spdk_io_device_register(node, ioband_ch_create, ioband_ch_destroy,
				sizeof(struct ioband_channel), name);
	node->owner_base_ch = spdk_bdev_get_io_channel(node->base_desc);
	if (node->owner_base_ch == NULL) {
		spdk_io_device_unregister(node, NULL);
		spdk_bdev_close(node->base_desc);
		free(node->bdev.name);
		free(node);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&g_nodes, node, link);
	*node_out = node;

	rc = spdk_bdev_register(&node->bdev);
	if (rc != 0) {
		TAILQ_REMOVE(&g_nodes, node, link);
		spdk_put_io_channel(node->owner_base_ch);
		spdk_bdev_close(node->base_desc);
		spdk_io_device_unregister(node, node_free);
		*node_out = NULL;
		return rc;
	}
	return 0;
}

static void
unregister_done(void *cb_arg, int bdeverrno)
{
	struct spdk_jsonrpc_request *request = cb_arg;

	if (request == NULL) {
		return;
	}
	if (bdeverrno == 0) {
		spdk_jsonrpc_send_bool_response(request, true);
	} else {
		spdk_jsonrpc_send_error_response(request, bdeverrno, spdk_strerror(-bdeverrno));
	}
}

void
ioband_shim_node_unregister(void *n, void *request)
{
	struct ioband_node *node = n;

	if (node->unregistering) {
		/* Already on its way out (hot-remove): the delete is done as far as we go. */
		unregister_done(request, 0);
		return;
	}
	node->unregistering = true;
	spdk_bdev_unregister(&node->bdev, unregister_done, request);
}

/* ---- messages between the owner and the replicas ------------------------------------- */

static void
msg_cb(void *arg)
{
	ioband_rs_msg(arg);
}

int
ioband_shim_send_msg(uint64_t thread, void *arg)
{
	return spdk_thread_send_msg((struct spdk_thread *)(uintptr_t)thread, msg_cb, arg);
}

uint64_t
ioband_shim_owner_thread(void)
{
	return (uint64_t)(uintptr_t)g_owner;
}

void
ioband_shim_to_owner(void *io)
{
	struct spdk_bdev_io *bdev_io = io;
	struct ioband_io *ctx = io_ctx(bdev_io);

	ctx->local = false;
	ctx->ich = NULL;
	to_owner(bdev_io);
}

/* ---- JSON and RPC -------------------------------------------------------------------- */

void
ioband_shim_json_write_raw(void *w, const char *json, size_t len)
{
	spdk_json_write_val_raw(w, json, len);
}

void
ioband_shim_json_write_named_raw(void *w, const char *name, const char *json, size_t len)
{
	spdk_json_write_name(w, name);
	spdk_json_write_val_raw(w, json, len);
}

void
ioband_shim_rpc_result(void *request, const char *json, size_t len)
{
	struct spdk_json_write_ctx *w = spdk_jsonrpc_begin_result(request);

	if (w == NULL) {
		return;
	}
	spdk_json_write_val_raw(w, json, len);
	spdk_jsonrpc_end_result(request, w);
}

void
ioband_shim_rpc_error(void *request, int code, const char *message)
{
	spdk_jsonrpc_send_error_response(request, code, message);
}

struct text_buf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

static int
text_buf_write(void *cb_ctx, const void *data, size_t size)
{
	struct text_buf *b = cb_ctx;

	if (b->len + size + 1 > b->cap) {
		size_t cap = spdk_max(b->cap * 2, b->len + size + 256);
		char *p = realloc(b->data, cap);

		if (p == NULL) {
			b->oom = true;
			return -ENOMEM;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, size);
	b->len += size;
	b->data[b->len] = '\0';
	return 0;
}

static void
rpc_dispatch(int method, struct spdk_jsonrpc_request *request, const struct spdk_json_val *params)
{
	struct text_buf b = {0};

	if (params != NULL) {
		struct spdk_json_write_ctx *w = spdk_json_write_begin(text_buf_write, &b, 0);

		if (w == NULL || spdk_json_write_val(w, params) != 0 || spdk_json_write_end(w) != 0 ||
		    b.oom) {
			free(b.data);
			spdk_jsonrpc_send_error_response(request, SPDK_JSONRPC_ERROR_INTERNAL_ERROR,
							 "cannot re-encode params");
			return;
		}
	}
	ioband_rs_rpc(method, request, b.data, b.len);
	free(b.data);
}

/* Registered by ioband_load (below), not by SPDK_RPC_REGISTER: only once the app's SPDK
 * is the one this library was built for. */
#define IOBAND_RPC(fn_name, id)								\
	static void fn_name(struct spdk_jsonrpc_request *request,			\
			    const struct spdk_json_val *params)				\
	{										\
		rpc_dispatch(id, request, params);					\
	}

IOBAND_RPC(rpc_bdev_ioband_create, IOBAND_RPC_CREATE)
IOBAND_RPC(rpc_bdev_ioband_delete, IOBAND_RPC_DELETE)
IOBAND_RPC(rpc_bdev_ioband_get_devices, IOBAND_RPC_GET_DEVICES)
IOBAND_RPC(rpc_bdev_ioband_set_device, IOBAND_RPC_SET_DEVICE)
IOBAND_RPC(rpc_bdev_ioband_get_settings, IOBAND_RPC_GET_SETTINGS)
IOBAND_RPC(rpc_bdev_ioband_set_settings, IOBAND_RPC_SET_SETTINGS)
IOBAND_RPC(rpc_bdev_ioband_get_iostat, IOBAND_RPC_GET_IOSTAT)

static const struct {
	const char *method;
	spdk_rpc_method_handler fn;
} g_rpc_methods[] = {
	{ "bdev_ioband_create", rpc_bdev_ioband_create },
	{ "bdev_ioband_delete", rpc_bdev_ioband_delete },
	{ "bdev_ioband_get_devices", rpc_bdev_ioband_get_devices },
	{ "bdev_ioband_set_device", rpc_bdev_ioband_set_device },
	{ "bdev_ioband_get_settings", rpc_bdev_ioband_get_settings },
	{ "bdev_ioband_set_settings", rpc_bdev_ioband_set_settings },
	{ "bdev_ioband_get_iostat", rpc_bdev_ioband_get_iostat },
};

/* ---- module -------------------------------------------------------------------------- */

static int
ioband_module_init(void)
{
	int rc;

	g_owner = spdk_get_thread();
	g_intr = spdk_interrupt_mode_is_enabled();
	rc = ioband_rs_init(spdk_get_ticks_hz());
	if (rc != 0) {
		return rc;
	}
	spdk_io_device_register(&g_thread_dev, thread_ctx_create, thread_ctx_destroy,
				sizeof(struct ioband_thread), "ioband_threads");
	g_poller = SPDK_POLLER_REGISTER(owner_poll, NULL, IOBAND_POLL_US);
	return g_poller == NULL ? -ENOMEM : 0;
}

static void
ioband_module_fini(void)
{
	spdk_poller_unregister(&g_poller);
	spdk_io_device_unregister(&g_thread_dev, NULL);
	ioband_rs_fini();
}

static int
ioband_get_ctx_size(void)
{
	return sizeof(struct ioband_io);
}

static int
ioband_config_json(struct spdk_json_write_ctx *w)
{
	ioband_rs_config_json(w);
	return 0;
}

static void
ioband_examine_config(struct spdk_bdev *bdev)
{
	ioband_rs_examine(spdk_bdev_get_name(bdev));
	spdk_bdev_module_examine_done(&ioband_if);
}

static struct spdk_bdev_module ioband_if = {
	.name = "ioband",
	.module_init = ioband_module_init,
	.module_fini = ioband_module_fini,
	.config_json = ioband_config_json,
	.get_ctx_size = ioband_get_ctx_size,
	.examine_config = ioband_examine_config,
};

/* What SPDK_BDEV_MODULE_REGISTER and SPDK_RPC_REGISTER do, behind the version check
 * (ioband_check.c): a library built for another SPDK registers nothing and says so once. */
__attribute__((constructor)) static void
ioband_load(void)
{
	size_t i;

	if (!ioband_check_app_spdk((const void *)ioband_load)) {
		return;
	}
	spdk_bdev_module_list_add(&ioband_if);
	for (i = 0; i < sizeof(g_rpc_methods) / sizeof(g_rpc_methods[0]); i++) {
		spdk_rpc_register_method(g_rpc_methods[i].method, g_rpc_methods[i].fn, SPDK_RPC_RUNTIME);
	}
}
