#  SPDX-License-Identifier: BSD-3-Clause
"""End to end: vbdevs stacked both ways (passthru over ioband over passthru) survive
save_config and a restart with --json, whatever order they were created in.

Skipped, saying why, when no ioband_tgt is built.
"""


def test_stacked_vbdevs_round_trip_through_save_config(make_target):
    t = make_target().start()
    t.rpc('bdev_null_create', 'Null0', '64', '4096')
    t.rpc('bdev_passthru_create', '-b', 'Null0', '-p', 'PtLow')
    t.rpc('bdev_ioband_create', '-b', 'PtLow', '-n', 'band0')
    t.rpc('bdev_ioband_set_settings', 'band0', '--tag', '3', '--weight', '40')
    t.rpc('bdev_passthru_create', '-b', 'band0', '-p', 'PtHigh')

    def state():
        bdevs = {b['name']: b['product_name'] for b in t.rpc_json('bdev_get_bdevs')}
        return bdevs, t.rpc_json('bdev_ioband_get_settings')

    before = state()
    assert set(before[0]) == {'Null0', 'PtLow', 'band0', 'PtHigh'}
    config = t.workdir / 'stacked.json'
    config.write_text(t.rpc('save_config').stdout)
    t.rpc('spdk_kill_instance', 'SIGTERM')
    assert t.wait_exit() == 0
    t.start(json_config=config)
    assert state() == before
