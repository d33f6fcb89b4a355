#  SPDX-License-Identifier: BSD-3-Clause
"""Test helpers: run the real spdk-rpc with our plugin, a fake SPDK JSON-RPC server, a raw
JSON-RPC client, and an ioband_tgt process.

Every wait here is a poll of a condition with a deadline; nothing sleeps to synchronise.
"""

import codecs
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / 'rpc'
PLUGIN = 'ioband_rpc'


# ------------------------------------------------------------------------------------------
# The real client

def spdk_rpc_command():
    """The spdk-rpc console script of the running interpreter's environment (the venv)."""
    beside = Path(sys.executable).parent / 'spdk-rpc'
    if beside.exists():
        return [str(beside)]
    found = shutil.which('spdk-rpc')
    if found:
        return [found]
    # The PyPI package always has the module; fail loudly if it is missing.
    return [sys.executable, '-m', 'spdk.spdk_rpc']


def run_spdk_rpc(sock, *args, timeout=60, plugin=True, client_timeout=30):
    """Runs `spdk-rpc -s SOCK [-t T] [--plugin ioband_rpc] ARGS...`; returns CompletedProcess."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(PLUGIN_DIR)] + [p for p in [env.get('PYTHONPATH')] if p])
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    cmd = spdk_rpc_command() + ['-s', str(sock), '-t', str(client_timeout)]
    if plugin:
        cmd += ['--plugin', PLUGIN]
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def describe(proc):
    return 'exit %s\n--- stdout\n%s--- stderr\n%s' % (proc.returncode, proc.stdout, proc.stderr)


def short_tmpdir():
    """A directory whose socket paths stay well under sun_path's 108 bytes."""
    return tempfile.mkdtemp(prefix='ioband-', dir='/tmp')


# ------------------------------------------------------------------------------------------
# Wire format: concatenated JSON values, as SPDK's server reads them

def _incomplete(text):
    """Whether text, which does not decode, could still become a JSON value with more bytes."""
    try:
        json.JSONDecoder().raw_decode(text)
        return False
    except json.JSONDecodeError as e:
        if e.pos >= len(text) or 'Unterminated' in e.msg:
            return True
        if 'escape' in e.msg and e.pos + 6 > len(text):  # a \uXXXX cut short
            return True
        rest = text[e.pos:]
        return any(lit.startswith(rest) for lit in ('true', 'false', 'null', '-'))


# ------------------------------------------------------------------------------------------
# A fake SPDK target

class FakeSpdkServer:
    """A JSON-RPC 2.0 server on a Unix stream socket that records every request.

    Replies come from `replies`: method -> {"result": v} or {"error": {"code", "message"}},
    or a callable(params) returning one of those. Unknown methods get {"result": True}.
    """

    def __init__(self, path):
        self.path = str(path)
        self.requests = []          # (method, params or None, the whole request object)
        self.connections = 0
        self.replies = {}
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(16)
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def reply(self, method, result=None, error=None):
        self.replies[method] = {'error': error} if error is not None else {'result': result}

    def _accept_loop(self):
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _answer(self, req):
        if not isinstance(req, dict) or not isinstance(req.get('method'), str):
            return {'jsonrpc': '2.0', 'id': None, 'error': {'code': -32600, 'message': 'Invalid request'}}
        method = req['method']
        params = req.get('params')
        with self._lock:
            self.requests.append((method, params, req))
        how = self.replies.get(method, {'result': True})
        if callable(how):
            how = how(params)
        resp = {'jsonrpc': '2.0', 'id': req.get('id')}
        resp.update(how)
        return resp

    def _serve(self, conn):
        buf = ''
        dec = json.JSONDecoder()
        utf8 = codecs.getincrementaldecoder('utf-8')(errors='replace')
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += utf8.decode(data)
                while True:
                    text = buf.lstrip()
                    if not text:
                        buf = ''
                        break
                    try:
                        req, end = dec.raw_decode(text)
                    except json.JSONDecodeError:
                        if _incomplete(text):
                            buf = text
                            break
                        conn.sendall(json.dumps({'jsonrpc': '2.0', 'id': None, 'error': {
                            'code': -32700, 'message': 'Parse error'}}).encode() + b'\n')
                        return  # as SPDK: no resync point, close
                    buf = text[end:]
                    conn.sendall(json.dumps(self._answer(req)).encode() + b'\n')

    def methods(self):
        with self._lock:
            return [m for m, _, _ in self.requests]

    def close(self):
        self._stop = True
        try:
            self._sock.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


# ------------------------------------------------------------------------------------------
# A raw client, to send what spdk-rpc never would

class ConnectionClosed(Exception):
    pass


class RawParams(str):
    """Params written as JSON text, sent as they are: what a dict cannot say (a key twice,
    a number such as 1e309)."""


class RawClient:
    """One connection; sends bytes or requests and reads one JSON value per reply."""

    def __init__(self, path, timeout=15.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.timeout = timeout
        self.buf = ''
        self._utf8 = codecs.getincrementaldecoder('utf-8')()
        self.next_id = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_value(self):
        """The next JSON value the server sends; ConnectionClosed on EOF or reset."""
        deadline = time.monotonic() + self.timeout
        dec = json.JSONDecoder()
        while True:
            text = self.buf.lstrip()
            if text:
                try:
                    value, end = dec.raw_decode(text)
                    self.buf = text[end:]
                    return value
                except json.JSONDecodeError:
                    if not _incomplete(text):
                        raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no complete reply within %.0f s; got %r' % (self.timeout, self.buf[:200]))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not data:
                raise ConnectionClosed('EOF after %r' % self.buf[:200])
            self.buf += self._utf8.decode(data)

    def request(self, method, params=None, with_params=True):
        """Sends one request (params omitted when None) and returns the whole reply object."""
        req = {'jsonrpc': '2.0', 'method': method, 'id': self.next_id}
        self.next_id += 1
        if isinstance(params, RawParams) and with_params:
            self.send_raw(json.dumps(req)[:-1].encode() + b', "params": ' + params.encode() + b'}')
        else:
            if params is not None and with_params:
                req['params'] = params
            self.send_raw(json.dumps(req).encode())
        resp = self.recv_value()
        assert resp.get('id') == req['id'], 'reply id %r for request %r' % (resp.get('id'), req)
        return resp

    def call(self, method, params=None):
        """The result; AssertionError carrying the error object otherwise."""
        resp = self.request(method, params)
        assert 'error' not in resp, '%s(%s) failed: %s' % (method, json.dumps(params), resp['error'])
        return resp['result']


def poll(condition, timeout, what, interval=0.02, retry_on=(OSError, ConnectionClosed, ValueError)):
    """Calls condition() until it returns a truthy value or timeout seconds pass.

    Exceptions of the types in retry_on count as "not yet"; any other propagates at once.
    `interval` only paces the re-checks of a condition that needs a fresh look (a socket
    that is not yet listening); the deadline is what bounds the wait."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except retry_on as e:
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError('%s: not within %.0f s (last error: %r)' % (what, timeout, last))
        time.sleep(interval)


# ------------------------------------------------------------------------------------------
# The ioband_tgt program

def find_tgt():
    """(path or None, reason). IOBAND_TGT wins; otherwise the newest cargo build."""
    env = os.environ.get('IOBAND_TGT')
    if env:
        return Path(env), None
    target_dirs = [REPO / 'target']
    if os.environ.get('CARGO_TARGET_DIR'):
        target_dirs.insert(0, Path(os.environ['CARGO_TARGET_DIR']))
    found = [d / prof / 'ioband_tgt' for d in target_dirs for prof in ('release', 'debug')]
    found = [p for p in found if p.is_file() and os.access(p, os.X_OK)]
    if not found:
        return None, 'ioband_tgt not built (no target/{release,debug}/ioband_tgt; set IOBAND_TGT to use another)'
    return max(found, key=lambda p: p.stat().st_mtime), None


class Target:
    """One ioband_tgt process serving JSON-RPC on a socket in its own short directory."""

    START_TIMEOUT = 30.0
    STOP_TIMEOUT = 30.0

    def __init__(self, binary, workdir, sock=None):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.sock = Path(sock) if sock else self.workdir / 'spdk.sock'
        self.proc = None
        self.log_path = None
        self.starts = 0

    def start(self, json_config=None, extra=()):
        assert self.proc is None or self.proc.poll() is not None, 'already running'
        self.starts += 1
        self.log_path = self.workdir / ('tgt.%d.log' % self.starts)
        cmd = [str(self.binary), '-m', '0x1', '-r', str(self.sock)]
        if json_config is not None:
            cmd += ['--json', str(json_config)]
        cmd += list(extra)
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def log(self, limit=4000):
        if not self.log_path or not self.log_path.exists():
            return '(no log)'
        text = self.log_path.read_text(errors='replace')
        return text[-limit:]

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError('ioband_tgt exited with %s while starting:\n%s' % (self.proc.returncode, self.log()))
        if not self.sock.exists():
            return False
        with RawClient(self.sock, timeout=5) as c:
            resp = c.request('bdev_ioband_get_devices')
        # -1 is SPDK's "not allowed in this state" (still loading the --json config).
        return 'result' in resp or resp['error']['code'] != -1

    def wait_ready(self):
        try:
            poll(self._ready, self.START_TIMEOUT, 'ioband_tgt serving on %s' % self.sock)
        except TimeoutError as e:
            raise AssertionError('%s\n--- log\n%s' % (e, self.log())) from e

    def wait_exit(self, timeout=None):
        try:
            return self.proc.wait(timeout=timeout or self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise AssertionError('ioband_tgt did not exit within %s s:\n%s' % (e.timeout, self.log())) from e

    def terminate(self):
        """SIGTERM, then wait for the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def kill(self):
        """Last-resort cleanup of this process only (by its pid)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def client(self, timeout=15.0):
        return RawClient(self.sock, timeout=timeout)

    def rpc(self, *args, check=True):
        proc = run_spdk_rpc(self.sock, *args)
        if check:
            assert proc.returncode == 0, 'spdk-rpc %s: %s\n--- tgt log\n%s' % (
                ' '.join(map(str, args)), describe(proc), self.log())
        return proc

    def rpc_json(self, *args):
        out = self.rpc(*args).stdout
        try:
            return json.loads(out)
        except ValueError as e:
            raise AssertionError('spdk-rpc %s printed no JSON: %r' % (' '.join(map(str, args)), out)) from e


def completed_ios(target, groups):
    """Each group's completed_ios (0 for a group not reported), from ONE reading of
    bdev_ioband_get_iostat: groups compared must be counted at the same instant (two
    readings a loaded machine's RPC round trip apart skew a ratio by what completes in
    between)."""
    counts = {}
    for d in target.rpc_json('bdev_ioband_get_iostat')['devices']:
        for g in d['groups']:
            counts[g['group']] = counts.get(g['group'], 0) + g['completed_ios']
    return [counts.get(g, 0) for g in groups]


def ratio_in_window(target, groups, warmup_s=2.5, window_s=4.0):
    """(completed I/Os of each of two groups over a window after a warm-up, their ratio),
    the counts of each reading taken together (see completed_ios)."""
    time.sleep(warmup_s)
    first = completed_ios(target, groups)
    time.sleep(window_s)
    second = completed_ios(target, groups)
    a, b = (s - f for s, f in zip(second, first))
    assert a > 0 and b > 0, (first, second)
    return a, b, a / b
