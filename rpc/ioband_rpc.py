#  SPDX-License-Identifier: BSD-3-Clause
"""rpc.py plugin for bdev_ioband: dm-ioband-style QoS bdevs.

Use it with SPDK's own client (``spdk-rpc`` from PyPI, or ``scripts/rpc.py`` of an SPDK tree)::

    PYTHONPATH=/path/to/bdev_ioband/rpc spdk-rpc --plugin ioband_rpc bdev_ioband_create \\
        -b Nvme0n1 -n ioband0 --share tenants --policy weight
    spdk-rpc --plugin ioband_rpc bdev_ioband_set_settings ioband0 --initiator nqn.2014-08.org.x:h1 --weight 300
    spdk-rpc --plugin ioband_rpc bdev_ioband_get_devices -f text

``--plugin`` must come before the method name. Every subcommand checks what it cheaply can
(types, choices, ranges, which options go together) and exits through argparse, before
anything is sent; the target checks everything again and answers SPDK-style JSON-RPC errors,
which spdk-rpc prints before exiting non-zero. The bdev_ioband_* methods only build
parameters and print replies: they never catch the client's exceptions.

Methods: bdev_ioband_create, bdev_ioband_delete, bdev_ioband_get_devices,
bdev_ioband_set_device, bdev_ioband_get_settings, bdev_ioband_set_settings,
bdev_ioband_get_iostat, and the embedded host's bdev_model_create / bdev_model_delete.

Per-tenant exports, one command per tenant, made of SPDK's own RPCs (no server code):
bdev_ioband_nvmf_export / bdev_ioband_nvmf_unexport (a namespace of an existing subsystem,
visible to one host NQN only: nvmf_subsystem_add_ns with no_auto_visible, nvmf_ns_add_host)
and bdev_ioband_iscsi_export / bdev_ioband_iscsi_unexport (a target node whose initiator
group names one IQN). Each export creates (or checks) the tenant's ioband bdev, bound to
``initiator:<nqn or iqn>`` of the share, so its I/O counts to the tenant by name. An export
runs its steps in order; when one fails, what the earlier ones created is removed again, in
reverse order, and the failing RPC's own error is reported (spdk-rpc prints it and exits 1).
"""

import argparse
import re
import sys

try:
    from spdk.rpc.cmd_parser import print_dict, print_json
except ImportError:  # SPDK trees before the spdk.rpc package: same output, local copy
    import json

    def print_dict(d):
        print(json.dumps(d, indent=2))

    def print_json(s):
        print(json.dumps(s, indent=2).strip('"'))

try:
    from spdk.rpc.client import JSONRPCException
except ImportError:  # scripts/rpc.py of older trees: the client module is top-level
    try:
        from rpc.client import JSONRPCException
    except ImportError:
        class JSONRPCException(Exception):
            def __init__(self, message):
                super().__init__(message)
                self.message = message


# Ranges, as the engine checks them (bdev_ioband/engine/src/params.rs).
SHORT_MAX = 32767                 # weight, io_throttle, io_limit (dm-ioband's SHRT_MAX)
INT_MAX = 2 ** 31 - 1             # token, carryover, capacity
RANGE_BW_MAX = INT_MAX // 2       # range-bw bounds in KiB/s
IDLE_GRACE_MAX_US = 1000000       # idle_grace_us (one second)
U32_MAX = 2 ** 32 - 1
U64_MAX = 2 ** 64 - 1

POLICIES = ('weight', 'weight-iosize', 'range-bw')
FORMATS = ('json', 'text')

_DIGITS = re.compile(r'[0-9]+')


def _uint(text, lo, hi, what):
    """Parses a decimal integer in [lo, hi] (no sign, spaces or underscores)."""
    if not _DIGITS.fullmatch(text):
        raise argparse.ArgumentTypeError("%s must be a non-negative decimal integer, got '%s'" % (what, text))
    value = int(text)
    if value < lo or value > hi:
        raise argparse.ArgumentTypeError("%s must be in %d..%d, got %d" % (what, lo, hi, value))
    return value


def _uint_type(lo, hi, what):
    def parse(text):
        return _uint(text, lo, hi, what)
    return parse


weight_type = _uint_type(1, SHORT_MAX, 'weight')
short_knob_type = _uint_type(0, SHORT_MAX, 'value')
int_knob_type = _uint_type(0, INT_MAX, 'value')
idle_grace_type = _uint_type(0, IDLE_GRACE_MAX_US, 'idle grace')
nonneg_type = _uint_type(0, U64_MAX, 'value')
positive_type = _uint_type(1, U64_MAX, 'value')
cgroup_id_type = _uint_type(0, U64_MAX, 'cgroup id')
tag_type = _uint_type(0, U32_MAX, 'tag')


def range_bw_type(text):
    """MIN:MAX in KiB/s, 0 <= MIN <= MAX <= INT_MAX/2; sent as the string "MIN:MAX"."""
    lo, sep, hi = text.partition(':')
    if not sep:
        raise argparse.ArgumentTypeError("range-bw must be MIN:MAX in KiB/s, got '%s'" % text)
    lo = _uint(lo, 0, RANGE_BW_MAX, 'range-bw min')
    hi = _uint(hi, 0, RANGE_BW_MAX, 'range-bw max')
    if lo > hi:
        raise argparse.ArgumentTypeError("range-bw min (%d) is above max (%d)" % (lo, hi))
    return '%d:%d' % (lo, hi)


def group_type(text):
    """A group key: none | initiator:<nqn or iqn> | cgroup:<u64> | tag:<u32>."""
    if text == 'none':
        return text
    kind, sep, ident = text.partition(':')
    if not sep or not ident:
        raise argparse.ArgumentTypeError(
            "group must be none, initiator:<nqn>, cgroup:<id> or tag:<n>, got '%s'" % text)
    if kind == 'initiator':
        return 'initiator:' + initiator_type(ident)
    if kind == 'cgroup':
        return 'cgroup:%d' % _uint(ident, 0, U64_MAX, 'cgroup id')
    if kind == 'tag':
        return 'tag:%d' % _uint(ident, 0, U32_MAX, 'tag')
    raise argparse.ArgumentTypeError(
        "unknown group type '%s' (expected none, initiator, cgroup or tag)" % kind)


MAX_INITIATOR_LEN = 223  # NVMe NQNs are at most 223 bytes; IQNs are shorter


def initiator_type(text):
    """An NVMe-oF host NQN or iSCSI IQN: non-empty, at most 223 bytes, no spaces or controls."""
    if not text:
        raise argparse.ArgumentTypeError('initiator must not be empty')
    if len(text.encode('utf-8')) > MAX_INITIATOR_LEN:
        raise argparse.ArgumentTypeError('initiator is longer than %d bytes' % MAX_INITIATOR_LEN)
    if any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError("initiator '%s' contains white space or control characters" % text)
    return text


def nonempty(text):
    if not text:
        raise argparse.ArgumentTypeError('must not be empty')
    return text


# The share knobs, shared by create and set_device: (option strings, dest, type, help).
SHARE_KNOBS = (
    (('-p', '--policy'), 'policy', None,
     'Scheduling policy of the share: weight (one token per I/O), weight-iosize (one token per '
     '512-byte sector) or range-bw (per-group MIN:MAX KiB/s)'),
    (('--io-throttle',), 'io_throttle', short_knob_type,
     'In-flight level above which groups that run ahead are held (0..32767; 0 = default 4)'),
    (('--io-limit',), 'io_limit', short_knob_type,
     'Most I/Os in flight for the whole share (0..32767; 0 = 3/2 of the base queue depth)'),
    (('--token',), 'token', int_knob_type,
     'Tokens per epoch (0..2147483647; 0 = derived from io_limit)'),
    (('--carryover',), 'carryover', int_knob_type,
     'Epochs of credit an idle group may bank (0..2147483647; 0 = derived)'),
    (('--capacity', '--capacity-kib-per-sec'), 'capacity_kib_per_sec', int_knob_type,
     'What the base device delivers in KiB/s; range-bw minimums must fit in it '
     '(0..2147483647; 0 = unknown)'),
    (('--idle-grace-us',), 'idle_grace_us', idle_grace_type,
     'Microseconds a group with no I/O queued stays active after its last submission or '
     'completion: it keeps its place in the share and keeps pacing groups that run ahead, '
     'which protects closed-loop tenants at low queue depth and tenants behind a network '
     'round trip (0..1000000; 0 = auto, derived from the observed completion latency)'),
)
SHARE_KNOB_DESTS = tuple(k[1] for k in SHARE_KNOBS)


def _add_share_knobs(p):
    for opts, dest, typ, help_text in SHARE_KNOBS:
        if dest == 'policy':
            p.add_argument(*opts, dest=dest, choices=POLICIES, help=help_text)
        else:
            metavar = 'US' if dest == 'idle_grace_us' else 'N'
            p.add_argument(*opts, dest=dest, type=typ, metavar=metavar, help=help_text)


def _add_group_options(p, help_prefix):
    """--group / --initiator / --cgroup / --tag, one of them; sets args.group or leaves None."""
    g = p.add_mutually_exclusive_group()
    g.add_argument('--group', type=group_type, metavar='GROUP',
                   help=help_prefix + ' as none, initiator:<nqn>, cgroup:<id> or tag:<n>')
    g.add_argument('-i', '--initiator', type=initiator_type, metavar='NQN',
                   help=help_prefix + ': the initiator (NVMe-oF host NQN or iSCSI IQN)')
    g.add_argument('--cgroup', type=cgroup_id_type, metavar='ID',
                   help=help_prefix + ': the cgroup v2 id (u64)')
    g.add_argument('--tag', type=tag_type, metavar='N', help=help_prefix + ': the submitter tag (u32)')


def _group_of(args):
    if args.group is not None:
        return args.group
    if args.initiator is not None:
        return 'initiator:' + args.initiator
    if args.cgroup is not None:
        return 'cgroup:%d' % args.cgroup
    if args.tag is not None:
        return 'tag:%d' % args.tag
    return None


def _params(**kw):
    """Drops absent (None) values, as the client's dynamic methods do."""
    return {k: v for k, v in kw.items() if v is not None}


def _print_result(result):
    # The dry-run client returns None: print nothing then.
    if result is not None:
        print_dict(result)


def _print_json_result(result):
    # A string result (a bdev name) prints bare, as SPDK's create commands do.
    if result is not None:
        print_json(result)


def _print_text_or_json(result, fmt):
    if result is None:
        return
    if fmt == 'text' and isinstance(result, str):
        sys.stdout.write(result if result.endswith('\n') or not result else result + '\n')
    else:
        print_dict(result)


def _checked(p, check):
    """Runs check(p, namespace) when argparse has parsed p's arguments.

    Cross-option rules (which options go together) then fail in argparse's own way, with the
    usage and exit status 2, before a client is even created; handlers call the same check
    again in case a future argparse parses sub-commands differently.
    """
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, rest = parse(args, namespace)
        check(p, ns)
        return ns, rest

    p.parse_known_args = parse_known_args
    return check


def spdk_rpc_plugin_initialize(subparsers):
    # ---------------------------------------------------------------- create / delete
    def check_create(p, args):
        if _group_of(args) == 'none':
            p.error('the group to bind must be initiator:<nqn>, cgroup:<id> or tag:<n> (leave it out '
                    'for the default group)')

    def bdev_ioband_create(args):
        check_create(p_create, args)
        _print_json_result(args.client.call('bdev_ioband_create', _params(
            name=args.name,
            base_bdev_name=args.base_bdev_name,
            share=args.share,
            group=_group_of(args),
            **{d: getattr(args, d) for d in SHARE_KNOB_DESTS})))

    p = p_create = subparsers.add_parser(
        'bdev_ioband_create',
        help='Create an ioband bdev over a base bdev, in a share (created with the first member)',
        description='Create an ioband bdev over BASE. The bdev joins SHARE (default: its own '
                    'name); the share knobs given here create the share or must match it. With a '
                    'group option the bdev is bound to that group of the share: every I/O through '
                    'it counts to the group (on a host whose front end tags I/O, a tag whose group '
                    'is attached to the bdev goes there first), so one bdev per tenant over the '
                    'same base, bound to the tenant\'s NQN or IQN, makes the tenants groups of one '
                    'share, named by them. A group bound or attached in the share already is refused.')
    p.add_argument('-b', '--base-bdev-name', required=True, type=nonempty, help='Name of the existing base bdev')
    p.add_argument('-n', '--name', required=True, type=nonempty, help='Name of the new ioband bdev')
    p.add_argument('--share', type=nonempty, help='Share (dm-ioband device group) to join; default: the bdev name')
    _add_group_options(p, 'Bind the bdev to this group')
    _add_share_knobs(p)
    _checked(p, check_create)
    p.set_defaults(func=bdev_ioband_create)

    def bdev_ioband_delete(args):
        args.client.call('bdev_ioband_delete', {'name': args.name})

    p = subparsers.add_parser('bdev_ioband_delete', help='Delete an ioband bdev (its queued I/O completes first)')
    p.add_argument('name', type=nonempty, help='ioband bdev name')
    p.set_defaults(func=bdev_ioband_delete)

    # ---------------------------------------------------------------- devices (shares)
    def bdev_ioband_get_devices(args):
        _print_text_or_json(args.client.call('bdev_ioband_get_devices', _params(
            share=args.share, format=args.format)), args.format)

    p = subparsers.add_parser(
        'bdev_ioband_get_devices',
        help='Show shares, their knobs and member bdevs (blkio "devices")')
    p.add_argument('--share', type=nonempty, help='Only this share')
    p.add_argument('-f', '--format', choices=FORMATS,
                   help='json (default) or text: the dm-ioband blkio "devices" file form')
    p.set_defaults(func=bdev_ioband_get_devices)

    def check_set_device(p, args):
        if args.command is not None:
            if args.name is not None or any(getattr(args, d) is not None for d in SHARE_KNOB_DESTS):
                p.error('-c/--command stands alone: give either it or NAME with options')
        elif args.name is None:
            p.error('give NAME and at least one option, or -c/--command "<share-or-device> <param> <value>"')
        elif all(getattr(args, d) is None for d in SHARE_KNOB_DESTS):
            p.error('nothing to set: give at least one of ' +
                    ', '.join(next(o for o in opts if o.startswith('--')) for opts, *_ in SHARE_KNOBS))

    def bdev_ioband_set_device(args):
        check_set_device(p_set_device, args)
        if args.command is not None:
            params = {'command': args.command}
        else:
            params = _params(name=args.name, **{d: getattr(args, d) for d in SHARE_KNOB_DESTS})
        args.client.call('bdev_ioband_set_device', params)

    p = p_set_device = subparsers.add_parser(
        'bdev_ioband_set_device',
        help='Change share knobs (blkio "devices" write)',
        description='Change the knobs of the share NAME (or of the share of the ioband bdev NAME), '
                    'or send a dm-ioband "devices" line with -c.')
    p.add_argument('name', nargs='?', type=nonempty, help='Share name, or the name of one of its ioband bdevs')
    p.add_argument('-c', '--command', type=nonempty, metavar='TEXT',
                   help='dm-ioband form "<share-or-device> <param> <value>", e.g. "share0 io_limit 256"')
    _add_share_knobs(p)
    _checked(p, check_set_device)
    p.set_defaults(func=bdev_ioband_set_device)

    # ---------------------------------------------------------------- settings (groups)
    def bdev_ioband_get_settings(args):
        _print_text_or_json(args.client.call('bdev_ioband_get_settings', _params(
            name=args.name, group=_group_of(args), format=args.format)), args.format)

    p = subparsers.add_parser(
        'bdev_ioband_get_settings',
        help="Show groups' weight or range-bw on each ioband bdev (blkio \"settings\")")
    p.add_argument('-n', '--name', type=nonempty, help='Only this ioband bdev, or the bdevs of this share')
    _add_group_options(p, 'Only this group')
    p.add_argument('-f', '--format', choices=FORMATS,
                   help='json (default) or text: the dm-ioband blkio "settings" file form')
    p.set_defaults(func=bdev_ioband_get_settings)

    def check_set_settings(p, args):
        values = [v for v in (args.weight, args.range_bw) if v is not None] + ([True] if args.detach else [])
        if args.command is not None:
            if args.name is not None or values:
                p.error('-c/--command stands alone (with a group option): '
                        'drop NAME, --weight, --range-bw and --detach')
        elif args.name is None:
            p.error('give NAME with --weight, --range-bw or --detach, or -c/--command "<device> [<value>]"')
        elif not values:
            p.error('give --weight W, --range-bw MIN:MAX, or --detach')

    def bdev_ioband_set_settings(args):
        check_set_settings(p_set_settings, args)
        group = _group_of(args)
        if args.command is not None:
            params = _params(command=args.command, group=group)
        else:
            value = args.weight if args.weight is not None else args.range_bw  # None: detach
            params = _params(name=args.name, group=group, value=value)
        args.client.call('bdev_ioband_set_settings', params)

    p = p_set_settings = subparsers.add_parser(
        'bdev_ioband_set_settings',
        help="Attach a group to an ioband bdev, change its value, or detach it (blkio \"settings\")",
        description='Set the weight or range-bw of a group on the ioband bdev NAME, attaching the '
                    'group if it is new; --detach removes it. Without a group option this is the '
                    "bdev's default group (which cannot be detached).")
    p.add_argument('name', nargs='?', type=nonempty,
                   help='ioband bdev name; or a share, with the group of a tenant bound in it')
    _add_group_options(p, 'The group')
    v = p.add_mutually_exclusive_group()
    v.add_argument('-w', '--weight', type=weight_type, metavar='W', help='Proportional weight, 1..32767')
    v.add_argument('--range-bw', type=range_bw_type, metavar='MIN:MAX',
                   help='Reserved and capped bandwidth in KiB/s (range-bw shares)')
    v.add_argument('--detach', action='store_true', help='Detach the group')
    p.add_argument('-c', '--command', type=nonempty, metavar='TEXT',
                   help='dm-ioband form "<device> [<value>]"; no value detaches')
    _checked(p, check_set_settings)
    p.set_defaults(func=bdev_ioband_set_settings)

    # ---------------------------------------------------------------- statistics
    def bdev_ioband_get_iostat(args):
        _print_text_or_json(args.client.call('bdev_ioband_get_iostat', _params(
            name=args.name, group=_group_of(args), format=args.format)), args.format)

    p = subparsers.add_parser(
        'bdev_ioband_get_iostat',
        help='Show per-group I/O counters, bytes, queue depth and throttled time',
        description='Per-group counters of every ioband bdev (or of NAME, or of the bdevs of the '
                    'share NAME). A bound bdev lists its tenant\'s group by name.')
    p.add_argument('-n', '--name', type=nonempty, help='Only this ioband bdev, or the bdevs of this share')
    _add_group_options(p, 'Only this group')
    p.add_argument('-f', '--format', choices=FORMATS,
                   help='json (default) or text: one line per bdev, "<bdev> <share>" then per group '
                        '"<group> <read_ios> <read_sectors> <write_ios> <write_sectors> <queued>"')
    p.set_defaults(func=bdev_ioband_get_iostat)

    _add_export_commands(subparsers)

    # ---------------------------------------------------------------- model device (embedded host)
    def check_model_create(p, args):
        if args.total_size * 1024 * 1024 < args.block_size:
            p.error('total_size (%d MiB) is smaller than one block (%d bytes)' % (args.total_size, args.block_size))

    def bdev_model_create(args):
        check_model_create(p_model, args)
        num_blocks = args.total_size * 1024 * 1024 // args.block_size
        _print_json_result(args.client.call('bdev_model_create', _params(
            name=args.name,
            block_size=args.block_size,
            num_blocks=num_blocks,
            iops=args.iops,
            bandwidth_bytes_per_sec=args.bandwidth,
            latency_us=args.latency_us,
            queue_depth=args.queue_depth)))

    p = p_model = subparsers.add_parser(
        'bdev_model_create',
        help='Create a model bdev with finite IOPS, bandwidth, latency and queue depth (ioband_tgt only)')
    p.add_argument('name', type=nonempty, help='Block device name')
    p.add_argument('total_size', type=positive_type, help='Size in MiB (int > 0)')
    p.add_argument('block_size', type=positive_type, help='Data block size in bytes')
    p.add_argument('--iops', type=nonneg_type, required=True, metavar='N',
                   help='I/Os per second the device completes (0 = no IOPS bound)')
    p.add_argument('--bandwidth', dest='bandwidth', type=nonneg_type, metavar='BYTES',
                   help='Bytes per second the device transfers (default or 0: no bandwidth bound)')
    p.add_argument('--latency-us', type=nonneg_type, required=True, metavar='US',
                   help='Service latency of one I/O in microseconds')
    p.add_argument('--queue-depth', type=positive_type, required=True, metavar='N',
                   help='I/Os the device serves at once')
    _checked(p, check_model_create)
    p.set_defaults(func=bdev_model_create)

    def bdev_model_delete(args):
        args.client.call('bdev_model_delete', {'name': args.name})

    p = subparsers.add_parser('bdev_model_delete', help='Delete a model bdev (ioband_tgt only)')
    p.add_argument('name', type=nonempty, help='Block device name')
    p.set_defaults(func=bdev_model_delete)

    # ---------------------------------------------------------------- NBD front end (embedded host)
    def ioband_nbd_create_export(args):
        tcp_groups = None
        if args.tcp_group:
            tcp_groups = []
            for item in args.tcp_group:
                address, sep, group = item.partition('=')
                if not sep or not address or not group:
                    raise SystemExit("ioband_nbd_create_export: --tcp-group takes ADDRESS=GROUP, got '%s'" % item)
                tcp_groups.append({'address': address, 'group': group})
        _print_json_result(args.client.call('ioband_nbd_create_export', _params(
            name=args.name,
            bdev_name=args.bdev_name,
            unix_path=args.unix_path,
            tcp_address=args.tcp_address,
            default_group=args.default_group,
            tcp_groups=tcp_groups)))

    p = subparsers.add_parser(
        'ioband_nbd_create_export',
        help='Serve a bdev over NBD on a Unix socket (I/O tagged cgroup:<id> of the client) '
             'or TCP (ioband_tgt only)')
    p.add_argument('name', type=nonempty, help='Export name')
    p.add_argument('bdev_name', type=nonempty, help='Block device to serve')
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument('--unix-path', help='Unix socket path to listen on')
    where.add_argument('--tcp-address', help='HOST:PORT to listen on')
    p.add_argument('--default-group', help='Group of clients with no identity (none, tag:N, ...)')
    p.add_argument('--tcp-group', action='append', metavar='ADDRESS=GROUP',
                   help='Group of a TCP client address (repeatable)')
    p.set_defaults(func=ioband_nbd_create_export)

    def ioband_nbd_delete_export(args):
        _print_json_result(args.client.call('ioband_nbd_delete_export', {'name': args.name}))

    p = subparsers.add_parser('ioband_nbd_delete_export', help='Stop serving an NBD export (ioband_tgt only)')
    p.add_argument('name', type=nonempty, help='Export name')
    p.set_defaults(func=ioband_nbd_delete_export)

    def ioband_nbd_get_exports(args):
        _print_result(args.client.call('ioband_nbd_get_exports', _params(name=args.name)))

    p = subparsers.add_parser('ioband_nbd_get_exports',
                              help='List NBD exports and their connections with their groups (ioband_tgt only)')
    p.add_argument('-n', '--name', help='Only this export')
    p.set_defaults(func=ioband_nbd_get_exports)


# ------------------------------------------------------------------------------------------
# Per-tenant exports, made of SPDK's own RPCs

class _Steps:
    """Runs RPCs in order and remembers how to undo each; on a failure, undoes what was done
    (last first) and re-raises the failing RPC's error with a line saying what was undone."""

    def __init__(self, client, what):
        self.client = client
        self.what = what
        self.undo = []
        self.changed = []  # methods that changed something and have no undo (removals)

    def call(self, method, params=None, undo=None, changes=False):
        result = self.client.call(method, params) if params is not None else self.client.call(method)
        if undo is not None:
            self.undo.append(undo)
        elif changes:
            self.changed.append(method)
        return result

    def fail(self, message):
        """Fails the export with our own message (checks before or between the RPCs)."""
        raise JSONRPCException('%s: %s' % (self.what, message))

    def rollback(self, ex):
        undone, failed = [], []
        for method, params in reversed(self.undo):
            try:
                self.client.call(method, params)
                undone.append(method)
            except Exception as undo_ex:  # report, and go on undoing the rest
                failed.append('%s (%s)' % (method, getattr(undo_ex, 'message', undo_ex)))
        self.undo = []
        note = '%s failed; undone: %s' % (self.what, ', '.join(undone) or 'nothing (nothing was created)')
        if self.changed:
            note += '; done before the failure and kept: ' + ', '.join(self.changed)
        if failed:
            note += '; could NOT undo: ' + '; '.join(failed)
        sys.stderr.write(note + '\n')
        if isinstance(getattr(ex, 'message', None), str):
            ex.message = ex.message.rstrip('\n') + '\n' + note + '\n'


def _run_steps(client, what, body):
    steps = _Steps(client, what)
    try:
        return body(steps)
    except Exception as ex:
        steps.rollback(ex)
        raise


def _tenant_bdev(steps, args, group):
    """Creates the tenant's ioband bdev bound to `group` (with -b), or checks that the existing
    bdev NAME is bound to it; then sets the tenant's value, if given."""
    if args.base_bdev_name is not None:
        steps.call('bdev_ioband_create', _params(
            name=args.name, base_bdev_name=args.base_bdev_name, share=args.share, group=group,
            **{d: getattr(args, d) for d in SHARE_KNOB_DESTS}),
            undo=('bdev_ioband_delete', {'name': args.name}))
        value = args.weight if args.weight is not None else args.range_bw
        if value is not None:
            steps.call('bdev_ioband_set_settings', {'name': args.name, 'group': group, 'value': value})
        return
    settings = steps.call('bdev_ioband_get_settings', {'name': args.name})
    if isinstance(settings, list) and (not settings or settings[0].get('group') != group):
        steps.fail("ioband bdev '%s' is not bound to %s (give -b BASE to create one that is)"
                   % (args.name, group))


def _check_tenant_args(p, args):
    if args.base_bdev_name is None:
        given = [o for o, v in (('--share', args.share), ('--weight', args.weight), ('--range-bw', args.range_bw))
                 if v is not None] + [k for k in SHARE_KNOB_DESTS if getattr(args, k) is not None]
        if given:
            p.error('%s go with -b/--base-bdev-name (the bdev is created then); an existing bdev\'s '
                    'group is changed with bdev_ioband_set_settings' % ', '.join(given))


def _add_tenant_bdev_options(p):
    p.add_argument('-n', '--name', required=True, type=nonempty,
                   help='The tenant\'s ioband bdev: created with -b, else an existing bdev bound to '
                        'the tenant\'s group')
    p.add_argument('-b', '--base-bdev-name', type=nonempty,
                   help='Create the tenant\'s ioband bdev over this base, bound to the tenant')
    p.add_argument('--share', type=nonempty,
                   help='Share of the new bdev (with -b); give every tenant of one base the same share')
    v = p.add_mutually_exclusive_group()
    v.add_argument('-w', '--weight', type=weight_type, metavar='W', help="The tenant's weight, 1..32767 (with -b)")
    v.add_argument('--range-bw', type=range_bw_type, metavar='MIN:MAX',
                   help="The tenant's reserved and capped KiB/s (with -b; range-bw shares)")
    _add_share_knobs(p)


def _subsystem(steps, nqn):
    subsystems = steps.call('nvmf_get_subsystems')
    if subsystems is None:  # dry run
        return None
    for sub in subsystems:
        if sub.get('nqn') == nqn:
            return sub
    steps.fail("no NVMe-oF subsystem '%s' (create it and its listener first: "
               "nvmf_create_subsystem, nvmf_subsystem_add_listener)" % nqn)


def _add_export_commands(subparsers):
    # ---------------------------------------------------------------- NVMe-oF
    def bdev_ioband_nvmf_export(args):
        _check_tenant_args(p_nvmf, args)
        group = 'initiator:' + args.host

        def body(steps):
            sub = _subsystem(steps, args.nqn)  # before anything is created
            _tenant_bdev(steps, args, group)
            known = sub is not None and (sub.get('allow_any_host') or
                                         any(h.get('nqn') == args.host for h in sub.get('hosts', [])))
            if sub is not None and not known:
                steps.call('nvmf_subsystem_add_host', {'nqn': args.nqn, 'host': args.host},
                           undo=('nvmf_subsystem_remove_host', {'nqn': args.nqn, 'host': args.host}))
            ns = {'bdev_name': args.name, 'no_auto_visible': True}
            if args.nsid is not None:
                ns['nsid'] = args.nsid
            nsid = steps.call('nvmf_subsystem_add_ns', {'nqn': args.nqn, 'namespace': ns})
            if nsid is not None:
                steps.undo.append(('nvmf_subsystem_remove_ns', {'nqn': args.nqn, 'nsid': nsid}))
            steps.call('nvmf_ns_add_host', {'nqn': args.nqn, 'nsid': nsid, 'host': args.host})
            return {'nqn': args.nqn, 'nsid': nsid, 'host': args.host, 'bdev_name': args.name, 'group': group}

        _print_result(_run_steps(args.client, 'bdev_ioband_nvmf_export', body))

    p = p_nvmf = subparsers.add_parser(
        'bdev_ioband_nvmf_export',
        help="Export a tenant's ioband bdev as a namespace of an NVMe-oF subsystem visible to its host only",
        description='One tenant, one call: create the ioband bdev NAME over BASE bound to '
                    'initiator:HOSTNQN in SHARE (with -b; without it NAME must exist, bound so), '
                    'set its weight or range, let HOSTNQN connect to the subsystem NQN (unless it '
                    'may already), add NAME as a namespace that no host sees by itself '
                    '(nvmf_subsystem_add_ns no_auto_visible) and make it visible to HOSTNQN '
                    '(nvmf_ns_add_host). The subsystem and its listener must exist. If a step fails, '
                    'the steps before it are undone and the failing RPC\'s error is reported. '
                    'Prints {"nqn", "nsid", "host", "bdev_name", "group"}.')
    p.add_argument('nqn', type=nonempty, help='Subsystem NQN (existing)')
    p.add_argument('host', type=initiator_type, metavar='HOSTNQN', help="The tenant's host NQN")
    _add_tenant_bdev_options(p)
    p.add_argument('--nsid', type=_uint_type(1, U32_MAX - 1, 'nsid'), help='Namespace ID (default: the first free)')
    _checked(p, _check_tenant_args)
    p.set_defaults(func=bdev_ioband_nvmf_export)

    def bdev_ioband_nvmf_unexport(args):
        group = 'initiator:' + args.host

        def body(steps):
            sub = _subsystem(steps, args.nqn)
            if sub is None:  # dry run
                return None
            namespaces = sub.get('namespaces', [])
            mine = [ns for ns in namespaces if ns.get('bdev_name') == args.name]
            if not mine:
                steps.fail("subsystem '%s' has no namespace over '%s'" % (args.nqn, args.name))
            steps.call('nvmf_subsystem_remove_ns', {'nqn': args.nqn, 'nsid': mine[0]['nsid']}, changes=True)
            # The host keeps its access while another namespace here is over a bdev of its group.
            where = steps.call('bdev_ioband_get_settings', {'group': group}) or []
            others = {s.get('name') for s in where} & {ns.get('bdev_name') for ns in namespaces
                                                        if ns.get('nsid') != mine[0]['nsid']}
            if not others and any(h.get('nqn') == args.host for h in sub.get('hosts', [])):
                steps.call('nvmf_subsystem_remove_host', {'nqn': args.nqn, 'host': args.host}, changes=True)
            if not args.keep_bdev:
                steps.call('bdev_ioband_delete', {'name': args.name}, changes=True)

        _run_steps(args.client, 'bdev_ioband_nvmf_unexport', body)

    p = subparsers.add_parser(
        'bdev_ioband_nvmf_unexport',
        help='Undo bdev_ioband_nvmf_export: remove the namespace, the host\'s access, the ioband bdev',
        description='Remove the namespace over NAME from the subsystem NQN, HOSTNQN\'s access to the '
                    'subsystem (unless another namespace there is over a bdev of its group), and the '
                    'ioband bdev NAME (unless --keep-bdev). Stops at the first RPC that fails and '
                    'reports its error; what was removed before it stays removed.')
    p.add_argument('nqn', type=nonempty, help='Subsystem NQN')
    p.add_argument('host', type=initiator_type, metavar='HOSTNQN', help="The tenant's host NQN")
    p.add_argument('-n', '--name', required=True, type=nonempty, help="The tenant's ioband bdev")
    p.add_argument('--keep-bdev', action='store_true', help='Keep the ioband bdev')
    p.set_defaults(func=bdev_ioband_nvmf_unexport)

    # ---------------------------------------------------------------- iSCSI
    def bdev_ioband_iscsi_export(args):
        _check_tenant_args(p_iscsi, args)
        group = 'initiator:' + args.initiator_iqn

        def body(steps):
            # Read first, create after: a taken tag fails before anything exists.
            groups = steps.call('iscsi_get_initiator_groups')
            ig_tag = args.ig_tag
            if groups is not None:
                tags = {g.get('tag') for g in groups}
                if ig_tag is None:
                    ig_tag = max(tags | {0}) + 1
                elif ig_tag in tags:
                    steps.fail('initiator group %d exists already' % ig_tag)
            _tenant_bdev(steps, args, group)
            steps.call('iscsi_create_initiator_group',
                       {'tag': ig_tag, 'initiators': [args.initiator_iqn], 'netmasks': ['ANY']},
                       undo=('iscsi_delete_initiator_group', {'tag': ig_tag}))
            steps.call('iscsi_create_target_node', {
                'name': args.target, 'alias_name': args.alias or args.target,
                'luns': [{'bdev_name': args.name, 'lun_id': 0}],
                'pg_ig_maps': [{'pg_tag': args.pg_tag, 'ig_tag': ig_tag}],
                'queue_depth': args.queue_depth, 'disable_chap': True})
            return {'target': args.target, 'initiator': args.initiator_iqn, 'ig_tag': ig_tag,
                    'pg_tag': args.pg_tag, 'bdev_name': args.name, 'group': group}

        _print_result(_run_steps(args.client, 'bdev_ioband_iscsi_export', body))

    p = p_iscsi = subparsers.add_parser(
        'bdev_ioband_iscsi_export',
        help="Export a tenant's ioband bdev as an iSCSI target node whose initiator group is its IQN",
        description='One tenant, one call: create the ioband bdev NAME over BASE bound to '
                    'initiator:IQN in SHARE (with -b; without it NAME must exist, bound so), set its '
                    'weight or range, create an initiator group naming IQN only (any netmask) and a '
                    'target node TARGET with NAME as LUN 0, mapped to the portal group PG_TAG and '
                    'that initiator group. The portal group must exist. If a step fails, the steps '
                    'before it are undone and the failing RPC\'s error is reported. Prints '
                    '{"target", "initiator", "ig_tag", "pg_tag", "bdev_name", "group"}.')
    p.add_argument('target', type=nonempty, help='Target node name (SPDK prefixes its node base, '
                                                 'iqn.2016-06.io.spdk:, to a short name)')
    p.add_argument('initiator_iqn', type=initiator_type, metavar='IQN', help="The tenant's initiator IQN")
    _add_tenant_bdev_options(p)
    p.add_argument('--alias', type=nonempty, help='Target alias (default: TARGET)')
    p.add_argument('--pg-tag', type=_uint_type(1, 2 ** 31 - 1, 'portal group tag'), default=1,
                   help='Portal group tag (default 1)')
    p.add_argument('--ig-tag', type=_uint_type(1, 2 ** 31 - 1, 'initiator group tag'),
                   help='Tag of the new initiator group (default: one above the largest in use)')
    p.add_argument('--queue-depth', type=_uint_type(1, 2 ** 31 - 1, 'queue depth'), default=64,
                   help='Target queue depth (default 64)')
    _checked(p, _check_tenant_args)
    p.set_defaults(func=bdev_ioband_iscsi_export)

    def bdev_ioband_iscsi_unexport(args):
        def body(steps):
            nodes = steps.call('iscsi_get_target_nodes')
            if nodes is None:  # dry run
                return None
            node = next((n for n in nodes if n.get('name') == args.target or
                         n.get('name', '').endswith(':' + args.target)), None)
            if node is None:
                steps.fail("no iSCSI target node '%s'" % args.target)
            steps.call('iscsi_delete_target_node', {'name': node['name']}, changes=True)
            used = {m.get('ig_tag') for n in nodes if n is not node for m in n.get('pg_ig_maps', [])}
            for tag in sorted({m.get('ig_tag') for m in node.get('pg_ig_maps', [])} - used):
                steps.call('iscsi_delete_initiator_group', {'tag': tag}, changes=True)
            if not args.keep_bdev:
                ioband = {d for s in steps.call('bdev_ioband_get_devices') or [] for d in s.get('devices', [])}
                for lun in node.get('luns', []):
                    if lun.get('bdev_name') in ioband:
                        steps.call('bdev_ioband_delete', {'name': lun['bdev_name']}, changes=True)

        _run_steps(args.client, 'bdev_ioband_iscsi_unexport', body)

    p = subparsers.add_parser(
        'bdev_ioband_iscsi_unexport',
        help='Undo bdev_ioband_iscsi_export: remove the target node, its initiator group, the ioband bdev',
        description='Delete the target node TARGET, its initiator groups that no other target node '
                    'uses, and its ioband LUN bdevs (unless --keep-bdev). Stops at the first RPC '
                    'that fails and reports its error; what was removed before it stays removed.')
    p.add_argument('target', type=nonempty, help='Target node name (full, or as given to the export)')
    p.add_argument('--keep-bdev', action='store_true', help='Keep the ioband bdev')
    p.set_defaults(func=bdev_ioband_iscsi_unexport)
