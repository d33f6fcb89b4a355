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


def test_write_zeroes_is_charged_its_length(spdk_root, ioband_lib):
    """WRITE_ZEROES is charged as the write it may be (its whole length), counted as an
    'other' I/O; before, it was charged 0 bytes and passed byte limits nearly free."""
    if spdk_binary(spdk_root, 'bdevperf') is None:
        pytest.skip('SPDK_DIR has no bdevperf (build/examples/bdevperf)')
    size = 128 * 1024
    r = spdk_bench.run_one(spdk_root, ioband_lib, 'ioband', 1, 1, qd=8, seconds=1,
                           workload='write_zeroes', io_size=size)
    assert r['io_failed'] == 0 and r['iops'] > 0, r['jobs']
    (g,) = [g for d in r['iostat']['devices'] for g in d['groups'] if g['dispatched_ios']]
    # Every I/O of the run is a WRITE_ZEROES of `size` bytes, counted once as 'other' when
    # submitted, and charged its whole length. (dispatched_ios may count a few more: see the SPDK README's
    # known limits on I/O that a replica hands to the owner.)
    assert 0 < g['other_ios'] <= g['dispatched_ios'] == g['completed_ios'], g
    assert g['write_ios'] == 0 and g['write_bytes'] == 0, g
    # (bdevperf's I/O at the end of the bdev may be shorter.)
    assert 0.99 * size * g['other_ios'] <= g['dispatched_bytes'] <= size * g['dispatched_ios'], g
