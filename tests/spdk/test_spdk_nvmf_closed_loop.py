#  SPDX-License-Identifier: BSD-3-Clause
"""Issue #8's acceptance against real SPDK: a closed-loop tenant at queue depth 1 beside a
backlogged tenant at queue depth 32, over NVMe/TCP, through one ioband share (equal weights,
default knobs: io_throttle, io_limit and idle_grace are auto) on one rate-limited base.

    spdk_tgt + libbdev_ioband_spdk.so (core 0)
        Nul0 -> Dly0 (delay DELAY_US) with SPDK's QoS at LIMIT IOPS (bdev_set_qos_limit)
              -> ioband ioA, ioB (share "closed")
              subsystem a exports ioA to host A only, subsystem b exports ioB to host B only
        Nul1 -> Dly1, the same delay and QoS -> subsystem raw, both hosts (no ioband)
    spdk_nvme_perf -q 1  hostnqn A (core 1)       4 KiB randread, WARMUP + SECONDS
    spdk_nvme_perf -q 32 hostnqn B (core 1)

Measured per mode (ioband, raw), REPS times, interleaved: A alone (its solo IOPS), then A and
B started together (A beside B, and B). slowdown = solo / beside, utilization = (A + B) /
LIMIT. Asserted on the ioband medians: slowdown <= 2.0 and utilization >= 0.90. The raw mode
(the same base exported directly, both hosts on one namespace) is printed, not asserted: it
shows what ioband buys.

Why a delay under the QoS: the base needs a service time, as a device has. On a bare QoS'd
null bdev an I/O completes at once, A's solo rate is then set by the CPU (perf A's round
trip), it reaches the QoS limit itself (A's fair half is then the most it can get, a
slowdown of 2.0 at best), and SPDK's QoS hands out each 1 ms slice's quota to whatever is
queued at the slice's start, which B's backlog always is. With DELAY_US of service time
A's demand (about 1 / DELAY_US) is far below its fair half, B's 32 exceed the
bandwidth-delay product (LIMIT x DELAY_US = 10), and the slowdown measures what A waits
behind B. Latencies of milliseconds also keep the test from measuring the two perf
processes' time-sharing of core 1 (the VM has two cores: the target polls one).

The numbers depend on the machine being otherwise idle. Each run prints the share of a core
the target and each perf process got; a run in which the target (one polling reactor) got
less than MIN_TGT_SHARE of a core was preempted by something else: it is printed, discarded
and retried, up to MAX_TRIES; fewer than REPS good runs per mode fail the test saying so.

Measured on this machine (2 vCPUs), 2026-11-26, medians of 3 on an otherwise idle
machine. At c37a6e9 (the window keeps a slot free for an expected closed loop and settles
about half above the bandwidth-delay product), two test runs: ioband A solo 493-494 IOPS
(2.0 ms), A beside 247-249 (4.0 ms; its wait in the share 0.16-0.19 ms), B 4620-4660:
slowdown 1.99, utilization 0.974-0.981, the window at a median of 13-14 in flight; raw A
beside ~129 (7.8 ms), B ~4850: slowdown 3.83, utilization 0.995. The slowdown passes at the
edge: the base's 1 ms QoS time slices add up to a slice of wait to A's I/O behind B's.
Earlier, at d5a8f80 (window about a quarter above the product, no free slot), slowdown
1.96-1.98 and utilization 0.947-0.953, and in two runs whose first tries were preempted the
window stayed at 4-10 and utilization fell to 0.60-0.84 (that window narrowed at a
quarter's margin, which this base's jitter crosses; it now needs half). A preempted target
drives the window down; the test discards such runs.

Skipped, with one line saying why, when SPDK_DIR is not set.
"""

import os
import re
import shutil
import statistics
import subprocess
import time

import pytest

from rpctools import short_tmpdir
from spdktools import SpdkTarget, call, cpu_seconds, free_tcp_port, spdk_binary, spdk_env

LIMIT = 5000          # SPDK QoS on the base, rw IOPS
DELAY_US = 2000       # the base's service time (delay bdev over null)
QD_A, QD_B = 1, 32
SECONDS, WARMUP, REPS = 5, 1, 3
MAX_TRIES = 2 * REPS   # a run whose target was preempted (another process on its core) is retried
MIN_TGT_SHARE = 0.90   # of a core, for the target (one polling reactor) during a run
MAX_SLOWDOWN, MIN_UTILIZATION = 2.0, 0.90

NQN = 'nqn.2016-06.io.spdk:closed-%s'
HOST_A = 'nqn.2016-06.io.spdk:closed-host-a'
HOST_B = 'nqn.2016-06.io.spdk:closed-host-b'
# mode -> (subsystem of A, subsystem of B)
MODES = {'ioband': ('a', 'b'), 'raw': ('raw', 'raw')}

# TCP (addr:127.0.0.1 subnqn:nqn...) NSID 1 from core  1:  2975.80  11.62  7937.06  1207.14  20188.87
PERF_ROW = re.compile(r'^\s*TCP\s+\(addr:\S+\s+subnqn:(?P<subnqn>\S+)\)\s+NSID\s+\d+\s+from\s+core\s+\d+\s*:'
                      r'\s+(?P<iops>[\d.]+)\s+[\d.]+\s+(?P<avg>[\d.]+)\s+[\d.]+\s+[\d.]+\s*$', re.M)


def parse_perf_row(text):
    """(IOPS, average latency in µs) of the one namespace in spdk_nvme_perf's table."""
    rows = list(PERF_ROW.finditer(text))
    assert len(rows) == 1, text
    return float(rows[0].group('iops')), float(rows[0].group('avg'))


def test_parse_perf_row():
    text = """Device Information                      :       IOPS      MiB/s    Average        min        max
TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:closed-a) NSID 1 from core  1:  493.40  1.93  2026.12  2010.03  3127.54
========================================================
Total                                   :     493.40       1.93    2026.12    2010.03    3127.54
"""
    assert parse_perf_row(text) == (493.40, 2026.12)


def listen(port):
    return {'trtype': 'tcp', 'adrfam': 'ipv4', 'traddr': '127.0.0.1', 'trsvcid': port}


class Perf:
    """One spdk_nvme_perf process (output in a file), reaped with its CPU time."""

    def __init__(self, binary, root, workdir, name, port, sub, host, qd):
        self.name = name
        self.out_path = workdir / ('perf-%s.log' % name)
        self.cmd = [str(binary), '-q', str(qd), '-o', '4096', '-w', 'randread', '-t', str(SECONDS),
                    '-a', str(WARMUP), '--no-huge', '-s', '256', '-c', '0x2',
                    '-r', 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:%s subnqn:%s hostnqn:%s'
                    % (port, NQN % sub, host)]
        with open(self.out_path, 'wb') as out:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=spdk_env(root))
        self.started = time.monotonic()
        self.cpu_share = None

    def reap(self, block):
        """True once the process has exited (its status and CPU share recorded)."""
        if self.proc.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_share = (usage.ru_utime + usage.ru_stime) / (time.monotonic() - self.started)
        return True

    def kill(self):
        if self.proc.returncode is None:
            self.proc.kill()
            self.reap(block=True)

    def result(self):
        text = self.out_path.read_text(errors='replace')
        assert self.proc.returncode == 0, 'spdk_nvme_perf %s failed (%s):\n%s' % (
            self.name, self.proc.returncode, text[-3000:])
        return parse_perf_row(text)


def iostat(tgt):
    """{device: its default group's counters, 'tick_rate': ticks per second}."""
    stat = call(tgt, 'bdev_ioband_get_iostat')
    return dict({d['name']: d['groups'][0] for d in stat['devices']}, tick_rate=stat['tick_rate'])


def waited_ms(before, after, dev):
    """Mean time an I/O of dev waited in the share (queued, not yet dispatched) between two
    iostat snapshots, in ms."""
    n = after[dev]['dispatched_ios'] - before[dev]['dispatched_ios']
    ticks = after[dev]['throttled_ticks'] - before[dev]['throttled_ticks']
    return ticks * 1e3 / after['tick_rate'] / n if n else 0.0


def run_perfs(perfs, tgt, while_running=None):
    """Waits for every perf to exit (polling; calls while_running() on the way); returns the
    target's share of a core over the runs."""
    cpu0, t0 = cpu_seconds(tgt.proc.pid), time.monotonic()
    deadline = t0 + SECONDS + WARMUP + 60
    try:
        while not all([p.reap(block=False) for p in perfs]):
            assert time.monotonic() < deadline, 'spdk_nvme_perf did not finish'
            if while_running is not None:
                while_running()
            time.sleep(0.2)
        return (cpu_seconds(tgt.proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        for p in perfs:
            p.kill()


def test_nvmf_closed_loop_qd1_beside_qd32(spdk_root, ioband_lib):
    perf_bin = spdk_binary(spdk_root, 'spdk_nvme_perf')
    if perf_bin is None:
        pytest.skip('SPDK_DIR has no spdk_nvme_perf (build/bin/spdk_nvme_perf)')
    port = free_tcp_port()
    tgt = SpdkTarget(spdk_root, ioband_lib, short_tmpdir(), cores='0x1')
    perfs = []

    def perf(name, mode, who):
        sub = MODES[mode][0 if who == 'A' else 1]
        p = Perf(perf_bin, spdk_root, tgt.workdir, name, port, sub,
                 HOST_A if who == 'A' else HOST_B, QD_A if who == 'A' else QD_B)
        perfs.append(p)
        return p

    try:
        tgt.start()
        call(tgt, 'nvmf_create_transport', {'trtype': 'TCP'})
        for i in (0, 1):
            call(tgt, 'bdev_null_create', {'name': 'Nul%d' % i, 'num_blocks': 262144, 'block_size': 4096})
            call(tgt, 'bdev_delay_create', {'base_bdev_name': 'Nul%d' % i, 'name': 'Dly%d' % i,
                                            'avg_read_latency': DELAY_US, 'p99_read_latency': DELAY_US,
                                            'avg_write_latency': DELAY_US, 'p99_write_latency': DELAY_US})
            call(tgt, 'bdev_set_qos_limit', {'name': 'Dly%d' % i, 'rw_ios_per_sec': LIMIT})
        for dev in ('ioA', 'ioB'):  # equal (default) weights, default knobs
            assert call(tgt, 'bdev_ioband_create', {'name': dev, 'base_bdev_name': 'Dly0',
                                                    'share': 'closed'}) == dev
        exports = {'a': ('ioA', [HOST_A]), 'b': ('ioB', [HOST_B]), 'raw': ('Dly1', [HOST_A, HOST_B])}
        for i, (sub, (bdev, hosts)) in enumerate(exports.items()):
            call(tgt, 'nvmf_create_subsystem', {'nqn': NQN % sub, 'allow_any_host': False,
                                                'serial_number': 'CLOSED%d' % i})
            call(tgt, 'nvmf_subsystem_add_ns', {'nqn': NQN % sub, 'namespace': {'bdev_name': bdev}})
            for host in hosts:
                call(tgt, 'nvmf_subsystem_add_host', {'nqn': NQN % sub, 'host': host})
            call(tgt, 'nvmf_subsystem_add_listener', {'nqn': NQN % sub, 'listen_address': listen(port)})
        visible = {s['nqn']: sorted(h['nqn'] for h in s['hosts'])
                   for s in call(tgt, 'nvmf_get_subsystems') if s['nqn'] in {NQN % k for k in exports}}
        assert visible == {NQN % k: sorted(v[1]) for k, v in exports.items()}, visible
        share = call(tgt, 'bdev_ioband_get_devices')
        assert [(d['share'], d['policy'], d['devices'], d['configured']['io_throttle'],
                 d['configured']['io_limit'], d['configured']['idle_grace_us']) for d in share] == [
            ('closed', 'weight', ['ioA', 'ioB'], 0, 0, 0)], share

        print('\nbase: null -> delay %d us -> SPDK QoS %d IOPS; A QD %d, B QD %d, 4 KiB randread, %d s (+%d s warmup)'
              % (DELAY_US, LIMIT, QD_A, QD_B, SECONDS, WARMUP))
        rows = {m: [] for m in MODES}
        tries = 0
        while min(len(r) for r in rows.values()) < REPS and tries < MAX_TRIES:
            tries += 1
            for mode in MODES:
                if len(rows[mode]) >= REPS:
                    continue
                solo = perf('%s-%d-solo' % (mode, tries), mode, 'A')
                solo_tgt = run_perfs([solo], tgt)
                window = []

                def sample():
                    if mode == 'ioband':
                        d = call(tgt, 'bdev_ioband_get_devices')[0]
                        window.append((d['io_throttle'], d['idle_grace_us']))

                before = iostat(tgt)
                a = perf('%s-%d-A' % (mode, tries), mode, 'A')
                b = perf('%s-%d-B' % (mode, tries), mode, 'B')
                both_tgt = run_perfs([a, b], tgt, sample)
                waits = {dev: waited_ms(before, iostat(tgt), dev) for dev in ('ioA', 'ioB')}
                (s_iops, s_lat), (a_iops, a_lat), (b_iops, _) = solo.result(), a.result(), b.result()
                row = dict(solo=s_iops, beside=a_iops, b=b_iops, slowdown=s_iops / a_iops,
                           util=(a_iops + b_iops) / LIMIT)
                valid = min(solo_tgt, both_tgt) >= MIN_TGT_SHARE
                if valid:
                    rows[mode].append(row)
                held = sorted(w[0] for w in window[2:-2]) or [0]
                print('%-6s try %d: A solo %6.1f IOPS (%5.0f us) | A beside %6.1f (%5.0f us), B %6.1f | '
                      'slowdown %5.2f util %.3f | cpu share tgt %.2f/%.2f perf A %.2f/%.2f B %.2f%s%s'
                      % (mode, tries, s_iops, s_lat, a_iops, a_lat, b_iops, row['slowdown'], row['util'],
                         solo_tgt, both_tgt, solo.cpu_share, a.cpu_share, b.cpu_share,
                         ' | io_throttle in force min %d median %d max %d | mean wait in the share A %.2f ms'
                         ' B %.2f ms' % (held[0], held[len(held) // 2], held[-1], waits['ioA'], waits['ioB'])
                         if mode == 'ioband' else '',
                         '' if valid else ' | DISCARDED: the target was preempted'))
        assert min(len(r) for r in rows.values()) >= REPS, (
            'the machine was too busy: fewer than %d runs per mode in %d tries had the target at >= %.2f '
            'of a core' % (REPS, tries, MIN_TGT_SHARE))
        med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in rows.items()}
        for mode, m in med.items():
            print('%-6s median of %d: A solo %.1f, A beside %.1f, B %.1f, slowdown %.2f, utilization %.3f'
                  % (mode, REPS, m['solo'], m['beside'], m['b'], m['slowdown'], m['util']))
        stat = call(tgt, 'bdev_ioband_get_iostat')
        for d in stat['devices']:
            g = d['groups'][0]
            assert g['completed_ios'] == g['dispatched_ios'] and g['in_flight'] == 0, stat

        m = med['ioband']
        assert m['slowdown'] <= MAX_SLOWDOWN and m['util'] >= MIN_UTILIZATION, (
            'ioband: A slowdown %.2f (want <= %.1f), base utilization %.3f (want >= %.2f); rows %s'
            % (m['slowdown'], MAX_SLOWDOWN, m['util'], MIN_UTILIZATION, rows['ioband']))

        call(tgt, 'spdk_kill_instance', {'sig_name': 'SIGTERM'})
        assert tgt.wait_exit() == 0, tgt.log()
    finally:
        for p in perfs:
            p.kill()
        tgt.kill()
        shutil.rmtree(tgt.workdir, ignore_errors=True)
