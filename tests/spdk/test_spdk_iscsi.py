#  SPDX-License-Identifier: BSD-3-Clause
"""Side by side: libiscsi's iscsi-test-cu against SPDK's own iscsi_tgt (from SPDK_DIR, a
malloc LUN) and against ioband_tgt (an ioband bdev over a malloc LUN of the same size),
configured with the same stock spdk-rpc subcommands. ioband_tgt must pass every test that
SPDK's target passes; the table of both is printed (the README's conformance table).

Skips, with one line saying why, without SPDK_DIR (and an iscsi_tgt in it), without
ioband_tgt, or without libiscsi-bin.
"""

import os
import shutil
import subprocess
import time

import pytest

import iscsi_conformance
from rpctools import run_spdk_rpc, short_tmpdir
from spdktools import free_tcp_port, spdk_binary, spdk_dir, spdk_env


def configure(sock, port, bdev_args, lun):
    def rpc(*args):
        p = run_spdk_rpc(sock, *args)
        assert p.returncode == 0, p.stderr
    rpc(*bdev_args)
    rpc('iscsi_create_portal_group', '1', '127.0.0.1:%s' % port)
    rpc('iscsi_create_initiator_group', '1', 'ANY', '127.0.0.1/32')
    rpc('iscsi_create_target_node', 'disk1', 'Disk1', '%s:0' % lun, '1:1', '64', '-d')


def wait_socket(path, proc, log):
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        assert proc.poll() is None, open(log).read()[-3000:]
        assert time.monotonic() < deadline, 'no RPC socket at %s' % path
        time.sleep(0.1)


def test_iscsi_test_cu_side_by_side_with_spdk(make_target):
    root = spdk_dir()
    if root is None:
        pytest.skip('SPDK_DIR not set: the side-by-side run needs SPDK\'s iscsi_tgt')
    binary = spdk_binary(root, 'iscsi_tgt')
    if binary is None:
        pytest.skip('SPDK_DIR=%s has no iscsi_tgt' % root)
    if shutil.which('iscsi-test-cu') is None:
        pytest.skip('not installed: iscsi-test-cu (Debian: libiscsi-bin)')
    work = short_tmpdir()
    sock = os.path.join(work, 'spdk.sock')
    log = os.path.join(work, 'iscsi_tgt.log')
    port = free_tcp_port()
    with open(log, 'w') as out:
        spdk = subprocess.Popen([str(binary), '--no-huge', '-s', '1024', '-m', '0x1', '-r', sock],
                                env=spdk_env(root), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_socket(sock, spdk, log)
        configure(sock, port, ['bdev_malloc_create', '-b', 'Malloc0', '64', '512'], 'Malloc0')
        theirs = iscsi_conformance.run_all(
            'iscsi://127.0.0.1:%s/iqn.2016-06.io.spdk:disk1/0' % port)
    finally:
        spdk.terminate()
        try:
            spdk.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spdk.kill()
            spdk.wait()
        shutil.rmtree(work, ignore_errors=True)

    t = make_target().start()
    port = free_tcp_port()
    run_spdk_rpc(t.sock, 'bdev_malloc_create', '-b', 'Malloc0', '64', '512', plugin=False)
    configure(t.sock, port, ['bdev_ioband_create', '-b', 'Malloc0', '-n', 'band0'], 'band0')
    ours = iscsi_conformance.run_all('iscsi://127.0.0.1:%s/iqn.2016-06.io.spdk:disk1/0' % port)

    print()
    print(iscsi_conformance.format_table({'ioband_tgt': ours, 'SPDK iscsi_tgt': theirs}))
    # A test ours fails that SPDK's target did not fail.
    regressions = {}
    for suite, row in theirs.items():
        lost = [n for n in ours[suite]['failed'] if n not in row['failed']]
        if lost:
            regressions[suite] = lost
    assert not regressions, regressions
