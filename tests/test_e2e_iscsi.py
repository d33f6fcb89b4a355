#  SPDX-License-Identifier: BSD-3-Clause
"""End to end: the iSCSI front end of ioband_tgt, configured with the stock spdk-rpc
subcommands (SPDK's own method names), driven by clients nobody here wrote (libiscsi's
iscsi-test-cu, iscsi-perf, iscsi-inq, iscsi-ls) and a small RFC 7143 initiator for data
integrity and login refusals: the config round trip, 0 mismatches through R2T and
immediate data, libiscsi's conformance suites, two iscsi-perf initiators sharing one LUN
3:1 by their `initiator:<IQN>` groups, and iscsi-perf through ioband at >= 0.90 of the
bare base.

Skipped, saying why, without ioband_tgt or without libiscsi-bin.
"""

import json
import re
import shutil
import socket
import subprocess

import pytest

import iscsi_conformance
import iscsitools
from rpctools import completed_ios, ratio_in_window

NODE_BASE = 'iqn.2016-06.io.spdk'
INIT_A = 'iqn.2016-06.io.test:a'
INIT_B = 'iqn.2016-06.io.test:b'


def need_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip('not installed: %s (Debian: libiscsi-bin)' % ', '.join(missing))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(make_target, bdevs, targets, port, initiators=('ANY',)):
    """ioband_tgt with `bdevs` and target nodes {name: [bdev, ...]} on one portal."""
    t = make_target()
    iscsi = [
        {'method': 'iscsi_create_portal_group',
         'params': {'tag': 1, 'portals': [{'host': '127.0.0.1', 'port': str(port)}]}},
        {'method': 'iscsi_create_initiator_group',
         'params': {'tag': 1, 'initiators': list(initiators), 'netmasks': ['127.0.0.1/32']}},
    ]
    for name, luns in targets.items():
        iscsi.append({'method': 'iscsi_create_target_node', 'params': {
            'name': name, 'alias_name': name, 'queue_depth': 128,
            'luns': [{'bdev_name': b, 'lun_id': i} for i, b in enumerate(luns)],
            'pg_ig_maps': [{'pg_tag': 1, 'ig_tag': 1}]}})
    config = {'subsystems': [{'subsystem': 'bdev', 'config': bdevs},
                             {'subsystem': 'iscsi', 'config': iscsi}]}
    path = t.workdir / 'config.json'
    path.write_text(json.dumps(config))
    return t.start(json_config=path)


def url(port, name, lun=0):
    return 'iscsi://127.0.0.1:%d/%s:%s/%d' % (port, NODE_BASE, name, lun)


def test_stock_spdk_rpc_configures_the_target_and_data_round_trips(make_target):
    t = make_target().start()
    port = free_port()
    t.rpc('bdev_malloc_create', '-b', 'Malloc0', '32', '512')
    t.rpc('bdev_ioband_create', '-b', 'Malloc0', '-n', 'band0')
    # SPDK's own subcommands, as its documentation writes them.
    t.rpc('iscsi_create_portal_group', '1', '127.0.0.1:%d' % port)
    t.rpc('iscsi_create_initiator_group', '1', 'ANY', '127.0.0.1/32')
    t.rpc('iscsi_create_initiator_group', '2', 'iqn.2016-06.io.test:only', '127.0.0.1/32')
    t.rpc('iscsi_create_target_node', 'disk1', 'Disk1', 'band0:0', '1:1', '64', '-d')
    t.rpc('bdev_malloc_create', '-b', 'Malloc1', '8', '512')
    t.rpc('iscsi_create_target_node', 'iqn.2001-04.com.example:locked', 'L', 'Malloc1:0', '1:2', '16')
    nodes = t.rpc_json('iscsi_get_target_nodes')
    assert [n['name'] for n in nodes] == ['%s:disk1' % NODE_BASE, 'iqn.2001-04.com.example:locked']
    assert nodes[0]['luns'] == [{'bdev_name': 'band0', 'lun_id': 0}]
    assert nodes[0]['pg_ig_maps'] == [{'pg_tag': 1, 'ig_tag': 1}]
    assert t.rpc_json('iscsi_get_portal_groups')[0]['portals'] == [{'host': '127.0.0.1', 'port': str(port)}]
    assert t.rpc_json('iscsi_get_initiator_groups')[1]['initiators'] == ['iqn.2016-06.io.test:only']
    # Bad params: a clear error, nothing changed.
    before = [t.rpc_json(m) for m in ('iscsi_get_portal_groups', 'iscsi_get_initiator_groups',
                                       'iscsi_get_target_nodes')]
    for args in (['iscsi_create_target_node', 'disk2', 'a', 'band0:0', '9:1', '64'],
                 ['iscsi_create_target_node', 'disk2', 'a', 'Nope:0', '1:1', '64'],
                 ['iscsi_create_target_node', 'disk2', 'a', 'Malloc0:0', '1:1', '0'],
                 ['iscsi_create_target_node', 'disk1', 'a', 'Malloc0:0', '1:1', '8'],
                 ['iscsi_create_portal_group', '1', '127.0.0.1:%d' % free_port()],
                 ['iscsi_create_portal_group', '0', '127.0.0.1:%d' % free_port()],
                 ['iscsi_create_initiator_group', '3', 'ANY', 'not-a-mask'],
                 ['iscsi_delete_portal_group', '1'],
                 ['iscsi_delete_target_node', 'nope'],
                 ['iscsi_set_options', '-c', '4']):
        p = t.rpc(*args, check=False)
        assert p.returncode != 0, args
        said = p.stdout + p.stderr
        # A JSON-RPC error with a negative code and a message (not a crash of the client).
        assert 'JSON-RPC error' in said and '"code": -' in said and '"message": "' in said, said
    after = [t.rpc_json(m) for m in ('iscsi_get_portal_groups', 'iscsi_get_initiator_groups',
                                      'iscsi_get_target_nodes')]
    assert after == before
    # The exported bdev is claimed.
    assert t.rpc('bdev_ioband_delete', 'band0', check=False).returncode != 0

    # Login refusals: unknown target 2/0x03, initiator not in the group 2/0x02.
    with pytest.raises(iscsitools.LoginRefused) as e:
        iscsitools.Session('127.0.0.1', port, '%s:nope' % NODE_BASE, INIT_A)
    assert (e.value.status_class, e.value.detail) == (2, 3)
    with pytest.raises(iscsitools.LoginRefused) as e:
        iscsitools.Session('127.0.0.1', port, 'iqn.2001-04.com.example:locked', INIT_A)
    assert (e.value.status_class, e.value.detail) == (2, 2)
    iscsitools.Session('127.0.0.1', port, 'iqn.2001-04.com.example:locked',
                       'iqn.2016-06.io.test:only').logout()

    # Discovery lists what this initiator may reach.
    d = iscsitools.Session('127.0.0.1', port, None, INIT_A)
    assert d.text({'SendTargets': 'All'}) == [
        ['TargetName', '%s:disk1' % NODE_BASE], ['TargetAddress', '127.0.0.1:%d,1' % port]]
    d.logout()

    # Data integrity: 4 MiB through R2Ts, then through immediate data, 0 mismatches.
    t.rpc('bdev_ioband_set_settings', 'band0', '--initiator', INIT_A, '--weight', '100')
    import os
    data = os.urandom(4 << 20)
    for immediate in (False, True):
        s = iscsitools.Session('127.0.0.1', port, '%s:disk1' % NODE_BASE, INIT_A, immediate_data=immediate)
        step = 128 * 512 if immediate else 2048 * 512
        for off in range(0, len(data), step):
            assert s.write10(off // 512, step // 512, data[off:off + step]) == 0
        conns = t.rpc_json('iscsi_get_connections')
        assert [c['group'] for c in conns] == ['initiator:%s' % INIT_A]
        back = b''
        for off in range(0, len(data), 1 << 20):
            st, chunk = s.read10(off // 512, 2048, 512)
            assert st == 0
            back += chunk
        mismatches = sum(1 for i in range(0, len(data), 512) if back[i:i + 512] != data[i:i + 512])
        print('iSCSI integrity (immediate data %s): %d mismatched blocks of %d' % (immediate, mismatches, len(data) // 512))
        assert mismatches == 0
        assert s.logout() == 0
        data = data[::-1]
    assert completed_ios(t, ['initiator:%s' % INIT_A])[0] > 0

    if shutil.which('iscsi-ls'):
        out = subprocess.run(['iscsi-ls', '-i', INIT_A, 'iscsi://127.0.0.1:%d' % port], check=True,
                             capture_output=True, text=True).stdout
        assert 'Target:%s:disk1 Portal:127.0.0.1:%d,1' % (NODE_BASE, port) in out
    if shutil.which('iscsi-readcapacity16'):
        out = subprocess.run(['iscsi-readcapacity16', '-i', INIT_A, url(port, 'disk1')], check=True,
                             capture_output=True, text=True).stdout
        assert 'Total size:%d' % (32 << 20) in out

    # set_options, save_config: the iscsi subsystem replays.
    t.rpc('iscsi_set_options', '-w', '4')
    assert t.rpc_json('iscsi_get_options')['default_time2wait'] == 4
    saved = t.workdir / 'saved.json'
    saved.write_text(t.rpc('save_config').stdout)
    assert any(s['subsystem'] == 'iscsi' for s in json.loads(saved.read_text())['subsystems'])
    before = [t.rpc_json(m) for m in ('iscsi_get_portal_groups', 'iscsi_get_initiator_groups',
                                       'iscsi_get_target_nodes', 'iscsi_get_options')]
    t.rpc('spdk_kill_instance', 'SIGTERM')
    assert t.wait_exit() == 0
    t.start(json_config=saved)
    after = [t.rpc_json(m) for m in ('iscsi_get_portal_groups', 'iscsi_get_initiator_groups',
                                      'iscsi_get_target_nodes', 'iscsi_get_options')]
    assert after == before
    t.rpc('iscsi_delete_target_node', 'disk1')
    t.rpc('bdev_ioband_delete', 'band0')
    assert [n['name'] for n in t.rpc_json('iscsi_get_target_nodes')] == ['iqn.2001-04.com.example:locked']


# Suites where ioband_tgt is known to fail a test, and which; everything else must pass or
# skip. (SPDK's iscsi_tgt fails more: see tests/spdk/test_spdk_iscsi.py and the README.)
KNOWN_FAILURES = {}


def test_the_conformance_parser_reads_verdicts_not_log_lines():
    # iSCSIDataSnInvalid logs "[FAILED] WRITE10 ..." for writes that must fail, then passes.
    out = ('Suite: iSCSIdatasn\n  Test: iSCSIDataSnInvalid ...\n'
           '    [FAILED] WRITE10 command failed with status 2\n'
           '    [FAILED] WRITE10 command failed with status 2\n'
           'passed    Send PRIN/READ_KEYS\n'
           '  Test: Other ...FAILED\n'
           '  Test: Opt ...    [SKIPPED] not implemented.\npassed\n')
    assert iscsi_conformance.parse(out) == {
        'iSCSIDataSnInvalid': 'pass', 'Other': 'fail', 'Opt': 'skip'}


def test_iscsi_test_cu_conformance(make_target):
    need_tools('iscsi-test-cu')
    port = free_port()
    t = start(make_target, [
        {'method': 'bdev_malloc_create', 'params': {'name': 'Malloc0', 'block_size': 512, 'num_blocks': 131072}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Malloc0', 'share': 's0'}},
    ], {'disk1': ['band0']}, port)
    table = iscsi_conformance.run_all(url(port, 'disk1'))
    print()
    print(iscsi_conformance.format_table({'ioband_tgt': table}))
    failed = {s: r['failed'] for s, r in table.items() if r['failed']}
    unexpected = {s: [n for n in f if n not in KNOWN_FAILURES.get(s, ())] for s, f in failed.items()}
    unexpected = {s: f for s, f in unexpected.items() if f}
    assert not unexpected, unexpected
    assert sum(r['pass'] for r in table.values()) > 100
    assert t.proc.poll() is None, t.log()


def perf_cmd(initiator, lun_url, seconds, depth=32, blocks=8):
    return ['iscsi-perf', '-i', initiator, '-m', str(depth), '-b', str(blocks), '-r', '-t',
            str(seconds), lun_url]


def perf_iops(out):
    found = re.findall(r'iops average (\d+)', out)
    assert found, out[-500:]
    return int(found[-1])


def test_two_iscsi_perf_initiators_share_3_to_1(make_target):
    need_tools('iscsi-perf')
    port = free_port()
    t = start(make_target, [
        # 5000 IOPS: the base, not the front end, is what both initiators contend for, even
        # on a debug build with the other core busy (at 20 000 a loaded CI machine's front
        # end delivered 10 000 and the weights never bound).
        {'method': 'bdev_model_create', 'params': {'name': 'Model0', 'block_size': 4096, 'num_blocks': 65536,
                                                   'iops': 5000, 'latency_us': 50, 'queue_depth': 16}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Model0', 'share': 's0'}},
    ], {'disk1': ['band0']}, port)
    t.rpc('bdev_ioband_set_settings', 'band0', '--initiator', INIT_A, '--weight', '300')
    t.rpc('bdev_ioband_set_settings', 'band0', '--initiator', INIT_B, '--weight', '100')
    procs = [subprocess.Popen(perf_cmd(i, url(port, 'disk1'), 9, blocks=1), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
             for i in (INIT_A, INIT_B)]
    try:
        groups = ['initiator:%s' % i for i in (INIT_A, INIT_B)]
        a, b, ratio = ratio_in_window(t, groups)
        outs = [p.communicate(timeout=60)[0] for p in procs]
        for p, out in zip(procs, outs):
            assert p.returncode == 0, out[-500:]
        print('iSCSI initiator shares: %d vs %d I/O in the common window, ratio %.3f' % (a, b, ratio))
        assert abs(ratio - 3.0) <= 0.09, ratio
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_iscsi_perf_through_ioband_keeps_90_percent_of_the_bare_base(make_target):
    need_tools('iscsi-perf')
    port = free_port()
    t = start(make_target, [
        {'method': 'bdev_null_create', 'params': {'name': 'Null0', 'block_size': 4096, 'num_blocks': 65536}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'band0', 'base_bdev_name': 'Null0', 'share': 's0'}},
    ], {'bare': ['Null0'], 'band': ['band0']}, port)
    best = {}
    # Alternate, best of five each: the machine is shared and its load comes in bursts.
    for _ in range(5):
        for name in ('bare', 'band'):
            out = subprocess.run(perf_cmd(INIT_A, url(port, name), 2, blocks=1), capture_output=True,
                                 text=True, stdin=subprocess.DEVNULL).stdout
            best[name] = max(best.get(name, 0), perf_iops(out))
    ratio = best['band'] / best['bare']
    print('iscsi-perf 4k random read QD32: bare %d IOPS, ioband %d IOPS, ratio %.3f'
          % (best['bare'], best['band'], ratio))
    assert ratio >= 0.90, best
    assert t.proc.poll() is None
