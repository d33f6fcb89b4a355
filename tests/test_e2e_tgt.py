#  SPDX-License-Identifier: BSD-3-Clause
"""End to end: the real spdk-rpc client with our plugin against a running ioband_tgt.

Skipped, saying why, when no ioband_tgt is built (IOBAND_TGT may point at one).
Happy paths go through spdk-rpc as a user would; bad input goes through a raw client so that
it reaches the server untouched by argparse, and every bad call must leave the state that
bdev_ioband_get_devices / get_settings show unchanged while the server keeps serving.
"""

import json
import random
import re
import socket

import pytest

from rpctools import ConnectionClosed, RawClient, RawParams, Target, describe, short_tmpdir

NQN = 'nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd'
MODEL = ['bdev_model_create', 'Model0', '64', '512', '--iops', '50000', '--latency-us', '100',
         '--queue-depth', '64']

DEVICE_KEYS = {'share', 'policy', 'io_throttle', 'io_limit', 'token', 'carryover',
               'capacity_kib_per_sec', 'idle_grace_us', 'devices', 'configured'}
CONFIGURED_KEYS = {'io_throttle', 'io_limit', 'token', 'carryover', 'idle_grace_us', 'nr_requests'}
SETTING_KEYS = {'name', 'share', 'group', 'type', 'id', 'weight', 'min_kib_per_sec', 'max_kib_per_sec'}
GROUP_STAT_KEYS = {'group', 'read_ios', 'read_bytes', 'write_ios', 'write_bytes', 'other_ios',
                   'dispatched_ios', 'dispatched_bytes', 'throttled_ios', 'throttled_ticks',
                   'queue_depth', 'in_flight', 'completed_ios'}


def snapshot(t):
    """What the control files show, JSON and text, and the bdev list where the target has one."""
    with t.client() as c:
        state = {
            'devices': c.call('bdev_ioband_get_devices'),
            'devices_text': c.call('bdev_ioband_get_devices', {'format': 'text'}),
            'settings': c.call('bdev_ioband_get_settings'),
            'settings_text': c.call('bdev_ioband_get_settings', {'format': 'text'}),
        }
        methods = c.request('rpc_get_methods')
        if 'result' in methods and 'bdev_get_bdevs' in methods['result']:
            state['bdevs'] = sorted(b['name'] for b in c.call('bdev_get_bdevs'))
    return state


def settings_by_key(settings):
    return {(s['name'], s['group']): s for s in settings}


# ------------------------------------------------------------------------------------------
# The whole life: create, configure, read, save, restart from the saved config, delete.

def test_lifecycle_save_restart_delete(make_target):
    t = make_target().start()

    assert t.rpc(*MODEL).stdout == 'Model0\n'
    assert t.rpc('bdev_ioband_create', '-b', 'Model0', '-n', 'io0', '--share', 'share0',
                 '--policy', 'weight').stdout == 'io0\n'
    assert t.rpc('bdev_ioband_create', '-b', 'Model0', '-n', 'io1', '--share', 'share0').stdout == 'io1\n'
    t.rpc('bdev_ioband_set_settings', 'io0', '--weight', '3')
    t.rpc('bdev_ioband_set_settings', 'io1', '-w', '1')
    t.rpc('bdev_ioband_set_settings', 'io0', '--initiator', NQN, '--weight', '200')
    t.rpc('bdev_ioband_set_settings', 'io1', '--cgroup', '4242', '--weight', '50')
    t.rpc('bdev_ioband_set_device', 'share0', '--io-limit', '96')
    t.rpc('bdev_ioband_set_device', '-c', 'share0 io_throttle 8')
    assert t.rpc_json('bdev_ioband_get_devices')[0]['idle_grace_us'] == 0      # auto
    assert 'idle_grace' not in t.rpc('bdev_ioband_get_devices', '-f', 'text').stdout
    t.rpc('bdev_ioband_set_device', 'share0', '--idle-grace-us', '900')
    t.rpc('bdev_ioband_set_device', '-c', 'io1 idle_grace 250')

    # devices, JSON
    devices = t.rpc_json('bdev_ioband_get_devices')
    assert len(devices) == 1, devices
    d = devices[0]
    assert DEVICE_KEYS <= set(d), d
    assert CONFIGURED_KEYS <= set(d['configured']), d
    assert (d['share'], d['policy'], d['devices']) == ('share0', 'weight', ['io0', 'io1'])
    assert (d['io_limit'], d['io_throttle']) == (96, 8)
    assert (d['idle_grace_us'], d['configured']['idle_grace_us']) == (250, 250)
    assert t.rpc_json('bdev_ioband_get_devices', '--share', 'share0') == devices

    # devices, text: printed raw
    text = t.rpc('bdev_ioband_get_devices', '-f', 'text').stdout
    lines = text.splitlines()
    assert re.fullmatch(r'share0 policy=weight io_throttle=8 io_limit=96 token=\d+ carryover=\d+ idle_grace=250',
                        lines[0]), text
    assert lines[1:] == ['  io0', '  io1'], text

    # settings, JSON: every group of every device
    settings = t.rpc_json('bdev_ioband_get_settings')
    for s in settings:
        assert SETTING_KEYS <= set(s), s
    by = settings_by_key(settings)
    assert set(by) == {('io0', 'none'), ('io1', 'none'), ('io0', 'initiator:' + NQN), ('io1', 'cgroup:4242')}
    assert by[('io0', 'none')]['weight'] == 3 and by[('io1', 'none')]['weight'] == 1
    assert all(s['share'] == 'share0' for s in settings)
    ini = by[('io0', 'initiator:' + NQN)]
    assert (ini['type'], ini['id'], ini['weight']) == ('initiator', NQN, 200)
    cg = by[('io1', 'cgroup:4242')]
    assert (cg['type'], str(cg['id']), cg['weight']) == ('cgroup', '4242', 50)

    # filters
    assert t.rpc_json('bdev_ioband_get_settings', '-n', 'io0', '--initiator', NQN) == [ini]
    assert t.rpc_json('bdev_ioband_get_settings', '--cgroup', '4242') == [cg]
    assert {s['group'] for s in t.rpc_json('bdev_ioband_get_settings', '-n', 'io0')} == {'none', 'initiator:' + NQN}
    assert {s['name'] for s in t.rpc_json('bdev_ioband_get_settings', '--group', 'none')} == {'io0', 'io1'}

    # settings, text: the blkio "settings" file as a group reads it
    assert t.rpc('bdev_ioband_get_settings', '-f', 'text').stdout == 'io0 weight=3\nio1 weight=1\n'
    assert t.rpc('bdev_ioband_get_settings', '-f', 'text', '-i', NQN).stdout == 'io0 weight=200\n'

    # iostat
    stat = t.rpc_json('bdev_ioband_get_iostat')
    assert isinstance(stat['tick_rate'], int) and stat['tick_rate'] > 0, stat
    assert [(dev['name'], dev['share']) for dev in stat['devices']] == [('io0', 'share0'), ('io1', 'share0')]
    for dev in stat['devices']:
        assert dev['groups'][0]['group'] == 'none'      # default group first
        for g in dev['groups']:
            assert GROUP_STAT_KEYS <= set(g), g
    one = t.rpc_json('bdev_ioband_get_iostat', '-n', 'io1', '--cgroup', '4242')
    assert [(dev['name'], [g['group'] for g in dev['groups']]) for dev in one['devices']] == [('io1', ['cgroup:4242'])]

    # save, stop through the RPC, start again from the saved file
    before = snapshot(t)
    saved = t.rpc('save_config').stdout
    config = json.loads(saved)
    methods = [e['method'] for s in config['subsystems'] for e in (s.get('config') or [])
               if isinstance(e, dict)]
    assert 'bdev_model_create' in methods and 'bdev_ioband_create' in methods, saved
    creates = [e['params'] for s in config['subsystems'] for e in (s.get('config') or [])
               if isinstance(e, dict) and e.get('method') == 'bdev_ioband_create']
    assert [c.get('idle_grace_us') for c in creates] == [250, 250], saved
    config_path = t.workdir / 'config.json'
    config_path.write_text(saved)

    t.rpc('spdk_kill_instance', 'SIGTERM')
    assert t.wait_exit() == 0, t.log()

    t.start(json_config=config_path)
    assert snapshot(t) == before

    # delete everything
    t.rpc('bdev_ioband_set_settings', 'io1', '--cgroup', '4242', '--detach')
    t.rpc('bdev_ioband_set_settings', 'io0', '--initiator', NQN, '--detach')
    assert set(settings_by_key(t.rpc_json('bdev_ioband_get_settings'))) == {('io0', 'none'), ('io1', 'none')}
    assert t.rpc('bdev_ioband_delete', 'io1').stdout == ''
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io0']
    t.rpc('bdev_ioband_delete', 'io0')
    assert t.rpc_json('bdev_ioband_get_devices') == []
    assert t.rpc_json('bdev_ioband_get_settings') == []
    t.rpc('bdev_model_delete', 'Model0')
    assert t.terminate() == 0, t.log()


def test_over_null_and_malloc_with_spdk_commands(make_target):
    """null and malloc bdevs come from spdk-rpc's own commands; a range-bw share over both."""
    t = make_target().start()
    assert t.rpc('bdev_null_create', 'Null0', '16', '512').stdout == 'Null0\n'
    assert t.rpc('bdev_malloc_create', '-b', 'Malloc0', '16', '4096').stdout == 'Malloc0\n'
    t.rpc('bdev_ioband_create', '-b', 'Null0', '-n', 'ion0', '--share', 'rb', '-p', 'range-bw',
          '--capacity', '4000000')
    t.rpc('bdev_ioband_create', '-b', 'Malloc0', '-n', 'iom0', '--share', 'rb')
    t.rpc('bdev_ioband_set_settings', 'ion0', '--range-bw', '1000:200000')
    t.rpc('bdev_ioband_set_settings', 'iom0', '--tag', '7', '--range-bw', '500:1000')
    by = settings_by_key(t.rpc_json('bdev_ioband_get_settings'))
    assert (by[('ion0', 'none')]['min_kib_per_sec'], by[('ion0', 'none')]['max_kib_per_sec']) == (1000, 200000)
    tag = by[('iom0', 'tag:7')]
    assert (tag['type'], str(tag['id']), tag['min_kib_per_sec'], tag['max_kib_per_sec']) == ('tag', '7', 500, 1000)
    text = t.rpc('bdev_ioband_get_settings', '-f', 'text', '--tag', '7').stdout
    assert text == 'iom0 range-bw=500:1000\n'
    devices = t.rpc_json('bdev_ioband_get_devices')
    assert [(d['share'], d['policy'], d['capacity_kib_per_sec'], d['devices']) for d in devices] == [
        ('rb', 'range-bw', 4000000, ['ion0', 'iom0'])]
    t.rpc('bdev_ioband_delete', 'iom0')
    t.rpc('bdev_ioband_delete', 'ion0')
    t.rpc('bdev_malloc_delete', 'Malloc0')
    t.rpc('bdev_null_delete', 'Null0')
    assert t.rpc_json('bdev_ioband_get_devices') == []
    assert t.terminate() == 0, t.log()


# ------------------------------------------------------------------------------------------
# Bad input: SPDK-style errors, no state change, the server goes on serving.

def load_two_shares(t, make_base=MODEL):
    """share0 (weight, io0:io1 = 3:1, an initiator and a cgroup group) and share1 (range-bw,
    io2 with a tag group), all over the bdev Model0 that `make_base` creates; shared with the
    real-SPDK tests, which make Model0 a malloc bdev."""
    t.rpc(*make_base)
    t.rpc('bdev_ioband_create', '-b', 'Model0', '-n', 'io0', '--share', 'share0')
    t.rpc('bdev_ioband_create', '-b', 'Model0', '-n', 'io1', '--share', 'share0')
    t.rpc('bdev_ioband_set_settings', 'io0', '-w', '3')
    t.rpc('bdev_ioband_set_settings', 'io1', '-w', '1')
    t.rpc('bdev_ioband_set_settings', 'io0', '-i', NQN, '-w', '200')
    t.rpc('bdev_ioband_set_settings', 'io1', '--cgroup', '4242', '-w', '50')
    t.rpc('bdev_ioband_create', '-b', 'Model0', '-n', 'io2', '--share', 'share1', '-p', 'range-bw',
          '--capacity', '1000000')
    t.rpc('bdev_ioband_set_settings', 'io2', '--range-bw', '1000:5000')
    t.rpc('bdev_ioband_set_settings', 'io2', '--tag', '7', '--range-bw', '100:200')


@pytest.fixture(scope='module')
def loaded(tgt_binary):
    """One target with two shares: share0 (weight, io0:io1 = 3:1, an initiator and a cgroup
    group) and share1 (range-bw, io2 with a tag group)."""
    t = Target(tgt_binary, short_tmpdir())
    try:
        t.start()
        load_two_shares(t)
        yield t
        assert t.terminate() == 0, t.log()
    finally:
        t.kill()


@pytest.fixture
def target(loaded):
    """The loaded target; checks after the test that its state did not change and that it
    still serves a new connection."""
    before = snapshot(loaded)
    yield loaded
    assert loaded.proc.poll() is None, 'ioband_tgt died:\n' + loaded.log()
    assert snapshot(loaded) == before


P = -32602   # invalid params: the message names the field
E = -22      # EINVAL

BAD_CALLS = [
    # (id, method, params, code, text the message must contain)
    ('unknown-method', 'bdev_ioband_frobnicate', {'name': 'io0'}, -32601, None),
    # create
    ('create-duplicate', 'bdev_ioband_create', {'name': 'io0', 'base_bdev_name': 'Model0'}, -17, None),
    ('create-duplicate-of-base', 'bdev_ioband_create', {'name': 'Model0', 'base_bdev_name': 'io0'}, -17, None),
    ('create-knobs-differ-from-share', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'share': 'share0', 'policy': 'range-bw'}, E, None),
    ('create-missing-base', 'bdev_ioband_create', {'name': 'ioX'}, P, 'base_bdev_name'),
    ('create-missing-name', 'bdev_ioband_create', {'base_bdev_name': 'Model0'}, P, 'name'),
    ('create-no-params', 'bdev_ioband_create', None, P, None),
    ('create-params-array', 'bdev_ioband_create', ['ioX', 'Model0'], P, None),
    ('create-unknown-field', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'bogus_knob': 1}, P, 'bogus_knob'),
    ('create-name-type', 'bdev_ioband_create', {'name': 5, 'base_bdev_name': 'Model0'}, P, 'name'),
    ('create-io-limit-type', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'io_limit': 'abc'}, P, 'io_limit'),
    ('create-io-limit-negative', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'io_limit': -1}, P, 'io_limit'),
    ('create-io-limit-range', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'io_limit': 40000}, E, 'io_limit'),
    ('create-throttle-above-limit', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'io_limit': 4, 'io_throttle': 8}, E, None),
    ('create-policy', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'policy': 'fifo'}, P, 'policy'),
    ('create-idle-grace-type', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'idle_grace_us': '250'}, P, 'idle_grace_us'),
    ('create-idle-grace-negative', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'idle_grace_us': -1}, P, 'idle_grace_us'),
    ('create-idle-grace-range', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'idle_grace_us': 1000001}, E, 'idle_grace'),
    ('create-idle-grace-differs-from-share', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'share': 'share0', 'idle_grace_us': 250}, E, None),
    # delete
    ('delete-unknown', 'bdev_ioband_delete', {'name': 'NoSuch'}, -19, None),
    ('delete-not-ioband', 'bdev_ioband_delete', {'name': 'Model0'}, -19, None),
    ('delete-name-type', 'bdev_ioband_delete', {'name': ['io0']}, P, 'name'),
    ('delete-unknown-field', 'bdev_ioband_delete', {'name': 'io0', 'force': True}, P, 'force'),
    ('delete-no-params', 'bdev_ioband_delete', None, P, None),
    # get_devices / get_settings / get_iostat filters
    ('get-devices-unknown-share', 'bdev_ioband_get_devices', {'share': 'NoSuch'}, -19, None),
    ('get-devices-format', 'bdev_ioband_get_devices', {'format': 'xml'}, P, 'format'),
    ('get-settings-unknown-device', 'bdev_ioband_get_settings', {'name': 'NoSuch'}, -19, None),
    ('get-settings-group-absent', 'bdev_ioband_get_settings', {'name': 'io0', 'group': 'tag:99'}, -2, None),
    ('get-settings-bad-group', 'bdev_ioband_get_settings', {'group': 'uid:5'}, P, 'group'),
    ('get-iostat-unknown-device', 'bdev_ioband_get_iostat', {'name': 'NoSuch'}, -19, None),
    ('get-iostat-unknown-field', 'bdev_ioband_get_iostat', {'names': ['io0']}, P, 'names'),
    # set_device
    ('set-device-unknown', 'bdev_ioband_set_device', {'name': 'NoSuch', 'io_limit': 8}, -19, None),
    ('set-device-nothing', 'bdev_ioband_set_device', {'name': 'share0'}, E, None),
    ('set-device-empty', 'bdev_ioband_set_device', {}, E, None),
    ('set-device-both-forms', 'bdev_ioband_set_device',
     {'name': 'share0', 'io_limit': 8, 'command': 'share0 io_limit 8'}, E, None),
    ('set-device-io-throttle-range', 'bdev_ioband_set_device', {'name': 'share0', 'io_throttle': 40000}, E, None),
    ('set-device-throttle-above-limit', 'bdev_ioband_set_device',
     {'name': 'share0', 'io_limit': 2, 'io_throttle': 8}, E, None),
    ('set-device-token-type', 'bdev_ioband_set_device', {'name': 'share0', 'token': '4'}, P, 'token'),
    ('set-device-policy', 'bdev_ioband_set_device', {'name': 'share0', 'policy': 'cfq'}, P, 'policy'),
    ('set-device-command-short', 'bdev_ioband_set_device', {'command': 'share0 io_limit'}, E, None),
    ('set-device-command-param', 'bdev_ioband_set_device', {'command': 'share0 frobnicate 3'}, E, None),
    ('set-device-command-value', 'bdev_ioband_set_device', {'command': 'share0 io_limit lots'}, E, None),
    ('set-device-command-unknown', 'bdev_ioband_set_device', {'command': 'NoSuch io_limit 8'}, -19, None),
    ('set-device-capacity-below-min', 'bdev_ioband_set_device',
     {'name': 'share1', 'capacity_kib_per_sec': 100}, E, None),
    ('set-device-idle-grace-range', 'bdev_ioband_set_device',
     {'name': 'share0', 'idle_grace_us': 1000001}, E, 'idle_grace'),
    ('set-device-idle-grace-range-with-other-knob', 'bdev_ioband_set_device',
     {'name': 'io1', 'io_limit': 8, 'idle_grace_us': 4000000}, E, 'idle_grace'),
    ('set-device-idle-grace-type', 'bdev_ioband_set_device',
     {'name': 'share0', 'idle_grace_us': [5]}, P, 'idle_grace_us'),
    ('set-device-idle-grace-unknown-field', 'bdev_ioband_set_device',
     {'name': 'share0', 'idle_grace': 5}, P, 'idle_grace'),
    ('set-device-command-idle-grace-range', 'bdev_ioband_set_device',
     {'command': 'share0 idle_grace 1000001'}, E, 'idle_grace'),
    # set_settings
    ('set-settings-weight-0', 'bdev_ioband_set_settings', {'name': 'io0', 'value': 0}, E, 'weight'),
    ('set-settings-weight-40000', 'bdev_ioband_set_settings', {'name': 'io0', 'value': 40000}, E, 'weight'),
    ('set-settings-weight-negative', 'bdev_ioband_set_settings', {'name': 'io0', 'value': -3}, E, 'weight'),
    ('set-settings-weight-text-0', 'bdev_ioband_set_settings', {'name': 'io0', 'value': '0'}, E, 'weight'),
    ('set-settings-weight-group-0', 'bdev_ioband_set_settings',
     {'name': 'io0', 'group': 'initiator:' + NQN, 'value': 0}, E, 'weight'),
    ('set-settings-new-group-weight-40000', 'bdev_ioband_set_settings',
     {'name': 'io0', 'group': 'cgroup:77', 'value': 40000}, E, 'weight'),
    ('set-settings-min-above-max', 'bdev_ioband_set_settings', {'name': 'io2', 'value': '2000:1000'}, E, None),
    ('set-settings-new-group-min-above-max', 'bdev_ioband_set_settings',
     {'name': 'io2', 'group': 'tag:8', 'value': '2000:1000'}, E, None),
    ('set-settings-range-garbage', 'bdev_ioband_set_settings', {'name': 'io2', 'value': '1:x'}, E, None),
    ('set-settings-value-type', 'bdev_ioband_set_settings', {'name': 'io0', 'value': True}, P, 'value'),
    ('set-settings-value-float', 'bdev_ioband_set_settings', {'name': 'io0', 'value': 2.5}, P, 'value'),
    ('set-settings-value-array', 'bdev_ioband_set_settings', {'name': 'io0', 'value': [3]}, P, 'value'),
    ('set-settings-unknown-device', 'bdev_ioband_set_settings', {'name': 'NoSuch', 'value': 3}, -19, None),
    ('set-settings-detach-absent', 'bdev_ioband_set_settings', {'name': 'io0', 'group': 'tag:99'}, -2, None),
    ('set-settings-detach-default', 'bdev_ioband_set_settings', {'name': 'io0'}, E, None),
    ('set-settings-group-type', 'bdev_ioband_set_settings', {'name': 'io0', 'group': 'uid:5', 'value': 3}, P, 'group'),
    ('set-settings-group-cgroup-text', 'bdev_ioband_set_settings',
     {'name': 'io0', 'group': 'cgroup:abc', 'value': 3}, P, 'group'),
    ('set-settings-group-tag-range', 'bdev_ioband_set_settings',
     {'name': 'io0', 'group': 'tag:4294967296', 'value': 3}, P, 'group'),
    ('set-settings-group-initiator-space', 'bdev_ioband_set_settings',
     {'name': 'io0', 'group': 'initiator:a b', 'value': 3}, P, 'group'),
    ('set-settings-group-not-string', 'bdev_ioband_set_settings', {'name': 'io0', 'group': 7, 'value': 3}, P, 'group'),
    ('set-settings-unknown-field', 'bdev_ioband_set_settings', {'name': 'io0', 'weight': 3}, P, 'weight'),
    ('set-settings-command-and-value', 'bdev_ioband_set_settings', {'command': 'io0 3', 'value': 3}, E, None),
    ('set-settings-command-and-name', 'bdev_ioband_set_settings', {'command': 'io0 3', 'name': 'io0'}, E, None),
    ('set-settings-command-weight-0', 'bdev_ioband_set_settings', {'command': 'io0 0'}, E, None),
    ('set-settings-command-too-long', 'bdev_ioband_set_settings', {'command': 'io0 3 4'}, E, None),
    ('set-settings-command-unknown', 'bdev_ioband_set_settings', {'command': 'NoSuch 3'}, -19, None),
    ('set-settings-neither', 'bdev_ioband_set_settings', {'group': 'tag:1'}, E, None),
    # model device
    ('model-duplicate', 'bdev_model_create', {'name': 'Model0', 'block_size': 512, 'num_blocks': 1024,
                                              'iops': 1000, 'latency_us': 10, 'queue_depth': 8}, -17, None),
    ('model-duplicate-of-ioband', 'bdev_model_create', {'name': 'io0', 'block_size': 512, 'num_blocks': 1024,
                                                        'iops': 1000, 'latency_us': 10, 'queue_depth': 8}, -17, None),
    ('model-queue-depth-0', 'bdev_model_create', {'name': 'M9', 'block_size': 512, 'num_blocks': 1024,
                                                  'iops': 1000, 'latency_us': 10, 'queue_depth': 0}, E, 'queue_depth'),
    ('model-unknown-field', 'bdev_model_create', {'name': 'M9', 'block_size': 512, 'num_blocks': 1024,
                                                  'iops': 1000, 'latency_us': 10, 'queue_depth': 8,
                                                  'color': 'red'}, P, 'color'),
    ('model-delete-unknown', 'bdev_model_delete', {'name': 'NoSuch'}, -19, None),
    # issue #10: a key given twice (SPDK's decoders refuse it; serde kept the last)
    ('duplicate-key-set-settings', 'bdev_ioband_set_settings',
     RawParams('{"name": "io0", "value": 5, "value": 9}'), P, 'duplicate field `value`'),
    ('duplicate-key-create', 'bdev_ioband_create',
     RawParams('{"name": "ioX", "base_bdev_name": "Model0", "name": "ioY"}'), P, 'duplicate field `name`'),
    ('duplicate-key-set-device', 'bdev_ioband_set_device',
     RawParams('{"name": "share0", "io_limit": 8, "io_limit": 16}'), P, 'io_limit'),
    # issue #10: null is not a value (it detached a group)
    ('null-value-detaches-nothing', 'bdev_ioband_set_settings',
     {'name': 'io0', 'group': 'initiator:' + NQN, 'value': None}, P, 'value'),
    ('null-group', 'bdev_ioband_set_settings', {'name': 'io0', 'group': None, 'value': 3}, P, 'group'),
    ('null-create-share', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'share': None}, P, 'share'),
    ('null-set-device-knob', 'bdev_ioband_set_device', {'name': 'share0', 'io_limit': None}, P, 'io_limit'),
    ('null-get-devices-share', 'bdev_ioband_get_devices', {'share': None}, P, 'share'),
    ('null-get-iostat-name', 'bdev_ioband_get_iostat', {'name': None}, P, 'name'),
    # issue #10: numbers out of range are -32602 naming the field (1e309 closed the connection)
    ('number-1e309', 'bdev_ioband_set_device', RawParams('{"name": "share0", "io_limit": 1e309}'), P, 'io_limit'),
    ('number-1e309-value', 'bdev_ioband_set_settings', RawParams('{"name": "io0", "value": 1e309}'), P, 'value'),
    ('number-2-pow-64', 'bdev_ioband_set_device', {'name': 'share0', 'token': 2 ** 64}, P, 'token'),
    ('number-2-pow-32', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'io_limit': 2 ** 32}, P, 'io_limit'),
    # issue #10: io_throttle above the default io_limit is refused (it raised the limit)
    ('create-throttle-above-default-limit', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'share': 'shareX', 'io_throttle': 200}, E, 'io_limit'),
    ('set-device-throttle-above-default-limit', 'bdev_ioband_set_device',
     {'name': 'share0', 'io_throttle': 30000}, E, 'io_limit'),
    ('set-device-command-throttle-above-default-limit', 'bdev_ioband_set_device',
     {'command': 'share1 io_throttle 30000'}, E, 'io_limit'),
    # issue #10: a share and a device of another share may not have one name
    ('create-share-named-like-device', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'share': 'io1'}, -17, 'io1'),
    ('create-device-named-like-share', 'bdev_ioband_create',
     {'name': 'share1', 'base_bdev_name': 'Model0', 'share': 'share0'}, -17, 'share1'),
    # issue #10: a base name no bdev can have, or the device's own, is refused (SPDK waited
    # for it forever)
    ('create-base-empty', 'bdev_ioband_create', {'name': 'ioX', 'base_bdev_name': ''}, E, 'base_bdev_name'),
    ('create-base-space', 'bdev_ioband_create', {'name': 'ioX', 'base_bdev_name': 'Model 0'}, E, 'base_bdev_name'),
    ('create-base-nul', 'bdev_ioband_create', {'name': 'ioX', 'base_bdev_name': 'Model0\u0000'}, E, 'base_bdev_name'),
    ('create-base-is-self', 'bdev_ioband_create', {'name': 'ioX', 'base_bdev_name': 'ioX'}, E, 'base_bdev_name'),
    ('create-name-starts-a-comment', 'bdev_ioband_create', {'name': '#io', 'base_bdev_name': 'Model0'}, E, "'#'"),
    ('create-share-starts-a-comment', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'share': '#s'}, E, "'#'"),
    ('create-base-is-self-existing', 'bdev_ioband_create',
     {'name': 'Model0', 'base_bdev_name': 'Model0'}, E, 'base_bdev_name'),
    # issue #10: a huge name is not echoed whole (check_refused bounds every message)
    ('huge-name-not-echoed', 'bdev_ioband_set_settings', {'name': 'A' * 900000, 'value': 3}, -19, 'AAAA…'),
    ('huge-command-not-echoed', 'bdev_ioband_set_device',
     {'command': 'B' * 900000 + ' io_limit 8'}, E, 'BBBB…'),
    # issue #10, found by fuzzing: an echoed key whose space fell at the bound made the
    # message 1028 bytes (check_refused asserts the bound)
    ('unknown-field-with-spaces-bounded', 'bdev_ioband_create',
     {'name': 'ioX', 'base_bdev_name': 'Model0', 'aaa ' + 'aaaa ' * 300: 1}, P, 'Invalid params: aaa aaaa'),
]

# The longest error message either host sends (bytes; the engine's MAX_MESSAGE_BYTES and
# its closing ellipsis).
MAX_MESSAGE_BYTES = 1024 + 3


def check_refused(target, method, params, code, mention):
    """The call gets error `code` (mentioning `mention`) and the connection goes on serving;
    shared with the real-SPDK tests (the `target` fixture checks that state is unchanged)."""
    with target.client() as c:
        resp = c.request(method, params)
        assert 'result' not in resp, resp
        err = resp['error']
        assert err['code'] == code, err
        assert isinstance(err['message'], str) and err['message'], err
        assert len(err['message'].encode()) <= MAX_MESSAGE_BYTES, len(err['message'])
        if mention:
            assert mention in err['message'], err
        # the same connection goes on serving
        assert isinstance(c.call('bdev_ioband_get_devices'), list)


def check_errors_through_spdk_rpc(target):
    """spdk-rpc shows SPDK-style errors and exits 1; shared with the real-SPDK tests."""
    proc = target.rpc('bdev_ioband_delete', 'NoSuch', check=False)
    assert proc.returncode == 1, describe(proc)
    assert '"code": -19' in proc.stdout, describe(proc)
    proc = target.rpc('bdev_ioband_create', '-b', 'Model0', '-n', 'io0', check=False)
    assert proc.returncode == 1 and '"code": -17' in proc.stdout, describe(proc)


def test_a_device_over_a_missing_base_waits_for_it(make_target):
    """As in SPDK: an ioband device created before its base (or whose base was deleted)
    keeps its share and settings, and its bdev appears when the base does."""
    t = make_target().start()
    assert t.rpc('bdev_ioband_create', '-b', 'Null9', '-n', 'io9').stdout == 'io9\n'
    t.rpc('bdev_ioband_set_settings', 'io9', '--tag', '3', '--weight', '30')
    assert t.rpc_json('bdev_get_bdevs') == []
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io9']
    t.rpc('bdev_null_create', 'Null9', '16', '512')
    assert [b['name'] for b in t.rpc_json('bdev_get_bdevs')] == ['Null9', 'io9']
    by = settings_by_key(t.rpc_json('bdev_ioband_get_settings'))
    assert by[('io9', 'tag:3')]['weight'] == 30
    # A bad base name is refused, and the device's own name too.
    with t.client() as c:
        for base in ('', 'io8', 'a b'):
            resp = c.request('bdev_ioband_create', {'name': 'io8', 'base_bdev_name': base})
            err = resp.get('error', {})
            assert err.get('code') == -22 and 'base_bdev_name' in err.get('message', ''), resp
    assert 'io8' not in [d for s in t.rpc_json('bdev_ioband_get_devices') for d in s['devices']]
    t.rpc('bdev_ioband_delete', 'io9')
    t.rpc('bdev_null_delete', 'Null9')
    assert t.rpc_json('bdev_ioband_get_devices') == []
    assert t.terminate() == 0, t.log()


@pytest.mark.parametrize('method,params,code,mention', [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_call_is_refused_and_changes_nothing(target, method, params, code, mention):
    check_refused(target, method, params, code, mention)


def test_error_through_spdk_rpc(target):
    check_errors_through_spdk_rpc(target)


def _expect_refused(c):
    """A refusal: an error reply (never a result), or the server closing the connection."""
    try:
        resp = c.recv_value()
    except ConnectionClosed:
        return None
    assert 'error' in resp and 'result' not in resp, resp
    return resp['error']


def test_malformed_json(target):
    with target.client() as c:
        c.send_raw(b'{"jsonrpc": "2.0", "id": 1, "method": "bdev_ioband_delete", "params": {"name": "io0",, }}')
        err = _expect_refused(c)
        assert err is None or err['code'] == -32700, err


def test_truncated_request_at_eof_is_not_run(target):
    with target.client() as c:
        c.send_raw(b'{"jsonrpc": "2.0", "id": 1, "method": "bdev_ioband_delete", "params": {"name": "io0"')
        c.sock.shutdown(socket.SHUT_WR)
        err = _expect_refused(c)
        assert err is None or err['code'] in (-32700, -32600), err


@pytest.mark.parametrize('request_obj,codes', [
    ({'jsonrpc': '2.0', 'method': 5, 'id': 1}, {-32600}),
    ({'jsonrpc': '1.0', 'method': 'bdev_ioband_get_devices', 'id': 1}, {-32600}),
    ({'jsonrpc': '2.0', 'id': 1}, {-32600}),
    ({'jsonrpc': '2.0', 'method': 'bdev_ioband_get_devices', 'id': 1, 'params': 5}, {-32600, -32602}),
    ({'jsonrpc': '2.0', 'method': 'bdev_ioband_get_devices', 'id': {'x': 1}}, {-32600}),
    ([], {-32600}),
], ids=['method-not-string', 'version', 'no-method', 'params-scalar', 'id-object', 'empty-batch'])
def test_invalid_request(target, request_obj, codes):
    with target.client() as c:
        c.send_raw(json.dumps(request_obj).encode())
        err = _expect_refused(c)
        assert err is not None and err['code'] in codes, err


@pytest.mark.parametrize('kind', ['random-bytes', 'huge-json-string'])
def test_one_mib_garbage(target, kind):
    size = 1 << 20
    if kind == 'random-bytes':
        data = random.Random(1).randbytes(size)
    else:
        data = (b'{"jsonrpc": "2.0", "id": 1, "method": "bdev_ioband_create", "params": {"name": "'
                + b'A' * size + b'", "base_bdev_name": "Model0"}}')
    with target.client(timeout=30) as c:
        try:
            c.send_raw(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # closed while we sent: a refusal
        _expect_refused(c)


def test_pipelined_and_split_requests(target):
    """Concatenated requests in one write, and one request split over writes (no framing)."""
    with target.client() as c:
        a = {'jsonrpc': '2.0', 'method': 'bdev_ioband_get_devices', 'id': 101}
        b = {'jsonrpc': '2.0', 'method': 'bdev_ioband_get_settings', 'id': 102, 'params': {'name': 'io0'}}
        c.send_raw((json.dumps(a) + json.dumps(b)).encode())
        replies = {r['id']: r for r in (c.recv_value(), c.recv_value())}
        assert set(replies) == {101, 102}
        assert isinstance(replies[101]['result'], list) and isinstance(replies[102]['result'], list)
        raw = json.dumps({'jsonrpc': '2.0', 'method': 'bdev_ioband_get_devices', 'id': 103}).encode()
        for i in range(0, len(raw), 7):
            c.send_raw(raw[i:i + 7])
        assert c.recv_value()['id'] == 103


def test_fresh_connections_after_abuse(target):
    """After the refusals above, new connections work (the fixture also checks the state)."""
    for _ in range(3):
        with RawClient(target.sock) as c:
            assert isinstance(c.call('bdev_ioband_get_devices'), list)
