//! The closed set of inventory events every subscriber (CLI `watch`, bridge SSE, tray) gets.

use super::certificate::CertEntry;
use super::id::TokenId;
use super::pin::PinState;
use super::token::Token;

/// A reader and the ATR of the card in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub name: String,
    pub atr: Option<Vec<u8>>,
}

/// A change in what certray can see.
#[derive(Debug, Clone)]
pub enum Event {
    ReaderAdded {
        reader: String,
    },
    ReaderRemoved {
        reader: String,
    },
    /// A card went into `reader`. `card` names it when the registry knows it; `hint` says
    /// what to do when no loaded module serves it.
    CardInserted {
        reader: String,
        atr: Vec<u8>,
        card: Option<String>,
        hint: Option<Hint>,
    },
    CardRemoved {
        reader: String,
    },
    TokenAdded {
        token: Token,
        certificates: Vec<CertEntry>,
    },
    TokenRemoved {
        token_id: TokenId,
    },
    CertificatesChanged {
        token_id: TokenId,
        certificates: Vec<CertEntry>,
    },
    PinStateChanged {
        token_id: TokenId,
        pin: PinState,
    },
}

/// An ATR in upper-case hex with spaces, as PC/SC tools print it.
pub fn format_atr(atr: &[u8]) -> String {
    atr.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why an inserted card may not show up as a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The registry does not know the card: configure a module for its ATR in `[[cards]]`.
    UnknownCard,
    /// The registry knows the card, but none of its modules is installed or loaded.
    ModuleMissing,
}

impl Event {
    /// The event's wire name, as `certray watch --json` and the bridge's SSE use it.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ReaderAdded { .. } => "reader-added",
            Event::ReaderRemoved { .. } => "reader-removed",
            Event::CardInserted { .. } => "card-inserted",
            Event::CardRemoved { .. } => "card-removed",
            Event::TokenAdded { .. } => "token-added",
            Event::TokenRemoved { .. } => "token-removed",
            Event::CertificatesChanged { .. } => "certificates-changed",
            Event::PinStateChanged { .. } => "pin-state-changed",
        }
    }
}
