"""A small asynchronous iSCSI initiator for tests, driving libiscsi (libiscsi7, the library
behind Debian's libiscsi-bin) through ctypes: the iSCSI and SCSI protocol work is libiscsi's,
not ours. It keeps up to `depth` WRITE(16)/READ(16) commands in flight on one session.

    with IscsiSession('127.0.0.1:3260', 'iqn.2016-06.io.spdk:disk', 'iqn.2026-01.test:a') as s:
        s.run([('write', lba, data), ('read', lba, nblocks)], depth=32)
"""
import ctypes
import ctypes.util
import select

SESSION_NORMAL = 2
SCSI_STATUS_GOOD = 0

_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class _Iovec(ctypes.Structure):
    _fields_ = [('iov_base', ctypes.c_void_p), ('iov_len', ctypes.c_size_t)]


def load():
    """libiscsi, or None when it is not installed."""
    name = ctypes.util.find_library('iscsi') or 'libiscsi.so.7'
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    vp, i, u32, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64
    sigs = {
        'iscsi_create_context': (vp, [ctypes.c_char_p]),
        'iscsi_destroy_context': (i, [vp]),
        'iscsi_set_targetname': (i, [vp, ctypes.c_char_p]),
        'iscsi_set_session_type': (i, [vp, i]),
        'iscsi_full_connect_sync': (i, [vp, ctypes.c_char_p, i]),
        'iscsi_logout_sync': (i, [vp]),
        'iscsi_get_error': (ctypes.c_char_p, [vp]),
        'iscsi_get_fd': (i, [vp]),
        'iscsi_which_events': (i, [vp]),
        'iscsi_service': (i, [vp, i]),
        'scsi_free_scsi_task': (None, [vp]),
        'iscsi_write16_task': (vp, [vp, i, u64, ctypes.c_char_p, u32, i, i, i, i, i, i, _CB, vp]),
        'iscsi_read16_iov_task': (vp, [vp, i, u64, u32, i, i, i, i, i, i, _CB, vp,
                                       ctypes.POINTER(_Iovec), i]),
    }
    for fn, (res, args) in sigs.items():
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


class IscsiError(Exception):
    """A login, transport or SCSI failure."""


class IscsiSession:
    """One normal session to LUN `lun` of `target` at `portal` (host:port)."""

    def __init__(self, portal, target, initiator, lun=0, block_size=512):
        self.lib = load()
        if self.lib is None:
            raise IscsiError('libiscsi is not installed')
        self.lun, self.block_size = lun, block_size
        self.ctx = self.lib.iscsi_create_context(initiator.encode())
        if not self.ctx:
            raise IscsiError('iscsi_create_context failed')
        self.lib.iscsi_set_targetname(self.ctx, target.encode())
        self.lib.iscsi_set_session_type(self.ctx, SESSION_NORMAL)
        if self.lib.iscsi_full_connect_sync(self.ctx, portal.encode(), lun) != 0:
            err = self.lib.iscsi_get_error(self.ctx)
            self.lib.iscsi_destroy_context(self.ctx)
            self.ctx = None
            raise IscsiError(f'login to {target} at {portal} failed: {err.decode()}')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.ctx:
            self.lib.iscsi_logout_sync(self.ctx)
            self.lib.iscsi_destroy_context(self.ctx)
            self.ctx = None

    def run(self, ops, depth=32):
        """Runs `ops` in order with up to `depth` in flight. An op is ('write', lba, bytes)
        or ('read', lba, nblocks). Returns the data of each read, in op order (None for
        writes). Raises IscsiError on the first command that does not end GOOD."""
        results = [None] * len(ops)
        keep = {}  # index -> objects that must live until the command completes
        failures = []
        done = []

        def on_done(_ctx, status, task, private):
            idx = private or 0
            if status != SCSI_STATUS_GOOD:
                failures.append((idx, status))
            self.lib.scsi_free_scsi_task(task)
            done.append(idx)

        cb = _CB(on_done)
        next_op, in_flight = 0, 0
        while next_op < len(ops) or in_flight:
            while next_op < len(ops) and in_flight < depth:
                kind, lba, arg = ops[next_op]
                if kind == 'write':
                    buf = ctypes.create_string_buffer(bytes(arg), len(arg))
                    task = self.lib.iscsi_write16_task(
                        self.ctx, self.lun, lba, buf, len(arg), self.block_size,
                        0, 0, 0, 0, 0, cb, ctypes.c_void_p(next_op))
                else:
                    buf = ctypes.create_string_buffer(arg * self.block_size)
                    iov = _Iovec(ctypes.cast(buf, ctypes.c_void_p), len(buf))
                    task = self.lib.iscsi_read16_iov_task(
                        self.ctx, self.lun, lba, len(buf), self.block_size,
                        0, 0, 0, 0, 0, cb, ctypes.c_void_p(next_op), ctypes.byref(iov), 1)
                    keep[next_op] = iov
                if not task:
                    raise IscsiError(f'op {next_op}: {self.lib.iscsi_get_error(self.ctx).decode()}')
                keep.setdefault(next_op, None)
                keep[next_op] = (buf, keep[next_op])
                next_op += 1
                in_flight += 1
            fd = self.lib.iscsi_get_fd(self.ctx)
            events = self.lib.iscsi_which_events(self.ctx)
            poller = select.poll()
            poller.register(fd, events)
            ready = poller.poll(10_000)
            if not ready:
                raise IscsiError(f'no progress in 10 s with {in_flight} commands in flight')
            if self.lib.iscsi_service(self.ctx, ready[0][1]) < 0:
                raise IscsiError(f'iscsi_service: {self.lib.iscsi_get_error(self.ctx).decode()}')
            for idx in done:
                in_flight -= 1
                buf, _ = keep.pop(idx)
                if ops[idx][0] == 'read':
                    results[idx] = buf.raw
            done.clear()
            if failures:
                raise IscsiError(f'commands failed (op index, SCSI status): {failures[:5]}')
        return results
