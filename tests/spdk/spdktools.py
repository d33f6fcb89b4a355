#  SPDX-License-Identifier: BSD-3-Clause
"""Helpers of the real-SPDK tests: where SPDK and the library are, and an spdk_tgt (or any
SPDK app) with libbdev_ioband_spdk.so preloaded."""

import json
import os
import subprocess
import threading
from pathlib import Path

from rpctools import REPO, RawClient, Target

CRATE = REPO / 'bdev_ioband' / 'spdk'


def spdk_dir():
    d = os.environ.get('SPDK_DIR')
    return Path(d) if d else None


def spdk_lib_dir(root):
    """Where the SPDK shared libraries are: a built tree (build/lib) or a prefix (lib)."""
    return root / 'build' / 'lib' if (root / 'build' / 'lib').is_dir() else root / 'lib'


def spdk_binary(root, *names):
    for sub in ('build/bin', 'build/examples', 'bin'):
        for name in names:
            p = root / sub / name
            if p.is_file() and os.access(p, os.X_OK):
                return p
    return None


def build_lib(root, target_dir):
    """libbdev_ioband_spdk.so built (release) for the SPDK at `root`, in `target_dir`."""
    proc = subprocess.run(
        ['cargo', 'build', '--release', '--manifest-path', str(CRATE / 'Cargo.toml')],
        env=dict(os.environ, SPDK_DIR=str(root), CARGO_TARGET_DIR=str(target_dir)),
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, 'cargo build of bdev_ioband_spdk failed:\n' + proc.stderr[-4000:]
    lib = Path(target_dir) / 'release' / 'libbdev_ioband_spdk.so'
    assert lib.is_file(), lib
    return lib


class SpdkTarget(Target):
    """spdk_tgt with the ioband module preloaded, on a socket in its own directory."""

    def __init__(self, spdk_root, lib, workdir, app='spdk_tgt', mem_mb=1024, cores='0x1'):
        super().__init__(spdk_binary(spdk_root, app), workdir)
        self.spdk_root = spdk_root
        self.lib = lib
        self.mem_mb = mem_mb
        self.cores = cores

    def env(self):
        env = dict(os.environ)
        env['LD_PRELOAD'] = str(self.lib)
        lib_dir = str(spdk_lib_dir(self.spdk_root))
        env['LD_LIBRARY_PATH'] = os.pathsep.join([lib_dir] + [p for p in [env.get('LD_LIBRARY_PATH')] if p])
        return env

    def start(self, json_config=None, extra=()):
        assert self.proc is None or self.proc.poll() is not None, 'already running'
        self.starts += 1
        self.log_path = self.workdir / ('tgt.%d.log' % self.starts)
        # No core locks: the tests' apps share cores with each other (and with any other SPDK).
        cmd = [str(self.binary), '--no-huge', '-s', str(self.mem_mb), '-m', self.cores,
               '--disable-cpumask-locks', '-r', str(self.sock)]
        if json_config is not None:
            cmd += ['--json', str(json_config)]
        cmd += list(extra)
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env())
        self.wait_ready()
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError('%s exited with %s while starting:\n%s' % (
                self.binary.name, self.proc.returncode, self.log()))
        if not self.sock.exists():
            return False
        with RawClient(self.sock, timeout=5) as c:
            resp = c.request('bdev_ioband_get_devices')
        # -1: not allowed in this state (still loading --json); -32601: module not loaded.
        if 'error' in resp and resp['error']['code'] == -32601:
            raise AssertionError('bdev_ioband_* methods missing: the library was not loaded:\n' + self.log())
        return 'result' in resp or resp['error']['code'] != -1


def call(t, method, params=None, timeout=30):
    """One JSON-RPC call with the raw client: for SPDK's own methods whose PyPI client (26.x)
    sends parameters SPDK 25.09 does not know (nvmf_*, bdev_nvme_*)."""
    with RawClient(t.sock, timeout=timeout) as c:
        return c.call(method, params)


def perform_tests_in_background(t, timeout):
    """Starts a `-z` bdevperf's perform_tests on a connection of its own; returns the thread
    and a dict whose 'resp' is bdevperf's response once the thread has ended."""
    out = {}

    def perform():
        with RawClient(t.sock, timeout=timeout) as c:
            out['resp'] = c.request('perform_tests', {})

    runner = threading.Thread(target=perform)
    runner.start()
    return runner, out


def free_tcp_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def spdk_env(root):
    """The environment an SPDK app of `root` (shared libraries) runs in."""
    env = dict(os.environ)
    lib_dir = str(spdk_lib_dir(root))
    env['LD_LIBRARY_PATH'] = os.pathsep.join([lib_dir] + [p for p in [env.get('LD_LIBRARY_PATH')] if p])
    return env


def cpu_seconds(pid):
    """User + system CPU seconds a live process has used so far (from /proc/PID/stat)."""
    fields = Path('/proc/%d/stat' % pid).read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def save_config(t):
    """What `spdk-rpc save_config` prints, read with a raw client: the PyPI client (26.x)
    sends framework_get_config a `with_batches` parameter that SPDK 25.09 refuses (-32602).
    The same two methods, in the same order, without it."""
    with t.client(timeout=30) as c:
        subsystems = c.call('framework_get_subsystems')
        config = {'subsystems': [{'subsystem': s['subsystem'],
                                  'config': c.call('framework_get_config', {'name': s['subsystem']})}
                                 for s in subsystems]}
    return json.dumps(config, indent=2)
