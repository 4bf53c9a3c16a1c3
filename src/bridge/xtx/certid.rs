//! What the protocol calls a user: one key pair on one key, named by its CertID
//! `"<container or key id>/<token serial>"` (applications split it on `/` and keep both
//! halves). It is made of what the key holds, never where it sits, so it is the same after
//! re-insertion, in another port and after a restart.
//!
//! A key pair has a signing certificate and, on Chinese keys, often an encryption
//! (exchange) certificate in the same container. PKCS#11 has no containers: the two are
//! paired by the key id they share and told apart by key usage; a lone encryption
//! certificate is paired with the signing certificate of the same subject and issuer on the
//! same key.

use crate::model::{CertEntry, Snapshot, Token};

/// One user: a key pair on a key.
#[derive(Debug, Clone)]
pub struct User<'a> {
    /// The CertID.
    pub id: String,
    pub token: &'a Token,
    /// The signing certificate (what `SOF_ExportUserCert` gives).
    pub sign: &'a CertEntry,
    /// The encryption certificate, when the key pair has its own.
    pub exchange: Option<&'a CertEntry>,
}

impl User<'_> {
    /// The name the user list shows: the signing certificate's CN (the holder as CAs write
    /// it), else the holder certray reads.
    pub fn name(&self) -> String {
        self.sign
            .parsed
            .as_ref()
            .ok()
            .and_then(|c| c.subject.cn.clone())
            .unwrap_or_else(|| self.sign.owner())
    }

    /// The encryption certificate: the key pair's own, else the signing certificate when
    /// its key usage allows encryption (or does not say).
    pub fn exchange_or_sign(&self) -> Option<&CertEntry> {
        self.exchange.or_else(|| {
            let usage = &self.sign.parsed.as_ref().ok()?.key_usage;
            (usage.is_empty()
                || usage
                    .iter()
                    .any(|u| ENCRYPTION_USAGES.contains(&u.as_str())))
            .then_some(self.sign)
        })
    }
}

const SIGNING_USAGES: [&str; 2] = ["digitalSignature", "nonRepudiation"];
const ENCRYPTION_USAGES: [&str; 3] = ["keyEncipherment", "dataEncipherment", "keyAgreement"];

/// An encryption-only certificate: its key usage allows encryption and not signing.
fn encryption_only(c: &CertEntry) -> bool {
    let Ok(parsed) = &c.parsed else { return false };
    let u = &parsed.key_usage;
    u.iter().any(|x| ENCRYPTION_USAGES.contains(&x.as_str()))
        && !u.iter().any(|x| SIGNING_USAGES.contains(&x.as_str()))
}

/// The container half of a CertID: the key id as text when it is printable ASCII (vendor
/// modules put the container name there), else in upper-case hex; a certificate without a
/// key id is named by its certray id.
pub fn container(c: &CertEntry) -> String {
    let id = &c.key_id;
    if id.is_empty() {
        c.id.to_string()
    } else if id.iter().all(|b| b.is_ascii_graphic() && *b != b'/') {
        String::from_utf8_lossy(id).into_owned()
    } else {
        hex::encode_upper(id)
    }
}

/// The device half of a CertID (and the device SN): the token's serial number, else its
/// certray id.
pub fn device_sn(t: &Token) -> String {
    let serial = t.serial.trim();
    if serial.is_empty() {
        t.id.to_string()
    } else {
        serial.to_string()
    }
}

/// Every user on every key, in the inventory's order: one per key pair whose signing
/// certificate parses and has its private key on the key.
pub fn users(snapshot: &Snapshot) -> Vec<User<'_>> {
    let mut users = Vec::new();
    for token in &snapshot.tokens {
        let certs: Vec<&CertEntry> = snapshot
            .certificates
            .iter()
            .filter(|c| c.token_id == token.id && c.parsed.is_ok())
            .collect();
        // Group by key id, in first-seen order.
        let mut groups: Vec<(&[u8], Vec<&CertEntry>)> = Vec::new();
        for c in &certs {
            match groups.iter_mut().find(|(k, _)| *k == c.key_id.as_slice()) {
                Some((_, g)) => g.push(c),
                None => groups.push((&c.key_id, vec![c])),
            }
        }
        let mut lone_encryption: Vec<&CertEntry> = Vec::new();
        let mut mine: Vec<User<'_>> = Vec::new();
        for (_, group) in &groups {
            let sign = group
                .iter()
                .filter(|c| !encryption_only(c))
                .find(|c| c.has_private_key.may_sign())
                .copied();
            let exchange = group.iter().find(|c| encryption_only(c)).copied();
            match sign {
                Some(sign) => mine.push(User {
                    id: format!("{}/{}", container(sign), device_sn(token)),
                    token,
                    sign,
                    exchange,
                }),
                None => lone_encryption.extend(exchange),
            }
        }
        // Encryption certificates under a key id of their own: to the signing certificate
        // of the same subject and issuer that has none.
        for enc in lone_encryption {
            let Ok(e) = &enc.parsed else { continue };
            if let Some(user) = mine.iter_mut().find(|u| {
                u.exchange.is_none()
                    && u.sign
                        .parsed
                        .as_ref()
                        .is_ok_and(|s| s.subject.dn == e.subject.dn && s.issuer.dn == e.issuer.dn)
            }) {
                user.exchange = Some(enc);
            }
        }
        users.extend(mine);
    }
    users
}

/// The user with this CertID.
pub fn find<'a>(snapshot: &'a Snapshot, cert_id: &str) -> Option<User<'a>> {
    users(snapshot).into_iter().find(|u| u.id == cert_id)
}

/// The key named by a CertID or by its device SN alone.
pub fn find_token<'a>(snapshot: &'a Snapshot, id_or_sn: &str) -> Option<&'a Token> {
    if let Some(u) = find(snapshot, id_or_sn) {
        return Some(u.token);
    }
    let sn = id_or_sn.rsplit('/').next().unwrap_or(id_or_sn);
    snapshot.tokens.iter().find(|t| device_sn(t) == sn)
}

/// `SOF_GetUserList`: `"CN||CertID&&&"` for every user, each entry ending with `&&&` (the
/// clients loop on `indexOf("&&&")` and drop an unterminated tail); `""` without a key.
pub fn user_list(snapshot: &Snapshot) -> String {
    users(snapshot)
        .iter()
        .map(|u| {
            format!(
                "{}||{}&&&",
                u.name().replace("&&&", "&&").replace("||", "|"),
                u.id
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core;
    use crate::model::{CertObject, Location, PinState};

    fn token(serial: &str) -> Token {
        Token {
            id: crate::model::TokenId::derive("m", "x", serial),
            label: "l".into(),
            manufacturer: "m".into(),
            model: "x".into(),
            serial: serial.into(),
            location: Location::default(),
            pin: PinState::default(),
            so_pin: PinState::default(),
            seal: None,
        }
    }

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/real-certs")
                .join(name),
        )
        .unwrap()
    }

    fn entry(t: &Token, der: Vec<u8>, key_id: &[u8], key: bool) -> CertEntry {
        core::entry(CertObject {
            token_id: t.id.clone(),
            label: String::new(),
            key_id: key_id.to_vec(),
            der,
            has_private_key: key.into(),
        })
    }

    #[test]
    fn cert_ids_name_container_and_serial_and_the_list_ends_every_entry() {
        let t = token("5303201610000567 ");
        let personal = entry(
            &t,
            corpus("19-bjca-sm2-personal-multi.der"),
            b"806000119631708",
            true,
        );
        let org = entry(
            &t,
            corpus("18-bjca-sm2-org-uscc-name.der"),
            &[0x01, 0xab],
            true,
        );
        let ca = entry(&t, corpus("12-bjca-global-root-ca2.der"), b"", false);
        let s = Snapshot {
            readers: vec![],
            tokens: vec![t.clone()],
            certificates: vec![personal, org, ca],
        };
        let users = users(&s);
        assert_eq!(users.len(), 2, "the CA certificate has no key");
        assert_eq!(users[0].id, "806000119631708/5303201610000567");
        assert_eq!(users[1].id, "01AB/5303201610000567");
        let list = user_list(&s);
        assert!(list.ends_with("&&&"));
        assert_eq!(list.matches("&&&").count(), 2);
        assert!(
            list.contains("||806000119631708/5303201610000567&&&"),
            "{list}"
        );
        assert!(find(&s, "01AB/5303201610000567").is_some());
        assert_eq!(
            find_token(&s, "5303201610000567").map(|t| &t.id),
            Some(&t.id)
        );
        assert_eq!(user_list(&Snapshot::default()), "");
    }
}
