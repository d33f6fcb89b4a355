#  SPDX-License-Identifier: BSD-3-Clause
"""The library loads into each of SPDK's target apps, not only spdk_tgt: nvmf_tgt and
iscsi_tgt (LD_PRELOAD), and serves the ioband methods over an ioband bdev on a malloc base.

Skipped, with one line, without SPDK_DIR (conftest), or when the app was not built.
"""

import pytest

from spdktools import spdk_binary

# iscsi_tgt's PDU pools need more than 1 GiB of memory without hugepages.
APPS = [('nvmf_tgt', 1024), ('iscsi_tgt', 3072)]


@pytest.mark.parametrize('app,mem_mb', APPS)
def test_module_loads_into_app(make_spdk_target, spdk_root, app, mem_mb):
    if spdk_binary(spdk_root, app) is None:
        pytest.skip('SPDK_DIR=%s has no %s' % (spdk_root, app))
    t = make_spdk_target(app=app, mem_mb=mem_mb).start()
    assert t.rpc('bdev_malloc_create', '-b', 'Malloc0', '16', '512').stdout.strip() == 'Malloc0'
    assert t.rpc('bdev_ioband_create', '-b', 'Malloc0', '-n', 'io0').stdout == 'io0\n'
    t.rpc('bdev_ioband_set_settings', 'io0', '--tag', '1', '--weight', '7')
    text = t.rpc('bdev_ioband_get_devices', '--format', 'text').stdout
    assert text.splitlines()[:2] == ['io0 policy=weight io_throttle=4 io_limit=192 token=768 carryover=2', '  io0']
    [setting] = [s for s in t.rpc_json('bdev_ioband_get_settings') if s['group'] == 'tag:1']
    assert setting['weight'] == 7
    t.rpc('bdev_ioband_delete', 'io0')
    assert t.rpc_json('bdev_ioband_get_devices') == []
