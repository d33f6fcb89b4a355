//! Unit tests of the wire format.

use super::*;

fn option(opt: u32, data: &[u8]) -> Vec<u8> {
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&opt.to_be_bytes());
    v.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    v.extend_from_slice(data);
    v
}

pub(crate) fn request(cmd: u16, handle: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut v = REQUEST_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&cmd.to_be_bytes());
    v.extend_from_slice(&handle.to_be_bytes());
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v
}

#[test]
fn greeting_is_18_bytes_of_magic_and_flags() {
    let mut out = Vec::new();
    greeting(&mut out);
    assert_eq!(out.len(), 18);
    assert_eq!(&out[..8], b"NBDMAGIC");
    assert_eq!(&out[8..16], b"IHAVEOPT");
    assert_eq!(out[16..], [0, 3]);
}

#[test]
fn client_flags_need_four_bytes_and_known_bits() {
    assert_eq!(parse_client_flags(&[0, 0, 0]), Ok(None));
    assert_eq!(parse_client_flags(&[0, 0, 0, 3]), Ok(Some(3)));
    assert_eq!(
        parse_client_flags(&[0, 0, 0, 4]),
        Err(ProtoError::ClientFlags(4))
    );
}

#[test]
fn option_headers() {
    let o = option(OPT_GO, b"abc");
    assert_eq!(parse_option_header(&o[..15]), Ok(None));
    assert_eq!(
        parse_option_header(&o),
        Ok(Some(OptionHeader {
            option: OPT_GO,
            len: 3
        }))
    );
    let mut bad = o.clone();
    bad[0] ^= 1;
    assert!(matches!(
        parse_option_header(&bad),
        Err(ProtoError::OptionMagic(_))
    ));
    let mut long = o;
    long[12..16].copy_from_slice(&(MAX_OPTION_LEN + 1).to_be_bytes());
    assert!(matches!(
        parse_option_header(&long),
        Err(ProtoError::OptionTooLong { .. })
    ));
}

#[test]
fn info_requests() {
    let mut d = 4u32.to_be_bytes().to_vec();
    d.extend_from_slice(b"disk");
    d.extend_from_slice(&2u16.to_be_bytes());
    d.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    d.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    let (name, infos) = parse_info_request(&d).unwrap();
    assert_eq!(name, b"disk");
    assert_eq!(infos, vec![INFO_BLOCK_SIZE, INFO_EXPORT]);
    // Truncated, a name longer than the data, a count that does not match.
    assert!(parse_info_request(&d[..3]).is_none());
    assert!(parse_info_request(&d[..9]).is_none());
    assert!(parse_info_request(&d[..d.len() - 1]).is_none());
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&[0, 0]);
    assert!(parse_info_request(&huge).is_none());
}

#[test]
fn requests() {
    let r = request(CMD_READ, 7, 4096, 512);
    assert_eq!(parse_request(&r[..27], 1 << 20), Ok(None));
    let req = parse_request(&r, 1 << 20).unwrap().unwrap();
    assert_eq!(
        (req.cmd, req.handle, req.offset, req.len),
        (CMD_READ, 7, 4096, 512)
    );
    assert_eq!(req.payload_len(), 0);
    let w = request(CMD_WRITE, 1, 0, 4096);
    assert_eq!(
        parse_request(&w, 1 << 20).unwrap().unwrap().payload_len(),
        4096
    );
    assert_eq!(
        parse_request(&request(CMD_WRITE, 1, 0, 2 << 20), 1 << 20),
        Err(ProtoError::WriteTooLong {
            len: 2 << 20,
            max: 1 << 20
        })
    );
    // A big read is not malformed (it gets an error reply).
    assert!(parse_request(&request(CMD_READ, 1, 0, 2 << 20), 1 << 20).is_ok());
    let mut bad = r;
    bad[3] = 0;
    assert!(matches!(
        parse_request(&bad, 1 << 20),
        Err(ProtoError::RequestMagic(_))
    ));
}

#[test]
fn replies() {
    let mut out = Vec::new();
    simple_reply(&mut out, EINVAL, 9);
    assert_eq!(out.len(), SIMPLE_REPLY_LEN);
    assert_eq!(out[..4], SIMPLE_REPLY_MAGIC.to_be_bytes());
    assert_eq!(out[4..8], 22u32.to_be_bytes());
    out.clear();
    option_reply(&mut out, OPT_GO, REP_ACK, &[]);
    assert_eq!(out.len(), 20);
    out.clear();
    export_name_reply(&mut out, 1 << 20, 1, false);
    assert_eq!(out.len(), 8 + 2 + 124);
    out.clear();
    export_name_reply(&mut out, 1 << 20, 1, true);
    assert_eq!(out.len(), 10);
}

#[test]
fn structured_chunks_are_encoded_as_the_protocol_says() {
    let mut out = Vec::new();
    chunk_none(&mut out, 0x0102_0304_0506_0708);
    assert_eq!(out.len(), STRUCTURED_REPLY_LEN);
    assert_eq!(out[..4], [0x66, 0x8e, 0x33, 0xef]);
    assert_eq!(out[4..6], REPLY_FLAG_DONE.to_be_bytes());
    assert_eq!(out[6..8], REPLY_TYPE_NONE.to_be_bytes());
    assert_eq!(out[8..16], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(out[16..20], [0, 0, 0, 0]);

    out.clear();
    chunk_offset_data(&mut out, 9, 4096, b"abc", true).unwrap();
    assert_eq!(out.len(), STRUCTURED_REPLY_LEN + 8 + 3);
    assert_eq!(out[4..6], [0, 1], "done");
    assert_eq!(out[6..8], [0, 1], "OFFSET_DATA");
    assert_eq!(out[16..20], 11u32.to_be_bytes(), "offset + data");
    assert_eq!(out[20..28], 4096u64.to_be_bytes());
    assert_eq!(&out[28..], b"abc");
    out.clear();
    chunk_offset_data(&mut out, 9, 0, b"x", false).unwrap();
    assert_eq!(out[4..6], [0, 0], "not done");

    out.clear();
    chunk_error(&mut out, 3, EINVAL, "bad", None);
    assert_eq!(out[4..6], [0, 1]);
    assert_eq!(out[6..8], [0x80, 0x01], "ERROR");
    assert_eq!(
        out[16..20],
        9u32.to_be_bytes(),
        "error + message length + message"
    );
    assert_eq!(out[20..24], EINVAL.to_be_bytes());
    assert_eq!(out[24..26], 3u16.to_be_bytes());
    assert_eq!(&out[26..], b"bad");

    out.clear();
    chunk_error(&mut out, 3, EIO, "io", Some(1 << 20));
    assert_eq!(out[6..8], [0x80, 0x02], "ERROR_OFFSET");
    assert_eq!(out[16..20], 16u32.to_be_bytes());
    assert_eq!(out[20..24], EIO.to_be_bytes());
    assert_eq!(out[24..26], 2u16.to_be_bytes());
    assert_eq!(&out[26..28], b"io");
    assert_eq!(out[28..36], (1u64 << 20).to_be_bytes());
    assert_eq!(out.len(), 36);
}

#[test]
fn error_chunks_never_say_success_and_cap_their_message() {
    let mut out = Vec::new();
    chunk_error(&mut out, 1, 0, "", None);
    assert_eq!(out[16..20], 6u32.to_be_bytes());
    assert_eq!(
        out[20..24],
        EIO.to_be_bytes(),
        "an error of 0 would read as success"
    );
    // A message over 4096 bytes is cut, on a character boundary.
    out.clear();
    let long = "é".repeat(3000);
    chunk_error(&mut out, 1, EIO, &long, None);
    let msg_len = usize::from(u16::from_be_bytes([out[24], out[25]]));
    assert_eq!(msg_len, 4096);
    assert!(std::str::from_utf8(&out[26..]).is_ok());
    assert_eq!(out.len(), STRUCTURED_REPLY_LEN + 6 + msg_len);
    let mut odd = "a".to_owned();
    odd.push_str(&long);
    out.clear();
    chunk_error(&mut out, 1, EIO, &odd, None);
    let msg_len = usize::from(u16::from_be_bytes([out[24], out[25]]));
    assert_eq!(msg_len, 4095);
    assert!(std::str::from_utf8(&out[26..]).is_ok());
}

fn meta_request(name: &[u8], queries: &[&[u8]]) -> Vec<u8> {
    let mut d = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    d.extend_from_slice(name);
    d.extend_from_slice(&u32::try_from(queries.len()).unwrap().to_be_bytes());
    for q in queries {
        d.extend_from_slice(&u32::try_from(q.len()).unwrap().to_be_bytes());
        d.extend_from_slice(q);
    }
    d
}

#[test]
fn meta_context_requests() {
    let d = meta_request(b"disk", &[b"base:allocation", b"qemu:dirty-bitmap:x"]);
    let (name, queries) = parse_meta_context_request(&d).unwrap();
    assert_eq!(name, b"disk");
    assert_eq!(
        queries,
        vec![&b"base:allocation"[..], b"qemu:dirty-bitmap:x"]
    );
    let empty = meta_request(b"", &[]);
    let (name, queries) = parse_meta_context_request(&empty).unwrap();
    assert!(name.is_empty() && queries.is_empty());
    // Every truncation, a byte too many, a name or query longer than the data, a count
    // larger than the queries there are.
    for cut in 0..d.len() {
        assert!(
            parse_meta_context_request(&d[..cut]).is_none(),
            "cut at {cut}"
        );
    }
    let mut extra = d.clone();
    extra.push(0);
    assert!(parse_meta_context_request(&extra).is_none());
    let mut long_name = d.clone();
    long_name[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(parse_meta_context_request(&long_name).is_none());
    let mut many = meta_request(b"disk", &[]);
    many[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(parse_meta_context_request(&many).is_none());
}
