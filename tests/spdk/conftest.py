#  SPDX-License-Identifier: BSD-3-Clause
"""Fixtures for the real-SPDK tests: spdk_tgt (from SPDK_DIR, built --with-shared) with
libbdev_ioband_spdk.so preloaded, driven through `spdk-rpc --plugin ioband_rpc`.

Every test here skips, with one line saying why, when SPDK_DIR is not set. With SPDK_DIR
set, the library is built once per session (cargo is quick when it is up to date); a build
failure fails the tests rather than skipping them.
"""

import os
import shutil
from pathlib import Path

import pytest

from rpctools import short_tmpdir
from spdktools import CRATE, SpdkTarget, build_lib, spdk_binary, spdk_dir


@pytest.fixture(scope='session')
def spdk_root():
    root = spdk_dir()
    if root is None:
        pytest.skip('SPDK_DIR not set: the real-SPDK tests need an SPDK built --with-shared')
    if spdk_binary(root, 'spdk_tgt') is None:
        pytest.skip('SPDK_DIR=%s has no spdk_tgt (build/bin/spdk_tgt or bin/spdk_tgt)' % root)
    return root


@pytest.fixture(scope='session')
def ioband_lib(spdk_root):
    """libbdev_ioband_spdk.so: IOBAND_SPDK_LIB if set, else built here in release mode."""
    env_lib = os.environ.get('IOBAND_SPDK_LIB')
    if env_lib:
        return Path(env_lib)
    return build_lib(spdk_root, Path(os.environ.get('CARGO_TARGET_DIR', CRATE / 'target')))


@pytest.fixture
def make_spdk_target(spdk_root, ioband_lib):
    """make_spdk_target() -> an SpdkTarget (not started); all are stopped after the test."""
    made = []

    def make(**kw):
        t = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        try:
            t.terminate()
        finally:
            t.kill()
            shutil.rmtree(t.workdir, ignore_errors=True)
