//! A one-shot look at PC/SC for `certray doctor`: is the service reachable, which readers
//! are there, and the ATR of the card in each. Unlike the watcher ([`super::pcsc`]) it never
//! waits for a change: one context, one reader list, one status query that returns at once.
//!
//! libpcsclite finds pcscd through `PCSCLITE_CSOCK_NAME` when it is set (read once per
//! process), so a private pcscd is probed like the system one.

use std::time::Duration;

use pcsc::{Context, Error as PcscError, Scope, State};

/// A reader and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderProbe {
    pub name: String,
    /// The card's ATR; `None` when the reader is empty (or its state cannot be read), empty
    /// for a card that does not answer (mute).
    pub atr: Option<Vec<u8>>,
    /// The card is present but does not answer.
    pub mute: bool,
    /// Another program holds the card exclusively.
    pub exclusive: bool,
}

/// Why PC/SC cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The service is not running or not reachable (`SCARD_E_NO_SERVICE` and the like), as
    /// opposed to a service that answers but refuses (polkit: `SCARD_E_NO_ACCESS`, …).
    pub no_service: bool,
    /// The PC/SC error's name, e.g. `NoService`.
    pub code: String,
    /// What the library says, for people.
    pub reason: String,
}

impl Unavailable {
    fn from(e: PcscError) -> Unavailable {
        Unavailable {
            no_service: matches!(
                e,
                PcscError::NoService
                    | PcscError::ServiceStopped
                    | PcscError::CommError
                    | PcscError::CommDataLost
                    | PcscError::Shutdown
            ),
            code: format!("{e:?}"),
            reason: e.to_string(),
        }
    }
}

/// How many times the reader list is read again when a reader vanishes while it is queried.
const ATTEMPTS: u32 = 3;

/// Establish a context and report every reader with the card in it (in the service's
/// order), or why the service cannot be used. A reader list that keeps changing while it is
/// read is an error too.
pub fn pcsc_status() -> Result<Vec<ReaderProbe>, Unavailable> {
    let context = Context::establish(Scope::User).map_err(Unavailable::from)?;
    let mut last = PcscError::UnknownReader;
    for _ in 0..ATTEMPTS {
        let names = match context.list_readers_owned() {
            Ok(names) => names,
            Err(PcscError::NoReadersAvailable) => return Ok(Vec::new()),
            Err(e) => return Err(Unavailable::from(e)),
        };
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut states: Vec<pcsc::ReaderState> = names
            .iter()
            .map(|n| pcsc::ReaderState::new(n.clone(), State::UNAWARE))
            .collect();
        // UNAWARE entries make the call return at once with the current state; the timeout
        // only bounds a misbehaving service.
        match context.get_status_change(Some(Duration::from_secs(2)), &mut states) {
            Ok(()) | Err(PcscError::Timeout) => {
                return Ok(states.iter().map(probe).collect());
            }
            Err(
                e @ (PcscError::UnknownReader
                | PcscError::ReaderUnavailable
                | PcscError::NoReadersAvailable),
            ) => last = e,
            Err(e) => return Err(Unavailable::from(e)),
        }
    }
    Err(Unavailable {
        no_service: false,
        code: format!("{last:?}"),
        reason: format!("the reader list kept changing while it was read: {last}"),
    })
}

fn probe(rs: &pcsc::ReaderState) -> ReaderProbe {
    let state = rs.event_state();
    let present = state.contains(State::PRESENT) && !state.contains(State::UNAVAILABLE);
    let mute = present && state.contains(State::MUTE);
    ReaderProbe {
        name: rs.name().to_string_lossy().into_owned(),
        atr: present.then(|| if mute { Vec::new() } else { rs.atr().to_vec() }),
        mute,
        exclusive: present && state.contains(State::EXCLUSIVE),
    }
}
