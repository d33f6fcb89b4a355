#  SPDX-License-Identifier: BSD-3-Clause
"""The NVMe-oF acceptance scenario against real SPDK: two tenants (host NQNs) share one
NVMe/TCP namespace through ioband, weights 3:1, measured from the outside by spdk_nvme_perf.

    app B (spdk_tgt)  exports Dly0 (a delay bdev over malloc) over NVMe/TCP, port P1
    app A (spdk_tgt + libbdev_ioband_spdk.so)
          bdev_nvme_attach_controller -> Nvme0n1
          ioband bdevs ten0 (weight 3) and ten1 (weight 1), one share, io_limit 8
          subsystem t0 exports ten0 to host0 only, t1 exports ten1 to host1 only (port P2)
    spdk_nvme_perf  -r '... subnqn:t0 hostnqn:host0' -r '... subnqn:t1 hostnqn:host1'

Why a delay bdev in B: QoS shows only where the engine holds I/O back. The delay makes the
base (NVMe/TCP to B) the bottleneck, so that both tenants' I/O always wait in A's share and
the scheduler, not the CPU scheduling of the test's processes (three polling apps on the
machine's cores), decides who goes next.

How perf counts: it divides every I/O completed by the run time, including the final drain
of the `-q` I/Os each namespace still has outstanding when the time is up (perf.c, the
drain loop after `tsc_end`). That drain is the same for both tenants and pulls the ratio
towards 1:1; the test checks the ratio perf prints and, to show the scheduler itself, the
ratio of what completed inside the window (count − q).

Skipped, with one line saying why, when SPDK_DIR is not set.
"""

import re
import shutil
import subprocess
import threading

import pytest

from rpctools import poll, short_tmpdir
from spdktools import SpdkTarget, call, free_tcp_port, spdk_binary, spdk_env

BASE_NQN = 'nqn.2016-06.io.spdk:ioband-base'
TENANTS = [  # (ioband bdev, weight, subsystem NQN, host NQN)
    ('ten0', 3, 'nqn.2016-06.io.spdk:ioband-t0', 'nqn.2016-06.io.spdk:ioband-host0'),
    ('ten1', 1, 'nqn.2016-06.io.spdk:ioband-t1', 'nqn.2016-06.io.spdk:ioband-host1'),
]
IO_LIMIT = 8
DELAY_US = 1000
QD, SECONDS, WARMUP = 32, 8, 1
TOLERANCE = 0.03

# spdk_nvme_perf's result rows:
# TCP (addr:127.0.0.1 subnqn:nqn...) NSID 1 from core  1:    2975.80      11.62  ...
PERF_ROW = re.compile(r'^\s*TCP\s+\(addr:(?P<addr>\S+)\s+subnqn:(?P<subnqn>\S+)\)\s+NSID\s+(?P<nsid>\d+)'
                      r'\s+from\s+core\s+(?P<core>\d+)\s*:\s+(?P<iops>[\d.]+)\s+(?P<mibps>[\d.]+)', re.M)


def parse_perf(text):
    """{subnqn: IOPS} from spdk_nvme_perf's table (summed over cores, should there be several)."""
    out = {}
    for m in PERF_ROW.finditer(text):
        out[m.group('subnqn')] = out.get(m.group('subnqn'), 0.0) + float(m.group('iops'))
    return out


def test_parse_perf_rows():
    text = """Initialization complete. Launching workers.
========================================================
                                                                                                          Latency(us)
Device Information                                                    :       IOPS      MiB/s    Average        min        max
TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:t0) NSID 1 from core  1:    2975.80      11.62    7937.06    1207.14   20188.87
TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:t1) NSID 1 from core  1:     994.80       3.89   23820.79    2107.41   40431.54
========================================================
Total                                                                 :    3970.60      15.51   11913.54    1207.14   40431.54
"""
    assert parse_perf(text) == {'nqn.2016-06.io.spdk:t0': 2975.80, 'nqn.2016-06.io.spdk:t1': 994.80}


def listen(port):
    return {'trtype': 'tcp', 'adrfam': 'ipv4', 'traddr': '127.0.0.1', 'trsvcid': port}


def test_nvmf_two_hosts_share_3_to_1(spdk_root, ioband_lib):
    perf = spdk_binary(spdk_root, 'spdk_nvme_perf')
    if perf is None:
        pytest.skip('SPDK_DIR has no spdk_nvme_perf (build/bin/spdk_nvme_perf)')
    base_port, front_port = free_tcp_port(), free_tcp_port()
    # A and B on different cores; perf shares B's (B mostly waits for its delay poller).
    b = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), cores='0x2')
    a = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), cores='0x1')
    try:
        b.start()
        call(b, 'nvmf_create_transport', {'trtype': 'TCP'})
        call(b, 'bdev_malloc_create', {'name': 'Mal0', 'num_blocks': 16384, 'block_size': 4096})
        call(b, 'bdev_delay_create', {'base_bdev_name': 'Mal0', 'name': 'Dly0',
                                      'avg_read_latency': DELAY_US, 'p99_read_latency': DELAY_US,
                                      'avg_write_latency': DELAY_US, 'p99_write_latency': DELAY_US})
        call(b, 'nvmf_create_subsystem', {'nqn': BASE_NQN, 'allow_any_host': True, 'serial_number': 'IOBASE0'})
        call(b, 'nvmf_subsystem_add_ns', {'nqn': BASE_NQN, 'namespace': {'bdev_name': 'Dly0'}})
        call(b, 'nvmf_subsystem_add_listener', {'nqn': BASE_NQN, 'listen_address': listen(base_port)})

        a.start()
        assert call(a, 'bdev_nvme_attach_controller', {
            'name': 'Nvme0', 'trtype': 'tcp', 'adrfam': 'ipv4', 'traddr': '127.0.0.1',
            'trsvcid': base_port, 'subnqn': BASE_NQN}) == ['Nvme0n1']
        for i, (dev, weight, subnqn, hostnqn) in enumerate(TENANTS):
            params = {'name': dev, 'base_bdev_name': 'Nvme0n1', 'share': 'tenants'}
            if i == 0:
                params.update(policy='weight', io_limit=IO_LIMIT)
            assert call(a, 'bdev_ioband_create', params) == dev
            call(a, 'bdev_ioband_set_settings', {'name': dev, 'value': weight})
        call(a, 'nvmf_create_transport', {'trtype': 'TCP'})
        for i, (dev, _, subnqn, hostnqn) in enumerate(TENANTS):
            call(a, 'nvmf_create_subsystem', {'nqn': subnqn, 'allow_any_host': False,
                                              'serial_number': 'IOBAND%d' % i})
            call(a, 'nvmf_subsystem_add_ns', {'nqn': subnqn, 'namespace': {'bdev_name': dev}})
            call(a, 'nvmf_subsystem_add_host', {'nqn': subnqn, 'host': hostnqn})
            call(a, 'nvmf_subsystem_add_listener', {'nqn': subnqn, 'listen_address': listen(front_port)})
        dev_info = call(a, 'bdev_ioband_get_devices')
        assert [(d['share'], d['io_limit'], d['devices']) for d in dev_info] == [
            ('tenants', IO_LIMIT, ['ten0', 'ten1'])], dev_info

        cmd = [str(perf), '-q', str(QD), '-o', '4096', '-w', 'randread', '-t', str(SECONDS),
               '-a', str(WARMUP), '--no-huge', '-s', '256', '-c', '0x2']
        for _, _, subnqn, hostnqn in TENANTS:
            cmd += ['-r', 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:%s subnqn:%s hostnqn:%s'
                    % (front_port, subnqn, hostnqn)]
        seen = {}

        def controllers():
            # Who is connected where, while perf runs: each subsystem has its own host only.
            for _, _, subnqn, _ in TENANTS:
                seen[subnqn] = sorted(c['hostnqn'] for c in call(a, 'nvmf_subsystem_get_controllers',
                                                                  {'nqn': subnqn}))
            return all(seen.values())

        out = {}

        def run_perf():
            out['proc'] = subprocess.run(cmd, capture_output=True, text=True, env=spdk_env(spdk_root),
                                         stdin=subprocess.DEVNULL, timeout=SECONDS + WARMUP + 40)

        runner = threading.Thread(target=run_perf)
        runner.start()
        try:
            poll(controllers, SECONDS + WARMUP, 'both hosts connected')
        finally:
            runner.join(SECONDS + WARMUP + 45)
        proc = out['proc']
        assert proc.returncode == 0, 'spdk_nvme_perf failed:\n%s\n%s' % (proc.stdout[-3000:], proc.stderr[-3000:])
        for _, _, subnqn, hostnqn in TENANTS:
            assert seen[subnqn] == [hostnqn], seen

        iops = parse_perf(proc.stdout)
        assert set(iops) == {t[2] for t in TENANTS}, proc.stdout
        hi, lo = (iops[t[2]] for t in TENANTS)
        assert hi > 0 and lo > 0, proc.stdout
        want = TENANTS[0][1] / TENANTS[1][1]
        ratio = hi / lo
        # What completed inside the window: perf's count less the drain of QD per namespace.
        inside = (hi * SECONDS - QD) / (lo * SECONDS - QD)
        print('\nspdk_nvme_perf IOPS: host0 %.1f host1 %.1f ratio %.3f (inside the window %.3f, want %.1f)'
              % (hi, lo, ratio, inside, want))
        assert abs(ratio / want - 1) <= TOLERANCE, proc.stdout
        assert abs(inside / want - 1) <= TOLERANCE, proc.stdout

        # The engine saw the same split, and everything it dispatched completed.
        stat = call(a, 'bdev_ioband_get_iostat')
        groups = {d['name']: d['groups'][0] for d in stat['devices']}
        for g in groups.values():
            assert g['completed_ios'] == g['dispatched_ios'] and g['in_flight'] == 0, stat
            assert g['queue_depth'] == 0 and g['throttled_ios'] > 0, stat
            assert g['write_ios'] == 0 and g['read_ios'] == g['dispatched_ios'], stat

        call(a, 'spdk_kill_instance', {'sig_name': 'SIGTERM'})
        assert a.wait_exit() == 0, a.log()
        assert b.terminate() == 0, b.log()
    finally:
        for t in (a, b):
            t.kill()
            shutil.rmtree(t.workdir, ignore_errors=True)
