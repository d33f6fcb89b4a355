#  SPDX-License-Identifier: BSD-3-Clause
"""A brief run of the I/O-path cost comparison (tests/spdk/spdk_bench.py): bdevperf over
null, passthru and ioband, one and eight groups, one core. Asserts only correctness (every
job finished, no failed I/O, every I/O the engine dispatched completed, nothing left
queued or in flight) and prints the ratios; it never asserts a speed.

Skipped, with one line saying why, when SPDK_DIR is not set.
"""

import statistics

import pytest

import spdk_bench
from spdktools import spdk_binary


@pytest.mark.parametrize('groups', [1, 8])
def test_bdevperf_null_passthru_ioband(spdk_root, ioband_lib, groups):
    if spdk_binary(spdk_root, 'bdevperf') is None:
        pytest.skip('SPDK_DIR has no bdevperf (build/examples/bdevperf)')
    iops, runs = spdk_bench.compare(spdk_root, ioband_lib, groups=groups, cores=1, reps=1, seconds=1)
    for stack, r in runs:
        assert len(r['jobs']) == groups, (stack, r['jobs'])
        for job in r['jobs']:
            assert job['status'] == 'finished' and job['io_failed'] == 0 and job['iops'] > 0, (stack, job)
        if stack == 'ioband':
            devices = r['iostat']['devices']
            assert sorted(d['name'] for d in devices) == sorted(r['leaves']), devices
            for d in devices:
                for g in d['groups']:
                    assert g['completed_ios'] == g['dispatched_ios'] > 0, d
                    assert g['in_flight'] == 0 and g['queue_depth'] == 0, d
                    assert g['read_ios'] == g['dispatched_ios'], d
    med = {s: statistics.median(v) for s, v in iops.items()}
    print('\nbdevperf randread 4 KiB QD128, 1 core, %d group(s): null %.0f passthru %.0f ioband %.0f IOPS;'
          ' ioband/passthru %.3f (one short run: see spdk_bench.py for figures)'
          % (groups, med['null'], med['passthru'], med['ioband'], med['ioband'] / med['passthru']))
