#  SPDX-License-Identifier: BSD-3-Clause
"""End to end: data written through one front end of ioband_tgt reads back the same through
the other, at queue depth 32 with mixed sizes, over one ioband bdev exported both over NBD
(Unix socket) and iSCSI.

- NBD -> iSCSI: fio's nbd engine writes the whole device (random order, 4-128 KiB, QD 32,
  crc32c verify headers); the device is read back through iSCSI by libiscsi (QD 32, mixed
  sizes) into a file, and fio verifies that file with the same job (`verify_only`).
- iSCSI -> NBD: libiscsi writes random data over the whole device (random order, 0.5-128
  KiB, QD 32); nbdcopy reads it back over NBD; every byte is compared.

Skipped, saying why, without ioband_tgt, fio, nbdcopy or libiscsi.
"""

import json
import random
import shutil
import socket
import subprocess

import pytest

from iscsi_client import IscsiError, IscsiSession, load as load_libiscsi

BLOCK = 512
SIZE = 64 << 20
TARGET = 'iqn.2016-06.io.spdk:disk'


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if load_libiscsi() is None:
        missing.append('libiscsi (libiscsi7)')
    if missing:
        pytest.skip('not installed: %s (Debian: fio, libnbd-bin, libiscsi-bin)' % ', '.join(missing))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(make_target, port):
    t = make_target()
    sock = t.workdir / 'disk.nbd'
    config = {'subsystems': [
        {'subsystem': 'bdev', 'config': [
            {'method': 'bdev_malloc_create',
             'params': {'name': 'Malloc0', 'block_size': BLOCK, 'num_blocks': SIZE // BLOCK}},
            {'method': 'bdev_ioband_create',
             'params': {'name': 'band0', 'base_bdev_name': 'Malloc0', 'share': 's0'}},
        ]},
        {'subsystem': 'nbd', 'config': [
            {'method': 'ioband_nbd_create_export',
             'params': {'name': 'disk', 'bdev_name': 'band0', 'unix_path': str(sock)}},
        ]},
        {'subsystem': 'iscsi', 'config': [
            {'method': 'iscsi_create_portal_group',
             'params': {'tag': 1, 'portals': [{'host': '127.0.0.1', 'port': str(port)}]}},
            {'method': 'iscsi_create_initiator_group',
             'params': {'tag': 2, 'initiators': ['ANY'], 'netmasks': ['127.0.0.1/32']}},
            {'method': 'iscsi_create_target_node',
             'params': {'name': 'disk', 'alias_name': 'disk', 'queue_depth': 64,
                        'luns': [{'bdev_name': 'band0', 'lun_id': 0}],
                        'pg_ig_maps': [{'pg_tag': 1, 'ig_tag': 2}], 'disable_chap': True}},
        ]},
    ]}
    path = t.workdir / 'config.json'
    path.write_text(json.dumps(config))
    t.start(json_config=path)
    return t, 'nbd+unix:///disk?socket=%s' % sock


def extents(rnd, sizes_blocks):
    """The device cut into extents of the given sizes, in random order."""
    out, lba, total = [], 0, SIZE // BLOCK
    while lba < total:
        n = min(rnd.choice(sizes_blocks), total - lba)
        out.append((lba, n))
        lba += n
    rnd.shuffle(out)
    return out


def fio_job(uri_or_file, verify_only):
    job = ['fio', '--name=cross', '--rw=randwrite', '--bsrange=4k-128k', '--iodepth=32',
           '--size=%d' % SIZE, '--verify=crc32c', '--randseed=7', '--norandommap=0',
           '--verify_state_save=0',
           '--output-format=json']
    if uri_or_file.startswith('nbd'):
        job += ['--ioengine=nbd', '--uri=%s' % uri_or_file]
    else:
        job += ['--ioengine=psync', '--filename=%s' % uri_or_file]
    # verify_fatal: without it fio 3.33 prints a failed verify and still exits 0.
    job += ['--verify_only=1', '--verify_fatal=1'] if verify_only else ['--do_verify=0']
    return job


def test_nbd_writes_read_back_through_iscsi(make_target):
    need('fio', 'nbdcopy')
    port = free_port()
    t, uri = start(make_target, port)
    subprocess.run(fio_job(uri, verify_only=False), check=True, capture_output=True)
    rnd = random.Random(11)
    ext = extents(rnd, [1, 8, 16, 64, 256])
    with IscsiSession('127.0.0.1:%d' % port, TARGET, 'iqn.2026-01.test:reader') as s:
        parts = s.run([('read', lba, n) for lba, n in ext], depth=32)
    image = bytearray(SIZE)
    for (lba, n), data in zip(ext, parts):
        image[lba * BLOCK:(lba + n) * BLOCK] = data
    copy = t.workdir / 'via-iscsi.img'
    copy.write_bytes(bytes(image))
    # fio checks every block it wrote against its own headers and checksums.
    res = subprocess.run(fio_job(str(copy), verify_only=True), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    # (fio prints a note about psync's queue depth before the JSON.)
    stats = json.loads(res.stdout[res.stdout.index('{'):])['jobs'][0]
    assert stats['error'] == 0
    assert stats['read']['io_bytes'] == SIZE, stats['read']['io_bytes']
    # The negative check: a flipped byte in the copy is caught by the same verify.
    image[SIZE // 2 + 100] ^= 0xFF
    copy.write_bytes(bytes(image))
    res = subprocess.run(fio_job(str(copy), verify_only=True), capture_output=True, text=True)
    assert res.returncode != 0


def test_iscsi_writes_read_back_through_nbd(make_target):
    need('nbdcopy')
    port = free_port()
    t, uri = start(make_target, port)
    rnd = random.Random(5)
    expected = bytearray(SIZE)
    ops = []
    for lba, n in extents(rnd, [1, 3, 8, 16, 64, 255, 256]):
        data = rnd.randbytes(n * BLOCK)
        expected[lba * BLOCK:(lba + n) * BLOCK] = data
        ops.append(('write', lba, data))
    try:
        with IscsiSession('127.0.0.1:%d' % port, TARGET, 'iqn.2026-01.test:writer') as s:
            s.run(ops, depth=32)
    except IscsiError as e:
        pytest.fail(str(e))
    out = t.workdir / 'via-nbd.img'
    subprocess.run(['nbdcopy', uri, str(out)], check=True)
    got = out.read_bytes()
    assert len(got) == SIZE
    mismatched = sum(1 for i in range(0, SIZE, BLOCK)
                     if got[i:i + BLOCK] != expected[i:i + BLOCK])
    assert mismatched == 0, '%d of %d blocks differ' % (mismatched, SIZE // BLOCK)
