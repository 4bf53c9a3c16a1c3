//! Websites the person let collect the key's PIN in their own page: the ones that speak a CA
//! helper's protocol (BJCA's XTX), where the page sends the PIN itself because the protocol
//! has no other way. Approved in a dialog that says so ([`ConsentKind::PagePin`]), for this
//! run or remembered in `<state dir>/page-pin-origins.json`, apart from the `/v1` approvals
//! (`origins.json`), whose dialog promises the opposite (every PIN typed into certray).
//!
//! A denial is kept until certray stops, and while one dialog for a site is open the site's
//! other requests are refused without asking: the vendor clients reconnect at once when a
//! socket closes, which would otherwise stack dialogs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{read_origins, write_origins};
use crate::core::prompt::ConsentAnswer;

/// The file that remembers page-PIN approvals, in the state dir.
pub const FILE: &str = "page-pin-origins.json";

/// Page-PIN approvals: remembered, for this run, denied for this run, being asked.
#[derive(Debug)]
pub struct PagePinConsents {
    file: Option<PathBuf>,
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    remembered: BTreeSet<String>,
    session: BTreeSet<String>,
    denied: BTreeSet<String>,
    asking: BTreeSet<String>,
}

/// Where a site stands before anyone is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Approved,
    /// Denied earlier in this run, or a dialog for it is open now.
    Refused,
    /// Unknown: ask (the caller holds the returned right to ask until it answers).
    Ask,
}

impl PagePinConsents {
    /// Load `<dir>/page-pin-origins.json` (missing: none); `None` keeps them in memory.
    pub fn open(dir: Option<&Path>) -> PagePinConsents {
        let file = dir.map(|d| d.join(FILE));
        let remembered = file.as_deref().map(read_origins).unwrap_or_default();
        PagePinConsents {
            file,
            inner: Mutex::new(State {
                remembered,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_approved(&self, origin: &str) -> bool {
        let s = self.lock();
        s.remembered.contains(origin) || s.session.contains(origin)
    }

    /// Where `origin` stands; [`Standing::Ask`] marks it as being asked until
    /// [`PagePinConsents::answered`].
    pub fn standing(&self, origin: &str) -> Standing {
        let mut s = self.lock();
        if s.remembered.contains(origin) || s.session.contains(origin) {
            Standing::Approved
        } else if s.denied.contains(origin) || !s.asking.insert(origin.to_string()) {
            Standing::Refused
        } else {
            Standing::Ask
        }
    }

    /// The answer to the dialog that [`Standing::Ask`] let open: kept for good, for this
    /// run, refused for this run (a denial), or nothing (no one answered: ask next time).
    pub fn answered(&self, origin: &str, answer: ConsentAnswer) -> std::io::Result<()> {
        let mut s = self.lock();
        s.asking.remove(origin);
        match answer {
            ConsentAnswer::AllowAlways => {
                s.remembered.insert(origin.to_string());
                if let Some(f) = &self.file {
                    write_origins(f, &s.remembered)?;
                }
            }
            ConsentAnswer::AllowOnce => {
                s.session.insert(origin.to_string());
            }
            ConsentAnswer::Deny => {
                s.denied.insert(origin.to_string());
            }
            ConsentAnswer::Unavailable => {}
        }
        Ok(())
    }

    /// The remembered origins and the ones allowed until certray stops.
    pub fn list(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let s = self.lock();
        (s.remembered.clone(), s.session.clone())
    }

    /// Withdraw an approval (and forget a denial, so the site may ask again); whether
    /// there was an approval.
    pub fn revoke(&self, origin: &str) -> std::io::Result<bool> {
        let mut s = self.lock();
        s.denied.remove(origin);
        let session = s.session.remove(origin);
        let remembered = s.remembered.remove(origin);
        if remembered && let Some(f) = &self.file {
            write_origins(f, &s.remembered)?;
        }
        Ok(session || remembered)
    }
}

/// The origins remembered in `<dir>/page-pin-origins.json`.
pub fn remembered(dir: &Path) -> BTreeSet<String> {
    read_origins(&dir.join(FILE))
}

/// Forget a remembered page-PIN origin; whether it was there. (A running daemon keeps it
/// until it restarts.)
pub fn revoke(dir: &Path, origin: &str) -> std::io::Result<bool> {
    let path = dir.join(FILE);
    let mut origins = read_origins(&path);
    let was = origins.remove(origin);
    if was {
        write_origins(&path, &origins)?;
    }
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dialog_at_a_time_and_denial_kept() {
        let c = PagePinConsents::open(None);
        let site = "https://etax.example";
        assert_eq!(c.standing(site), Standing::Ask);
        // While asked, further requests are refused without a second dialog.
        assert_eq!(c.standing(site), Standing::Refused);
        c.answered(site, ConsentAnswer::Deny).unwrap();
        assert_eq!(c.standing(site), Standing::Refused, "denied for this run");
        assert!(!c.revoke(site).unwrap(), "nothing was approved");
        assert_eq!(
            c.standing(site),
            Standing::Ask,
            "revoking forgets the denial"
        );
        c.answered(site, ConsentAnswer::Unavailable).unwrap();
        assert_eq!(
            c.standing(site),
            Standing::Ask,
            "no one answered: ask again"
        );
        c.answered(site, ConsentAnswer::AllowOnce).unwrap();
        assert_eq!(c.standing(site), Standing::Approved);
        assert!(c.is_approved(site));
    }

    #[test]
    fn remembered_approvals_persist_apart_from_the_v1_ones() {
        let dir = tempfile::tempdir().unwrap();
        let c = PagePinConsents::open(Some(dir.path()));
        assert_eq!(c.standing("https://a.example"), Standing::Ask);
        c.answered("https://a.example", ConsentAnswer::AllowAlways)
            .unwrap();
        assert!(PagePinConsents::open(Some(dir.path())).is_approved("https://a.example"));
        assert!(super::super::remembered_origins(dir.path()).is_empty());
        assert_eq!(
            remembered(dir.path()).into_iter().collect::<Vec<_>>(),
            ["https://a.example"]
        );
        assert!(revoke(dir.path(), "https://a.example").unwrap());
        assert!(!PagePinConsents::open(Some(dir.path())).is_approved("https://a.example"));
    }
}
