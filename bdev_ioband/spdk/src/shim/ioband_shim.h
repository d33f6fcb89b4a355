/*  SPDX-License-Identifier: BSD-3-Clause
 *
 * The narrow C API between the ioband SPDK shim (ioband_shim.c, which owns everything that
 * needs SPDK's macros, inline functions and struct layouts) and the Rust side
 * (src/ffi.rs declares the same functions by hand). Our own header: it names no SPDK type,
 * every SPDK object crosses as an opaque pointer.
 *
 * Threading: every function here, in both directions, runs on the owner thread (the SPDK
 * app thread, where module init, examine, RPC handlers and bdev destruct run), except
 * where noted: the per-thread replica functions run on their own thread, and an I/O and
 * its dispatch, io_wait and completion run on the thread that scheduled it (the owner, or
 * the submitting thread's replica).
 */
#ifndef IOBAND_SHIM_H
#define IOBAND_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes reserved for the Rust side in every ioband bdev_io's driver_ctx (8-aligned). */
#define IOBAND_RS_IO_AREA 48

/* I/O kinds passed to ioband_rs_submit. */
#define IOBAND_IO_READ 0
#define IOBAND_IO_WRITE 1
#define IOBAND_IO_OTHER 2
#define IOBAND_IO_RESET 3

/* Completion status for ioband_shim_complete. */
#define IOBAND_STATUS_BASE 0    /* as the base completed it (recorded by the shim) */
#define IOBAND_STATUS_FAILED 1
#define IOBAND_STATUS_ABORTED 2

/* RPC methods, in the order of ioband_rs_rpc's `method`. */
#define IOBAND_RPC_CREATE 0
#define IOBAND_RPC_DELETE 1
#define IOBAND_RPC_GET_DEVICES 2
#define IOBAND_RPC_SET_DEVICE 3
#define IOBAND_RPC_GET_SETTINGS 4
#define IOBAND_RPC_SET_SETTINGS 5
#define IOBAND_RPC_GET_IOSTAT 6

/*
 * A lane (see src/replica.rs and the engine's lane module): what the shim may dispatch for
 * one channel (an ioband bdev on a replica's thread) straight to the base, without calling
 * Rust, and what it counts while doing so. Allocated and freed by Rust
 * (ioband_rs_thread_lane / ioband_rs_thread_lane_free), used by the shim in between, both
 * on the channel's thread only. Rust writes the grant at each settle; the shim takes a
 * slot per dispatch and gives it back per completion, and adds to the counters; Rust
 * zeroes the counters when it settles them. Mirrored by `ffi::Lane` (same size, asserted
 * on both sides).
 */
struct ioband_lane {
	/* The grant (Rust). open: I/O may take the lane; sectors: the cost of an I/O is
	 * max(bytes / 512, 1) (weight-iosize), else 1 (weight). */
	uint32_t open;
	uint32_t sectors;
	/* Slots: an I/O may go while at_base < slot_limit (Rust sets it to at_base plus the
	 * slots granted; a completion gives its slot back by lowering at_base) and cost (all
	 * the cost started since the open: the counts are zeroed at every settle, which comes
	 * before every open) < cost_budget. */
	uint64_t slot_limit;
	uint64_t cost_budget;
	/* Counted by the shim since the last settle (zeroed by Rust; first_tick UINT64_MAX:
	 * no event yet). */
	uint64_t read_ios;
	uint64_t read_bytes;
	uint64_t write_ios;
	uint64_t write_bytes;
	uint64_t cost;
	uint64_t last_cost;
	uint64_t completed;
	uint64_t completed_cost;
	uint64_t completed_bytes;
	uint64_t latency_sum;
	uint64_t latency_min;		/* UINT64_MAX: none */
	uint64_t latency_min_drained;	/* UINT64_MAX: none */
	uint64_t first_tick;
	uint64_t last_tick;
	/* The lane's I/O at the base now (the shim's; never zeroed). */
	uint64_t at_base;
	/* What else the share had in flight at the grant (Rust): a completion that leaves
	 * at_base + others below 2 drained the share, as far as the shim can tell. */
	uint64_t others;
};
#define IOBAND_LANE_SIZE 152

/* ---- implemented in Rust (src/entry.rs); every one catches panics ---------------------- */

/* Module init: 0 or a negative errno. */
int ioband_rs_init(uint64_t ticks_per_sec);
/* Module fini: frees every Rust-side state. */
void ioband_rs_fini(void);
/* One RPC call. `params` is the JSON text of the params (NULL when absent). Rust replies
 * exactly once, now or later, with ioband_shim_rpc_result/_error or ioband_shim_node_unregister. */
void ioband_rs_rpc(int method, void *request, const char *params, size_t params_len);
/* A bdev appeared: create the ioband bdevs remembered over it. */
void ioband_rs_examine(const char *bdev_name);
/* save_config: write one JSON object per config entry with ioband_shim_json_write_raw. */
void ioband_rs_config_json(void *w);
/* bdev_get_bdevs: write the "ioband" member with ioband_shim_json_write_named_raw. */
void ioband_rs_dump_info(uint64_t dev_id, void *w);
/* An I/O reached the owner thread. 0: Rust owns it (it completes it exactly once through
 * ioband_shim_complete); negative: refused, the shim fails it. */
int ioband_rs_submit(uint64_t dev_id, void *bdev_io, int kind, uint64_t bytes, uint64_t thread_id);
/* The base completed an I/O that Rust dispatched (status recorded by the shim). */
void ioband_rs_done(uint64_t dev_id, void *bdev_io);
/* The bdev layer destructs an ioband bdev: complete its queued I/O, forget the node. */
void ioband_rs_node_destruct(uint64_t dev_id);
/* The shim freed the node of a device (after destruct and its last completion). */
void ioband_rs_node_freed(uint64_t dev_id);
/* A bdev_io may be free: the wait entry armed by ioband_shim_io_wait fired (or its fallback
 * message ran). */
void ioband_rs_io_wait_done(void);
/* Owner poller: re-drive timed queues and parked dispatches. Returns 1 if it did work. */
int ioband_rs_poll(void);

/* Per-thread replicas (every SPDK thread but the owner that has a channel of an ioband
 * bdev; each call runs on that thread, `rs` is what ioband_rs_thread_create returned). */
/* A thread gets its replica (NULL: none, its I/O goes to the owner). `thread` is the
 * thread's handle for ioband_shim_send_msg. */
void *ioband_rs_thread_create(uint64_t thread);
/* The thread's last ioband channel is gone: the replica tells the owner it leaves. The
 * shim keeps a poller on the thread (so that it cannot exit, and its handle stays valid
 * for the owner's messages) until ioband_rs_thread_left says the owner knows. */
void ioband_rs_thread_leave(void *rs);
/* 1 once the owner has acknowledged the leave (no message will come any more). */
int ioband_rs_thread_left(void *rs);
/* Frees the replica (after it left, or if it could not be kept while leaving). */
void ioband_rs_thread_destroy(void *rs);
/* An I/O submitted on the replica's thread, at `now_ticks` (the thread's pass tick). 0:
 * Rust owns it (completes it exactly once); 1: not here (a device the replica does not
 * know yet, a reset): the shim sends it to the owner; negative: refused, the shim fails
 * it. */
int ioband_rs_thread_submit(void *rs, uint64_t dev_id, void *bdev_io, int kind,
			    uint64_t bytes, uint64_t thread_id, uint64_t now_ticks);
/* The base completed an I/O the replica dispatched (`now_ticks`: the pass tick). */
void ioband_rs_thread_done(void *rs, void *bdev_io, uint64_t now_ticks);
/* The wait entry the replica armed fired. */
void ioband_rs_thread_io_wait_done(void *rs);
/* The thread's poller (every IOBAND_POLL_US). Returns 1 if it did work. */
int ioband_rs_thread_poll(void *rs);
/* A channel of ioband bdev `dev_id` was created on the replica's thread: its lane (NULL:
 * none, every I/O takes ioband_rs_thread_submit). Closed until the poller's next pass. */
struct ioband_lane *ioband_rs_thread_lane(void *rs, uint64_t dev_id, uint64_t thread_id);
/* The channel goes: Rust settles the lane's counts and frees it (its I/O has completed). */
void ioband_rs_thread_lane_free(void *rs, struct ioband_lane *lane);
/* A lane I/O completed while its lane was closed: Rust settles the counts now (something
 * may wait for the slot). */
void ioband_rs_thread_lane_settle(void *rs);
/* A message sent with ioband_shim_send_msg arrived (on its target thread). */
void ioband_rs_msg(void *arg);

/* ---- implemented in C (ioband_shim.c) ------------------------------------------------ */

/* The tick of the calling thread's current poll pass, for the engine's clock. The only
 * clock reads of the module are in here, at most one per pass of the thread (see .c). */
uint64_t ioband_shim_pass_ticks(void);
/* Whether a bdev of that name exists. */
int ioband_shim_bdev_exists(const char *name);
/* Opens and claims `base` (shared-writer claim with `claim_key`), registers ioband bdev
 * `name` over it. 0 and *node_out set, or a negative errno (-ENODEV: no base yet). */
int ioband_shim_node_create(const char *name, const char *base, uint64_t dev_id,
			    uint64_t claim_key, void **node_out);
/* Unregisters the node's bdev. With a request, replies to it (true, or the error) when done. */
void ioband_shim_node_unregister(void *node, void *request);
/* Where the Rust area of an I/O (IOBAND_RS_IO_AREA bytes, 8-aligned) is, in bytes from
 * the start of its spdk_bdev_io (read once, at init). */
size_t ioband_shim_io_area_offset(void);
/* Submits a dispatched I/O to the base (owner channel), once: 0; -ENOMEM, nothing was
 * submitted for want of a bdev_io (Rust parks it and calls ioband_shim_io_wait); another
 * negative errno, the base refused it (Rust fails it). */
int ioband_shim_dispatch(void *bdev_io);
/* Arms io_wait on the I/O's base channel with the I/O's own wait entry; when that cannot
 * be armed (the thread's bdev_io cache is not empty after all), sends a message instead.
 * Either way ioband_rs_io_wait_done follows: 0. Neither: a negative errno (Rust's poller
 * retries). */
int ioband_shim_io_wait(void *bdev_io);
/* Completes an ioband I/O on its own thread. */
void ioband_shim_complete(void *bdev_io, int status);
/* JSON-RPC replies (app thread). `json` is one complete JSON value. */
void ioband_shim_rpc_result(void *request, const char *json, size_t len);
void ioband_shim_rpc_error(void *request, int code, const char *message);
/* Write helpers for config_json / dump_info_json. */
void ioband_shim_json_write_raw(void *w, const char *json, size_t len);
void ioband_shim_json_write_named_raw(void *w, const char *name, const char *json, size_t len);
/* Logging (NUL-terminated message). level: 0 error, 1 warning, 2 notice. */
void ioband_shim_log(int level, const char *message);
/* Sends ioband_rs_msg(arg) to `thread` (a handle from ioband_rs_thread_create, or
 * ioband_shim_owner_thread()): 0, or a negative errno (not sent; `arg` stays the caller's).
 * Any thread. */
int ioband_shim_send_msg(uint64_t thread, void *arg);
/* The owner thread's handle. Any thread. */
uint64_t ioband_shim_owner_thread(void);
/* A replica gives an I/O (not yet at the base, its ticket returned) to the owner, which
 * schedules it as if submitted there: out of bdev_ios with nothing of the replica's at the
 * base, its thread might never see one freed, while the owner's thread keeps its own. */
void ioband_shim_to_owner(void *bdev_io);

#ifdef __cplusplus
}
#endif

#endif /* IOBAND_SHIM_H */
