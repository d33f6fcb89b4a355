#  SPDX-License-Identifier: BSD-3-Clause
"""Fixtures: a fake SPDK target for the plugin tests, ioband_tgt processes for end-to-end."""

import shutil
import sys

import pytest

sys.dont_write_bytecode = True  # keep __pycache__ out of the work tree

from rpctools import FakeSpdkServer, Target, find_tgt, run_spdk_rpc, short_tmpdir  # noqa: E402


@pytest.fixture
def fake_server():
    d = short_tmpdir()
    server = FakeSpdkServer(d + '/spdk.sock')
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rpc(fake_server):
    """rpc('bdev_ioband_delete', 'io0') runs spdk-rpc --plugin ioband_rpc against the fake."""
    return lambda *args, **kw: run_spdk_rpc(fake_server.path, *args, **kw)


@pytest.fixture(scope='session')
def tgt_binary():
    path, reason = find_tgt()
    if path is None:
        pytest.skip(reason)
    if not path.is_file():
        pytest.fail('IOBAND_TGT=%s does not exist' % path)
    return path


@pytest.fixture
def make_target(tgt_binary):
    """make_target() -> a Target (not started) with its own socket directory; all are stopped after."""
    made = []

    def make():
        t = Target(tgt_binary, short_tmpdir())
        made.append(t)
        return t

    yield make
    for t in made:
        try:
            t.terminate()
        finally:
            t.kill()
            shutil.rmtree(t.workdir, ignore_errors=True)
