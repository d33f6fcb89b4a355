#!/usr/bin/env python3
#  SPDX-License-Identifier: BSD-3-Clause
"""Writes the seed corpora of the front-end targets (issue #11) into fuzz/seeds/<target>/:
iscsi_conn (PDUs from RFC 7143's formats: logins with and without digests, then SCSI
commands, Data-Out after R2T, TMF, NOP-Out, Text, Logout), nbd_conn (the fixed newstyle
handshake's options, then requests with simple and structured replies) and scsi_cdb (CDBs
of every command the SCSI layer knows). The first byte of an iscsi_conn or nbd_conn seed
picks how the rest is cut into reads (0: at once; 1..127: that many bytes; above: multiples
of 64). Also writes the login-key dictionary fuzz/iscsi.dict and fuzz/nbd.dict.

Run from anywhere: python3 fuzz/make_frontend_seeds.py. The seeds are committed.
"""

import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 'iqn.2016-06.io.spdk:disk1'
INITIATOR = 'iqn.2026-01.org.fuzz:hostile'


def write(target, data):
    folder = os.path.join(HERE, 'seeds', target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), 'wb') as f:
        f.write(data)


# --------------------------------------------------------------------------------------
# iSCSI (RFC 7143 section 11)

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return struct.pack('<I', c ^ 0xFFFFFFFF)


def bhs(opcode, flags, itt, dlen=0, lun=0, f20=0, f24=0, f28=0, f32=b'', tail=b''):
    """48 bytes: opcode, flags, 2 bytes opcode-specific, AHS 0, DataSegmentLength, LUN or
    ISID/TSIH, ITT, then the words at 20, 24, 28 and the 16 bytes at 32."""
    h = struct.pack('>BBH', opcode, flags, 0)
    h += bytes([0]) + struct.pack('>I', dlen)[1:]
    h += struct.pack('>Q', lun) if isinstance(lun, int) else lun
    h += struct.pack('>IIII', itt, f20, f24, f28)
    h += (f32 + tail).ljust(16, b'\0')[:16]
    assert len(h) == 48
    return h


def pdu(h, data=b'', digests=(False, False)):
    out = h + (crc32c(h) if digests[0] else b'')
    if data:
        padded = data + b'\0' * (-len(data) % 4)
        out += padded + (crc32c(padded) if digests[1] else b'')
    return out


def kv(pairs):
    return b''.join(('%s=%s' % p).encode() + b'\0' for p in pairs)


ISID = bytes([0x80, 0, 0, 0x12, 0x34, 0x56])


def login(flags, pairs, tsih=0, itt=1, cmd_sn=1):
    data = kv(pairs)
    h = bytearray(bhs(0x43, flags, itt, len(data), ISID + struct.pack('>H', tsih),
                      f24=cmd_sn))
    h[20:22] = b'\0\1'  # CID 1 (the word at 20 holds CID and reserved)
    return pdu(bytes(h), data)


SECURITY = [('InitiatorName', INITIATOR), ('SessionType', 'Normal'),
            ('TargetName', TARGET), ('AuthMethod', 'None')]


def operational(digest):
    d = 'CRC32C' if digest else 'None'
    return [('HeaderDigest', d), ('DataDigest', d), ('ImmediateData', 'Yes'),
            ('InitialR2T', 'Yes'), ('MaxRecvDataSegmentLength', '8192'),
            ('FirstBurstLength', '4096'), ('MaxBurstLength', '16384'),
            ('MaxOutstandingR2T', '1'), ('ErrorRecoveryLevel', '0'),
            ('DefaultTime2Wait', '2'), ('DefaultTime2Retain', '0'),
            ('MaxConnections', '1'), ('DataPDUInOrder', 'Yes'),
            ('DataSequenceInOrder', 'Yes')]


def full_login(digest=False):
    return login(0x81, SECURITY) + login(0x87, operational(digest))


def cdb10(op, lba, blocks, flags=0):
    return struct.pack('>BBIBHB', op, flags, lba, 0, blocks, 0)


def cdb16(op, lba, blocks, flags=0):
    return struct.pack('>BBQIBB', op, flags, lba, blocks, 0, 0)


def scsi(itt, cmd_sn, cdb, edtl, read=False, write=False, data=b'', dg=(False, False)):
    flags = 0x80 | (0x40 if read else 0) | (0x20 if write else 0) | 1
    return pdu(bhs(0x01, flags, itt, len(data), 0, edtl, cmd_sn, 1, cdb), data, dg)


def data_out(itt, ttt, offset, data, final=True, data_sn=0, dg=(False, False)):
    h = bhs(0x05, 0x80 if final else 0, itt, len(data), 0, ttt, 0, 1,
            struct.pack('>III', 0, data_sn, offset))
    return pdu(h, data, dg)


def nop(itt, cmd_sn, data=b'', dg=(False, False)):
    return pdu(bhs(0x40, 0x80, itt, len(data), 0, 0xFFFFFFFF, cmd_sn, 1), data, dg)


def text_req(itt, cmd_sn, pairs, dg=(False, False)):
    data = kv(pairs)
    return pdu(bhs(0x04, 0x80, itt, len(data), 0, 0xFFFFFFFF, cmd_sn, 1), data, dg)


def tmf(itt, cmd_sn, function, rtt=0xFFFFFFFF, dg=(False, False)):
    return pdu(bhs(0x42, 0x80 | function, itt, 0, 0, rtt, cmd_sn, 1), b'', dg)


def logout(itt, cmd_sn, reason=0, dg=(False, False)):
    h = bytearray(bhs(0x46, 0x80 | reason, itt, 0, 0, 0, cmd_sn, 1))
    h[20:22] = b'\0\1'
    return pdu(bytes(h), b'', dg)


def pattern(n, seed=1):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def iscsi_sessions(digest):
    """(name, bytes after the login) for one session each."""
    dg = (digest, digest)
    unmap_list = struct.pack('>HH4x', 22, 16) + struct.pack('>QI4x', 8, 4)
    caw = b'\0' * 512 + pattern(512, 5)
    out = {
        'read': scsi(1, 1, cdb10(0x28, 0, 8), 4096, read=True, dg=dg),
        'write-immediate': scsi(1, 1, cdb10(0x2a, 16, 2), 1024, write=True,
                                data=pattern(1024), dg=dg)
        + scsi(2, 2, cdb10(0x28, 16, 2), 1024, read=True, dg=dg),
        # 8 blocks: 1024 immediate, the rest after R2T 1 (TTT 1, offset 1024).
        'write-r2t': scsi(1, 1, cdb10(0x2a, 32, 8), 4096, write=True,
                          data=pattern(1024), dg=dg)
        + data_out(1, 1, 1024, pattern(4096)[1024:2560], final=False, dg=dg)
        + data_out(1, 1, 2560, pattern(4096)[2560:], data_sn=1, dg=dg),
        'write-r2t-only': scsi(1, 1, cdb16(0x8a, 40, 4), 2048, write=True, dg=dg)
        + data_out(1, 1, 0, pattern(2048), dg=dg),
        'inquiry': scsi(1, 1, bytes([0x12, 0, 0, 0, 96, 0]), 96, read=True, dg=dg)
        + scsi(2, 2, bytes([0x12, 1, 0x83, 0, 255, 0]), 255, read=True, dg=dg)
        + scsi(3, 3, bytes([0x25] + [0] * 9), 8, read=True, dg=dg)
        + scsi(4, 4, bytes([0x9e, 0x10] + [0] * 8 + [0, 0, 0, 32, 0, 0]), 32, read=True,
               dg=dg)
        + scsi(5, 5, bytes([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), 256, read=True, dg=dg)
        + scsi(6, 6, bytes([0x1a, 0, 0x3f, 0, 255, 0]), 255, read=True, dg=dg)
        + scsi(7, 7, bytes([0, 0, 0, 0, 0, 0]), 0, dg=dg),
        'unmap': scsi(1, 1, bytes([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), 24, write=True,
                      data=unmap_list, dg=dg)
        + scsi(2, 2, cdb16(0x93, 64, 8, 0x08), 512, write=True, data=b'\0' * 512, dg=dg)
        + scsi(3, 3, cdb10(0x35, 0, 0), 0, dg=dg),
        'compare-and-write': scsi(1, 1, struct.pack('>BBQ3xBBB', 0x89, 0, 200, 1, 0, 0),
                                  1024, write=True, data=caw, dg=dg),
        'tmf': scsi(1, 1, cdb10(0x2a, 48, 8), 4096, write=True, data=pattern(1024), dg=dg)
        + tmf(2, 2, 1, rtt=1, dg=dg) + tmf(3, 3, 5, dg=dg) + tmf(4, 4, 6, dg=dg),
        'nop-text-logout': nop(1, 1, b'ping', dg=dg) + nop(0xFFFFFFFF, 2, dg=dg)
        + text_req(2, 2, [('SendTargets', 'All')], dg=dg) + logout(3, 3, dg=dg),
        'window': b''.join(scsi(i, i, cdb10(0x28, i, 1), 512, read=True, dg=dg)
                           for i in range(1, 20)),
        'bad-after-login': scsi(1, 1, cdb10(0x28, 0, 1), 512, read=True, dg=dg)
        + b'\xff' * 48,
    }
    return out


def iscsi_seeds():
    for digest in (False, True):
        for name, rest in iscsi_sessions(digest).items():
            stream = full_login(digest) + rest
            for pick in (0, 7, 130):
                write('iscsi_conn', bytes([pick]) + stream)
    # Discovery, a login in one step, a refused login, half a PDU.
    disc = login(0x87, [('InitiatorName', INITIATOR), ('SessionType', 'Discovery'),
                        ('AuthMethod', 'None'), ('HeaderDigest', 'None'),
                        ('DataDigest', 'None')])
    write('iscsi_conn', b'\x00' + disc + text_req(1, 1, [('SendTargets', 'All')])
          + logout(2, 2))
    write('iscsi_conn', b'\x00' + login(0x87, SECURITY + operational(False))
          + scsi(1, 1, cdb10(0x28, 1, 1), 512, read=True))
    write('iscsi_conn', b'\x00' + login(0x81, [('InitiatorName', INITIATOR),
                                               ('TargetName', 'iqn.x:nope')]))
    write('iscsi_conn', b'\x05' + full_login()[:70])


ISCSI_KEYS = ['InitiatorName', 'TargetName', 'SessionType', 'AuthMethod', 'HeaderDigest',
              'DataDigest', 'MaxConnections', 'InitialR2T', 'ImmediateData',
              'MaxRecvDataSegmentLength', 'MaxBurstLength', 'FirstBurstLength',
              'DefaultTime2Wait', 'DefaultTime2Retain', 'MaxOutstandingR2T',
              'DataPDUInOrder', 'DataSequenceInOrder', 'ErrorRecoveryLevel', 'SendTargets',
              'TargetAlias', 'InitiatorAlias', 'TargetPortalGroupTag', 'OFMarker', 'IFMarker',
              'X-com.example.key']
ISCSI_VALUES = ['None', 'CRC32C', 'CRC32C,None', 'Yes', 'No', 'Normal', 'Discovery', 'All',
                'CHAP', '0', '1', '512', '8192', '262144', '16777215', '16777216',
                '4294967296', TARGET, 'Irrelevant', 'Reject', 'NotUnderstood']


def dict_line(token):
    return '"%s"' % ''.join(c if 32 <= ord(c) < 127 and c not in '"\\' else '\\x%02x' % ord(c)
                            for c in token)


def write_dicts():
    lines = ['# iSCSI login/text keys and values (generated by make_frontend_seeds.py)']
    lines += [dict_line(k + '=') for k in ISCSI_KEYS]
    lines += [dict_line(v + '\0') for v in ISCSI_VALUES]
    lines += [dict_line(k + '=' + v + '\0') for k, v in [
        ('HeaderDigest', 'CRC32C'), ('DataDigest', 'CRC32C'), ('SessionType', 'Discovery'),
        ('AuthMethod', 'None'), ('TargetName', TARGET), ('SendTargets', 'All')]]
    with open(os.path.join(HERE, 'iscsi.dict'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    nbd = ['# NBD magics and the export name (generated by make_frontend_seeds.py)',
           dict_line(bytes.fromhex('49484156454f5054').decode('latin1')),
           dict_line('\x25\x60\x95\x13'), dict_line('disk')]
    with open(os.path.join(HERE, 'nbd.dict'), 'w') as f:
        f.write('\n'.join(nbd) + '\n')


# --------------------------------------------------------------------------------------
# NBD (NetworkBlockDevice/nbd doc/proto.md)

IHAVEOPT = b'IHAVEOPT'


def option(opt, data=b''):
    return IHAVEOPT + struct.pack('>II', opt, len(data)) + data


def info_data(name=b'disk', infos=()):
    return struct.pack('>I', len(name)) + name + struct.pack('>H', len(infos)) + b''.join(
        struct.pack('>H', i) for i in infos)


def request(cmd, handle, offset, length, flags=0, data=b''):
    return struct.pack('>IHHQQI', 0x25609513, flags, cmd, handle, offset, length) + data


def nbd_requests():
    blk = pattern(4096, 3)
    return (request(1, 1, 0, 4096, data=blk) + request(0, 2, 0, 4096)
            + request(1, 3, 8192, 512, flags=1, data=blk[:512]) + request(3, 4, 0, 0)
            + request(4, 5, 4096, 4096) + request(6, 6, 12288, 1024, flags=1)
            + request(6, 7, 16384, 512, flags=2) + request(0, 8, 0, 512, flags=4)
            + request(0, 9, 524288 - 512, 1024) + request(0, 10, 1, 511)
            + request(9, 11, 0, 512) + request(2, 12, 0, 0))


def nbd_seeds():
    flags = struct.pack('>I', 3)
    go = option(7, info_data(b'disk', (0, 3)))
    streams = {
        'simple': flags + go + nbd_requests(),
        'structured': flags + option(8) + option(10, struct.pack('>I', 4) + b'disk'
                                                   + struct.pack('>I', 1)
                                                   + struct.pack('>I', 15)
                                                   + b'base:allocation') + go + nbd_requests(),
        'list-info': flags + option(3) + option(6, info_data(b'')) + option(6, info_data(b'x'))
        + option(9) + option(11) + option(99, b'junk') + go + nbd_requests(),
        'export-name': flags + option(1, b'disk') + b'\0' * 124 + nbd_requests(),
        'export-name-nozeroes': flags + option(1, b'') + nbd_requests(),
        'abort': flags + option(2),
        'old-flags': struct.pack('>I', 1) + option(1, b'disk') + b'\0' * 124
        + request(0, 1, 0, 512),
        'bad-magic': flags + go + b'\x25\x60\x95\x14' + b'\0' * 24,
        'write-past-end': flags + option(8) + go + request(1, 1, 524288, 512, data=blk512())
        + request(0, 2, 0, 512, flags=4),
    }
    for name, stream in streams.items():
        for pick in (0, 5, 140):
            write('nbd_conn', bytes([pick]) + stream)


def blk512():
    return pattern(512, 9)


# --------------------------------------------------------------------------------------
# SCSI CDBs: [geometry, fail mask, cdb length, cdb, data-out]

def scsi_seeds():
    cdbs = [
        (bytes([0, 0, 0, 0, 0, 0]), b''),
        (bytes([0x03, 0, 0, 0, 252, 0]), b''),
        (bytes([0x12, 0, 0, 0, 36, 0]), b''),
        (bytes([0x12, 1, 0x00, 0, 255, 0]), b''),
        (bytes([0x12, 1, 0x80, 0, 255, 0]), b''),
        (bytes([0x12, 1, 0x83, 1, 0, 0]), b''),
        (bytes([0x12, 1, 0xb0, 0, 64, 0]), b''),
        (bytes([0x12, 1, 0xb1, 0, 64, 0]), b''),
        (bytes([0x12, 1, 0xb2, 0, 8, 0]), b''),
        (bytes([0x25] + [0] * 9), b''),
        (bytes([0x9e, 0x10] + [0] * 8 + [0, 0, 0, 32, 0, 0]), b''),
        (bytes([0x08, 0, 0, 1, 2, 0]), b''),
        (cdb10(0x28, 4, 8), b''),
        (struct.pack('>BBIIBB', 0xa8, 0, 2, 3, 0, 0), b''),
        (cdb16(0x88, 1, 5), b''),
        (bytes([0x0a, 0, 0, 1, 2, 0]), pattern(1024)),
        (cdb10(0x2a, 4, 2, 0x08), pattern(1024)),
        (cdb10(0x2a, 4, 2), pattern(700)),
        (struct.pack('>BBIIBB', 0xaa, 0, 2, 1, 0, 0), pattern(512)),
        (cdb16(0x8a, 9, 1), pattern(512)),
        (cdb10(0x2e, 3, 1), pattern(512)),
        (cdb16(0x8e, 3, 1), pattern(512)),
        (cdb10(0x2f, 0, 4), b''),
        (cdb10(0x2f, 0, 1, 0x02), pattern(512)),
        (cdb16(0x8f, 0, 1, 0x06), pattern(512)),
        (cdb10(0x35, 0, 0), b''),
        (cdb16(0x91, 0, 0), b''),
        (bytes([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
         struct.pack('>HH4x', 22, 16) + struct.pack('>QI4x', 2, 3)),
        (cdb10(0x41, 1, 4), pattern(512)),
        (cdb10(0x41, 1, 4, 0x08), pattern(512)),
        (cdb16(0x93, 0, 0, 0x01), b''),
        (struct.pack('>BBQ3xBBB', 0x89, 0, 1, 1, 0, 0), b'\0' * 512 + pattern(512)),
        (bytes([0x1a, 0, 0x08, 0, 255, 0]), b''),
        (bytes([0x5a, 0, 0x3f, 0, 0, 0, 0, 1, 0, 0]), b''),
        (bytes([0x1b, 0, 0, 0, 1, 0]), b''),
        (bytes([0x1e, 0, 0, 0, 1, 0]), b''),
        (bytes([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), b''),
        (bytes([0x99] + [0] * 9), b''),
    ]
    for cdb, data in cdbs:
        for geometry, fail in ((16, 0), (0x40 + 5, 0), (0x80 | 8, 0), (16, 0x41), (16, 0x80),
                               (0, 0)):
            write('scsi_cdb', bytes([geometry, fail, len(cdb)]) + cdb + data)


def main():
    iscsi_seeds()
    nbd_seeds()
    scsi_seeds()
    write_dicts()


if __name__ == '__main__':
    main()
