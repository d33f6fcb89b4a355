#!/usr/bin/env python3
#  SPDX-License-Identifier: BSD-3-Clause
"""libiscsi's iscsi-test-cu, suite by suite, against a running iSCSI target: a pass/fail/skip
count per suite (and the tests that failed), as a table or JSON.

    tests/iscsi_conformance.py iscsi://127.0.0.1:3260/iqn.2016-06.io.spdk:disk1/0
    tests/iscsi_conformance.py --json URL            # {"Read10": {"pass": 4, ...}, ...}

Destructive: the write suites run with --dataloss. A test that passes while printing
"[SKIPPED]" (the target lacks an optional command) counts as a skip. Used by
tests/test_e2e_iscsi.py (ioband_tgt alone, in scripts/test) and tests/spdk/test_spdk_iscsi.py
(side by side with SPDK's iscsi_tgt).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys

# The suites the README's table shows: what a disk needs, and libiscsi's iSCSI-level suites.
SUITES = [
    'SCSI.TestUnitReady', 'SCSI.Inquiry', 'SCSI.ReadCapacity10', 'SCSI.ReadCapacity16',
    'SCSI.Read6', 'SCSI.Read10', 'SCSI.Read12', 'SCSI.Read16',
    'SCSI.Write10', 'SCSI.Write12', 'SCSI.Write16',
    'SCSI.ModeSense6', 'SCSI.Mandatory', 'SCSI.StartStopUnit',
    'SCSI.Unmap', 'SCSI.WriteSame10', 'SCSI.WriteSame16', 'SCSI.CompareAndWrite',
    'SCSI.Verify10', 'SCSI.Verify12', 'SCSI.Verify16',
    'SCSI.WriteVerify10', 'SCSI.WriteVerify12', 'SCSI.WriteVerify16',
    'iSCSI.iSCSIcmdsn', 'iSCSI.iSCSIdatasn', 'iSCSI.iSCSIResiduals', 'iSCSI.iSCSITMF',
]

INITIATOR = 'iqn.2016-06.io.ioband:conformance'
# "Test: NAME ..." then the test's own log lines, then "passed" or "FAILED" (what follows
# on that line belongs to the next test's set-up). A log line's "[FAILED]" is a command
# that did not get what it asked for, which a test may want (a write that must fail): not
# the verdict.
TEST = re.compile(r'Test: (\S+) \.\.\.(.*?)(?<!\[)(passed|FAILED)(?!\])', re.DOTALL)


def parse(output):
    """{test name: 'pass' | 'fail' | 'skip'} from iscsi-test-cu's verbose output."""
    results = {}
    for m in TEST.finditer(output):
        name, body, verdict = m.groups()
        if verdict == 'FAILED':
            results[name] = 'fail'
        else:
            results[name] = 'skip' if '[SKIPPED]' in body else 'pass'
    return results


def run_suite(url, suite, timeout=300, initiator=INITIATOR):
    """(results by test, the raw output) of one suite; a crash or a timeout is one failure."""
    cmd = ['iscsi-test-cu', '--dataloss', '-v', '-i', initiator, '-t', suite, url]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b'').decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
        return {'(timeout)': 'fail'}, out
    results = parse(out)
    if not results:
        results = {'(no tests ran: exit %d)' % p.returncode: 'fail'}
    return results, out


def run_all(url, suites=SUITES, timeout=300):
    """{suite: {'pass': n, 'fail': n, 'skip': n, 'failed': [names]}}."""
    table = {}
    for suite in suites:
        results, _ = run_suite(url, suite, timeout)
        row = {'pass': 0, 'fail': 0, 'skip': 0, 'failed': []}
        for name, verdict in sorted(results.items()):
            row[verdict] += 1
            if verdict == 'fail':
                row['failed'].append(name)
        table[suite.split('.', 1)[1]] = row
    return table


def format_table(columns):
    """Markdown: one row per suite, a `pass/fail/skip` cell per column {title: table}."""
    titles = list(columns)
    suites = list(next(iter(columns.values())))
    lines = ['| suite | ' + ' | '.join('%s pass/fail/skip' % t for t in titles) + ' |',
             '|---|' + '---|' * len(titles)]
    for s in suites:
        cells = []
        for t in titles:
            r = columns[t].get(s)
            cells.append('-' if r is None else '%d/%d/%d' % (r['pass'], r['fail'], r['skip']))
        lines.append('| %s | %s |' % (s, ' | '.join(cells)))
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('url', help='iscsi://HOST:PORT/TARGET-IQN/LUN')
    ap.add_argument('--json', action='store_true', help='print JSON instead of a table')
    ap.add_argument('--suite', action='append', help='only these suites (repeatable)')
    args = ap.parse_args()
    if shutil.which('iscsi-test-cu') is None:
        sys.exit('iscsi-test-cu is not installed (Debian: libiscsi-bin)')
    table = run_all(args.url, args.suite or SUITES)
    if args.json:
        print(json.dumps(table, indent=1))
    else:
        print(format_table({'target': table}))
        for s, r in table.items():
            if r['failed']:
                print('%s failed: %s' % (s, ', '.join(r['failed'])))


if __name__ == '__main__':
    main()
