#  SPDX-License-Identifier: BSD-3-Clause
"""Issue #12's acceptance against real SPDK: tenants by name. One ioband bdev per tenant over
one rate-limited base, each bound to the tenant's group (`bdev_ioband_create`'s `group`) of
one share, exported with one plugin command per tenant, measured from the outside.

    nvmf_tgt + libbdev_ioband_spdk.so (core 0)
        Nul0 -> Dly0 (delay DELAY_US) with SPDK's QoS at LIMIT IOPS (bdev_set_qos_limit)
          -> t1, t2, t3 bound to initiator:<host1..3 NQN>, share "tenants", weights 4:2:1
        subsystem SUB: bdev_ioband_nvmf_export per tenant (a namespace visible to its host only)
    spdk_nvme_perf -q QD, three -r with the one subsystem and three hostnqn values (core 1)

    iscsi_tgt + libbdev_ioband_spdk.so: the same base, two tenants at 3:1 exported with
    bdev_ioband_iscsi_export (a target node each, its initiator group naming one IQN), and an
    iscsi-perf (libiscsi-bin) per initiator IQN.

Shares are judged on what was delivered: the engine's completed I/O per tenant's group
between two iostat snapshots taken while every tenant is running (the start and the drain
of the clients are outside), must be the weights' shares within TOLERANCE. A run counts only
if every tenant was backlogged in the share all along (most of its I/O waited there: a
client the busy machine starved is not a share the scheduler chose); other runs are printed
and retried, up to MAX_TRIES. The clients' own figures are printed beside.

Also: each host sees only its namespace (perf lists exactly one namespace per host; an
initiator is refused by the other's target node), iostat names the tenants, a failing export
step leaves nothing behind, and save_config -> restart with --json gives the same tenants,
exports and settings.

Skipped, with one line saying why, when SPDK_DIR is not set.
"""

import json
import re
import shutil
import subprocess
import time

import pytest

from rpctools import poll
from spdktools import call, cpu_seconds, free_tcp_port, save_config, spdk_binary, spdk_env

LIMIT = 5000          # SPDK QoS on the base, rw IOPS
DELAY_US = 2000       # the base's service time (delay bdev over null)
QD = 32
SECONDS = 9           # each client's run; the measurement is inside it
MEASURE = 5           # seconds between the two iostat snapshots
MAX_TRIES = 3
TOLERANCE = 0.03
MIN_WAITED = 0.5      # of a tenant's dispatched I/O that waited in the share: it was backlogged

SUB = 'nqn.2016-06.io.spdk:ioband-tenants'
NVMF_TENANTS = [  # (ioband bdev, weight, host NQN)
    ('t1', 4, 'nqn.2016-06.io.spdk:ioband-host1'),
    ('t2', 2, 'nqn.2016-06.io.spdk:ioband-host2'),
    ('t3', 1, 'nqn.2016-06.io.spdk:ioband-host3'),
]
ISCSI_TENANTS = [  # (ioband bdev, weight, initiator IQN, target node)
    ('i1', 3, 'iqn.2016-06.io.example:ioband-init1', 'disk1'),
    ('i2', 1, 'iqn.2016-06.io.example:ioband-init2', 'disk2'),
]

# TCP (addr:127.0.0.1 subnqn:nqn...) NSID 2 from core  1:  2975.80  11.62  7937.06  1207.14  20188.87
PERF_ROW = re.compile(r'^\s*TCP\s+\(addr:\S+\s+subnqn:(?P<subnqn>\S+)\)\s+NSID\s+(?P<nsid>\d+)\s+from\s+core'
                      r'\s+\d+\s*:\s+(?P<iops>[\d.]+)', re.M)
# iscsi-perf's progress lines and its summary: "... iops average 2039 (63 MB/s)"; the last is the run's.
ISCSI_AVG = re.compile(r'iops average (\d+) \(')


def test_parse_perf_rows():
    text = ('TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:ioband-tenants) NSID 1 from core  1:'
            '     460.58       1.80   70656.53   38939.26  161906.51\n'
            'TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:ioband-tenants) NSID 3 from core  1:'
            '     119.89       0.47  279390.10  123795.23  419381.94\n')
    assert [(m.group('nsid'), float(m.group('iops'))) for m in PERF_ROW.finditer(text)] == [
        ('1', 460.58), ('3', 119.89)]
    out = ('00:00:01 - lba 1, iops current 640 (20 MB/s), iops average 797 (24 MB/s), in_flight 32\r'
           '        iops average 679 (21 MB/s)      \n\nfinished.\n')
    assert ISCSI_AVG.findall(out)[-1] == '679'


def rate_limited_base(t):
    call(t, 'bdev_null_create', {'name': 'Nul0', 'num_blocks': 262144, 'block_size': 4096})
    call(t, 'bdev_delay_create', {'base_bdev_name': 'Nul0', 'name': 'Dly0',
                                  'avg_read_latency': DELAY_US, 'p99_read_latency': DELAY_US,
                                  'avg_write_latency': DELAY_US, 'p99_write_latency': DELAY_US})
    call(t, 'bdev_set_qos_limit', {'name': 'Dly0', 'rw_ios_per_sec': LIMIT})


def groups(t):
    """{group: its counters} of every ioband bdev (one group each: the bound one)."""
    return {g['group']: g for d in call(t, 'bdev_ioband_get_iostat')['devices'] for g in d['groups']}


def shares_between(before, after, keys):
    """What each group got between two snapshots: completed I/O, and the fraction of its
    dispatched I/O that waited in the share."""
    out = {}
    for k in keys:
        done = after[k]['completed_ios'] - before[k]['completed_ios']
        sent = after[k]['dispatched_ios'] - before[k]['dispatched_ios']
        waited = after[k]['throttled_ios'] - before[k]['throttled_ios']
        out[k] = (done, waited / sent if sent else 0.0)
    return out


def judge(rows, weights):
    """(valid, max relative error, text) of one run's delivered shares."""
    total = sum(done for done, _ in rows.values())
    wsum = sum(weights.values())
    errors = {k: (rows[k][0] / total) / (weights[k] / wsum) - 1 if total else 1.0 for k in rows}
    valid = total > 0 and all(w >= MIN_WAITED for _, w in rows.values())
    text = ', '.join('%s %d (%.1f%% waited, %+.2f%%)' % (k.rsplit(':', 1)[-1], rows[k][0], 100 * rows[k][1],
                                                        100 * errors[k]) for k in rows)
    return valid, max(abs(e) for e in errors.values()), text


def measure(t, clients, keys, weights, connected):
    """Starts the clients (a list of argv), waits until connected(), snapshots iostat, waits
    MEASURE s, snapshots again, reaps the clients. Returns (valid, error, text, outputs)."""
    procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) for argv, env in clients]
    try:
        poll(connected, 20, 'every client connected')
        time.sleep(1.0)  # past perf's warmup and the clients' ramp
        before, cpu0, t0 = groups(t), cpu_seconds(t.proc.pid), time.monotonic()
        time.sleep(MEASURE)
        after, tgt_share = groups(t), (cpu_seconds(t.proc.pid) - cpu0) / (time.monotonic() - t0)
        outs = [p.communicate(timeout=SECONDS + 60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, 'client %s failed (%s):\n%s' % (p.args, p.returncode, out[-3000:])
    valid, error, text = judge(shares_between(before, after, keys), weights)
    return valid, error, '%s | target cpu share %.2f' % (text, tgt_share), outs


def run_until_valid(t, clients, keys, weights, connected, label):
    results = []
    for attempt in range(1, MAX_TRIES + 1):
        valid, error, text, outs = measure(t, clients, keys, weights, connected)
        print('%s try %d: %s | max error %.2f%%%s' % (label, attempt, text, 100 * error,
                                                      '' if valid else ' | DISCARDED: a tenant was not backlogged'))
        if valid:
            return error, outs
        results.append(text)
    pytest.fail('the machine was too busy: no run in %d tries kept every tenant backlogged: %s'
                % (MAX_TRIES, results))


def exports_state(t, nvmf=True):
    """What the exports consist of, for before/after comparisons."""
    state = {'bdevs': sorted(b['name'] for b in call(t, 'bdev_get_bdevs')),
             'settings': call(t, 'bdev_ioband_get_settings'),
             'devices': [(d['share'], d['devices']) for d in call(t, 'bdev_ioband_get_devices')]}
    if nvmf:
        state['subsystems'] = [(s['nqn'], s['allow_any_host'], sorted(h['nqn'] for h in s['hosts']),
                                [(n['nsid'], n['bdev_name']) for n in s.get('namespaces', [])])
                               for s in call(t, 'nvmf_get_subsystems')]
    else:
        state['nodes'] = [(n['name'], n['pg_ig_maps'], n['luns']) for n in call(t, 'iscsi_get_target_nodes')]
        state['groups'] = [(g['tag'], g['initiators']) for g in call(t, 'iscsi_get_initiator_groups')]
    return state


def visibility(config):
    """The namespace visibility entries of a saved config (nvmf_ns_add_host)."""
    return sorted((e['params']['nsid'], e['params']['host']) for s in config['subsystems']
                  for e in (s.get('config') or []) if e.get('method') == 'nvmf_ns_add_host')


def restart_from_saved(t):
    saved = save_config(t)
    path = t.workdir / 'saved.json'
    path.write_text(saved)
    call(t, 'spdk_kill_instance', {'sig_name': 'SIGTERM'})
    assert t.wait_exit() == 0, t.log()
    t.start(json_config=path)
    return json.loads(saved)


def listen(port):
    return {'trtype': 'tcp', 'adrfam': 'ipv4', 'traddr': '127.0.0.1', 'trsvcid': port}


def test_nvmf_three_hosts_by_name_4_2_1(make_spdk_target, spdk_root):
    perf = spdk_binary(spdk_root, 'spdk_nvme_perf')
    if perf is None or spdk_binary(spdk_root, 'nvmf_tgt') is None:
        pytest.skip('SPDK_DIR has no spdk_nvme_perf or nvmf_tgt')
    port = free_tcp_port()
    t = make_spdk_target(app='nvmf_tgt', cores='0x1').start()
    call(t, 'nvmf_create_transport', {'trtype': 'TCP'})
    rate_limited_base(t)
    call(t, 'nvmf_create_subsystem', {'nqn': SUB, 'allow_any_host': False, 'serial_number': 'IOBANDT0'})
    call(t, 'nvmf_subsystem_add_listener', {'nqn': SUB, 'listen_address': listen(port)})

    # One plugin call per tenant: bound bdev, weight, host access, a namespace only it sees.
    nsid_of = {}
    for dev, weight, host in NVMF_TENANTS:
        out = t.rpc_json('bdev_ioband_nvmf_export', SUB, host, '-n', dev, '-b', 'Dly0', '--share', 'tenants',
                         '-w', str(weight))
        assert (out['bdev_name'], out['group']) == (dev, 'initiator:' + host), out
        nsid_of[out['nsid']] = host
    assert sorted(nsid_of) == [1, 2, 3]
    keys = ['initiator:' + h for _, _, h in NVMF_TENANTS]
    weights = {'initiator:' + h: w for _, w, h in NVMF_TENANTS}

    # iostat names the tenants, in JSON and text.
    stat = call(t, 'bdev_ioband_get_iostat', {'name': 'tenants'})
    assert [(d['name'], [g['group'] for g in d['groups']]) for d in stat['devices']] == [
        (dev, ['initiator:' + host]) for dev, _, host in NVMF_TENANTS], stat
    text = t.rpc('bdev_ioband_get_iostat', '-f', 'text').stdout
    assert [line.split()[:3] for line in text.splitlines()] == [
        [dev, 'tenants', 'initiator:' + host] for dev, _, host in NVMF_TENANTS], text
    # A tenant's value by the share and its name.
    t.rpc('bdev_ioband_set_settings', 'tenants', '--initiator', NVMF_TENANTS[2][2], '--weight', '1')

    # Failing exports leave nothing behind: the host bound already (the create fails), and a
    # namespace id taken (nvmf_subsystem_add_ns fails after the bdev and the host's access).
    before = exports_state(t)
    proc = t.rpc('bdev_ioband_nvmf_export', SUB, NVMF_TENANTS[0][2], '-n', 't9', '-b', 'Dly0',
                 '--share', 'tenants', check=False)
    assert proc.returncode == 1 and '-32602' in proc.stdout and 'is bound to ioband bdev' in proc.stdout, proc
    assert 'undone: nothing' in proc.stderr, proc.stderr
    proc = t.rpc('bdev_ioband_nvmf_export', SUB, 'nqn.2016-06.io.spdk:ioband-host9', '-n', 't9', '-b', 'Dly0',
                 '--share', 'tenants', '--nsid', '1', check=False)
    assert proc.returncode == 1 and 'nvmf_subsystem_add_ns' in proc.stdout, proc
    assert 'undone: nvmf_subsystem_remove_host, bdev_ioband_delete' in proc.stderr, proc.stderr
    assert exports_state(t) == before

    # Three hosts at QD each on the one subsystem; each sees its namespace only.
    cmd = [str(perf), '-q', str(QD), '-o', '4096', '-w', 'randread', '-t', str(SECONDS), '-a', '1',
           '--no-huge', '-s', '256', '-c', '0x2']
    for _, _, host in NVMF_TENANTS:
        cmd += ['-r', 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:%s subnqn:%s hostnqn:%s' % (port, SUB, host)]

    def connected():
        hosts = sorted(c['hostnqn'] for c in call(t, 'nvmf_subsystem_get_controllers', {'nqn': SUB}))
        return hosts == sorted(h for _, _, h in NVMF_TENANTS) and all(
            g['completed_ios'] > 0 for g in groups(t).values())

    print('\nbase: null -> delay %d us -> SPDK QoS %d IOPS; three hosts, QD %d each, 4 KiB randread'
          % (DELAY_US, LIMIT, QD))
    error, (out,) = run_until_valid(t, [(cmd, spdk_env(spdk_root))], keys, weights, connected, 'nvmf')
    rows = [(int(m.group('nsid')), float(m.group('iops'))) for m in PERF_ROW.finditer(out)]
    # One row per host: had a host seen another's namespace, perf would list it too.
    assert sorted(n for n, _ in rows) == [1, 2, 3], out
    perf_iops = {nsid_of[n]: iops for n, iops in rows}
    lo = perf_iops[NVMF_TENANTS[2][2]]
    print('spdk_nvme_perf IOPS (whole run, start and drain included): %s'
          % ', '.join('%s %.1f (%.2f)' % (h.rsplit(':', 1)[-1], perf_iops[h], perf_iops[h] / lo)
                      for _, _, h in NVMF_TENANTS))
    assert error <= TOLERANCE, 'shares off by %.2f%% (want <= %.0f%%)' % (100 * error, 100 * TOLERANCE)

    # save_config -> restart with --json: the same tenants, exports and settings.
    before = exports_state(t)
    saved = restart_from_saved(t)
    assert visibility(saved) == sorted(nsid_of.items())
    assert exports_state(t) == before
    assert visibility(json.loads(save_config(t))) == sorted(nsid_of.items())

    # Removal, in one call: the namespace, the host's access and the bdev go.
    t.rpc('bdev_ioband_nvmf_unexport', SUB, NVMF_TENANTS[2][2], '-n', 't3')
    [sub] = [s for s in call(t, 'nvmf_get_subsystems') if s['nqn'] == SUB]
    assert [n['bdev_name'] for n in sub['namespaces']] == ['t1', 't2']
    assert sorted(h['nqn'] for h in sub['hosts']) == sorted(h for _, _, h in NVMF_TENANTS[:2])
    assert [d['devices'] for d in call(t, 'bdev_ioband_get_devices')] == [['t1', 't2']]
    call(t, 'spdk_kill_instance', {'sig_name': 'SIGTERM'})
    assert t.wait_exit() == 0, t.log()


def test_iscsi_two_initiators_by_name_3_to_1(make_spdk_target, spdk_root):
    iscsi_perf = shutil.which('iscsi-perf')
    if iscsi_perf is None or spdk_binary(spdk_root, 'iscsi_tgt') is None:
        pytest.skip('no iscsi-perf (libiscsi-bin) or SPDK_DIR has no iscsi_tgt')
    port = free_tcp_port()
    # iscsi_tgt's PDU pools need more than 1 GiB of memory without hugepages.
    t = make_spdk_target(app='iscsi_tgt', mem_mb=3072, cores='0x1').start()
    rate_limited_base(t)
    call(t, 'iscsi_create_portal_group', {'tag': 1, 'portals': [{'host': '127.0.0.1', 'port': port}]})
    for dev, weight, iqn, node in ISCSI_TENANTS:
        out = t.rpc_json('bdev_ioband_iscsi_export', node, iqn, '-n', dev, '-b', 'Dly0', '--share', 'tenants',
                         '-w', str(weight))
        assert (out['bdev_name'], out['group']) == (dev, 'initiator:' + iqn), out
    keys = ['initiator:' + iqn for _, _, iqn, _ in ISCSI_TENANTS]
    weights = {'initiator:' + iqn: w for _, w, iqn, _ in ISCSI_TENANTS}
    assert sorted(groups(t)) == sorted(keys)

    # A failing step (a target node name in use) leaves nothing behind.
    before = exports_state(t, nvmf=False)
    proc = t.rpc('bdev_ioband_iscsi_export', ISCSI_TENANTS[0][3], 'iqn.2016-06.io.example:ioband-init9',
                 '-n', 'i9', '-b', 'Dly0', '--share', 'tenants', check=False)
    assert proc.returncode == 1 and 'iscsi_create_target_node' in proc.stdout, proc
    assert 'undone: iscsi_delete_initiator_group, bdev_ioband_delete' in proc.stderr, proc.stderr
    assert exports_state(t, nvmf=False) == before

    def lun(node):
        return 'iscsi://127.0.0.1:%s/iqn.2016-06.io.spdk:%s/0' % (port, node)

    # Each initiator may log in to its own target node only.
    proc = subprocess.run([iscsi_perf, '-i', ISCSI_TENANTS[1][2], '-t', '1', lun(ISCSI_TENANTS[0][3])],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0 and 'Authorization failure' in proc.stdout + proc.stderr, proc

    clients = [([iscsi_perf, '-i', iqn, '-m', str(QD), '-b', '1', '-r', '-t', str(SECONDS), lun(node)], None)
               for _, _, iqn, node in ISCSI_TENANTS]

    def connected():
        return all(g['completed_ios'] > 0 for g in groups(t).values())

    print('\nbase: null -> delay %d us -> SPDK QoS %d IOPS; two initiators, QD %d each, 4 KiB random reads'
          % (DELAY_US, LIMIT, QD))
    error, outs = run_until_valid(t, clients, keys, weights, connected, 'iscsi')
    avg = [int((ISCSI_AVG.findall(o) or ['0'])[-1]) for o in outs]
    print('iscsi-perf average IOPS (whole run): %s, ratio %.2f' % (avg, avg[0] / avg[1] if avg[1] else 0))
    assert error <= TOLERANCE, 'shares off by %.2f%% (want <= %.0f%%)' % (100 * error, 100 * TOLERANCE)

    before = exports_state(t, nvmf=False)
    restart_from_saved(t)
    assert exports_state(t, nvmf=False) == before

    t.rpc('bdev_ioband_iscsi_unexport', ISCSI_TENANTS[1][3])
    assert [n['name'] for n in call(t, 'iscsi_get_target_nodes')] == ['iqn.2016-06.io.spdk:disk1']
    assert [g['initiators'] for g in call(t, 'iscsi_get_initiator_groups')] == [[ISCSI_TENANTS[0][2]]]
    assert [d['devices'] for d in call(t, 'bdev_ioband_get_devices')] == [['i1']]
    call(t, 'spdk_kill_instance', {'sig_name': 'SIGTERM'})
    assert t.wait_exit() == 0, t.log()
