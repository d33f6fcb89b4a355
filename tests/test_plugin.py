#  SPDX-License-Identifier: BSD-3-Clause
"""The rpc.py plugin, run by the real spdk-rpc (PyPI `spdk`) against a fake target.

Checks the exact JSON-RPC params each subcommand sends, that argparse rejects bad arguments
before anything reaches the socket, and that server errors are shown with a non-zero exit.
No Rust binary is needed.
"""

import json
import os
import subprocess

import pytest

from rpctools import PLUGIN, PLUGIN_DIR, describe, spdk_rpc_command

NQN = 'nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd'

# (argv after the plugin flag, method, params sent; None = no params member)
SENDS = [
    # create / delete
    (['bdev_ioband_create', '-b', 'Nvme0n1', '-n', 'io0'],
     'bdev_ioband_create', {'name': 'io0', 'base_bdev_name': 'Nvme0n1'}),
    (['bdev_ioband_create', '--base-bdev-name', 'Nvme0n1', '--name', 'io1', '--share', 'tenants',
      '--policy', 'weight-iosize', '--io-throttle', '8', '--io-limit', '256', '--token', '4096',
      '--carryover', '3', '--capacity', '2000000', '--idle-grace-us', '250'],
     'bdev_ioband_create', {'name': 'io1', 'base_bdev_name': 'Nvme0n1', 'share': 'tenants',
                            'policy': 'weight-iosize', 'io_throttle': 8, 'io_limit': 256,
                            'token': 4096, 'carryover': 3, 'capacity_kib_per_sec': 2000000,
                            'idle_grace_us': 250}),
    (['bdev_ioband_create', '-b', 'M0', '-n', 'io3', '--idle-grace-us', '0'],
     'bdev_ioband_create', {'name': 'io3', 'base_bdev_name': 'M0', 'idle_grace_us': 0}),
    (['bdev_ioband_create', '-b', 'M0', '-n', 'io2', '-p', 'range-bw', '--capacity-kib-per-sec', '0',
      '--io-limit', '0'],
     'bdev_ioband_create', {'name': 'io2', 'base_bdev_name': 'M0', 'policy': 'range-bw',
                            'capacity_kib_per_sec': 0, 'io_limit': 0}),
    (['bdev_ioband_create', '-b', 'M0', '-n', 't1', '--share', 'tenants', '-i', NQN],
     'bdev_ioband_create', {'name': 't1', 'base_bdev_name': 'M0', 'share': 'tenants',
                            'group': 'initiator:' + NQN}),
    (['bdev_ioband_create', '-b', 'M0', '-n', 't2', '--group', 'cgroup:07'],
     'bdev_ioband_create', {'name': 't2', 'base_bdev_name': 'M0', 'group': 'cgroup:7'}),
    (['bdev_ioband_delete', 'io0'], 'bdev_ioband_delete', {'name': 'io0'}),
    # devices
    (['bdev_ioband_get_devices'], 'bdev_ioband_get_devices', None),
    (['bdev_ioband_get_devices', '--share', 'tenants', '-f', 'json'],
     'bdev_ioband_get_devices', {'share': 'tenants', 'format': 'json'}),
    (['bdev_ioband_set_device', 'tenants', '--io-limit', '128'],
     'bdev_ioband_set_device', {'name': 'tenants', 'io_limit': 128}),
    (['bdev_ioband_set_device', 'io0', '-p', 'range-bw', '--io-throttle', '2', '--token', '0',
      '--carryover', '2147483647', '--capacity', '1000'],
     'bdev_ioband_set_device', {'name': 'io0', 'policy': 'range-bw', 'io_throttle': 2, 'token': 0,
                                'carryover': 2147483647, 'capacity_kib_per_sec': 1000}),
    (['bdev_ioband_set_device', 'tenants', '--idle-grace-us', '1000000'],
     'bdev_ioband_set_device', {'name': 'tenants', 'idle_grace_us': 1000000}),
    (['bdev_ioband_set_device', 'io0', '--idle-grace-us', '0', '--io-limit', '64'],
     'bdev_ioband_set_device', {'name': 'io0', 'idle_grace_us': 0, 'io_limit': 64}),
    (['bdev_ioband_set_device', '-c', 'tenants io_limit 256'],
     'bdev_ioband_set_device', {'command': 'tenants io_limit 256'}),
    (['bdev_ioband_set_device', '-c', 'tenants idle_grace 500'],
     'bdev_ioband_set_device', {'command': 'tenants idle_grace 500'}),
    # settings
    (['bdev_ioband_get_settings'], 'bdev_ioband_get_settings', None),
    (['bdev_ioband_get_settings', '-n', 'io0', '--initiator', NQN, '-f', 'text'],
     'bdev_ioband_get_settings', {'name': 'io0', 'group': 'initiator:' + NQN, 'format': 'text'}),
    (['bdev_ioband_get_settings', '--group', 'cgroup:0042'],
     'bdev_ioband_get_settings', {'group': 'cgroup:42'}),
    (['bdev_ioband_get_settings', '--group', 'none'], 'bdev_ioband_get_settings', {'group': 'none'}),
    (['bdev_ioband_set_settings', 'io0', '--weight', '3'],
     'bdev_ioband_set_settings', {'name': 'io0', 'value': 3}),
    (['bdev_ioband_set_settings', 'io0', '-w', '32767', '--group', 'none'],
     'bdev_ioband_set_settings', {'name': 'io0', 'group': 'none', 'value': 32767}),
    (['bdev_ioband_set_settings', 'io0', '-i', NQN, '-w', '200'],
     'bdev_ioband_set_settings', {'name': 'io0', 'group': 'initiator:' + NQN, 'value': 200}),
    (['bdev_ioband_set_settings', 'io0', '--cgroup', '18446744073709551615', '--range-bw', '1000:2000'],
     'bdev_ioband_set_settings', {'name': 'io0', 'group': 'cgroup:18446744073709551615', 'value': '1000:2000'}),
    (['bdev_ioband_set_settings', 'io0', '--tag', '7', '--range-bw', '0:0'],
     'bdev_ioband_set_settings', {'name': 'io0', 'group': 'tag:7', 'value': '0:0'}),
    (['bdev_ioband_set_settings', 'io0', '--tag', '4294967295', '--detach'],
     'bdev_ioband_set_settings', {'name': 'io0', 'group': 'tag:4294967295'}),
    (['bdev_ioband_set_settings', '-c', 'io0 300', '--cgroup', '5'],
     'bdev_ioband_set_settings', {'command': 'io0 300', 'group': 'cgroup:5'}),
    (['bdev_ioband_set_settings', '--command', 'io0'],
     'bdev_ioband_set_settings', {'command': 'io0'}),
    # statistics
    (['bdev_ioband_get_iostat'], 'bdev_ioband_get_iostat', None),
    (['bdev_ioband_get_iostat', '-n', 'io1', '--tag', '9'],
     'bdev_ioband_get_iostat', {'name': 'io1', 'group': 'tag:9'}),
    (['bdev_ioband_get_iostat', '-n', 'tenants', '-f', 'text'],
     'bdev_ioband_get_iostat', {'name': 'tenants', 'format': 'text'}),
    # model device
    (['bdev_model_create', 'Model0', '64', '512', '--iops', '100000', '--latency-us', '80',
      '--queue-depth', '128'],
     'bdev_model_create', {'name': 'Model0', 'block_size': 512, 'num_blocks': 131072, 'iops': 100000,
                           'latency_us': 80, 'queue_depth': 128}),
    (['bdev_model_create', 'Model1', '1', '4096', '--iops', '0', '--bandwidth', '500000000',
      '--latency-us', '0', '--queue-depth', '1'],
     'bdev_model_create', {'name': 'Model1', 'block_size': 4096, 'num_blocks': 256, 'iops': 0,
                           'bandwidth_bytes_per_sec': 500000000, 'latency_us': 0, 'queue_depth': 1}),
    (['bdev_model_delete', 'Model0'], 'bdev_model_delete', {'name': 'Model0'}),
]


@pytest.mark.parametrize('argv,method,params', SENDS, ids=[' '.join(s[0]) for s in SENDS])
def test_sends_exact_params(fake_server, rpc, argv, method, params):
    proc = rpc(*argv)
    assert proc.returncode == 0, describe(proc)
    assert len(fake_server.requests) == 1, fake_server.requests
    got_method, got_params, req = fake_server.requests[0]
    assert got_method == method
    assert got_params == params
    assert req['jsonrpc'] == '2.0' and isinstance(req['id'], int)
    if params is None:
        assert 'params' not in req  # as SPDK's client: empty params are omitted


BAD_ARGS = [
    # missing or unknown
    ['bdev_ioband_create', '-n', 'io0'],
    ['bdev_ioband_create', '-b', 'Nvme0n1'],
    ['bdev_ioband_create', '-b', 'Nvme0n1', '-n', ''],
    ['bdev_ioband_create', '-b', 'Nvme0n1', '-n', 'io0', '--bogus', '1'],
    ['bdev_ioband_delete'],
    ['bdev_ioband_delete', 'io0', 'io1'],
    # choices and ranges of share knobs
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--policy', 'fifo'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--io-limit', '-1'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--io-limit', '32768'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--io-throttle', 'abc'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--token', '2147483648'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--carryover', '1.5'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--capacity', '+5'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--idle-grace-us', '1000001'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--idle-grace-us', '-1'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--idle-grace-us', '1ms'],
    ['bdev_ioband_get_devices', '-f', 'xml'],
    # set_device: one form or the other, and something to set
    ['bdev_ioband_set_device'],
    ['bdev_ioband_set_device', 'tenants'],
    ['bdev_ioband_set_device', 'tenants', '-c', 'tenants io_limit 3'],
    ['bdev_ioband_set_device', '-c', 'tenants io_limit 3', '--io-limit', '3'],
    ['bdev_ioband_set_device', 'tenants', '--io-throttle', '40000'],
    ['bdev_ioband_set_device', 'tenants', '--idle-grace-us', '2000000'],
    ['bdev_ioband_set_device', '-c', 'tenants idle_grace 5', '--idle-grace-us', '5'],
    # settings: weight and range-bw ranges, group keys
    ['bdev_ioband_set_settings', 'io0', '--weight', '0'],
    ['bdev_ioband_set_settings', 'io0', '--weight', '40000'],
    ['bdev_ioband_set_settings', 'io0', '--weight', '-3'],
    ['bdev_ioband_set_settings', 'io0', '--weight', 'x'],
    ['bdev_ioband_set_settings', 'io0', '--range-bw', '2000:1000'],
    ['bdev_ioband_set_settings', 'io0', '--range-bw', '1000'],
    ['bdev_ioband_set_settings', 'io0', '--range-bw', '0:1073741824'],
    ['bdev_ioband_set_settings', 'io0', '--range-bw', '-1:5'],
    ['bdev_ioband_set_settings', 'io0', '--weight', '3', '--range-bw', '1:2'],
    ['bdev_ioband_set_settings', 'io0', '--weight', '3', '--detach'],
    ['bdev_ioband_set_settings', 'io0'],
    ['bdev_ioband_set_settings', '--weight', '3'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--initiator', NQN, '--cgroup', '5'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--cgroup', '18446744073709551616'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--tag', '4294967296'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--initiator', ''],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--group', 'uid:5'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--group', 'cgroup:'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--group', 'cgroup:x'],
    ['bdev_ioband_set_settings', 'io0', '-w', '3', '--group', 'initiator'],
    ['bdev_ioband_set_settings', '-c', 'io0 3', 'io0'],
    ['bdev_ioband_set_settings', '-c', 'io0 3', '--weight', '3'],
    ['bdev_ioband_set_settings', '-c', 'io0', '--detach'],
    ['bdev_ioband_get_settings', '--group', 'tag:-1'],
    ['bdev_ioband_get_settings', '-f', 'yaml'],
    ['bdev_ioband_get_iostat', '--cgroup', 'abc'],
    ['bdev_ioband_get_iostat', '-f', 'csv'],
    # binding: not the default group, one group
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--group', 'none'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--tag', '1', '--cgroup', '2'],
    ['bdev_ioband_create', '-b', 'B', '-n', 'io0', '--initiator', ''],
    # exports: the tenant's values and share knobs only where the bdev is created
    ['bdev_ioband_nvmf_export', 'nqn.s', NQN, '-n', 't1', '--weight', '3'],
    ['bdev_ioband_nvmf_export', 'nqn.s', NQN, '-n', 't1', '--share', 's'],
    ['bdev_ioband_nvmf_export', 'nqn.s', NQN, '-b', 'B'],
    ['bdev_ioband_nvmf_export', 'nqn.s', '', '-n', 't1', '-b', 'B'],
    ['bdev_ioband_nvmf_export', 'nqn.s', NQN, '-n', 't1', '-b', 'B', '--nsid', '0'],
    ['bdev_ioband_nvmf_unexport', 'nqn.s', NQN],
    ['bdev_ioband_iscsi_export', 'disk1', 'iqn.x:i1', '-n', 't1', '--io-limit', '8'],
    ['bdev_ioband_iscsi_export', 'disk1', 'iqn.x:i1', '-n', 't1', '-b', 'B', '--pg-tag', '0'],
    ['bdev_ioband_iscsi_unexport'],
    # model device
    ['bdev_model_create', 'M', '64', '512', '--latency-us', '1', '--queue-depth', '1'],
    ['bdev_model_create', 'M', '64', '512', '--iops', '1', '--latency-us', '1', '--queue-depth', '0'],
    ['bdev_model_create', 'M', '0', '512', '--iops', '1', '--latency-us', '1', '--queue-depth', '1'],
    ['bdev_model_create', 'M', '64', '0', '--iops', '1', '--latency-us', '1', '--queue-depth', '1'],
    ['bdev_model_create', 'M', '1', '2097152', '--iops', '1', '--latency-us', '1', '--queue-depth', '1'],
    ['bdev_model_create', 'M', '64', '512', '--iops', '-1', '--latency-us', '1', '--queue-depth', '1'],
    ['bdev_model_delete'],
]


@pytest.mark.parametrize('argv', BAD_ARGS, ids=[' '.join(a) for a in BAD_ARGS])
def test_bad_arguments_rejected_before_sending(fake_server, rpc, argv):
    proc = rpc(*argv)
    assert proc.returncode == 2, describe(proc)          # argparse's usage error
    assert 'usage:' in proc.stderr and 'error:' in proc.stderr, describe(proc)
    assert fake_server.requests == []
    assert fake_server.connections == 0                  # rejected before a client existed


ERRORS = [
    (-32602, 'Invalid parameters: unknown field `bogus`'),
    (-32601, 'Method not found'),
    (-19, 'No such device'),
    (-17, 'File exists'),
    (-22, 'Invalid argument'),
    (-2, 'No such file or directory'),
]


@pytest.mark.parametrize('code,message', ERRORS, ids=[str(c) for c, _ in ERRORS])
@pytest.mark.parametrize('argv', [
    ['bdev_ioband_create', '-b', 'Nvme0n1', '-n', 'io0'],
    ['bdev_ioband_delete', 'io0'],
    ['bdev_ioband_set_settings', 'io0', '--cgroup', '5', '--detach'],
    ['bdev_ioband_get_devices', '-f', 'text'],
    ['bdev_model_create', 'M', '64', '512', '--iops', '1', '--latency-us', '1', '--queue-depth', '1'],
], ids=lambda a: a[0])
def test_server_errors_shown_with_nonzero_exit(fake_server, rpc, argv, code, message):
    fake_server.reply(argv[0], error={'code': code, 'message': message})
    proc = rpc(*argv)
    assert proc.returncode == 1, describe(proc)
    assert 'Got JSON-RPC error response' in proc.stdout, describe(proc)
    assert message in proc.stdout
    assert '"code": %d' % code in proc.stdout
    assert fake_server.methods() == [argv[0]]


def test_replies_printed_as_spdk_does(fake_server, rpc):
    fake_server.reply('bdev_ioband_create', result='io0')
    proc = rpc('bdev_ioband_create', '-b', 'Nvme0n1', '-n', 'io0')
    assert proc.returncode == 0 and proc.stdout == 'io0\n', describe(proc)

    fake_server.reply('bdev_model_create', result='Model0')
    proc = rpc('bdev_model_create', 'Model0', '8', '512', '--iops', '1', '--latency-us', '1', '--queue-depth', '1')
    assert proc.returncode == 0 and proc.stdout == 'Model0\n', describe(proc)

    # bool replies of delete/set print nothing, as SPDK's own delete commands
    for argv in (['bdev_ioband_delete', 'io0'], ['bdev_model_delete', 'Model0'],
                 ['bdev_ioband_set_device', 's', '--io-limit', '3'],
                 ['bdev_ioband_set_settings', 'io0', '-w', '3']):
        proc = rpc(*argv)
        assert proc.returncode == 0 and proc.stdout == '', describe(proc)

    devices = [{'share': 's', 'policy': 'weight', 'io_throttle': 4, 'io_limit': 192, 'token': 768,
                'carryover': 2, 'capacity_kib_per_sec': 0, 'idle_grace_us': 250, 'devices': ['io0', 'io1'],
                'configured': {'io_throttle': 0, 'io_limit': 0, 'token': 0, 'carryover': 0,
                               'idle_grace_us': 250, 'nr_requests': 128}}]
    fake_server.reply('bdev_ioband_get_devices', result=devices)
    proc = rpc('bdev_ioband_get_devices')
    assert proc.returncode == 0 and json.loads(proc.stdout) == devices, describe(proc)

    text = 's policy=weight io_throttle=4 io_limit=192 token=768 carryover=2 idle_grace=250\n  io0\n  io1\n'
    fake_server.reply('bdev_ioband_get_devices', result=text)
    proc = rpc('bdev_ioband_get_devices', '-f', 'text')
    assert proc.returncode == 0 and proc.stdout == text, describe(proc)   # raw, not JSON-quoted

    fake_server.reply('bdev_ioband_get_settings', result='io0 weight=3\nio1 weight=1')
    proc = rpc('bdev_ioband_get_settings', '--format', 'text')
    assert proc.returncode == 0 and proc.stdout == 'io0 weight=3\nio1 weight=1\n', describe(proc)

    stat = {'tick_rate': 1000000, 'devices': [{'name': 'io0', 'share': 's', 'groups': [
        {'group': 'none', 'read_ios': 1, 'read_bytes': 4096, 'write_ios': 0, 'write_bytes': 0,
         'other_ios': 0, 'dispatched_ios': 1, 'dispatched_bytes': 4096, 'throttled_ios': 0,
         'throttled_ticks': 0, 'queue_depth': 0, 'in_flight': 0, 'completed_ios': 1}]}]}
    fake_server.reply('bdev_ioband_get_iostat', result=stat)
    proc = rpc('bdev_ioband_get_iostat')
    assert proc.returncode == 0 and json.loads(proc.stdout) == stat, describe(proc)


def test_help_lists_every_method():
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), PYTHONDONTWRITEBYTECODE='1')
    methods = ['bdev_ioband_create', 'bdev_ioband_delete', 'bdev_ioband_get_devices',
               'bdev_ioband_set_device', 'bdev_ioband_get_settings', 'bdev_ioband_set_settings',
               'bdev_ioband_get_iostat', 'bdev_model_create', 'bdev_model_delete',
               'bdev_ioband_nvmf_export', 'bdev_ioband_nvmf_unexport', 'bdev_ioband_iscsi_export',
               'bdev_ioband_iscsi_unexport']
    proc = subprocess.run(spdk_rpc_command() + ['--plugin', PLUGIN, '-h'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, describe(proc)
    for m in methods:
        assert m in proc.stdout
    for m in methods:
        proc = subprocess.run(spdk_rpc_command() + ['--plugin', PLUGIN, m, '-h'], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and 'usage:' in proc.stdout, describe(proc)
        if m in ('bdev_ioband_create', 'bdev_ioband_set_device'):
            help_text = ' '.join(proc.stdout.split())
            assert '--idle-grace-us US' in help_text, describe(proc)
            assert '0..1000000; 0 = auto' in help_text, describe(proc)


def test_set_device_without_knob_names_idle_grace(fake_server, rpc):
    proc = rpc('bdev_ioband_set_device', 'tenants')
    assert proc.returncode == 2, describe(proc)
    assert '--idle-grace-us' in proc.stderr, describe(proc)
    assert fake_server.requests == []


def test_dry_run_prints_request_without_a_server():
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), PYTHONDONTWRITEBYTECODE='1')
    proc = subprocess.run(spdk_rpc_command() + ['--dry-run', '--plugin', PLUGIN, 'bdev_ioband_set_settings',
                                                'io0', '--cgroup', '9', '--weight', '5'],
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, describe(proc)
    req = json.loads(proc.stdout.split('Request:', 1)[1])
    assert req['params'] == {'name': 'io0', 'group': 'cgroup:9', 'value': 5}
    assert 'null' not in proc.stdout  # the plugin prints no None result


def test_server_mode_survives_bad_lines(fake_server):
    """spdk-rpc --server (one command per line): a rejected line reports STATUS=1 and the loop
    goes on, because cross-option checks run while argparse parses."""
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), PYTHONDONTWRITEBYTECODE='1')
    s = fake_server.path
    lines = [
        '-s %s --plugin %s bdev_ioband_set_settings io0' % (s, PLUGIN),           # nothing to set
        '-s %s --plugin %s bdev_ioband_set_settings io0 --weight 0' % (s, PLUGIN),  # out of range
        '-s %s --plugin %s bdev_ioband_set_settings io0 --weight 7' % (s, PLUGIN),
        '-s %s --plugin %s bdev_ioband_set_device -c "s0 io_limit 9"' % (s, PLUGIN),
    ]
    proc = subprocess.run(spdk_rpc_command() + ['--server'], env=env, input='\n'.join(lines) + '\n',
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, describe(proc)
    statuses = [line for line in proc.stdout.splitlines() if line.startswith('**STATUS=')]
    assert statuses == ['**STATUS=1', '**STATUS=1', '**STATUS=0', '**STATUS=0'], describe(proc)
    assert [(m, p) for m, p, _ in fake_server.requests] == [
        ('bdev_ioband_set_settings', {'name': 'io0', 'value': 7}),
        ('bdev_ioband_set_device', {'command': 's0 io_limit 9'}),
    ]


# ------------------------------------------------------------------------------------------
# Per-tenant exports: the SPDK RPCs each sends, in order, and what a failure undoes

SUB = 'nqn.2016-06.io.spdk:tenants'
HOST1 = 'nqn.2014-08.org.example:host1'
SUBSYSTEM = {'nqn': SUB, 'allow_any_host': False, 'hosts': [], 'namespaces': [
    {'nsid': 1, 'bdev_name': 'other'}]}


def test_nvmf_export_sends_spdks_own_rpcs_in_order(fake_server, rpc):
    fake_server.reply('nvmf_get_subsystems', result=[SUBSYSTEM])
    fake_server.reply('bdev_ioband_create', result='t1')
    fake_server.reply('nvmf_subsystem_add_ns', result=2)
    proc = rpc('bdev_ioband_nvmf_export', SUB, HOST1, '-n', 't1', '-b', 'Dly0', '--share', 'tenants',
               '-w', '4', '--io-limit', '8')
    assert proc.returncode == 0, describe(proc)
    group = 'initiator:' + HOST1
    assert [(m, p) for m, p, _ in fake_server.requests] == [
        ('nvmf_get_subsystems', None),
        ('bdev_ioband_create', {'name': 't1', 'base_bdev_name': 'Dly0', 'share': 'tenants',
                                'group': group, 'io_limit': 8}),
        ('bdev_ioband_set_settings', {'name': 't1', 'group': group, 'value': 4}),
        ('nvmf_subsystem_add_host', {'nqn': SUB, 'host': HOST1}),
        ('nvmf_subsystem_add_ns', {'nqn': SUB, 'namespace': {'bdev_name': 't1', 'no_auto_visible': True}}),
        ('nvmf_ns_add_host', {'nqn': SUB, 'nsid': 2, 'host': HOST1}),
    ]
    assert json.loads(proc.stdout) == {'nqn': SUB, 'nsid': 2, 'host': HOST1, 'bdev_name': 't1',
                                       'group': group}


def test_nvmf_export_of_an_existing_bound_bdev_to_an_allowed_host(fake_server, rpc):
    group = 'initiator:' + HOST1
    fake_server.reply('nvmf_get_subsystems', result=[dict(SUBSYSTEM, hosts=[{'nqn': HOST1}])])
    fake_server.reply('bdev_ioband_get_settings', result=[{'name': 't1', 'group': group}])
    fake_server.reply('nvmf_subsystem_add_ns', result=5)
    proc = rpc('bdev_ioband_nvmf_export', SUB, HOST1, '-n', 't1', '--nsid', '5')
    assert proc.returncode == 0, describe(proc)
    assert fake_server.methods() == ['nvmf_get_subsystems', 'bdev_ioband_get_settings',
                                     'nvmf_subsystem_add_ns', 'nvmf_ns_add_host']
    assert fake_server.requests[2][1]['namespace'] == {'bdev_name': 't1', 'no_auto_visible': True, 'nsid': 5}

    # A bdev not bound to the host's group is refused before anything changes.
    fake_server.requests.clear()
    fake_server.reply('bdev_ioband_get_settings', result=[{'name': 't1', 'group': 'none'}])
    proc = rpc('bdev_ioband_nvmf_export', SUB, HOST1, '-n', 't1')
    assert proc.returncode == 1, describe(proc)
    assert 'is not bound to ' + group in proc.stdout, describe(proc)
    assert fake_server.methods() == ['nvmf_get_subsystems', 'bdev_ioband_get_settings']


# (failing method, the error, the methods that undo what came before it, in order)
NVMF_FAILURES = [
    ('bdev_ioband_create', -32602, []),
    ('nvmf_subsystem_add_host', -32602, ['bdev_ioband_delete']),
    ('nvmf_subsystem_add_ns', -32602, ['nvmf_subsystem_remove_host', 'bdev_ioband_delete']),
    ('nvmf_ns_add_host', -32603,
     ['nvmf_subsystem_remove_ns', 'nvmf_subsystem_remove_host', 'bdev_ioband_delete']),
]


@pytest.mark.parametrize('failing,code,undo', NVMF_FAILURES, ids=[f[0] for f in NVMF_FAILURES])
def test_nvmf_export_failure_undoes_what_was_created(fake_server, rpc, failing, code, undo):
    fake_server.reply('nvmf_get_subsystems', result=[SUBSYSTEM])
    fake_server.reply('bdev_ioband_create', result='t1')
    fake_server.reply('nvmf_subsystem_add_ns', result=2)
    fake_server.reply(failing, error={'code': code, 'message': 'the %s error' % failing})
    proc = rpc('bdev_ioband_nvmf_export', SUB, HOST1, '-n', 't1', '-b', 'Dly0', '--share', 's')
    assert proc.returncode == 1, describe(proc)
    # The underlying RPC's own error, and what was undone.
    assert 'the %s error' % failing in proc.stdout and '"code": %d' % code in proc.stdout, describe(proc)
    assert 'bdev_ioband_nvmf_export failed; undone: ' in proc.stderr, describe(proc)
    methods = fake_server.methods()
    assert methods[methods.index(failing) + 1:] == undo, methods
    undo_params = {m: p for m, p, _ in fake_server.requests[methods.index(failing) + 1:]}
    if 'nvmf_subsystem_remove_ns' in undo:
        assert undo_params['nvmf_subsystem_remove_ns'] == {'nqn': SUB, 'nsid': 2}
    if 'bdev_ioband_delete' in undo:
        assert undo_params['bdev_ioband_delete'] == {'name': 't1'}


def test_nvmf_export_to_a_missing_subsystem_creates_nothing(fake_server, rpc):
    fake_server.reply('nvmf_get_subsystems', result=[])
    proc = rpc('bdev_ioband_nvmf_export', SUB, HOST1, '-n', 't1', '-b', 'Dly0')
    assert proc.returncode == 1, describe(proc)
    assert "no NVMe-oF subsystem '%s'" % SUB in proc.stdout, describe(proc)
    assert fake_server.methods() == ['nvmf_get_subsystems']


def test_nvmf_unexport_removes_namespace_access_and_bdev(fake_server, rpc):
    sub = dict(SUBSYSTEM, hosts=[{'nqn': HOST1}], namespaces=[{'nsid': 1, 'bdev_name': 'other'},
                                                              {'nsid': 3, 'bdev_name': 't1'}])
    fake_server.reply('nvmf_get_subsystems', result=[sub])
    fake_server.reply('bdev_ioband_get_settings', result=[{'name': 't1'}])
    proc = rpc('bdev_ioband_nvmf_unexport', SUB, HOST1, '-n', 't1')
    assert proc.returncode == 0, describe(proc)
    assert [(m, p) for m, p, _ in fake_server.requests] == [
        ('nvmf_get_subsystems', None),
        ('nvmf_subsystem_remove_ns', {'nqn': SUB, 'nsid': 3}),
        ('bdev_ioband_get_settings', {'group': 'initiator:' + HOST1}),
        ('nvmf_subsystem_remove_host', {'nqn': SUB, 'host': HOST1}),
        ('bdev_ioband_delete', {'name': 't1'}),
    ]
    # Another namespace of the host's group keeps its access; --keep-bdev keeps the bdev.
    fake_server.requests.clear()
    fake_server.reply('bdev_ioband_get_settings', result=[{'name': 't1'}, {'name': 'other'}])
    proc = rpc('bdev_ioband_nvmf_unexport', SUB, HOST1, '-n', 't1', '--keep-bdev')
    assert proc.returncode == 0, describe(proc)
    assert fake_server.methods() == ['nvmf_get_subsystems', 'nvmf_subsystem_remove_ns',
                                     'bdev_ioband_get_settings']


IQN = 'iqn.2016-06.io.example:init1'


def test_iscsi_export_sends_spdks_own_rpcs_and_undoes_on_failure(fake_server, rpc):
    fake_server.reply('iscsi_get_initiator_groups', result=[{'tag': 3}, {'tag': 1}])
    fake_server.reply('bdev_ioband_create', result='t1')
    proc = rpc('bdev_ioband_iscsi_export', 'disk1', IQN, '-n', 't1', '-b', 'Dly0', '--share', 's',
               '-w', '3', '--queue-depth', '32')
    assert proc.returncode == 0, describe(proc)
    group = 'initiator:' + IQN
    assert [(m, p) for m, p, _ in fake_server.requests] == [
        ('iscsi_get_initiator_groups', None),
        ('bdev_ioband_create', {'name': 't1', 'base_bdev_name': 'Dly0', 'share': 's', 'group': group}),
        ('bdev_ioband_set_settings', {'name': 't1', 'group': group, 'value': 3}),
        ('iscsi_create_initiator_group', {'tag': 4, 'initiators': [IQN], 'netmasks': ['ANY']}),
        ('iscsi_create_target_node', {'name': 'disk1', 'alias_name': 'disk1',
                                      'luns': [{'bdev_name': 't1', 'lun_id': 0}],
                                      'pg_ig_maps': [{'pg_tag': 1, 'ig_tag': 4}],
                                      'queue_depth': 32, 'disable_chap': True}),
    ]
    assert json.loads(proc.stdout)['ig_tag'] == 4

    fake_server.requests.clear()
    fake_server.reply('iscsi_create_target_node', error={'code': -32602, 'message': 'Invalid parameters'})
    proc = rpc('bdev_ioband_iscsi_export', 'disk1', IQN, '-n', 't1', '-b', 'Dly0')
    assert proc.returncode == 1, describe(proc)
    assert 'Invalid parameters' in proc.stdout, describe(proc)
    assert fake_server.methods()[-2:] == ['iscsi_delete_initiator_group', 'bdev_ioband_delete']
    assert fake_server.requests[-2][1] == {'tag': 4}

    # A taken initiator group tag is refused before anything is created.
    fake_server.requests.clear()
    proc = rpc('bdev_ioband_iscsi_export', 'disk1', IQN, '-n', 't1', '-b', 'Dly0', '--ig-tag', '3')
    assert proc.returncode == 1 and 'initiator group 3 exists already' in proc.stdout, describe(proc)
    assert fake_server.methods() == ['iscsi_get_initiator_groups']


def test_iscsi_unexport_removes_node_group_and_bdev(fake_server, rpc):
    nodes = [
        {'name': 'iqn.2016-06.io.spdk:disk1', 'pg_ig_maps': [{'pg_tag': 1, 'ig_tag': 4}],
         'luns': [{'bdev_name': 't1', 'lun_id': 0}]},
        {'name': 'iqn.2016-06.io.spdk:disk2', 'pg_ig_maps': [{'pg_tag': 1, 'ig_tag': 5}],
         'luns': [{'bdev_name': 't2', 'lun_id': 0}]},
    ]
    fake_server.reply('iscsi_get_target_nodes', result=nodes)
    fake_server.reply('bdev_ioband_get_devices', result=[{'share': 's', 'devices': ['t1', 't2']}])
    proc = rpc('bdev_ioband_iscsi_unexport', 'disk1')
    assert proc.returncode == 0, describe(proc)
    assert [(m, p) for m, p, _ in fake_server.requests] == [
        ('iscsi_get_target_nodes', None),
        ('iscsi_delete_target_node', {'name': 'iqn.2016-06.io.spdk:disk1'}),
        ('iscsi_delete_initiator_group', {'tag': 4}),
        ('bdev_ioband_get_devices', None),
        ('bdev_ioband_delete', {'name': 't1'}),
    ]
