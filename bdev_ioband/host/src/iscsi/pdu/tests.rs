//! The framing: partial input, padding, digests (a flipped bit is caught), length limits.

use super::*;

fn sample(data: &[u8], d: Digests) -> Vec<u8> {
    let mut h = header(op::SCSI_CMD, 0x80, 0x1234);
    put32(&mut h, 24, 7);
    let mut out = Vec::new();
    emit(&mut out, h, data, d);
    out
}

#[test]
fn frames_round_trip_with_and_without_digests() {
    for d in [
        Digests::default(),
        Digests {
            header: true,
            data: false,
        },
        Digests {
            header: true,
            data: true,
        },
    ] {
        let data = b"hello";
        let buf = sample(data, d);
        let expect = 48 + 8 + if d.header { 4 } else { 0 } + if d.data { 4 } else { 0 };
        assert_eq!(buf.len(), expect);
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut], d, 1024).unwrap().map(|f| f.total), None);
        }
        let f = parse(&buf, d, 1024).unwrap().unwrap();
        assert_eq!(f.total, buf.len());
        assert_eq!(&buf[f.data_at..f.data_at + f.data_len], data);
        assert_eq!(f.bhs.itt(), 0x1234);
        assert_eq!(f.bhs.cmd_sn(), 7);
        assert_eq!(f.bhs.opcode(), op::SCSI_CMD);
        assert!(f.bhs.is_final());
    }
    // No data: no data digest.
    let d = Digests {
        header: true,
        data: true,
    };
    assert_eq!(sample(b"", d).len(), 52);
}

#[test]
fn corruption_and_length_limits_are_errors() {
    let d = Digests {
        header: true,
        data: true,
    };
    let mut buf = sample(b"data!", d);
    buf[20] ^= 1;
    assert_eq!(parse(&buf, d, 1024).unwrap_err(), PduError::HeaderDigest);
    let mut buf = sample(b"data!", d);
    buf[53] ^= 1;
    assert_eq!(parse(&buf, d, 1024).unwrap_err(), PduError::DataDigest);
    let buf = sample(&[0u8; 100], Digests::default());
    assert_eq!(
        parse(&buf, Digests::default(), 99).unwrap_err(),
        PduError::TooLong { len: 100, max: 99 }
    );
    // A header claiming 16 MiB is refused before anything waits for it.
    let mut h = [0u8; 48];
    h[5] = 0xff;
    assert!(parse(&h, Digests::default(), 1 << 20).is_err());
}

#[test]
fn reject_carries_the_rejected_header() {
    let buf = sample(b"", Digests::default());
    let f = parse(&buf, Digests::default(), 0).unwrap().unwrap();
    let mut out = Vec::new();
    let sns = Sns {
        stat_sn: 5,
        exp_cmd_sn: 6,
        max_cmd_sn: 70,
    };
    reject(
        &mut out,
        reject::PROTOCOL_ERROR,
        &f.bhs,
        sns,
        Digests::default(),
    );
    let r = parse(&out, Digests::default(), 48).unwrap().unwrap();
    assert_eq!(r.bhs.opcode(), op::REJECT);
    assert_eq!(r.bhs.raw[2], reject::PROTOCOL_ERROR);
    assert_eq!(r.bhs.u32_at(24), 5);
    assert_eq!(&out[48..96], &buf[..48]);
}
