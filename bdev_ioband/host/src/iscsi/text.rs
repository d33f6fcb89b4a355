//! Text keys (RFC 7143 sections 6 and 13): `key=value` pairs separated by NUL, and the
//! negotiation of the operational keys a target answers (digests, burst lengths, R2T and
//! immediate data, connections, timers, error recovery, ordering).
//!
//! Threading: pure functions over the pairs; the outcome lives in the connection.

use serde::{Deserialize, Serialize};

/// Longest value of a key (RFC 7143: 255 bytes for most, 8192 for a few; more is refused).
pub const MAX_VALUE_LEN: usize = 8192;

/// Splits a text data segment into pairs; `None` for a pair without `=` or a key or value
/// that is not UTF-8 or too long.
pub fn parse_pairs(data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in data.split(|&b| b == 0) {
        if item.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(item).ok()?;
        let (k, v) = text.split_once('=')?;
        if k.is_empty() || k.len() > 63 || v.len() > MAX_VALUE_LEN {
            return None;
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Some(out)
}

/// Appends `key=value\0`.
pub fn push_pair(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// What the target offers (from `iscsi_set_options`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// MaxRecvDataSegmentLength the target declares (bytes it accepts per PDU).
    pub max_recv_data_segment_length_bytes: u32,
    /// MaxBurstLength.
    pub max_burst_length_bytes: u32,
    /// FirstBurstLength.
    pub first_burst_length_bytes: u32,
    /// ImmediateData.
    pub immediate_data: bool,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// MaxConnections.
    pub max_connections: u32,
    /// DefaultTime2Wait (seconds).
    pub default_time2wait_secs: u32,
    /// DefaultTime2Retain (seconds).
    pub default_time2retain_secs: u32,
}

impl Default for Offer {
    fn default() -> Offer {
        Offer {
            max_recv_data_segment_length_bytes: 256 * 1024,
            max_burst_length_bytes: 1024 * 1024,
            first_burst_length_bytes: 64 * 1024,
            immediate_data: true,
            initial_r2t: false,
            max_outstanding_r2t: 16,
            max_connections: 1,
            default_time2wait_secs: 2,
            default_time2retain_secs: 20,
        }
    }
}

/// The session's values once negotiated (RFC defaults until a key says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// CRC32C header digest.
    pub header_digest: bool,
    /// CRC32C data digest.
    pub data_digest: bool,
    /// Most data bytes the target may put in one PDU to the initiator.
    pub send_data_segment_bytes: u32,
    /// MaxBurstLength.
    pub max_burst_bytes: u32,
    /// FirstBurstLength.
    pub first_burst_bytes: u32,
    /// ImmediateData.
    pub immediate_data: bool,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            header_digest: false,
            data_digest: false,
            send_data_segment_bytes: 8192,
            max_burst_bytes: 262_144,
            first_burst_bytes: 65_536,
            immediate_data: true,
            initial_r2t: true,
            max_outstanding_r2t: 1,
        }
    }
}

fn num(v: &str, lo: u32, hi: u32) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n))
}

fn yes_no(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yn(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_owned()
}

/// Keys that only the initiator declares and the login itself consumes.
const DECLARED_BY_INITIATOR: [&str; 5] = [
    "InitiatorName",
    "InitiatorAlias",
    "TargetName",
    "SessionType",
    "AuthMethod",
];

/// Negotiates the operational keys among `pairs` against `offer`, updating `s`; returns
/// the answers to send. Keys the login consumes (names, session type, AuthMethod) are
/// skipped; unknown keys are answered `NotUnderstood`, bad values `Reject`.
pub fn negotiate(
    pairs: &[(String, String)],
    offer: &Offer,
    s: &mut Session,
    discovery: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        if DECLARED_BY_INITIATOR.contains(&k.as_str()) {
            continue;
        }
        let answer: Option<String> = match k.as_str() {
            "HeaderDigest" | "DataDigest" => {
                let pick = v.split(',').find(|c| *c == "None" || *c == "CRC32C");
                if let Some(p) = pick {
                    let on = p == "CRC32C";
                    if k == "HeaderDigest" {
                        s.header_digest = on;
                    } else {
                        s.data_digest = on;
                    }
                }
                Some(pick.unwrap_or("Reject").to_owned())
            }
            "MaxRecvDataSegmentLength" => {
                if let Some(n) = num(v, 512, 16_777_215) {
                    s.send_data_segment_bytes = n;
                }
                // Declarative: the target's own value goes out in `declare`.
                None
            }
            "MaxBurstLength" if !discovery => num(v, 512, 16_777_215).map(|n| {
                s.max_burst_bytes = n.min(offer.max_burst_length_bytes);
                s.first_burst_bytes = s.first_burst_bytes.min(s.max_burst_bytes);
                s.max_burst_bytes.to_string()
            }),
            "FirstBurstLength" if !discovery => num(v, 512, 16_777_215).map(|n| {
                s.first_burst_bytes = n.min(offer.first_burst_length_bytes).min(s.max_burst_bytes);
                s.first_burst_bytes.to_string()
            }),
            "ImmediateData" if !discovery => yes_no(v).map(|b| {
                s.immediate_data = b && offer.immediate_data;
                yn(s.immediate_data)
            }),
            "InitialR2T" if !discovery => yes_no(v).map(|b| {
                s.initial_r2t = b || offer.initial_r2t;
                yn(s.initial_r2t)
            }),
            "MaxOutstandingR2T" if !discovery => num(v, 1, 65535).map(|n| {
                s.max_outstanding_r2t = n.min(offer.max_outstanding_r2t).max(1);
                s.max_outstanding_r2t.to_string()
            }),
            "MaxConnections" if !discovery => {
                num(v, 1, 65535).map(|n| n.min(offer.max_connections).max(1).to_string())
            }
            "DefaultTime2Wait" => {
                num(v, 0, 3600).map(|n| n.max(offer.default_time2wait_secs).to_string())
            }
            "DefaultTime2Retain" => {
                num(v, 0, 3600).map(|n| n.min(offer.default_time2retain_secs).to_string())
            }
            "ErrorRecoveryLevel" => num(v, 0, 2).map(|_| "0".to_owned()),
            "DataPDUInOrder" | "DataSequenceInOrder" if !discovery => {
                yes_no(v).map(|_| "Yes".to_owned())
            }
            "IFMarker" | "OFMarker" => yes_no(v).map(|_| "No".to_owned()),
            "OFMarkInt" | "IFMarkInt" => Some("Irrelevant".to_owned()),
            "MaxBurstLength"
            | "FirstBurstLength"
            | "ImmediateData"
            | "InitialR2T"
            | "MaxOutstandingR2T"
            | "MaxConnections"
            | "DataPDUInOrder"
            | "DataSequenceInOrder" => Some("Irrelevant".to_owned()),
            _ => Some("NotUnderstood".to_owned()),
        };
        if let Some(a) = answer {
            out.push((k.clone(), a));
        } else if k != "MaxRecvDataSegmentLength" {
            out.push((k.clone(), "Reject".to_owned()));
        }
    }
    out
}

/// The first value of `key` among `pairs`.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_pairs(text.replace(' ', "\0").as_bytes()).unwrap()
    }

    #[test]
    fn parse_and_push_round_trip() {
        let mut buf = Vec::new();
        push_pair(&mut buf, "A", "1");
        push_pair(&mut buf, "TargetName", "iqn.x:y=z");
        let p = parse_pairs(&buf).unwrap();
        assert_eq!(p[1], ("TargetName".into(), "iqn.x:y=z".into()));
        assert!(parse_pairs(b"novalue\0").is_none());
        assert!(parse_pairs(&[0xff, b'=', b'1']).is_none());
        assert!(parse_pairs(b"=x").is_none());
    }

    #[test]
    fn operational_keys_take_the_rfc_outcome() {
        let offer = Offer::default();
        let mut s = Session::default();
        let p = pairs(
            "HeaderDigest=CRC32C,None DataDigest=None MaxRecvDataSegmentLength=65536 \
             MaxBurstLength=16776192 FirstBurstLength=262144 ImmediateData=Yes InitialR2T=No \
             MaxOutstandingR2T=64 MaxConnections=8 DefaultTime2Wait=0 DefaultTime2Retain=60 \
             ErrorRecoveryLevel=2 DataPDUInOrder=No DataSequenceInOrder=Yes X-foo=1 \
             IFMarker=No InitiatorName=iqn.a",
        );
        let a = negotiate(&p, &offer, &mut s, false);
        let ans = |k: &str| get(&a, k).map(str::to_owned);
        assert_eq!(ans("HeaderDigest").as_deref(), Some("CRC32C"));
        assert_eq!(ans("DataDigest").as_deref(), Some("None"));
        assert_eq!(ans("MaxBurstLength").as_deref(), Some("1048576"));
        assert_eq!(ans("FirstBurstLength").as_deref(), Some("65536"));
        assert_eq!(ans("ImmediateData").as_deref(), Some("Yes"));
        assert_eq!(ans("InitialR2T").as_deref(), Some("No"));
        assert_eq!(ans("MaxOutstandingR2T").as_deref(), Some("16"));
        assert_eq!(ans("MaxConnections").as_deref(), Some("1"));
        assert_eq!(ans("DefaultTime2Wait").as_deref(), Some("2"));
        assert_eq!(ans("DefaultTime2Retain").as_deref(), Some("20"));
        assert_eq!(ans("ErrorRecoveryLevel").as_deref(), Some("0"));
        assert_eq!(ans("DataPDUInOrder").as_deref(), Some("Yes"));
        assert_eq!(ans("X-foo").as_deref(), Some("NotUnderstood"));
        assert_eq!(ans("IFMarker").as_deref(), Some("No"));
        assert_eq!(ans("InitiatorName"), None);
        assert_eq!(ans("MaxRecvDataSegmentLength"), None);
        assert_eq!(
            s,
            Session {
                header_digest: true,
                data_digest: false,
                send_data_segment_bytes: 65536,
                max_burst_bytes: 1 << 20,
                first_burst_bytes: 65536,
                immediate_data: true,
                initial_r2t: false,
                max_outstanding_r2t: 16,
            }
        );
        // Bad values are rejected, the session keeps its value.
        let mut s2 = Session::default();
        let a = negotiate(
            &pairs("HeaderDigest=MD5 MaxBurstLength=12 ImmediateData=maybe"),
            &offer,
            &mut s2,
            false,
        );
        assert!(a.iter().all(|(_, v)| v == "Reject"), "{a:?}");
        assert_eq!(s2, Session::default());
        // A discovery session: session-wide keys are irrelevant.
        let a = negotiate(&pairs("MaxBurstLength=4096"), &offer, &mut s2, true);
        assert_eq!(get(&a, "MaxBurstLength"), Some("Irrelevant"));
    }
}
