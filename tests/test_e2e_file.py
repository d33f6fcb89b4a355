#  SPDX-License-Identifier: BSD-3-Clause
"""End to end: SPDK's own bdev_uring_create / bdev_aio_create commands against ioband_tgt, an
ioband bdev stacked on the file bdev, and the config round trip.

Skipped, saying why, when no ioband_tgt is built.
"""

import json
import os
import tempfile

import pytest


@pytest.fixture
def backing_file():
    # Under the build tree rather than /tmp: tmpfs may refuse O_DIRECT on older kernels.
    fd, path = tempfile.mkstemp(prefix='ioband-file-', suffix='.img', dir=os.getcwd())
    os.ftruncate(fd, 8 << 20)
    os.close(fd)
    try:
        yield path
    finally:
        os.unlink(path)


@pytest.mark.parametrize('method', ['bdev_uring_create', 'bdev_aio_create'])
def test_stock_file_commands_and_ioband_on_top(make_target, backing_file, method):
    t = make_target().start()
    name = 'File0'
    assert t.rpc(method, backing_file, name, '4096').stdout.strip() == name
    [bdev] = t.rpc_json('bdev_get_bdevs', '-b', name)
    assert bdev['block_size'] == 4096
    assert bdev['num_blocks'] == (8 << 20) // 4096

    assert t.rpc('bdev_ioband_create', '-b', name, '-n', 'band0').stdout == 'band0\n'
    t.rpc('bdev_ioband_set_settings', 'band0', '--tag', '7', '--weight', '250')

    delete = method.replace('_create', '_delete')
    # save_config, restart from it, same state.
    config = t.workdir / 'saved.json'
    config.write_text(t.rpc('save_config').stdout)
    before = (t.rpc_json('bdev_ioband_get_settings'), t.rpc_json('bdev_get_bdevs', '-b', name))
    t.rpc('spdk_kill_instance', 'SIGTERM')
    assert t.wait_exit() == 0
    t.start(json_config=config)
    after = (t.rpc_json('bdev_ioband_get_settings'), t.rpc_json('bdev_get_bdevs', '-b', name))
    assert after == before

    # Deleting the base takes the ioband bdev on it away too (SPDK's hot-remove); the
    # device, its share and settings stay, and the bdev comes back with the base.
    settings = t.rpc_json('bdev_ioband_get_settings')
    t.rpc(delete, name)
    assert t.rpc_json('bdev_get_bdevs') == []
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['band0']
    assert t.rpc_json('bdev_ioband_get_settings') == settings
    assert t.rpc(method, backing_file, name, '4096').stdout.strip() == name
    assert [b['name'] for b in t.rpc_json('bdev_get_bdevs')] == [name, 'band0']
    t.rpc('bdev_ioband_delete', 'band0')
    t.rpc(delete, name)
    assert t.rpc_json('bdev_ioband_get_devices') == []


def test_file_errors_are_clear_and_change_nothing(make_target, backing_file):
    t = make_target().start()
    with t.client() as c:
        missing = c.request('bdev_uring_create', {'name': 'F', 'filename': backing_file + '.nope'})
        assert missing['error']['code'] == -2, missing
        odd = c.request('bdev_uring_create', {'name': 'F', 'filename': backing_file, 'block_size': 1000})
        assert odd['error']['code'] == -22 and 'block_size' in odd['error']['message'], odd
        readonly = c.request('bdev_aio_create', {'name': 'F', 'filename': backing_file, 'readonly': True})
        assert readonly['error']['code'] == -95, readonly
        assert c.call('bdev_get_bdevs') == []
