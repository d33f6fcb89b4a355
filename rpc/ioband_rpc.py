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
which spdk-rpc prints before exiting non-zero. This module only builds parameters and prints
replies: it never catches the client's exceptions.

Methods: bdev_ioband_create, bdev_ioband_delete, bdev_ioband_get_devices,
bdev_ioband_set_device, bdev_ioband_get_settings, bdev_ioband_set_settings,
bdev_ioband_get_iostat, and the embedded host's bdev_model_create / bdev_model_delete.
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
    def bdev_ioband_create(args):
        _print_json_result(args.client.call('bdev_ioband_create', _params(
            name=args.name,
            base_bdev_name=args.base_bdev_name,
            share=args.share,
            **{d: getattr(args, d) for d in SHARE_KNOB_DESTS})))

    p = subparsers.add_parser(
        'bdev_ioband_create',
        help='Create an ioband bdev over a base bdev, in a share (created with the first member)',
        description='Create an ioband bdev over BASE. The bdev joins SHARE (default: its own '
                    'name); the share knobs given here create the share or must match it.')
    p.add_argument('-b', '--base-bdev-name', required=True, type=nonempty, help='Name of the existing base bdev')
    p.add_argument('-n', '--name', required=True, type=nonempty, help='Name of the new ioband bdev')
    p.add_argument('--share', type=nonempty, help='Share (dm-ioband device group) to join; default: the bdev name')
    _add_share_knobs(p)
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
    p.add_argument('-n', '--name', type=nonempty, help='Only this ioband bdev')
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
    p.add_argument('name', nargs='?', type=nonempty, help='ioband bdev name')
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
        _print_result(args.client.call('bdev_ioband_get_iostat', _params(
            name=args.name, group=_group_of(args))))

    p = subparsers.add_parser(
        'bdev_ioband_get_iostat',
        help='Show per-group I/O counters, bytes, queue depth and throttled time')
    p.add_argument('-n', '--name', type=nonempty, help='Only this ioband bdev')
    _add_group_options(p, 'Only this group')
    p.set_defaults(func=bdev_ioband_get_iostat)

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
