#  SPDX-License-Identifier: BSD-3-Clause
"""A brief run of the SPDK host's soak (tests/spdk/spdk_soak.py): bdevperf on two cores while
the control plane churns, then the exactly-once checks. The 10-minute run is in the README.

Skipped, with one line saying why, when SPDK_DIR is not set.
"""

import os

import pytest

import spdk_soak
from spdktools import spdk_binary


def test_a_short_soak_passes(spdk_root, ioband_lib):
    if spdk_binary(spdk_root, 'bdevperf') is None:
        pytest.skip('SPDK_DIR has no bdevperf (build/examples/bdevperf)')
    cores = '0x3' if (os.cpu_count() or 1) >= 2 else '0x1'
    failures, summary = spdk_soak.soak(spdk_root, ioband_lib, seconds=4, seed=11, cores=cores)
    assert failures == [], (failures, summary.get('log_tail'))
    assert summary['jobs'] >= 2 and summary['completed_ios'] > 0, summary
    assert summary['readings'] >= 10, summary
    for method in ('bdev_ioband_set_settings', 'bdev_ioband_set_device'):
        assert method in summary['methods'], summary


def test_the_checks_catch_loss_and_counters_going_back():
    group = {'group': 'none', 'read_ios': 10, 'write_ios': 0, 'other_ios': 0,
             'dispatched_ios': 10, 'completed_ios': 10, 'dispatched_bytes': 40960,
             'in_flight': 0, 'queue_depth': 0}

    def reading(**kw):
        return {'devices': [{'name': 'IB0', 'groups': [dict(group, **kw)]}]}
    jobs = [{'job': 'IB0_0', 'io_failed': 0}]
    assert spdk_soak.check(jobs, [reading(), reading()]) == []
    assert any('in flight' in f for f in spdk_soak.check(jobs, [reading(in_flight=1)]))
    assert any('completed' in f for f in spdk_soak.check(jobs, [reading(completed_ios=11)]))
    assert any('went back' in f
               for f in spdk_soak.check(jobs, [reading(read_ios=20), reading()]))
    assert any('failed I/O' in f
               for f in spdk_soak.check([{'job': 'IB0_0', 'io_failed': 1}], [reading()]))
