#  SPDX-License-Identifier: BSD-3-Clause
"""Soak of the SPDK host: bdevperf I/O on every core while the control plane churns.

bdevperf (randrw 70/30, 4 KiB, every core on both ioband bdevs of share s0, and a `reset`
job on a third over a malloc base: write, read back and verify, a RESET every 10 s; the
library preloaded) runs for the given time while this script, on a second RPC connection, makes a
random control call every few tens of milliseconds, each valid when made: re-weight the
default groups, attach and detach idle groups, switch the policy and the knobs, create and
delete a third device, delete and restore its base (a hot-remove: the device and its
settings stay and the bdev comes back), and read every counter in between.

Then: every bdevperf job finished with no failed I/O (the reset job's I/O that a RESET
aborted in the share's queue aside: that is what a RESET does); the reset job read back what
it wrote (no `Buffer mismatch` in bdevperf's output); for every device the jobs drove, every
group has dispatched == completed with nothing in flight or queued (read once everything
drained); no counter went backwards between readings.

    SPDK_DIR=/opt/spdk-src .venv/bin/python tests/spdk/spdk_soak.py [--seconds 600] [--seed N]

tests/spdk/test_spdk_soak.py runs it briefly (gated on SPDK_DIR).
"""

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from rpctools import RawClient, short_tmpdir  # noqa: E402
from spdktools import CRATE, SpdkTarget, perform_tests_in_background, spdk_binary  # noqa: E402

DEVICES = ('IB0', 'IB1')
# Over a malloc base (it keeps data): a bdevperf `reset` job, which writes, reads back and
# verifies, and sends a RESET every 10 s.
RESET_DEVICE = 'IBR'
COUNTERS = ('read_ios', 'write_ios', 'other_ios', 'dispatched_ios', 'completed_ios',
            'dispatched_bytes')
CHURN_TAGS = (101, 102, 103, 104)   # never an SPDK thread id here: attached while idle


def config():
    cfg = []
    for i, dev in enumerate(DEVICES):
        cfg.append({'method': 'bdev_null_create',
                    'params': {'name': 'Null%d' % i, 'num_blocks': 1 << 18, 'block_size': 4096}})
        cfg.append({'method': 'bdev_ioband_create',
                    'params': {'name': dev, 'base_bdev_name': 'Null%d' % i, 'share': 's0'}})
    cfg.append({'method': 'bdev_malloc_create',
                'params': {'name': 'Malloc0', 'num_blocks': 1 << 14, 'block_size': 4096}})
    cfg.append({'method': 'bdev_ioband_create',
                'params': {'name': RESET_DEVICE, 'base_bdev_name': 'Malloc0', 'share': 's0'}})
    cfg.append({'method': 'bdev_null_create',
                'params': {'name': 'NullX', 'num_blocks': 1 << 16, 'block_size': 4096}})
    cfg.append({'method': 'bdev_wait_for_examine'})
    return {'subsystems': [{'subsystem': 'bdev', 'config': cfg}]}


class Churn:
    """Random, always-valid control calls; tracks what exists."""

    def __init__(self, rng):
        self.rng = rng
        self.policy = 'weight'
        self.attached = {(d, t): False for d in DEVICES for t in CHURN_TAGS}
        self.churn_dev = False   # IBX is configured (registered or waiting for its base)
        self.base = True         # NullX exists
        self.calls = []

    def next(self):
        r = self.rng
        op = r.choice(('weight', 'weight', 'group', 'knobs', 'policy', 'iostat', 'iostat',
                       'device', 'base'))
        if op == 'weight':
            return 'bdev_ioband_set_settings', {'name': r.choice(DEVICES),
                                                'value': r.randint(1, 1000)}
        if op == 'group':
            key = r.choice(sorted(self.attached))
            dev, tag = key
            self.attached[key] = not self.attached[key]
            if self.attached[key]:
                return 'bdev_ioband_set_settings', {'name': dev, 'group': 'tag:%d' % tag,
                                                    'value': r.randint(1, 500)}
            return 'bdev_ioband_set_settings', {'name': dev, 'group': 'tag:%d' % tag}
        if op == 'knobs':
            limit = r.choice((0, 16, 64, 192, 512))
            throttle = r.choice((0, 1, 4, 8, 16))
            if throttle > (limit or 192):
                throttle = 0
            return 'bdev_ioband_set_device', {'name': 's0', 'io_limit': limit,
                                              'io_throttle': throttle}
        if op == 'policy':
            self.policy = r.choice(('weight', 'weight-iosize', 'range-bw'))
            return 'bdev_ioband_set_device', {'name': 's0', 'policy': self.policy}
        if op == 'device' and self.base:
            self.churn_dev = not self.churn_dev
            if self.churn_dev:
                return 'bdev_ioband_create', {'name': 'IBX', 'base_bdev_name': 'NullX',
                                              'share': 's0'}
            return 'bdev_ioband_delete', {'name': 'IBX'}
        if op == 'base':
            self.base = not self.base
            if self.base:
                return 'bdev_null_create', {'name': 'NullX', 'num_blocks': 1 << 16,
                                            'block_size': 4096}
            return 'bdev_null_delete', {'name': 'NullX'}
        return 'bdev_ioband_get_iostat', {}


def groups_of(iostat):
    return {(d['name'], g['group']): g for d in iostat.get('devices', [])
            if d['name'] in DEVICES + (RESET_DEVICE,) for g in d['groups']}


def check(results, readings):
    failures = []
    for job in results:
        # A reset aborts what the share still queued for its device (SPDK's RESET: it
        # completes after everything before it); bdevperf's reset job expects that.
        if job.get('io_failed', 0) != 0 and not job.get('job', '').startswith(RESET_DEVICE):
            failures.append('job on %s: %d failed I/O' % (job.get('job', '?'), job['io_failed']))
    last = {}
    for n, reading in enumerate(readings):
        for key, g in groups_of(reading).items():
            prev = last.get(key)
            if prev is not None:
                for c in COUNTERS:
                    if g[c] < prev[c]:
                        failures.append('reading %d: %s/%s %s went back from %d to %d'
                                        % (n, key[0], key[1], c, prev[c], g[c]))
            last[key] = g
    end = groups_of(readings[-1])
    for key, g in sorted(end.items()):
        if g['dispatched_ios'] != g['completed_ios']:
            failures.append('%s/%s: dispatched %d, completed %d'
                            % (key[0], key[1], g['dispatched_ios'], g['completed_ios']))
        if g['in_flight'] != 0 or g['queue_depth'] != 0:
            failures.append('%s/%s: %d in flight, %d queued at the end'
                            % (key[0], key[1], g['in_flight'], g['queue_depth']))
    if not any(g['completed_ios'] for g in end.values()):
        failures.append('no I/O completed')
    return failures


def soak(spdk_root, lib, seconds, seed, period_s=0.03, cores='0x3'):
    """Runs the soak; returns (failures, summary)."""
    rng = random.Random(seed)
    t = SpdkTarget(spdk_root, lib, short_tmpdir(), app='bdevperf', cores=cores)
    path = t.workdir / 'soak.json'
    path.write_text(json.dumps(config()))
    jobs = ['[global]', 'rw=randrw', 'rwmixread=70', 'bs=4096', 'iodepth=16', '']
    ncores = bin(int(cores, 16)).count('1')
    for dev in DEVICES:
        for core in range(ncores):
            jobs += ['[%s_%d]' % (dev, core), 'filename=%s' % dev,
                     'cpumask=0x%x' % (1 << core), '']
    jobs += ['[%s_reset]' % RESET_DEVICE, 'filename=%s' % RESET_DEVICE, 'rw=reset',
             'iodepth=8', 'cpumask=0x1', '']
    jobs_path = t.workdir / 'jobs.ini'
    jobs_path.write_text('\n'.join(jobs))
    extra = ['-z', '-j', str(jobs_path), '-t', str(seconds)]
    churn = Churn(rng)
    readings = []
    errors = []
    try:
        t.start(json_config=path, extra=extra)
        runner, done = perform_tests_in_background(t, seconds + 120)
        with RawClient(t.sock, timeout=60) as c:
            while runner.is_alive():
                time.sleep(rng.uniform(0.5, 1.5) * period_s)
                method, params = churn.next()
                resp = c.request(method, params)
                churn.calls.append(method)
                if 'error' in resp:
                    errors.append('%s %s: %s' % (method, json.dumps(params), resp['error']))
                    break
                if method == 'bdev_ioband_get_iostat':
                    readings.append(resp['result'])
            runner.join()
            time.sleep(0.05)   # the replicas' last reports (every millisecond)
            readings.append(c.call('bdev_ioband_get_iostat'))
        resp = done.get('resp', {})
        if 'error' in resp or 'result' not in resp:
            errors.append('perform_tests: %s' % resp)
            results = []
        else:
            results = resp['result']['results']
        t.terminate()
    finally:
        t.kill()
        log = t.log() if t.log_path else ''
        shutil.rmtree(t.workdir, ignore_errors=True)
    failures = errors + check(results, readings)
    mismatches = log.count('Buffer mismatch')
    if mismatches:
        failures.append('the reset job read back %d blocks that differ from what it wrote'
                        % mismatches)
    summary = {'seed': seed, 'seconds': seconds, 'cores': cores, 'calls': len(churn.calls),
               'methods': sorted(set(churn.calls)), 'readings': len(readings),
               'jobs': len(results), 'iops': sum(r['iops'] for r in results),
               'data_mismatches': mismatches,
               'reset_job_io_failed': sum(r.get('io_failed', 0) for r in results
                                          if r.get('job', '').startswith(RESET_DEVICE)),
               'completed_ios': sum(g['completed_ios'] for g in groups_of(readings[-1]).values())
               if readings else 0}
    if failures:
        summary['log_tail'] = log[-3000:]
    return failures, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=int, default=600)
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--cores', default='0x3')
    ap.add_argument('--lib', default=None)
    args = ap.parse_args()
    root = Path(os.environ['SPDK_DIR'])
    assert spdk_binary(root, 'bdevperf'), 'no bdevperf in %s' % root
    lib = Path(args.lib) if args.lib else CRATE / 'target' / 'release' / 'libbdev_ioband_spdk.so'
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    failures, summary = soak(root, lib, args.seconds, seed, cores=args.cores)
    for f in failures:
        print('spdk_soak: FAIL: ' + f)
    print('spdk_soak: %s: %s' % ('FAILED' if failures else 'passed', json.dumps(
        {k: v for k, v in summary.items() if k != 'log_tail'})))
    if failures:
        print(summary.get('log_tail', ''))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
