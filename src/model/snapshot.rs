//! Everything the inventory knows at one moment, and how an event changes it.

use super::certificate::CertEntry;
use super::event::{Event, Reader};
use super::id::{CertId, TokenId};
use super::token::Token;

/// Readers, tokens and certificates at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub readers: Vec<Reader>,
    pub tokens: Vec<Token>,
    pub certificates: Vec<CertEntry>,
}

impl Snapshot {
    /// A certificate by its exact id.
    pub fn certificate(&self, id: &str) -> Option<&CertEntry> {
        self.certificates.iter().find(|c| c.id == id)
    }

    /// A certificate by its id or a unique prefix of it (6 characters or more).
    pub fn find_certificate(&self, id: &str) -> Option<&CertEntry> {
        if let Some(c) = self.certificate(id) {
            return Some(c);
        }
        let mut matches = self.certificates.iter().filter(|c| c.id.matches_prefix(id));
        match (matches.next(), matches.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }

    /// A token by its id.
    pub fn token(&self, id: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.id == id)
    }

    /// The certificates on one token.
    pub fn certificates_of(&self, token_id: &str) -> Vec<CertEntry> {
        self.certificates
            .iter()
            .filter(|c| c.token_id == token_id)
            .cloned()
            .collect()
    }

    /// The ids of the certificates on one token, in the token's order.
    pub fn certificate_ids_of(&self, token_id: &str) -> Vec<&CertId> {
        self.certificates
            .iter()
            .filter(|c| c.token_id == token_id)
            .map(|c| &c.id)
            .collect()
    }

    /// Take in one event: the snapshot afterwards is the one the event describes. Every
    /// holder of a snapshot (the inventory itself, the tray, the dialog process) follows
    /// events through this one function.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ReaderAdded { reader } => {
                if !self.readers.iter().any(|r| &r.name == reader) {
                    self.readers.push(Reader {
                        name: reader.clone(),
                        atr: None,
                    });
                }
            }
            Event::ReaderRemoved { reader } => self.readers.retain(|r| &r.name != reader),
            Event::CardInserted { reader, atr, .. } => {
                match self.readers.iter_mut().find(|r| &r.name == reader) {
                    Some(r) => r.atr = Some(atr.clone()),
                    None => self.readers.push(Reader {
                        name: reader.clone(),
                        atr: Some(atr.clone()),
                    }),
                }
            }
            Event::CardRemoved { reader } => {
                if let Some(r) = self.readers.iter_mut().find(|r| &r.name == reader) {
                    r.atr = None;
                }
            }
            Event::TokenAdded {
                token,
                certificates,
            } => {
                self.remove_token(&token.id);
                self.tokens.push(token.clone());
                self.certificates.extend(certificates.iter().cloned());
            }
            Event::TokenRemoved { token_id } => self.remove_token(token_id),
            Event::CertificatesChanged {
                token_id,
                certificates,
            } => {
                self.certificates.retain(|c| &c.token_id != token_id);
                self.certificates.extend(certificates.iter().cloned());
            }
            Event::PinStateChanged { token_id, pin } => {
                if let Some(t) = self.tokens.iter_mut().find(|t| &t.id == token_id) {
                    t.pin = *pin;
                }
            }
        }
    }

    fn remove_token(&mut self, id: &TokenId) {
        self.tokens.retain(|t| &t.id != id);
        self.certificates.retain(|c| &c.token_id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CertObject, Location, PinState};

    fn token(id: &str) -> Token {
        Token {
            id: id.into(),
            label: id.into(),
            manufacturer: "m".into(),
            model: "x".into(),
            serial: id.into(),
            location: Location::default(),
            pin: PinState::default(),
            so_pin: PinState::default(),
            seal: None,
        }
    }

    fn cert(token: &str, der: &[u8]) -> CertEntry {
        CertEntry::unparsed(
            CertObject {
                token_id: token.into(),
                label: String::new(),
                key_id: vec![1],
                der: der.to_vec(),
                has_private_key: true.into(),
            },
            "not parsed in this test".into(),
        )
    }

    #[test]
    fn events_build_the_snapshot_they_describe() {
        let mut s = Snapshot::default();
        s.apply(&Event::ReaderAdded { reader: "r".into() });
        s.apply(&Event::ReaderAdded { reader: "r".into() });
        assert_eq!(s.readers.len(), 1);
        s.apply(&Event::CardInserted {
            reader: "r".into(),
            atr: vec![0x3b],
            card: None,
            hint: None,
        });
        assert_eq!(s.readers[0].atr, Some(vec![0x3b]));
        s.apply(&Event::TokenAdded {
            token: token("t-1"),
            certificates: vec![cert("t-1", b"one")],
        });
        // Added again (a mirror that saw it before): still once.
        s.apply(&Event::TokenAdded {
            token: token("t-1"),
            certificates: vec![cert("t-1", b"one")],
        });
        assert_eq!((s.tokens.len(), s.certificates.len()), (1, 1));
        s.apply(&Event::CertificatesChanged {
            token_id: "t-1".into(),
            certificates: vec![cert("t-1", b"one"), cert("t-1", b"two")],
        });
        assert_eq!(s.certificate_ids_of("t-1").len(), 2);
        let locked = PinState {
            locked: true,
            ..Default::default()
        };
        s.apply(&Event::PinStateChanged {
            token_id: "t-1".into(),
            pin: locked,
        });
        assert!(s.token("t-1").unwrap().pin.locked);
        let first = s.certificates[0].id.clone();
        assert!(s.find_certificate(&first[..8]).is_some());
        s.apply(&Event::TokenRemoved {
            token_id: "t-1".into(),
        });
        assert!(s.tokens.is_empty() && s.certificates.is_empty());
        s.apply(&Event::CardRemoved { reader: "r".into() });
        assert_eq!(s.readers[0].atr, None);
        s.apply(&Event::ReaderRemoved { reader: "r".into() });
        assert!(s.readers.is_empty());
    }
}
