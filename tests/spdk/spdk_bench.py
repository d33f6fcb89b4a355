#  SPDX-License-Identifier: BSD-3-Clause
"""The cost of ioband's I/O path inside real SPDK, measured with bdevperf on null bdevs.

Four stacks, each measured in the same bdevperf build with libbdev_ioband_spdk.so preloaded
(so that only the stack differs), 4 KiB random reads:

    null       bdevperf -> null bdev
    passthru   bdevperf -> SPDK's passthru -> null
    ioband     bdevperf -> ioband (policy weight, one share) -> null
    qos        bdevperf -> null bdev with SPDK's own QoS (bdev_set_qos_limit rw_ios_per_sec
               QOS_CAP_IOPS, a cap no run comes near: what is measured is the cost of SPDK's
               QoS path, the baseline for "ioband / SPDK QoS")

with `groups` = 1 (one bdev, every job on it) or 8 (8 null bases, one passthru or ioband bdev
on each; the 8 ioband bdevs are one share, so 8 default groups scheduled together, at equal
weights: with equal demand nobody is held back, and what is measured is the path's cost). On
`cores` cores; with one bdev and several cores every core drives it (-C), with 8 bdevs the
jobs are spread over the cores. The total queue depth is `qd` whatever the layout.

Runs are interleaved (null, passthru, ioband, null, ...) and the median of `reps` is kept,
so that load on the machine hits every stack alike.

    SPDK_DIR=/opt/spdk-src .venv/bin/python tests/spdk/spdk_bench.py [--reps 5] [--seconds 3]

Nothing here asserts a speed: tests/spdk/test_spdk_bench.py runs it briefly and checks only
that every I/O completed without error.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from rpctools import RawClient, short_tmpdir  # noqa: E402
from spdktools import CRATE, SpdkTarget, spdk_binary  # noqa: E402

STACKS = ('null', 'passthru', 'ioband', 'qos')
QOS_CAP_IOPS = 100_000_000   # a multiple of 1000, as SPDK requires; far above any run here
NUM_BLOCKS = 1 << 18     # 1 GiB of 4 KiB blocks (a null bdev holds no data)


def bdev_config(stack, groups):
    """bdevperf's --json: the bases and the stack over them; returns (config, leaf names)."""
    cfg = []
    leaves = []
    for i in range(groups):
        base = 'Null%d' % i
        cfg.append({'method': 'bdev_null_create',
                    'params': {'name': base, 'num_blocks': NUM_BLOCKS, 'block_size': 4096}})
        if stack == 'null':
            leaves.append(base)
        elif stack == 'qos':
            cfg.append({'method': 'bdev_set_qos_limit',
                        'params': {'name': base, 'rw_ios_per_sec': QOS_CAP_IOPS}})
            leaves.append(base)
        elif stack == 'passthru':
            cfg.append({'method': 'bdev_passthru_create',
                        'params': {'base_bdev_name': base, 'name': 'PT%d' % i}})
            leaves.append('PT%d' % i)
        else:
            params = {'base_bdev_name': base, 'name': 'IB%d' % i, 'share': 'bench'}
            if i == 0:
                params['policy'] = 'weight'
            cfg.append({'method': 'bdev_ioband_create', 'params': params})
            leaves.append('IB%d' % i)
    cfg.append({'method': 'bdev_wait_for_examine'})
    return {'subsystems': [{'subsystem': 'bdev', 'config': cfg}]}, leaves


def run_one(spdk_root, lib, stack, groups, cores, qd=128, seconds=3, workload='randread',
            io_size=4096):
    """One bdevperf run; returns {'iops', 'io_failed', 'jobs', 'iostat'}."""
    mask = hex((1 << cores) - 1)
    t = SpdkTarget(spdk_root, lib, short_tmpdir(), app='bdevperf', cores=mask)
    config, leaves = bdev_config(stack, groups)
    path = t.workdir / 'bdevperf.json'
    path.write_text(json.dumps(config))
    jobs_per_bdev = cores if groups == 1 else 1
    per_job_qd = max(1, qd // (groups * jobs_per_bdev))
    extra = ['-z', '-q', str(per_job_qd), '-o', str(io_size), '-w', workload, '-t', str(seconds)]
    if groups == 1 and cores > 1:
        extra.append('-C')
    try:
        t.start(json_config=path, extra=extra)
        with RawClient(t.sock, timeout=seconds + 60) as c:
            resp = c.request('perform_tests', {})
            # The app thread sees the other threads' counters as of their last report
            # (every millisecond): let the last ones arrive.
            time.sleep(0.05)
            iostat = c.call('bdev_ioband_get_iostat') if stack == 'ioband' else None
        if 'error' in resp:
            raise AssertionError('perform_tests failed: %s\n%s' % (resp['error'], t.log()))
        results = resp['result']['results']
        t.terminate()
        return {'iops': sum(r['iops'] for r in results),
                'io_failed': sum(r['io_failed'] for r in results),
                'jobs': results, 'leaves': leaves, 'iostat': iostat,
                'qd_per_job': per_job_qd}
    finally:
        t.kill()
        shutil.rmtree(t.workdir, ignore_errors=True)


def compare(spdk_root, lib, groups, cores, reps=3, seconds=3, stacks=STACKS, **kw):
    """Interleaved runs of every stack; {stack: [iops...]} and every run's record."""
    iops = {s: [] for s in stacks}
    runs = []
    for _ in range(reps):
        for s in stacks:
            r = run_one(spdk_root, lib, s, groups, cores, seconds=seconds, **kw)
            iops[s].append(r['iops'])
            runs.append((s, r))
    return iops, runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--seconds', type=int, default=3)
    ap.add_argument('--qd', type=int, default=128)
    ap.add_argument('--cores', default='1,2', help='comma list of core counts')
    ap.add_argument('--groups', default='1,8', help='comma list of group counts')
    ap.add_argument('--lib', default=None, help='libbdev_ioband_spdk.so (default: target/release)')
    args = ap.parse_args()
    root = Path(os.environ['SPDK_DIR'])
    assert spdk_binary(root, 'bdevperf'), 'no bdevperf in %s' % root
    lib = Path(args.lib) if args.lib else CRATE / 'target' / 'release' / 'libbdev_ioband_spdk.so'
    print('bdevperf randread 4 KiB, total QD %d, %d s per run, median of %d interleaved runs;'
          ' qos: SPDK QoS at %d IOPS (never reached)' % (args.qd, args.seconds, args.reps, QOS_CAP_IOPS))
    print('%-6s %-6s %12s %12s %12s %12s %9s %9s %9s' % (
        'cores', 'groups', 'null', 'passthru', 'ioband', 'qos', 'ib/pt', 'ib/qos', 'pt/null'))
    for cores in [int(c) for c in args.cores.split(',')]:
        for groups in [int(g) for g in args.groups.split(',')]:
            iops, runs = compare(root, lib, groups, cores, reps=args.reps, seconds=args.seconds, qd=args.qd)
            failed = sum(r['io_failed'] for _, r in runs)
            med = {s: statistics.median(v) for s, v in iops.items()}
            print('%-6d %-6d %12.0f %12.0f %12.0f %12.0f %9.3f %9.3f %9.3f%s' % (
                cores, groups, med['null'], med['passthru'], med['ioband'], med['qos'],
                med['ioband'] / med['passthru'], med['ioband'] / med['qos'],
                med['passthru'] / med['null'], '  FAILED I/O: %d' % failed if failed else ''))
            print('       runs: ' + '; '.join('%s %s' % (s, ' '.join('%.0f' % x for x in v))
                                              for s, v in iops.items()), flush=True)


if __name__ == '__main__':
    main()
