#  SPDX-License-Identifier: BSD-3-Clause
"""scripts/soak, briefly: I/O on two reactors while the control plane churns, then the
exactly-once checks. The 10-minute run is in the README; this one runs a few seconds, and
checks that the checker itself catches what it is there to catch.

Uses ioband_perf from the newest cargo build beside ioband_tgt (skipped, with the reason,
when there is none).
"""

import copy
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from rpctools import REPO, find_tgt

SOAK = REPO / 'scripts' / 'soak'


def load_soak():
    loader = importlib.machinery.SourceFileLoader('soak', str(SOAK))
    spec = importlib.util.spec_from_loader('soak', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def perf():
    tgt, reason = find_tgt()
    if tgt is None:
        pytest.skip(reason)
    path = tgt.parent / 'ioband_perf'
    if not path.is_file():
        pytest.skip('no ioband_perf beside %s' % tgt)
    return path


@pytest.fixture(scope='module')
def run(perf, tmp_path_factory):
    out = tmp_path_factory.mktemp('soak')
    mask = '0x3' if (os.cpu_count() or 1) >= 2 else '0x1'
    proc = subprocess.run([sys.executable, str(SOAK), '--seconds', '3', '--seed', '7',
                           '--period-ms', '20', '--mask', mask, '--out', str(out),
                           '--perf', str(perf)],
                          capture_output=True, text=True, timeout=120)
    return proc, out


def test_a_short_soak_passes(run):
    proc, out = run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['failures'] == []
    assert summary['ios_completed'] > 0 and summary['readings'] >= 10
    # The schedule exercised the control plane, not just reads.
    for method in ('bdev_ioband_set_settings', 'bdev_ioband_set_device', 'bdev_null_delete'):
        assert method in summary['methods'], summary['methods']


def test_the_checks_catch_loss_double_counts_and_counters_going_back(run):
    _, out = run
    soak = load_soak()
    report = json.loads((out / 'report.json').read_text())
    assert soak.check(report)[0] == []

    def failures(edit):
        r = copy.deepcopy(report)
        edit(r)
        return soak.check(r)[0]

    def end_group(r):
        return next(g for d in r['iostat_end']['devices'] if d['name'] == 'band0'
                    for g in d['groups'] if g['group'] == 'tag:1')

    def lost(r):
        end_group(r)['in_flight'] = 1
    assert any('in flight' in f for f in failures(lost))

    def twice(r):
        end_group(r)['completed_ios'] += 1
    assert any('completed' in f for f in failures(twice))

    def went_back(r):
        first = next(e for e in r['events'] if e['method'] == 'bdev_ioband_get_iostat')
        for d in first['result']['devices']:
            for g in d['groups']:
                g['dispatched_ios'] += 10 ** 9
    assert any('went back' in f for f in failures(went_back))

    def job_failed(r):
        r['results'][0]['io_failed'] = 1
    assert any('failed I/O' in f for f in failures(job_failed))
