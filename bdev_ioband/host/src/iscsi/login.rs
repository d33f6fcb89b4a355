//! The login phase (RFC 7143 sections 6 and 11.12-11.13): the security stage (AuthMethod
//! None only), operational negotiation, target lookup and access control, and the move to
//! full feature phase with the session's group `initiator:<IQN>`.
//!
//! Threading: runs inside the connection's poll on the main reactor.

use bdev_ioband_engine::{GroupKey, GroupType};

use super::conn::{Conn, Env, Phase};
use super::pdu::{self, op, Bhs};
use super::text;

/// Login status class/detail pairs.
mod status {
    pub const SUCCESS: (u8, u8) = (0, 0);
    pub const INITIATOR_ERROR: (u8, u8) = (2, 0x00);
    pub const AUTH_FAILURE: (u8, u8) = (2, 0x01);
    pub const NOT_AUTHORIZED: (u8, u8) = (2, 0x02);
    pub const NOT_FOUND: (u8, u8) = (2, 0x03);
    pub const UNSUPPORTED_VERSION: (u8, u8) = (2, 0x05);
    pub const TOO_MANY_CONNECTIONS: (u8, u8) = (2, 0x06);
    pub const MISSING_PARAMETER: (u8, u8) = (2, 0x07);
    pub const SESSION_DOES_NOT_EXIST: (u8, u8) = (2, 0x0a);
    pub const OUT_OF_RESOURCES: (u8, u8) = (3, 0x02);
}

const SECURITY: u8 = 0;
const OPERATIONAL: u8 = 1;
const FULL_FEATURE: u8 = 3;

impl Conn {
    /// Handles one Login Request.
    pub(super) fn login(
        &mut self,
        env: &Env<'_>,
        next_tsih: &mut u16,
        bhs: &Bhs,
        data: &[u8],
    ) -> Result<(), String> {
        let transit = bhs.flags() & 0x80 != 0;
        let cont = bhs.flags() & 0x40 != 0;
        let csg = (bhs.flags() >> 2) & 3;
        let nsg = bhs.flags() & 3;
        if bhs.raw[3] > 0 {
            // Version-min above 0.
            return self.login_fail(bhs, status::UNSUPPORTED_VERSION, "unsupported version");
        }
        if csg == 2 || (transit && (nsg == 2 || nsg < csg)) || csg < self.login_stage {
            return self.login_fail(bhs, status::INITIATOR_ERROR, "bad stage transition");
        }
        self.isid.copy_from_slice(&bhs.raw[8..14]);
        self.cid = bhs.u16_at(20);
        self.exp_cmd_sn = bhs.cmd_sn();
        self.login_text.extend_from_slice(data);
        if self.login_text.len() > 64 * 1024 {
            return Err("login text over 64 KiB".into());
        }
        if cont {
            // More text follows: acknowledge with an empty response in the same stage.
            return self.login_reply(bhs, false, csg, csg, status::SUCCESS, &[]);
        }
        let text_in = std::mem::take(&mut self.login_text);
        let Some(pairs) = text::parse_pairs(&text_in) else {
            return self.login_fail(bhs, status::INITIATOR_ERROR, "malformed login text");
        };
        let mut out = Vec::new();
        if self.initiator.is_none() {
            // The first request names the initiator, the session type and the target.
            let Some(name) = text::get(&pairs, "InitiatorName") else {
                return self.login_fail(bhs, status::MISSING_PARAMETER, "no InitiatorName");
            };
            let name = name.to_owned();
            if super::validate_iscsi_name(&name).is_err() {
                return self.login_fail(bhs, status::INITIATOR_ERROR, "bad InitiatorName");
            }
            if bhs.u16_at(14) != 0 {
                // Adding a connection to a session (MC/S): MaxConnections is 1.
                let known = false;
                let s = if known {
                    status::TOO_MANY_CONNECTIONS
                } else {
                    status::SESSION_DOES_NOT_EXIST
                };
                return self.login_fail(
                    bhs,
                    s,
                    "connections cannot join a session (MaxConnections=1)",
                );
            }
            self.discovery = match text::get(&pairs, "SessionType") {
                None | Some("Normal") => false,
                Some("Discovery") => true,
                Some(_) => return self.login_fail(bhs, status::INITIATOR_ERROR, "bad SessionType"),
            };
            if !self.discovery {
                let Some(tn) = text::get(&pairs, "TargetName") else {
                    return self.login_fail(bhs, status::MISSING_PARAMETER, "no TargetName");
                };
                let Some(t) = env
                    .targets
                    .iter()
                    .find(|t| t.config.name.eq_ignore_ascii_case(tn))
                else {
                    return self.login_fail(bhs, status::NOT_FOUND, &format!("no target {tn}"));
                };
                if !env.allowed(t, self.pg_tag, &name, Some(self.peer.ip())) {
                    return self.login_fail(
                        bhs,
                        status::NOT_AUTHORIZED,
                        &format!(
                            "{name} may not reach {tn} through portal group {}",
                            self.pg_tag
                        ),
                    );
                }
                let Ok(group) = GroupKey::from_parts(GroupType::Initiator, &name) else {
                    return self.login_fail(
                        bhs,
                        status::INITIATOR_ERROR,
                        "InitiatorName is not a valid group id",
                    );
                };
                self.group = Some(group);
                self.queue_depth = u32::try_from(t.config.queue_depth).unwrap_or(1).max(1);
                self.target = Some(t.clone());
                text::push_pair(&mut out, "TargetAlias", &t.config.alias_name);
            }
            if self.discovery || self.target.is_some() {
                text::push_pair(&mut out, "TargetPortalGroupTag", &self.pg_tag.to_string());
            }
            self.initiator = Some(name);
        }
        if csg == SECURITY {
            match text::get(&pairs, "AuthMethod") {
                Some(m) if m.split(',').any(|x| x == "None") => {
                    text::push_pair(&mut out, "AuthMethod", "None");
                    self.login_answered_security = true;
                }
                Some(_) => {
                    return self.login_fail(
                        bhs,
                        status::AUTH_FAILURE,
                        "only AuthMethod=None is supported",
                    )
                }
                None if self.login_answered_security => {}
                None => {
                    // No AuthMethod offered: None is the only one here; answer it.
                    text::push_pair(&mut out, "AuthMethod", "None");
                    self.login_answered_security = true;
                }
            }
        } else if text::get(&pairs, "AuthMethod").is_some() {
            return self.login_fail(
                bhs,
                status::INITIATOR_ERROR,
                "AuthMethod outside the security stage",
            );
        }
        let offer = env.opts.offer();
        let answers = text::negotiate(&pairs, &offer, &mut self.session, self.discovery);
        if let Some(t) = &self.target {
            if t.config.header_digest
                && text::get(&pairs, "HeaderDigest").is_some()
                && !self.session.header_digest
            {
                return self.login_fail(
                    bhs,
                    status::INITIATOR_ERROR,
                    "the target requires a header digest",
                );
            }
            if t.config.data_digest
                && text::get(&pairs, "DataDigest").is_some()
                && !self.session.data_digest
            {
                return self.login_fail(
                    bhs,
                    status::INITIATOR_ERROR,
                    "the target requires a data digest",
                );
            }
        }
        for (k, v) in &answers {
            text::push_pair(&mut out, k, v);
        }
        if csg == OPERATIONAL || (transit && nsg == FULL_FEATURE) {
            text::push_pair(
                &mut out,
                "MaxRecvDataSegmentLength",
                &offer.max_recv_data_segment_length_bytes.to_string(),
            );
        }
        self.login_stage = csg;
        if transit && nsg == FULL_FEATURE {
            if self.tsih == 0 {
                *next_tsih = next_tsih.wrapping_add(1).max(1);
                self.tsih = *next_tsih;
            }
            self.login_reply(bhs, true, csg, nsg, status::SUCCESS, &out)?;
            // Digests start with the first PDU after the final Login Response.
            self.digests = pdu::Digests {
                header: self.session.header_digest,
                data: self.session.data_digest,
            };
            self.phase = Phase::FullFeature;
            self.new_session = !self.discovery;
            return Ok(());
        }
        let (t, n) = if transit { (true, nsg) } else { (false, csg) };
        self.login_reply(bhs, t, csg, n, status::SUCCESS, &out)
    }

    fn login_reply(
        &mut self,
        bhs: &Bhs,
        transit: bool,
        csg: u8,
        nsg: u8,
        (class, detail): (u8, u8),
        data: &[u8],
    ) -> Result<(), String> {
        let mut h = pdu::header(op::LOGIN_RESP, 0, bhs.itt());
        if class == 0 {
            h[1] = (if transit { 0x80 } else { 0 }) | (csg << 2) | if transit { nsg } else { 0 };
        }
        h[2] = 0; // Version-max
        h[3] = 0; // Version-active
        h[8..14].copy_from_slice(&bhs.raw[8..14]);
        pdu::put16(&mut h, 14, if class == 0 { self.tsih } else { 0 });
        // StatSN: ExpStatSN of the first request starts it.
        if self.stat_sn == 0 && class == 0 {
            self.stat_sn = bhs.u32_at(28);
        }
        let mut sns = self.sns(true);
        sns.max_cmd_sn = self
            .exp_cmd_sn
            .wrapping_add(self.queue_depth.max(1))
            .wrapping_sub(1);
        sns.put(&mut h);
        h[36] = class;
        h[37] = detail;
        pdu::emit(&mut self.outbuf, h, data, self.digests);
        Ok(())
    }

    fn login_fail(&mut self, bhs: &Bhs, st: (u8, u8), why: &str) -> Result<(), String> {
        eprintln!(
            "iscsi: login from {} refused ({}/{:#04x}): {why}",
            self.who(),
            st.0,
            st.1
        );
        self.login_reply(bhs, false, 0, 0, st, &[])?;
        // The connection closes once the response is out.
        self.draining = true;
        let _ = status::OUT_OF_RESOURCES;
        Ok(())
    }
}
