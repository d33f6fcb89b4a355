#  SPDX-License-Identifier: BSD-3-Clause
"""End to end: the NBD front end of ioband_tgt with clients nobody here wrote (libnbd's
nbdinfo, nbdcopy and Python bindings, fio's nbd engine): data round trips over a Unix socket
and TCP with 0 mismatches, the config round trip, structured replies and multi-conn as libnbd
negotiates them (several connections of one client, all in its cgroup's group; nbdcopy over
4 connections), fio in two cgroup v2 children sharing one export 3:1 by their `cgroup:<id>`
groups, and fio through ioband at >= 0.90 of the bare base.

Skipped, saying why, without ioband_tgt, without the Debian tools (fio, libnbd-bin,
python3-libnbd), or (the 3:1 test) without a writable cgroup v2 tree; the multi-conn tests
put their client in a cgroup of its own when the tree is writable, else in this process's.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rpctools import completed_ios, ratio_in_window

TOOLS = ('nbdinfo', 'nbdcopy', 'fio')


def need_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip('not installed: %s (Debian: fio, libnbd-bin)' % ', '.join(missing))


def unix_uri(t, export):
    return 'nbd+unix:///%s?socket=%s' % (export, t.workdir / ('%s.nbd' % export))


def start(make_target, bdevs, exports):
    t = make_target()
    config = {'subsystems': [
        {'subsystem': 'bdev', 'config': bdevs},
        {'subsystem': 'nbd', 'config': [
            {'method': 'ioband_nbd_create_export', 'params': dict(e, unix_path=str(t.workdir / ('%s.nbd' % e['name'])))}
            for e in exports]},
    ]}
    path = t.workdir / 'config.json'
    path.write_text(json.dumps(config))
    return t.start(json_config=path)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_nbdcopy_round_trips_over_unix_and_tcp(make_target):
    need_tools('nbdinfo', 'nbdcopy')
    t = start(make_target, [
        {'method': 'bdev_malloc_create', 'params': {'name': 'Malloc0', 'block_size': 512, 'num_blocks': 32768}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Malloc0', 'share': 's0'}},
    ], [{'name': 'disk', 'bdev_name': 'band0'}])
    port = free_port()
    t.rpc('ioband_nbd_create_export', 'tdisk', 'band0', '--tcp-address', '127.0.0.1:%d' % port,
          '--default-group', 'tag:5')
    # Groups are reported once they have settings: give the TCP default and our own cgroup
    # (which nbdcopy inherits) one each.
    t.rpc('bdev_ioband_set_settings', 'band0', '--tag', '5', '--weight', '100')
    own = own_cgroup_id()
    if own is not None:
        t.rpc('bdev_ioband_set_settings', 'band0', '--cgroup', str(own), '--weight', '100')
    info = json.loads(subprocess.run(['nbdinfo', '--json', unix_uri(t, 'disk')], check=True,
                                     capture_output=True, text=True).stdout)
    [export] = info['exports']
    assert export['export-size'] == 16 << 20
    assert export['can_flush'] and export['can_trim'] and export['can_zero'] and export['can_fua']
    # libnbd asks for structured replies and gets them; then DF, and multi-conn always.
    assert info['structured'] is True, info
    assert export['can_multi_conn'] and export['can_df']
    assert export['contexts'] == [], 'no metadata context is offered'

    src = t.workdir / 'src.img'
    data = os.urandom(16 << 20)
    # Zero runs so that nbdcopy's sparse handling sends write-zeroes too.
    data = data[:4 << 20] + bytes(4 << 20) + data[8 << 20:]
    src.write_bytes(data)
    for uri in (unix_uri(t, 'disk'), 'nbd://127.0.0.1:%d/tdisk' % port):
        back = t.workdir / 'back.img'
        subprocess.run(['nbdcopy', '--flush', str(src), uri], check=True)
        subprocess.run(['nbdcopy', uri, str(back)], check=True)
        assert back.read_bytes() == data, 'mismatch through %s' % uri
        back.unlink()
    groups = {g['group'] for d in t.rpc_json('bdev_ioband_get_iostat')['devices'] for g in d['groups']
              if g['completed_ios'] > 0}
    assert 'tag:5' in groups, groups
    if own is not None:
        assert 'cgroup:%d' % own in groups, groups

    # save_config restores the exports.
    saved = t.workdir / 'saved.json'
    saved.write_text(t.rpc('save_config').stdout)
    before = t.rpc_json('ioband_nbd_get_exports')
    t.rpc('spdk_kill_instance', 'SIGTERM')
    assert t.wait_exit() == 0
    t.start(json_config=saved)
    assert t.rpc_json('ioband_nbd_get_exports') == before
    t.rpc('ioband_nbd_delete_export', 'tdisk')
    assert [e['name'] for e in t.rpc_json('ioband_nbd_get_exports')] == ['disk']
    # The exported bdev is claimed: it cannot go while exported.
    assert t.rpc('bdev_malloc_delete', 'Malloc0', check=False).returncode != 0


def fio_cmd(uri, runtime, rw='randread', iodepth=32):
    return ['fio', '--name=j', '--ioengine=nbd', '--uri=' + uri, '--rw=' + rw, '--bs=4k',
            '--iodepth=%d' % iodepth, '--time_based', '--runtime=%d' % runtime, '--output-format=json']


def fio_json(text):
    # The nbd engine prints a line before the JSON.
    return json.loads(text[text.index('{'):])


def cgroup2_root():
    """A writable cgroup v2 directory to make children in, or a reason why there is none."""
    if os.geteuid() != 0:
        return None, 'not root'
    mount = cgroup2_mount()
    if mount is None:
        return None, 'no cgroup v2 file system mounted'
    probe = mount / ('ioband-probe-%d' % os.getpid())
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return None, 'cgroup v2 at %s is not writable: %s' % (mount, e)
    return mount, None


def cgroup2_mount():
    for line in Path('/proc/self/mountinfo').read_text().splitlines():
        left, _, right = line.partition(' - ')
        if right.split()[:1] == ['cgroup2']:
            return Path(left.split()[4])
    return None


def own_cgroup_id():
    """This process's cgroup v2 id (its directory's inode), or None without cgroup v2."""
    mount = cgroup2_mount()
    if mount is None:
        return None
    for line in Path('/proc/self/cgroup').read_text().splitlines():
        if line.startswith('0::'):
            return (mount / line[3:].lstrip('/')).stat().st_ino
    return None


def test_fio_in_two_cgroups_shares_3_to_1(make_target):
    need_tools('fio')
    root, reason = cgroup2_root()
    if root is None:
        pytest.skip('no writable cgroup v2 tree: %s' % reason)
    t = start(make_target, [
        # 5000 IOPS: the base is what both tenants contend for, even on a debug build on a
        # loaded machine (see the iSCSI 3:1 test).
        {'method': 'bdev_model_create', 'params': {'name': 'Model0', 'block_size': 4096, 'num_blocks': 65536,
                                                   'iops': 5000, 'latency_us': 50, 'queue_depth': 16}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Model0', 'share': 's0'}},
    ], [{'name': 'disk', 'bdev_name': 'band0'}])
    dirs = [root / ('ioband-test-%d-%s' % (os.getpid(), n)) for n in 'ab']
    procs = []
    try:
        for d in dirs:
            d.mkdir()
        ids = [d.stat().st_ino for d in dirs]
        t.rpc('bdev_ioband_set_settings', 'band0', '--cgroup', str(ids[0]), '--weight', '300')
        t.rpc('bdev_ioband_set_settings', 'band0', '--cgroup', str(ids[1]), '--weight', '100')
        for d in dirs:
            # The shell moves itself into the cgroup, then becomes fio.
            script = 'echo $$ > %s/cgroup.procs && exec "$@"' % d
            procs.append(subprocess.Popen(['sh', '-c', script, 'sh'] + fio_cmd(unix_uri(t, 'disk'), 8),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        groups = ['cgroup:%d' % i for i in ids]
        a, b, ratio = ratio_in_window(t, groups)
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert fio_json(out)['jobs'][0]['error'] == 0
        print('cgroup shares: %d vs %d I/O in the common window, ratio %.3f' % (a, b, ratio))
        assert abs(ratio - 3.0) <= 0.09, ratio
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for d in dirs:
            if d.exists():
                try:
                    d.rmdir()
                except OSError:
                    pass


def test_fio_through_ioband_keeps_90_percent_of_the_bare_base(make_target):
    need_tools('fio')
    t = start(make_target, [
        {'method': 'bdev_null_create', 'params': {'name': 'Null0', 'block_size': 4096, 'num_blocks': 65536}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Null0', 'share': 's0'}},
    ], [{'name': 'bare', 'bdev_name': 'Null0'}, {'name': 'band', 'bdev_name': 'band0'}])
    best = {}
    # Alternate, best of three each: the machine is shared.
    for _ in range(3):
        for export in ('bare', 'band'):
            out = subprocess.run(fio_cmd(unix_uri(t, export), 2), check=True, capture_output=True,
                                 text=True).stdout
            iops = fio_json(out)['jobs'][0]['read']['iops']
            best[export] = max(best.get(export, 0), iops)
    ratio = best['band'] / best['bare']
    print('fio over NBD: bare %.0f IOPS, ioband %.0f IOPS, ratio %.3f' % (best['bare'], best['band'], ratio))
    assert ratio >= 0.90, best


def libnbd_python():
    """An interpreter with libnbd's Python bindings (Debian: python3-libnbd), or None."""
    for python in dict.fromkeys(filter(None, (shutil.which('python3'), '/usr/bin/python3'))):
        if subprocess.run([python, '-c', 'import nbd'], capture_output=True).returncode == 0:
            return python
    return None


@contextlib.contextmanager
def client_cgroup(t, band):
    """A cgroup v2 directory for the client (None: it stays in ours) and the group its
    connections should get; the group is given a weight so that iostat reports it."""
    root, _ = cgroup2_root()
    d = None
    if root is not None:
        d = root / ('ioband-mc-%d' % os.getpid())
        d.mkdir()
        cg = d.stat().st_ino
    else:
        cg = own_cgroup_id()
    if cg is not None:
        t.rpc('bdev_ioband_set_settings', band, '--cgroup', str(cg), '--weight', '100')
    try:
        yield d, ('cgroup:%d' % cg if cg is not None else None)
    finally:
        if d is not None:
            try:
                d.rmdir()
            except OSError:
                pass


def in_cgroup(d, cmd):
    """cmd, run inside cgroup directory d (unchanged when d is None)."""
    if d is None:
        return cmd
    return ['sh', '-c', 'echo $$ > %s/cgroup.procs && exec "$@"' % d, 'sh'] + cmd


def export_groups(t, name):
    with t.client() as c:
        [export] = c.call('ioband_nbd_get_exports', {'name': name})
    return [conn['group'] for conn in export['connections']]


# Run by libnbd's Python: N connections of one client, checks of what each negotiated, data
# written across them, a flush on the last, everything read back through another; prints
# one JSON line, 'ready', then holds the connections until its stdin closes.
LIBNBD_CLIENT = r"""
import json, random, sys
import nbd
uri, n = sys.argv[1], int(sys.argv[2])
out = {}
plain = nbd.NBD()
plain.set_request_structured_replies(False)
plain.connect_uri(uri)
out['plain'] = {'structured': plain.get_structured_replies_negotiated(), 'df': plain.can_df(),
                'multi_conn': plain.can_multi_conn(), 'read': len(plain.pread(4096, 0))}
plain.shutdown()
hs = []
for i in range(n):
    h = nbd.NBD()
    h.add_meta_context('base:allocation')
    h.connect_uri(uri)
    hs.append(h)
out['structured'] = [h.get_structured_replies_negotiated() for h in hs]
out['multi_conn'] = [h.can_multi_conn() for h in hs]
out['df'] = [h.can_df() for h in hs]
out['meta'] = [h.can_meta_context('base:allocation') for h in hs]
bs = 64 * 1024
blocks = [random.Random(k).randbytes(bs) for k in range(8 * n)]
for k, data in enumerate(blocks):
    hs[k % n].pwrite(data, k * bs)
hs[-1].flush()
out['mismatches'] = sum(hs[(k + 1) % n].pread(bs, k * bs) != data for k, data in enumerate(blocks))
chunks = []
def chunk(buf, offset, status, error):
    chunks.append([offset, len(buf), status])
    return 0
whole = hs[0].pread_structured(4 * bs, 0, chunk, nbd.CMD_FLAG_DF)
out['df_chunks'] = chunks
out['df_data_ok'] = whole == b''.join(blocks[:4])
out['read_data_status'] = nbd.READ_DATA
hs[0].set_strict_mode(0)
try:
    hs[0].pread(512, 100)
    out['misaligned'] = 'no error'
except nbd.Error as e:
    out['misaligned'] = e.errno
print(json.dumps(out), flush=True)
print('ready', flush=True)
sys.stdin.readline()
for h in hs:
    h.shutdown()
"""


def test_libnbd_negotiates_structured_replies_and_multi_conn(make_target):
    python = libnbd_python()
    if python is None:
        pytest.skip('no Python with libnbd bindings (Debian: python3-libnbd)')
    t = start(make_target, [
        {'method': 'bdev_malloc_create', 'params': {'name': 'Malloc0', 'block_size': 512, 'num_blocks': 32768}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Malloc0', 'share': 's0'}},
    ], [{'name': 'disk', 'bdev_name': 'band0'}])
    n = 4
    with client_cgroup(t, 'band0') as (d, group):
        proc = subprocess.Popen(in_cgroup(d, [python, '-c', LIBNBD_CLIENT, unix_uri(t, 'disk'), str(n)]),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            line = proc.stdout.readline()
            assert line, 'client failed: %s' % proc.stderr.read()
            out = json.loads(line)
            assert proc.stdout.readline().strip() == 'ready'
            # While the client holds its connections: n of them, all in its cgroup's group.
            groups = export_groups(t, 'disk')
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        print('libnbd client: %s; connections in groups %s' % (json.dumps(out), groups))
        assert len(groups) == n, groups
        assert len(set(groups)) == 1, groups
        if group is not None:
            assert groups[0] == group, (groups, group)
            assert completed_ios(t, [group])[0] > 0
    assert out['plain'] == {'structured': False, 'df': False, 'multi_conn': True, 'read': 4096}
    assert out['structured'] == [True] * n
    assert out['multi_conn'] == [True] * n
    assert out['df'] == [True] * n
    assert out['meta'] == [False] * n, 'no base:allocation offered'
    assert out['mismatches'] == 0
    # DF: exactly one data chunk, the whole read.
    assert out['df_chunks'] == [[0, 4 * 64 * 1024, out['read_data_status']]]
    assert out['df_data_ok']
    assert out['misaligned'] == 'EINVAL', 'EINVAL in an error chunk'


def test_nbdcopy_over_four_connections_round_trips(make_target):
    need_tools('nbdcopy')
    # nbdcopy hands each thread 128 MiB at a time: 512 MiB keep all 4 connections busy.
    size = 512 << 20
    t = start(make_target, [
        {'method': 'bdev_malloc_create', 'params': {'name': 'Malloc0', 'block_size': 4096,
                                                   'num_blocks': size // 4096}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Malloc0', 'share': 's0'}},
    ], [{'name': 'disk', 'bdev_name': 'band0'}])
    src = t.workdir / 'src.img'
    # Sparse: 2 MiB of data every 32 MiB (nbdcopy writes the zeroes as write-zeroes).
    with open(src, 'wb') as f:
        f.truncate(size)
        for off in range(0, size, 32 << 20):
            f.seek(off + (off >> 20) * 4096)
            f.write(os.urandom(2 << 20))
    uri = unix_uri(t, 'disk')
    with client_cgroup(t, 'band0') as (d, group):
        seen = {}
        for what, args, pattern in (
                ('write', ['--flush', str(src), uri], r'(dst\d+): nbd_aio_pwrite: enter'),
                ('read', [uri, str(t.workdir / 'back.img')], r'(src\d+): nbd_aio_pread: enter')):
            log = t.workdir / ('nbdcopy-%s.log' % what)
            with open(log, 'w') as err:
                proc = subprocess.Popen(in_cgroup(d, ['nbdcopy', '--connections=4', '--threads=4', '-v'] + args),
                                        stderr=err)
                most = []
                while proc.poll() is None:
                    groups = export_groups(t, 'disk')
                    if len(groups) > len(most):
                        most = groups
                    time.sleep(0.05)
            assert proc.returncode == 0, log.read_text()[-2000:]
            handles = set(re.findall(pattern, log.read_text()))
            seen[what] = (most, handles)
        back, data = (t.workdir / 'back.img').read_bytes(), src.read_bytes()
        mismatches = sum(back[i:i + 4096] != data[i:i + 4096] for i in range(0, size, 4096))
        print('nbdcopy: %s; %d mismatched 4 KiB blocks' % (seen, mismatches))
        assert len(back) == size and mismatches == 0
        for what, (most, handles) in seen.items():
            assert len(handles) == 4, (what, handles)
            assert len(most) == 4 and len(set(most)) == 1, (what, most)
            if group is not None:
                assert most[0] == group, (what, most, group)
        if group is not None:
            assert completed_ios(t, [group])[0] > 0
