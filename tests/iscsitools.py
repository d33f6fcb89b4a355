#  SPDX-License-Identifier: BSD-3-Clause
"""A minimal iSCSI initiator for the end-to-end tests, written from RFC 7143: login (with a
status class/detail to check refusals), READ(10)/WRITE(10) with immediate data and R2T,
logout. Enough to write a pattern and read it back; the conformance and load come from
libiscsi's own tools (iscsi-test-cu, iscsi-perf).
"""

import socket
import struct

BHS = 48


class LoginRefused(Exception):
    def __init__(self, status_class, detail):
        super().__init__('login refused: class %d detail %#04x' % (status_class, detail))
        self.status_class = status_class
        self.detail = detail


def _pairs(d):
    return b''.join(('%s=%s' % kv).encode() + b'\0' for kv in d.items())


def _pad(data):
    return data + b'\0' * ((4 - len(data) % 4) % 4)


class Session:
    def __init__(self, host, port, target, initiator, immediate_data=True, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.itt = 1
        self.cmd_sn = 1
        self.exp_stat_sn = 0
        self.burst = 0
        self.login(target, initiator, immediate_data)

    def close(self):
        self.sock.close()

    def _send(self, bhs, data=b''):
        bhs = bytearray(bhs)
        bhs[5:8] = len(data).to_bytes(3, 'big')
        self.sock.sendall(bytes(bhs) + _pad(data))

    def _recv_exact(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError('target closed the connection')
            buf += chunk
        return buf

    def recv(self):
        bhs = self._recv_exact(BHS)
        ahs = bhs[4] * 4
        dlen = int.from_bytes(bhs[5:8], 'big')
        rest = self._recv_exact(ahs + dlen + (4 - dlen % 4) % 4)
        data = rest[ahs:ahs + dlen]
        op = bhs[0] & 0x3f
        if op in (0x21, 0x22, 0x23, 0x24, 0x26, 0x3f) or (op == 0x25 and bhs[1] & 1) or (op == 0x20):
            self.exp_stat_sn = struct.unpack('>I', bhs[24:28])[0] + 1
        return bhs, data

    def login(self, target, initiator, immediate_data):
        keys = {'InitiatorName': initiator, 'SessionType': 'Normal', 'AuthMethod': 'None'}
        if target is None:
            keys['SessionType'] = 'Discovery'
        else:
            keys['TargetName'] = target
        # Security stage, transit to operational.
        self._login_pdu(0x80 | (0 << 2) | 1, keys)
        ops = {'HeaderDigest': 'None', 'DataDigest': 'None', 'MaxRecvDataSegmentLength': '65536',
               'ErrorRecoveryLevel': '0', 'DefaultTime2Wait': '2', 'DefaultTime2Retain': '0'}
        if target is not None:
            ops.update({'InitialR2T': 'Yes', 'ImmediateData': 'Yes' if immediate_data else 'No',
                        'MaxBurstLength': '262144', 'FirstBurstLength': '65536',
                        'MaxOutstandingR2T': '1', 'MaxConnections': '1'})
        answers = self._login_pdu(0x80 | (1 << 2) | 3, ops)
        self.immediate = answers.get('ImmediateData') == 'Yes'
        self.first_burst = int(answers.get('FirstBurstLength', '65536'))
        self.max_recv = int(answers.get('MaxRecvDataSegmentLength', '8192'))
        return answers

    def _login_pdu(self, flags, keys):
        bhs = bytearray(BHS)
        bhs[0] = 0x43
        bhs[1] = flags
        bhs[8:14] = bytes([0x80, 0, 0, 0x12, 0x34, 0x56])
        bhs[16:20] = struct.pack('>I', self.itt)
        bhs[24:28] = struct.pack('>I', self.cmd_sn)
        bhs[28:32] = struct.pack('>I', self.exp_stat_sn)
        self._send(bhs, _pairs(keys))
        rsp, data = self.recv()
        if rsp[0] & 0x3f != 0x23:
            raise ConnectionError('expected a Login Response, got opcode %#x' % rsp[0])
        if rsp[36] != 0:
            raise LoginRefused(rsp[36], rsp[37])
        self.tsih = rsp[14:16]
        return dict(kv.split('=', 1) for kv in data.decode().split('\0') if kv)

    def text(self, keys):
        bhs = bytearray(BHS)
        bhs[0] = 0x04
        bhs[1] = 0x80
        self.itt += 1
        bhs[16:20] = struct.pack('>I', self.itt)
        bhs[20:24] = b'\xff\xff\xff\xff'
        bhs[24:28] = struct.pack('>I', self.cmd_sn)
        bhs[28:32] = struct.pack('>I', self.exp_stat_sn)
        self.cmd_sn += 1
        self._send(bhs, _pairs(keys))
        rsp, data = self.recv()
        return [kv.split('=', 1) for kv in data.decode().split('\0') if kv]

    def _cmd(self, cdb, edtl, read, write, immediate=b''):
        bhs = bytearray(BHS)
        bhs[0] = 0x01
        bhs[1] = 0x80 | (0x40 if read else 0) | (0x20 if write else 0) | 1
        self.itt += 1
        itt = self.itt
        bhs[16:20] = struct.pack('>I', itt)
        bhs[20:24] = struct.pack('>I', edtl)
        bhs[24:28] = struct.pack('>I', self.cmd_sn)
        bhs[28:32] = struct.pack('>I', self.exp_stat_sn)
        bhs[32:32 + len(cdb)] = cdb
        self.cmd_sn += 1
        self._send(bhs, immediate)
        return itt

    def scsi(self, cdb, data_out=b'', read_len=0):
        """(status, data-in, sense) of one command; R2Ts are answered with data_out."""
        imm = data_out[:self.first_burst] if self.immediate else b''
        itt = self._cmd(cdb, len(data_out) or read_len, read_len > 0, len(data_out) > 0, imm)
        data_in = bytearray()
        while True:
            bhs, data = self.recv()
            op = bhs[0] & 0x3f
            if op == 0x31:  # R2T
                ttt = bhs[20:24]
                offset, length = struct.unpack('>II', bhs[40:48])
                sn = 0
                sent = 0
                while sent < length:
                    n = min(self.max_recv, length - sent)
                    out = bytearray(BHS)
                    out[0] = 0x05
                    out[1] = 0x80 if sent + n == length else 0
                    out[16:20] = struct.pack('>I', itt)
                    out[20:24] = ttt
                    out[28:32] = struct.pack('>I', self.exp_stat_sn)
                    out[36:40] = struct.pack('>I', sn)
                    out[40:44] = struct.pack('>I', offset + sent)
                    self._send(out, data_out[offset + sent:offset + sent + n])
                    sent += n
                    sn += 1
            elif op == 0x25:  # Data-In
                offset = struct.unpack('>I', bhs[40:44])[0]
                assert offset == len(data_in), (offset, len(data_in))
                data_in += data
                if bhs[1] & 1:
                    return bhs[3], bytes(data_in), b''
            elif op == 0x21:  # SCSI Response
                sense = data[2:] if data else b''
                return bhs[3], bytes(data_in), sense
            else:
                raise ConnectionError('unexpected opcode %#x' % op)

    def write10(self, lba, blocks, data):
        cdb = struct.pack('>BBIBHB', 0x2a, 0, lba, 0, blocks, 0)
        return self.scsi(cdb, data_out=data)[0]

    def read10(self, lba, blocks, block_size):
        cdb = struct.pack('>BBIBHB', 0x28, 0, lba, 0, blocks, 0)
        status, data, _ = self.scsi(cdb, read_len=blocks * block_size)
        return status, data

    def logout(self):
        bhs = bytearray(BHS)
        bhs[0] = 0x46
        bhs[1] = 0x80
        self.itt += 1
        bhs[16:20] = struct.pack('>I', self.itt)
        bhs[24:28] = struct.pack('>I', self.cmd_sn)
        bhs[28:32] = struct.pack('>I', self.exp_stat_sn)
        self._send(bhs)
        rsp, _ = self.recv()
        self.close()
        return rsp[2]
