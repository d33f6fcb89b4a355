#!/usr/bin/env python3
#  SPDX-License-Identifier: BSD-3-Clause
"""Writes the fuzz targets' seed corpora into fuzz/seeds/<target>/ from the shared bad-input
table (tests/test_e2e_tgt.py BAD_CALLS), the README's text examples and a few good calls.

Run from anywhere: python3 fuzz/make_seeds.py. The seeds are committed; rerun after the table
grows. The table is read without pytest (its module is loaded with stand-ins for pytest and
the test client).
"""

import hashlib
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_bad_calls():
    """BAD_CALLS of tests/test_e2e_tgt.py, without importing pytest or a client."""
    fake_pytest = types.ModuleType('pytest')
    fake_pytest.fixture = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))

    class _Mark:
        def __getattr__(self, name):
            return lambda *a, **k: (lambda f: f)

    fake_pytest.mark = _Mark()
    fake_tools = types.ModuleType('rpctools')

    class RawParams(str):
        pass

    fake_tools.RawParams = RawParams
    for name in ('ConnectionClosed', 'RawClient', 'Target', 'describe', 'short_tmpdir'):
        setattr(fake_tools, name, object)
    sys.modules['pytest'] = fake_pytest
    sys.modules['rpctools'] = fake_tools
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    import test_e2e_tgt  # noqa: E402
    return test_e2e_tgt.BAD_CALLS, RawParams


def params_text(params, raw_type):
    if params is None:
        return None
    if isinstance(params, raw_type):
        return str(params)
    return json.dumps(params)


def request(method, params, id_=1):
    text = '{"jsonrpc":"2.0","id":%d,"method":%s' % (id_, json.dumps(method))
    if params is not None:
        text += ',"params":' + params
    return text + '}'


GOOD_CALLS = [
    ('bdev_ioband_get_devices', '{"format":"text"}'),
    ('bdev_ioband_get_settings', '{"name":"io0","group":"tag:7"}'),
    ('bdev_ioband_get_settings', '{"format":"text","group":"initiator:nqn.2014-08.org.example:host1"}'),
    ('bdev_ioband_get_iostat', '{"name":"io2","group":"tag:7"}'),
    ('bdev_ioband_set_device', '{"name":"share0","io_limit":64,"io_throttle":8}'),
    ('bdev_ioband_set_device', '{"command":"share1 policy weight-iosize"}'),
    ('bdev_ioband_set_device', '{"command":"io0 range-bw cgroup:4242:100:200"}'),
    ('bdev_ioband_set_settings', '{"command":"io1 300","group":"tag:9"}'),
    ('bdev_ioband_set_settings', '{"name":"io0","group":"initiator:nqn.2014-08.org.example:host1"}'),
    ('bdev_ioband_create', '{"name":"io3","base_bdev_name":"Model0","share":"share1"}'),
    ('bdev_ioband_delete', '{"name":"io1"}'),
    ('bdev_null_create', '{"name":"Null1","num_blocks":8,"block_size":4096}'),
    ('bdev_null_delete', '{"name":"Null0"}'),
    ('bdev_model_delete', '{"name":"Model0"}'),
    ('bdev_passthru_create', '{"name":"pt0","base_bdev_name":"Null0"}'),
    ('bdev_get_bdevs', '{"name":"io0"}'),
    ('framework_get_config', '{"name":"bdev"}'),
    ('rpc_get_methods', None),
    ('spdk_get_version', None),
]

DEVICES_WRITES = [
    'share1 policy weight-iosize', 'share1 io_limit 256', 'io1 io_throttle 8',
    'share1 token 0   # back to the default', 'io0 attach initiator:nqn.2014-08.org.example:host2',
    'io0 weight initiator:nqn.2014-08.org.example:host1:300', 'io0 weight 50',
    'io2 range-bw tag:7:1000:5000', 'io2 detach tag:7', 'io0 reset', 'share0 capacity 100000',
    'share0 idle_grace 250', 'share0 carryover 4', 'io0 weight -1:7', 'io0 range-bw :0:0',
    'share1 policy default', 'share0 io_throttle 30000',
]
SETTINGS_WRITES = ['io0 300', 'io2 1000:5000', 'io0', 'io1 7 # comment', 'io2 0:0', 'io0 0']
GROUP_TEXT = ['none', 'default', 'initiator:nqn.2014-08.org.example:host1', 'cgroup:4242',
              'tag:7', '300', '100:200', 'weight', 'range-bw', 'weight-iosize']
DEVICES_LISTING = ('share0 policy=weight io_throttle=4 io_limit=192 token=768 carryover=2\n'
                   '  io0\n  io1\n'
                   'share1 policy=range-bw io_throttle=4 io_limit=192 capacity=1000000 '
                   'idle_grace=250\n  io2\n')
SETTINGS_LISTING = 'io0 weight=300\nio2 range-bw=1000:5000\n'

# engine_rpc picks a method by the first character of a line, code point % 7.
ENGINE_METHODS = ['bdev_ioband_create', 'bdev_ioband_delete', 'bdev_ioband_get_devices',
                  'bdev_ioband_set_device', 'bdev_ioband_get_settings',
                  'bdev_ioband_set_settings', 'bdev_ioband_get_iostat']
PICK = {m: next(c for c in 'abcdefg' if ord(c) % 7 == i) for i, m in enumerate(ENGINE_METHODS)}


def write(target, data):
    folder = os.path.join(HERE, 'seeds', target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), 'wb') as f:
        f.write(data)


def main():
    bad_calls, raw_type = load_bad_calls()
    calls = [(c[1], params_text(c[2], raw_type)) for c in bad_calls] + GOOD_CALLS
    for method, params in calls:
        if len(params or '') > 4000:  # the huge-name cases: libFuzzer's inputs are short
            params = params[:200] + params[-40:]
        req = request(method, params).encode()
        write('rpc_wire', b'\x01' + req)
        if method in PICK:
            write('engine_rpc', (PICK[method] + (params or '')).encode())
    # Streams: several requests, a batch, a notification, a parse error, cut into reads.
    stream = '\n'.join(request(m, p, i) for i, (m, p) in enumerate(GOOD_CALLS[:6]))
    write('rpc_wire', b'\x01' + stream.encode())
    write('rpc_wire', b'\x00\x07' + stream.encode())
    batch = '[%s,%s]' % (request(*GOOD_CALLS[0]), request('bdev_ioband_delete', '{"name":"x"}'))
    write('rpc_wire', b'\x00\x03' + batch.encode())
    write('rpc_wire', b'\x01{"jsonrpc":"2.0","method":"bdev_ioband_set_settings",'
          b'"params":{"name":"io0","value":0}}')
    write('rpc_wire', b'\x01' + request(*GOOD_CALLS[0]).encode() + b'{"id":1,,}')
    engine_lines = [PICK[m] + (p or '') for m, p in GOOD_CALLS if m in PICK]
    write('engine_rpc', '\n'.join(engine_lines).encode())
    for w in DEVICES_WRITES:
        write('text_grammar', b'\x00' + w.encode())
    for w in SETTINGS_WRITES:
        write('text_grammar', b'\x01' + w.encode())
        write('text_grammar', b'\x02' + w.encode())
    for g in GROUP_TEXT:
        write('text_grammar', b'\x03' + g.encode())
    write('text_grammar', b'\x04' + DEVICES_LISTING.encode())
    write('text_grammar', b'\x05' + SETTINGS_LISTING.encode())
    write('text_grammar', b'\x06' + ("unknown share or device '" + 'A' * 300 + "'").encode())


if __name__ == '__main__':
    main()
