#  SPDX-License-Identifier: BSD-3-Clause
"""End to end against real SPDK: spdk_tgt with libbdev_ioband_spdk.so preloaded, driven by
the real spdk-rpc client with our plugin; the embedded end-to-end scenario
(tests/test_e2e_tgt.py) over a malloc bdev named Model0, the same bad inputs with the same
error codes, and what only SPDK has (deferred creation, hot-remove, bdevperf I/O).

Skipped, with one line saying why, when SPDK_DIR is not set.
"""

import json
import re
import shutil

import pytest

import test_e2e_tgt as e2e
from rpctools import RawClient, describe, poll, short_tmpdir

from spdktools import SpdkTarget, perform_tests_in_background, save_config, spdk_binary

NQN = e2e.NQN
# The embedded tests' model device, as an SPDK malloc bdev of the same size and block size.
MODEL = ['bdev_malloc_create', '-b', 'Model0', '64', '512']


def bdev_names(t):
    return sorted(b['name'] for b in t.rpc_json('bdev_get_bdevs'))


def config_methods(config):
    return [e['method'] for s in config['subsystems'] for e in (s.get('config') or []) if isinstance(e, dict)]


# ------------------------------------------------------------------------------------------
# The embedded scenario: create, configure, read, save, restart from the saved config, delete.

def test_lifecycle_save_restart_delete(make_spdk_target):
    t = make_spdk_target().start()

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

    devices = t.rpc_json('bdev_ioband_get_devices')
    assert len(devices) == 1, devices
    d = devices[0]
    assert e2e.DEVICE_KEYS <= set(d), d
    assert (d['share'], d['policy'], d['devices']) == ('share0', 'weight', ['io0', 'io1'])
    assert (d['io_limit'], d['io_throttle']) == (96, 8)
    assert t.rpc_json('bdev_ioband_get_devices', '--share', 'share0') == devices

    text = t.rpc('bdev_ioband_get_devices', '-f', 'text').stdout
    lines = text.splitlines()
    assert re.fullmatch(r'share0 policy=weight io_throttle=8 io_limit=96 token=\d+ carryover=\d+( .*)?',
                        lines[0]), text
    assert lines[1:] == ['  io0', '  io1'], text

    settings = t.rpc_json('bdev_ioband_get_settings')
    by = e2e.settings_by_key(settings)
    assert set(by) == {('io0', 'none'), ('io1', 'none'), ('io0', 'initiator:' + NQN), ('io1', 'cgroup:4242')}
    assert by[('io0', 'none')]['weight'] == 3 and by[('io1', 'none')]['weight'] == 1
    assert t.rpc('bdev_ioband_get_settings', '-f', 'text').stdout == 'io0 weight=3\nio1 weight=1\n'
    assert t.rpc('bdev_ioband_get_settings', '-f', 'text', '-i', NQN).stdout == 'io0 weight=200\n'

    stat = t.rpc_json('bdev_ioband_get_iostat')
    assert isinstance(stat['tick_rate'], int) and stat['tick_rate'] > 0, stat
    assert [(dev['name'], dev['share']) for dev in stat['devices']] == [('io0', 'share0'), ('io1', 'share0')]
    for dev in stat['devices']:
        assert dev['groups'][0]['group'] == 'none'
        for g in dev['groups']:
            assert e2e.GROUP_STAT_KEYS <= set(g), g

    # SPDK citizenship: real bdevs, both over Model0 through one shared-writer claim.
    assert bdev_names(t) == ['Model0', 'io0', 'io1']
    info = t.rpc_json('bdev_get_bdevs', '-b', 'io0')[0]
    assert info['product_name'] == 'ioband'
    assert info['driver_specific']['ioband']['base_bdev_name'] == 'Model0'
    assert info['num_blocks'] == 131072 and info['block_size'] == 512
    base = t.rpc_json('bdev_get_bdevs', '-b', 'Model0')[0]
    assert base['claimed'] is True and base.get('claim_type') == 'read_many_write_shared', base

    before = e2e.snapshot(t)
    saved = save_config(t)
    config = json.loads(saved)
    methods = config_methods(config)
    assert 'bdev_malloc_create' in methods and 'bdev_ioband_create' in methods, saved
    # Vbdev modules come first in SPDK's bdev section: the creates replay before the base.
    assert methods.index('bdev_ioband_create') < methods.index('bdev_malloc_create'), methods
    assert methods.count('bdev_ioband_set_settings') == 4, methods
    config_path = t.workdir / 'config.json'
    config_path.write_text(saved)

    t.rpc('spdk_kill_instance', 'SIGTERM')
    assert t.wait_exit() == 0, t.log()

    t.start(json_config=config_path)
    assert e2e.snapshot(t) == before

    t.rpc('bdev_ioband_set_settings', 'io1', '--cgroup', '4242', '--detach')
    t.rpc('bdev_ioband_set_settings', 'io0', '--initiator', NQN, '--detach')
    assert set(e2e.settings_by_key(t.rpc_json('bdev_ioband_get_settings'))) == {('io0', 'none'), ('io1', 'none')}
    assert t.rpc('bdev_ioband_delete', 'io1').stdout == ''
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io0']
    t.rpc('bdev_ioband_delete', 'io0')
    assert t.rpc_json('bdev_ioband_get_devices') == []
    assert t.rpc_json('bdev_ioband_get_settings') == []
    assert bdev_names(t) == ['Model0']
    t.rpc('bdev_malloc_delete', 'Model0')
    assert t.terminate() == 0, t.log()


def test_over_null_and_malloc_with_spdk_commands(make_spdk_target):
    t = make_spdk_target().start()
    assert t.rpc('bdev_null_create', 'Null0', '16', '512').stdout == 'Null0\n'
    assert t.rpc('bdev_malloc_create', '-b', 'Malloc0', '16', '4096').stdout == 'Malloc0\n'
    t.rpc('bdev_ioband_create', '-b', 'Null0', '-n', 'ion0', '--share', 'rb', '-p', 'range-bw',
          '--capacity', '4000000')
    t.rpc('bdev_ioband_create', '-b', 'Malloc0', '-n', 'iom0', '--share', 'rb')
    t.rpc('bdev_ioband_set_settings', 'ion0', '--range-bw', '1000:200000')
    t.rpc('bdev_ioband_set_settings', 'iom0', '--tag', '7', '--range-bw', '500:1000')
    by = e2e.settings_by_key(t.rpc_json('bdev_ioband_get_settings'))
    assert (by[('ion0', 'none')]['min_kib_per_sec'], by[('ion0', 'none')]['max_kib_per_sec']) == (1000, 200000)
    assert t.rpc('bdev_ioband_get_settings', '-f', 'text', '--tag', '7').stdout == 'iom0 range-bw=500:1000\n'
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
# What only SPDK has: creation deferred until the base appears, hot-remove, real I/O.

def test_create_waits_for_base_and_survives_hot_remove(make_spdk_target):
    t = make_spdk_target().start()
    assert t.rpc('bdev_ioband_create', '-b', 'Late0', '-n', 'io0', '--share', 's').stdout == 'io0\n'
    t.rpc('bdev_ioband_set_settings', 'io0', '-w', '7')
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io0']
    assert bdev_names(t) == []
    t.rpc('bdev_malloc_create', '-b', 'Late0', '8', '512')
    assert bdev_names(t) == ['Late0', 'io0']

    # Hot-remove of the base: the bdev goes, the device and its settings stay, and it comes
    # back with the base.
    t.rpc('bdev_malloc_delete', 'Late0')
    poll(lambda: bdev_names(t) == [], 10, 'io0 unregistered after its base went')
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io0']
    t.rpc('bdev_malloc_create', '-b', 'Late0', '8', '512')
    assert bdev_names(t) == ['Late0', 'io0']
    assert e2e.settings_by_key(t.rpc_json('bdev_ioband_get_settings'))[('io0', 'none')]['weight'] == 7

    # A device whose base is absent is deleted at once.
    t.rpc('bdev_ioband_create', '-b', 'Never', '-n', 'io9')
    t.rpc('bdev_ioband_delete', 'io9')
    t.rpc('bdev_ioband_delete', 'io0')
    assert t.rpc_json('bdev_ioband_get_devices') == []
    assert bdev_names(t) == ['Late0']
    assert t.terminate() == 0, t.log()


def test_other_module_cannot_claim_the_base_for_writing(make_spdk_target):
    t = make_spdk_target().start()
    t.rpc('bdev_malloc_create', '-b', 'M0', '8', '512')
    t.rpc('bdev_ioband_create', '-b', 'M0', '-n', 'io0')
    proc = t.rpc('bdev_passthru_create', '-b', 'M0', '-p', 'pt0', check=False)
    assert proc.returncode != 0, describe(proc)
    assert bdev_names(t) == ['M0', 'io0']
    # ...and ioband refuses a base another module claimed.
    t.rpc('bdev_malloc_create', '-b', 'M1', '8', '512')
    t.rpc('bdev_passthru_create', '-b', 'M1', '-p', 'pt1')
    proc = t.rpc('bdev_ioband_create', '-b', 'M1', '-n', 'io1', check=False)
    assert proc.returncode == 1 and '"code": -1' in proc.stdout, describe(proc)
    assert t.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io0']
    assert t.terminate() == 0, t.log()


BDEVPERF_CONFIG = {'subsystems': [{'subsystem': 'bdev', 'config': [
    # A small bdev_io pool: submissions to the base run out and take the io_wait path.
    {'method': 'bdev_set_options', 'params': {'bdev_io_pool_size': 96, 'bdev_io_cache_size': 4}},
    {'method': 'bdev_malloc_create', 'params': {'name': 'M0', 'num_blocks': 8192, 'block_size': 4096}},
    {'method': 'bdev_malloc_create', 'params': {'name': 'M1', 'num_blocks': 8192, 'block_size': 4096}},
    {'method': 'bdev_ioband_create', 'params': {'name': 'io0', 'base_bdev_name': 'M0', 'share': 's0',
                                                'io_limit': 16}},
    {'method': 'bdev_ioband_create', 'params': {'name': 'io1', 'base_bdev_name': 'M1', 'share': 's0'}},
    {'method': 'bdev_ioband_set_settings', 'params': {'name': 'io0', 'value': 3}},
    {'method': 'bdev_wait_for_examine'},
]}]}
# Thread ids are small integers in creation order; bdevperf's job threads are among these.
TAGS = range(1, 17)


def test_bdevperf_io_through_the_engine(spdk_root, ioband_lib):
    """bdevperf (an SPDK app) with the module preloaded, on two cores: verified writes and
    reads through two ioband bdevs of one share, under bdev_io pool pressure; nothing
    fails, every I/O the engine dispatched completed, and I/O is classified by the SPDK
    thread that submitted it (tag:<thread id>) once such groups are attached."""
    if spdk_binary(spdk_root, 'bdevperf') is None:
        pytest.skip('SPDK_DIR has no bdevperf (build/examples/bdevperf)')
    t = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), app='bdevperf', cores='0x3')
    cfg = t.workdir / 'bdevperf.json'
    cfg.write_text(json.dumps(BDEVPERF_CONFIG))
    try:
        # -z: wait for perform_tests, so that groups can be attached before and the
        # counters read after the run. -C: a job per core per bdev (four job threads).
        t.start(json_config=cfg, extra=['-z', '-C', '-q', '32', '-o', '4096', '-w', 'verify', '-t', '2'])
        for tag in TAGS:
            t.rpc('bdev_ioband_set_settings', 'io1', '--tag', str(tag), '-w', '10')
        with RawClient(t.sock, timeout=60) as c:
            resp = c.request('perform_tests', {})
        assert 'result' in resp, resp
        stat = t.rpc_json('bdev_ioband_get_iostat')
        by_dev = {dev['name']: dev['groups'] for dev in stat['devices']}
        for name, groups in by_dev.items():
            dispatched = sum(g['dispatched_ios'] for g in groups)
            assert dispatched > 1000, stat
            for g in groups:
                assert g['completed_ios'] == g['dispatched_ios'] and g['in_flight'] == 0, stat
                assert g['queue_depth'] == 0, stat
        assert by_dev['io0'][0]['read_ios'] > 0 and by_dev['io0'][0]['write_ios'] > 0, stat
        tagged = [g for g in by_dev['io1'] if g['group'].startswith('tag:') and g['dispatched_ios'] > 0]
        assert len(tagged) >= 2, by_dev['io1']   # one job thread per core
        t.rpc('spdk_kill_instance', 'SIGTERM')
        assert t.wait_exit() == 0, t.log()
        log = t.log(200000)
        assert 'mismatch' not in log, log[-4000:]
        rows = re.findall(r'^\s*(io[01])\s*:\s*\S+\s+(\S+)\s+\S+\s+(\S+)', log, re.M)
        assert len(rows) == 4, log[-4000:]
        for name, iops, fails in rows:
            assert float(iops) > 0 and float(fails) == 0, rows
    finally:
        t.kill()
        shutil.rmtree(t.workdir, ignore_errors=True)


def test_bdevperf_verify_over_metadata_dif_and_aligned_bases(spdk_root, ioband_lib):
    """The shim's two ways to the base for READ and WRITE, each under bdevperf's verify:
    the plain vectored call (no metadata, no memory domain, no DIF on the base) and the
    _ext call that carries a separate metadata buffer and the caller's DIF flags (malloc
    with 8 bytes of separate metadata, no DIF, so that bdevperf compares the metadata too;
    malloc with interleaved metadata and DIF type 1, checked by the base). And the read's buffer check: an AIO base asks for alignment, so reads take
    spdk_bdev_io_get_buf as before; the others go on with the caller's buffer. Nothing
    fails, no data or metadata mismatch, every I/O the engine dispatched completed."""
    if spdk_binary(spdk_root, 'bdevperf') is None:
        pytest.skip('SPDK_DIR has no bdevperf (build/examples/bdevperf)')
    t = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), app='bdevperf', cores='0x1')
    backing = t.workdir / 'aio.img'
    with open(backing, 'wb') as f:
        f.truncate(32 * 1024 * 1024)
    config = {'subsystems': [{'subsystem': 'bdev', 'config': [
        {'method': 'bdev_malloc_create', 'params': {'name': 'Msep', 'num_blocks': 8192, 'block_size': 4096,
                                                    'md_size': 8, 'md_interleave': False, 'dif_type': 0}},
        {'method': 'bdev_malloc_create', 'params': {'name': 'Mint', 'num_blocks': 8192, 'block_size': 4096,
                                                    'md_size': 8, 'md_interleave': True, 'dif_type': 1}},
        {'method': 'bdev_aio_create', 'params': {'name': 'Aio', 'filename': str(backing), 'block_size': 4096}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'ib_sep', 'base_bdev_name': 'Msep', 'share': 'md'}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'ib_int', 'base_bdev_name': 'Mint', 'share': 'md'}},
        {'method': 'bdev_ioband_create', 'params': {'name': 'ib_aio', 'base_bdev_name': 'Aio', 'share': 'md'}},
        {'method': 'bdev_wait_for_examine'},
    ]}]}
    cfg = t.workdir / 'bdevperf.json'
    cfg.write_text(json.dumps(config))
    try:
        # 16 KiB: four blocks per I/O (bdevperf's metadata pattern is the block's index in
        # the I/O, so a one-block I/O would write zeros and miss lost metadata).
        t.start(json_config=cfg, extra=['-z', '-q', '16', '-o', '16384', '-w', 'verify', '-t', '2'])
        bdevs = {b['name']: b for b in t.rpc_json('bdev_get_bdevs')}
        assert bdevs['ib_sep']['md_size'] == 8 and not bdevs['ib_sep']['md_interleave'], bdevs['ib_sep']
        assert bdevs['ib_int']['md_size'] == 8 and bdevs['ib_int']['md_interleave'], bdevs['ib_int']
        assert bdevs['ib_sep']['dif_type'] == 0 and bdevs['ib_int']['dif_type'] == 1
        with RawClient(t.sock, timeout=60) as c:
            resp = c.request('perform_tests', {})
        assert 'result' in resp, (resp, t.log()[-4000:])
        results = {r['job']: r for r in resp['result']['results']}
        assert sorted(results) == ['ib_aio', 'ib_int', 'ib_sep'], results
        for name, r in results.items():
            assert r['io_failed'] == 0 and r['iops'] > 0, (name, r)
        stat = t.rpc_json('bdev_ioband_get_iostat')
        for dev in stat['devices']:
            (g,) = [g for g in dev['groups'] if g['dispatched_ios']]
            assert g['completed_ios'] == g['dispatched_ios'] and g['in_flight'] == 0, dev
            assert g['read_ios'] > 0 and g['write_ios'] > 0, dev
        t.rpc('spdk_kill_instance', 'SIGTERM')
        assert t.wait_exit() == 0, t.log()
        log = t.log(200000)
        assert 'mismatch' not in log.lower() and 'miscompare' not in log.lower(), log[-4000:]
        errors = [line for line in log.splitlines() if '*ERROR*' in line]
        assert not errors, errors
    finally:
        t.kill()
        shutil.rmtree(t.workdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Bad input: the embedded tests' table, against SPDK. Same codes, no state change.

# Rows that do not apply to the SPDK host, and why.
NOT_HERE = {}


@pytest.fixture(scope='module')
def loaded(spdk_root, ioband_lib):
    """The embedded tests' loaded target: share0 (weight, io0:io1 = 3:1, an initiator and a
    cgroup group) and share1 (range-bw, io2 with a tag group), all over Model0."""
    t = SpdkTarget(spdk_root, ioband_lib, short_tmpdir())
    try:
        t.start()
        e2e.load_two_shares(t, MODEL)
        yield t
        assert t.terminate() == 0, t.log()
    finally:
        t.kill()


@pytest.fixture
def target(loaded):
    before = e2e.snapshot(loaded)
    yield loaded
    assert loaded.proc.poll() is None, 'spdk_tgt died:\n' + loaded.log()
    assert e2e.snapshot(loaded) == before


# SPDK's own JSON-RPC server reads at most 32 KiB per request (SPDK_JSONRPC_RECV_BUF_SIZE)
# and drops a connection whose request does not fit: a request that large never reaches a
# module. The huge-input cases are sent here at 30000 bytes, still far above what an error
# may echo.
SPDK_REQUEST_MAX = 30000


def _fit(value):
    if isinstance(value, str) and len(value) > SPDK_REQUEST_MAX:
        return value[:SPDK_REQUEST_MAX - 1000] + value[-1000:]
    if isinstance(value, dict):
        return {k: _fit(v) for k, v in value.items()}
    return value


BAD_CALLS = [(c[0], c[1], _fit(c[2])) + tuple(c[3:]) for c in e2e.BAD_CALLS
             if not c[1].startswith('bdev_model_') and c[0] not in NOT_HERE]


@pytest.mark.parametrize('method,params,code,mention', [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_call_is_refused_and_changes_nothing(target, method, params, code, mention):
    e2e.check_refused(target, method, params, code, mention)


def test_error_through_spdk_rpc(target):
    e2e.check_errors_through_spdk_rpc(target)


# ------------------------------------------------------------------------------------------
# NVMe/TCP loopback: one app exports a malloc bdev on 127.0.0.1, bdevperf (with the module)
# attaches it, ioband bdevs stack on the namespace bdev before and after it appears.

SUBNQN = 'nqn.2016-06.io.spdk:ioband-loop'


def free_tcp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def raw_call(t, method, params=None, timeout=30):
    """SPDK's own methods whose PyPI client (26.x) sends parameters 25.09 does not know."""
    with RawClient(t.sock, timeout=timeout) as c:
        return c.call(method, params)


def test_nvme_tcp_loopback(spdk_root, ioband_lib):
    if spdk_binary(spdk_root, 'bdevperf') is None:
        pytest.skip('SPDK_DIR has no bdevperf (build/examples/bdevperf)')
    port = str(free_tcp_port())
    a = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), cores='0x1')
    b = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), app='bdevperf', cores='0x2')
    attach = {'name': 'Nvme0', 'trtype': 'tcp', 'traddr': '127.0.0.1', 'adrfam': 'ipv4',
              'trsvcid': port, 'subnqn': SUBNQN}
    try:
        a.start()
        a.rpc('nvmf_create_transport', '-t', 'TCP')
        a.rpc('bdev_malloc_create', '-b', 'Mal0', '64', '4096')
        a.rpc('nvmf_create_subsystem', SUBNQN, '-a', '-s', 'SPDK1')
        a.rpc('nvmf_subsystem_add_ns', SUBNQN, 'Mal0')
        a.rpc('nvmf_subsystem_add_listener', SUBNQN, '-t', 'tcp', '-a', '127.0.0.1', '-s', port, '-f', 'ipv4')

        b.start(extra=['-z', '-q', '32', '-o', '4096', '-w', 'randrw', '-M', '50', '-t', '2'])
        # Created before the namespace exists: remembered, registered by examine.
        b.rpc('bdev_ioband_create', '-b', 'Nvme0n1', '-n', 'io0', '--share', 'tcp0')
        b.rpc('bdev_ioband_create', '-b', 'Nvme0n1', '-n', 'io1', '--share', 'tcp0')
        b.rpc('bdev_ioband_set_settings', 'io0', '-w', '3')
        assert raw_call(b, 'bdev_nvme_attach_controller', attach) == ['Nvme0n1']
        assert bdev_names(b) == ['Nvme0n1', 'io0', 'io1']

        with RawClient(b.sock, timeout=60) as c:
            results = c.call('perform_tests', {})['results']
        assert {r['job'] for r in results} == {'io0', 'io1'}, results
        for r in results:
            assert r['status'] == 'finished' and r['io_failed'] == 0 and r['iops'] > 0, r
        stat = b.rpc_json('bdev_ioband_get_iostat')
        for dev in stat['devices']:
            g = dev['groups'][0]
            assert g['read_ios'] > 0 and g['write_ios'] > 0, stat
            assert g['completed_ios'] == g['dispatched_ios'] and g['in_flight'] == 0, stat

        # Hot-remove under load: detach while bdevperf runs. Every I/O completes once (the
        # run ends, nothing stays queued or in flight in the engine), the ioband bdevs go
        # with the namespace, the devices and their settings stay, and attaching again
        # brings them back.
        def dispatched():
            return sum(g['dispatched_ios'] for d in b.rpc_json('bdev_ioband_get_iostat')['devices']
                       for g in d['groups'])

        before = dispatched()
        runner, run = perform_tests_in_background(b, 60)
        poll(lambda: dispatched() > before + 10000, 30, 'I/O flowing before the detach')
        raw_call(b, 'bdev_nvme_detach_controller', {'name': 'Nvme0'})
        runner.join(60)
        assert not runner.is_alive(), 'perform_tests did not return after the detach'
        assert 'result' in run['resp'] or 'error' in run['resp'], run
        poll(lambda: bdev_names(b) == [], 15, 'ioband bdevs unregistered after detach')
        for dev in b.rpc_json('bdev_ioband_get_iostat')['devices']:
            for g in dev['groups']:
                assert g['in_flight'] == 0 and g['queue_depth'] == 0, dev
                assert g['completed_ios'] == g['dispatched_ios'], dev
        assert b.rpc_json('bdev_ioband_get_devices')[0]['devices'] == ['io0', 'io1']
        assert raw_call(b, 'bdev_nvme_attach_controller', attach) == ['Nvme0n1']
        assert bdev_names(b) == ['Nvme0n1', 'io0', 'io1']
        assert e2e.settings_by_key(b.rpc_json('bdev_ioband_get_settings'))[('io0', 'none')]['weight'] == 3

        b.rpc('spdk_kill_instance', 'SIGTERM')
        assert b.wait_exit() == 0, b.log()
        assert a.terminate() == 0, a.log()
    finally:
        for t in (b, a):
            t.kill()
            shutil.rmtree(t.workdir, ignore_errors=True)
