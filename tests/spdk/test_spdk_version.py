#  SPDX-License-Identifier: BSD-3-Clause
"""A library built for one SPDK, preloaded into an app of another SPDK, refuses to register
with one line on stderr and the app goes on without the ioband module (spdk_get_version
answers, the bdev_ioband_* methods do not exist).

Needs two SPDK builds of different versions: SPDK_DIR (the library the other tests build)
and SPDK_DIR_OTHER (built here into <target dir>/spdk-other). Skips with one line when
either is absent or both are the same SPDK. The check of a process with no SPDK at all
needs SPDK_DIR only.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rpctools import RawClient, short_tmpdir
from spdktools import CRATE, SpdkTarget, build_lib, spdk_binary, spdk_lib_dir

REFUSAL = 'bdev_ioband: not loaded: '


def spdk_version(root):
    """'25.09.0' from <root>/include/spdk/version.h, as the build script spells it."""
    text = (root / 'include' / 'spdk' / 'version.h').read_text()
    field = {k: v for k, v in re.findall(r'#define SPDK_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)', text)}
    return '%d.%02d.%d' % (int(field['MAJOR']), int(field['MINOR']), int(field['PATCH']))


def bdev_soname(root):
    return os.path.realpath(spdk_lib_dir(root) / 'libspdk_bdev.so').rsplit('/', 1)[1]


@pytest.fixture(scope='module')
def other_root(spdk_root):
    d = os.environ.get('SPDK_DIR_OTHER')
    if not d:
        pytest.skip('SPDK_DIR_OTHER not set: the cross-version refusal needs a second SPDK build')
    root = Path(d)
    if spdk_binary(root, 'spdk_tgt') is None:
        pytest.skip('SPDK_DIR_OTHER=%s has no spdk_tgt' % root)
    if bdev_soname(root) == bdev_soname(spdk_root):
        pytest.skip('SPDK_DIR_OTHER=%s has the same libspdk_bdev soname as SPDK_DIR' % root)
    return root


@pytest.fixture(scope='module')
def other_lib(other_root):
    target = Path(os.environ.get('CARGO_TARGET_DIR', CRATE / 'target')) / 'spdk-other'
    return build_lib(other_root, target)


class RefusingTarget(SpdkTarget):
    """spdk_tgt that is expected to run without the module: ready when it answers RPCs."""

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError('spdk_tgt exited with %s while starting:\n%s' % (
                self.proc.returncode, self.log()))
        if not self.sock.exists():
            return False
        with RawClient(self.sock, timeout=5) as c:
            return 'result' in c.request('spdk_get_version')


@pytest.mark.parametrize('direction', ['other-lib-in-this-app', 'this-lib-in-other-app'])
def test_library_for_another_spdk_is_refused(spdk_root, ioband_lib, other_root, other_lib, direction):
    if direction == 'other-lib-in-this-app':
        app_root, lib, built_for = spdk_root, other_lib, other_root
    else:
        app_root, lib, built_for = other_root, ioband_lib, spdk_root
    t = RefusingTarget(app_root, lib, short_tmpdir())
    try:
        t.start()
        with RawClient(t.sock, timeout=5) as c:
            version = c.request('spdk_get_version')['result']['fields']
            missing = c.request('bdev_ioband_get_devices')
        assert '%d.%02d.%d' % (version['major'], version['minor'], version['patch']) == spdk_version(app_root)
        assert missing['error']['code'] == -32601, missing
        assert t.terminate() == 0
        lines = [l for l in t.log_path.read_text(errors='replace').splitlines() if 'bdev_ioband' in l]
        assert len(lines) == 1 and lines[0].startswith(REFUSAL), t.log()
        assert 'built for SPDK %s (%s)' % (spdk_version(built_for), bdev_soname(built_for)) in lines[0]
        assert str(spdk_lib_dir(app_root) / bdev_soname(app_root)) in lines[0]
    finally:
        t.kill()
        shutil.rmtree(t.workdir, ignore_errors=True)


def test_process_without_spdk_is_refused(spdk_root, ioband_lib):
    """Preloaded into a program with no SPDK: one line, and the program runs as usual."""
    true = shutil.which('true')
    proc = subprocess.run([true], env=dict(os.environ, LD_PRELOAD=str(ioband_lib)),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(REFUSAL), proc.stderr
    assert 'has no libspdk_' in lines[0]


def test_library_links_no_spdk_and_binds_spdk_lazily(spdk_root, ioband_lib):
    """What lets the check run at all in another SPDK's app: no SPDK library is needed by
    name, nothing is bound at load (no BIND_NOW), and every SPDK symbol is a function called
    through the PLT (JUMP_SLOT, resolved at first call), never data bound at load."""
    readelf = shutil.which('readelf')
    if readelf is None:
        pytest.skip('no readelf (binutils) to read the library\'s dynamic section')
    dynamic = subprocess.run([readelf, '-dW', str(ioband_lib)], capture_output=True, text=True,
                             check=True).stdout
    assert 'libspdk_' not in dynamic and 'RUNPATH' not in dynamic, dynamic
    assert 'BIND_NOW' not in dynamic and not re.search(r'FLAGS_1\).*\bNOW\b', dynamic), dynamic
    relocs = subprocess.run([readelf, '-rW', str(ioband_lib)], capture_output=True, text=True,
                            check=True).stdout
    spdk = [l.split() for l in relocs.splitlines() if re.search(r'\sspdk_\w+', l)]
    assert spdk, relocs[:2000]
    assert all(r[2].endswith('_JUMP_SLOT') for r in spdk), [r for r in spdk if not r[2].endswith('_JUMP_SLOT')]
