//! Who may use the certificates, and how: the websites the user approved (remembered in
//! `<state dir>/origins.json`, or for this run), the ones the configuration lists, the rule
//! for which callers may send a PIN themselves, the "remember the PIN" grants, and one
//! prompt at a time per website. Every front door asks here; none decides by itself.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub mod page_pin;

use super::prompt::{ConsentAnswer, ConsentKind, Prompt};
use crate::config::BridgeConfig;
use crate::model::CertId;

/// Who asks for the certificates or a signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requester {
    /// This program itself (the CLI), or a local program no one could tell apart.
    Local,
    /// A program on this computer, of this user, calling a front door without an `Origin`;
    /// `peer` names the process (e.g. `pid 4242 started 1234567`), so that what one program
    /// was allowed ("remember the PIN") is not another's.
    Program { peer: Arc<str> },
    /// certray's own page, served by the bridge itself (its check page).
    OwnPage(String),
    /// A website, known only by the `Origin` its browser set.
    Website(String),
}

impl Requester {
    /// The name recorded in the audit log: the origin, or `local`.
    pub fn name(&self) -> &str {
        match self {
            Requester::Local | Requester::Program { .. } => "local",
            Requester::OwnPage(o) | Requester::Website(o) => o,
        }
    }

    /// Who a grant or an open prompt belongs to: the origin, or the local program itself.
    pub fn key(&self) -> String {
        match self {
            Requester::Program { peer } => format!("local ({peer})"),
            other => other.name().to_string(),
        }
    }

    /// The page's origin, `None` for a local program.
    pub fn origin(&self) -> Option<&str> {
        match self {
            Requester::Local | Requester::Program { .. } => None,
            Requester::OwnPage(o) | Requester::Website(o) => Some(o),
        }
    }

    /// A program on this computer (with or without a known process).
    pub fn is_local(&self) -> bool {
        matches!(self, Requester::Local | Requester::Program { .. })
    }
}

/// Every rule about who may use the certificates, in one place.
#[derive(Debug)]
pub struct Approvals {
    consents: Consents,
    /// `[bridge] allowed_origins`: may call without asking.
    allowed: Vec<String>,
    /// `[bridge] page_pin_origins`: legacy portals that collect the PIN in their own page.
    page_pin: Vec<String>,
    /// (requester, certificate) pairs the user let sign again without asking, until certray
    /// stops.
    grants: Mutex<HashSet<(String, CertId)>>,
    /// Requesters with a PIN prompt open: one at a time each.
    prompting: Mutex<HashSet<String>>,
    /// Origins whose consent dialog is open, with the answer to come (`Some(allowed)`):
    /// their other requests wait for that one answer instead of opening dialogs of their own.
    asking: Mutex<HashMap<String, watch::Receiver<Option<bool>>>>,
    /// Origins the person denied, refused without asking until certray stops.
    denied: Mutex<BTreeSet<String>>,
    /// Websites the person let collect the PIN in their own page (BJCA's XTX protocol).
    page_pin_consents: page_pin::PagePinConsents,
}

impl Approvals {
    /// The configured lists, and the approvals remembered in `state_dir` (`None`: in memory
    /// only).
    pub fn new(config: &BridgeConfig, state_dir: Option<&Path>) -> Approvals {
        Approvals {
            consents: Consents::open(state_dir),
            allowed: config.allowed_origins.clone(),
            page_pin: config.page_pin_origins.clone(),
            grants: Mutex::new(HashSet::new()),
            prompting: Mutex::new(HashSet::new()),
            asking: Mutex::new(HashMap::new()),
            denied: Mutex::new(BTreeSet::new()),
            page_pin_consents: page_pin::PagePinConsents::open(state_dir),
        }
    }

    /// May `who` use the certificates? Local programs and certray's own page may; a website
    /// when configured or approved, else the person is asked (and the answer kept, for this
    /// run or for good). Nobody to ask: no.
    ///
    /// One dialog per origin: while it is open, the origin's other requests wait for its
    /// answer. A denial is remembered until certray stops: the page cannot ask again and
    /// again until a stray click lets it in.
    pub async fn admit(&self, who: &Requester, prompt: &dyn Prompt) -> bool {
        match self.known(who) {
            Some(known) => known,
            None => self.ask(who.name(), prompt).await,
        }
    }

    /// Whether `who` may use the certificates without asking (`Some(true)`), is refused
    /// without asking (`Some(false)`: denied this session), or must be asked (`None`).
    pub fn known(&self, who: &Requester) -> Option<bool> {
        let origin = match who {
            Requester::Local | Requester::Program { .. } | Requester::OwnPage(_) => {
                return Some(true);
            }
            Requester::Website(o) => o,
        };
        if self.allowed.iter().any(|o| o == origin)
            // A legacy portal the administrator lets send PINs may certainly call.
            || self.page_pin.iter().any(|o| o == origin)
            || self.consents.is_approved(origin)
        {
            return Some(true);
        }
        if self.lock_denied().contains(origin) {
            return Some(false);
        }
        None
    }

    async fn ask(&self, origin: &str, prompt: &dyn Prompt) -> bool {
        let turn = {
            let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
            match asking.get(origin) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    asking.insert(origin.to_string(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match turn {
            // Another request of this origin has the dialog open: its answer is ours. (It
            // went away unanswered: not allowed, this time.)
            Err(mut rx) => {
                return rx
                    .wait_for(Option::is_some)
                    .await
                    .is_ok_and(|v| *v == Some(true));
            }
            Ok(tx) => tx,
        };
        // However this request ends, the next one may ask again.
        let _open = Asking {
            approvals: self,
            origin,
        };
        let answer = prompt.consent(origin).await;
        let allowed = match answer {
            ConsentAnswer::AllowOnce | ConsentAnswer::AllowAlways => {
                let remember = answer == ConsentAnswer::AllowAlways;
                if let Err(e) = self.consents.approve(origin, remember) {
                    tracing::warn!(error = %e, "cannot save the website approval");
                }
                true
            }
            ConsentAnswer::Deny => {
                self.lock_denied().insert(origin.to_string());
                false
            }
            ConsentAnswer::Unavailable => false,
        };
        let _ = tx.send(Some(allowed));
        allowed
    }

    fn lock_denied(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.denied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The origins denied until certray stops.
    pub fn denied(&self) -> BTreeSet<String> {
        self.lock_denied().clone()
    }

    /// Let a denied origin ask again (the person changed their mind).
    pub fn forget_denial(&self, origin: &str) -> bool {
        self.lock_denied().remove(origin)
    }

    /// May `who` put the PIN in its request? Local programs, certray's own page (certray's
    /// code, not a website's), configured legacy portals, and the websites the person let
    /// collect the PIN themselves ([`Approvals::admit_page_pin`]).
    pub fn page_pin_allowed(&self, who: &Requester) -> bool {
        match who {
            Requester::Local | Requester::Program { .. } | Requester::OwnPage(_) => true,
            Requester::Website(o) => {
                self.page_pin_configured(o) || self.page_pin_consents.is_approved(o)
            }
        }
    }

    /// Whether the configuration lists `origin` in `[bridge] page_pin_origins`.
    pub fn page_pin_configured(&self, origin: &str) -> bool {
        self.page_pin.iter().any(|p| p == origin)
    }

    /// May `who` speak a protocol in which the page collects the PIN itself (BJCA's XTX)?
    /// Local programs and certray's own page may; a website when it is in `[bridge]
    /// page_pin_origins` or the person approved it in a dialog that says the site will
    /// collect the key's PIN ([`ConsentKind::PagePin`]). Nobody to ask, a denial earlier in
    /// this run, or a dialog for the site already open: no.
    pub async fn admit_page_pin(&self, who: &Requester, prompt: &dyn Prompt) -> bool {
        let origin = match who {
            Requester::Local | Requester::Program { .. } | Requester::OwnPage(_) => return true,
            Requester::Website(o) => o,
        };
        if self.page_pin_configured(origin) {
            return true;
        }
        match self.page_pin_consents.standing(origin) {
            page_pin::Standing::Approved => return true,
            page_pin::Standing::Refused => return false,
            page_pin::Standing::Ask => {}
        }
        // However the wait ends (the request may go away), the site may be asked again.
        struct Asking<'a>(
            &'a page_pin::PagePinConsents,
            &'a str,
            Option<ConsentAnswer>,
        );
        impl Drop for Asking<'_> {
            fn drop(&mut self) {
                let answer = self.2.unwrap_or(ConsentAnswer::Unavailable);
                if let Err(e) = self.0.answered(self.1, answer) {
                    tracing::warn!(error = %e, "cannot save the website approval");
                }
            }
        }
        let mut asking = Asking(&self.page_pin_consents, origin, None);
        let answer = prompt.consent_kind(origin, ConsentKind::PagePin).await;
        asking.2 = Some(answer);
        matches!(
            answer,
            ConsentAnswer::AllowOnce | ConsentAnswer::AllowAlways
        )
    }

    /// The websites approved to collect the PIN themselves: (remembered, this run only).
    pub fn page_pin_list(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        self.page_pin_consents.list()
    }

    /// Whether `who` may sign with `cert` again without being asked.
    /// Grants are the requester's own ([`Requester::key`]): a local program's are not
    /// another program's, and a website's last only while it is approved.
    pub fn granted(&self, who: &Requester, cert: &CertId) -> bool {
        if let Requester::Website(_) = who
            && self.known(who) != Some(true)
        {
            return false;
        }
        self.lock_grants().contains(&(who.key(), cert.clone()))
    }

    pub fn grant(&self, who: &Requester, cert: &CertId) {
        self.lock_grants().insert((who.key(), cert.clone()));
    }

    pub fn forget_grant(&self, who: &Requester, cert: &CertId) {
        self.lock_grants().remove(&(who.key(), cert.clone()));
    }

    fn lock_grants(&self) -> MutexGuard<'_, HashSet<(String, CertId)>> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a PIN prompt for `who`, unless one is open already: at most one at a time per
    /// requester, so a page cannot pile dialogs up. The prompt counts as open until the
    /// returned guard drops (however the request ends: a client that goes away drops it).
    pub fn begin_prompt(&self, who: &Requester) -> Option<PromptOpen<'_>> {
        let name = who.key();
        let inserted = self
            .prompting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone());
        // Only a prompt that was let in may take itself out again.
        inserted.then(|| PromptOpen {
            approvals: self,
            name,
        })
    }

    /// The approvals the person gave (remembered, or for this run).
    pub fn consents(&self) -> &Consents {
        &self.consents
    }

    /// Websites approved to use the certificates: (remembered, this run only).
    pub fn list(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        self.consents.list()
    }

    /// Withdraw a website's approval (remembered or for this run) and every "remember the
    /// PIN" it was given; whether it had an approval. Effective at once.
    pub fn revoke(&self, origin: &str) -> std::io::Result<bool> {
        self.lock_grants().retain(|(o, _)| o != origin);
        let page_pin = self.page_pin_consents.revoke(origin)?;
        Ok(self.consents.revoke(origin)? || page_pin)
    }
}

/// A consent dialog open for one origin (see [`Approvals::admit`]).
struct Asking<'a> {
    approvals: &'a Approvals,
    origin: &'a str,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.approvals
            .asking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.origin);
    }
}

/// A PIN prompt open for one requester (see [`Approvals::begin_prompt`]).
pub struct PromptOpen<'a> {
    approvals: &'a Approvals,
    name: String,
}

impl Drop for PromptOpen<'_> {
    fn drop(&mut self) {
        self.approvals
            .prompting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}

/// Approved origins: remembered ones (persisted) and ones allowed until certray stops.
///
/// `origins.json` is the truth about remembered approvals, for the daemon and for
/// `certray origins revoke` alike: before each decision the daemon looks at the file's
/// identity (modification time, size, inode; one `stat`) and reads it again when it
/// changed, so a revoke from the command line (or an edit) holds at once, with no channel
/// to the daemon that something else could also talk to. The file and its directory are
/// this user's only (0600/0700), rewritten whole through a temporary file.
#[derive(Debug)]
pub struct Consents {
    file: Option<PathBuf>,
    inner: Mutex<ConsentState>,
}

#[derive(Debug, Default)]
struct ConsentState {
    remembered: BTreeSet<String>,
    session: BTreeSet<String>,
    /// The identity of `origins.json` when it was last read or written.
    stamp: Option<FileStamp>,
}

/// What tells one version of a file from another without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        })
    }
}

#[derive(Serialize, Deserialize, Default)]
struct ConsentFile {
    approved: BTreeSet<String>,
}

impl Consents {
    /// Load `<dir>/origins.json` (missing: none approved); `None` keeps approvals in memory.
    pub fn open(dir: Option<&Path>) -> Consents {
        let file = dir.map(|d| d.join("origins.json"));
        let c = Consents {
            file,
            inner: Mutex::new(ConsentState::default()),
        };
        drop(c.state());
        c
    }

    /// The state, with `origins.json` read again if it changed since it was last read.
    fn state(&self) -> MutexGuard<'_, ConsentState> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = &self.file {
            let now = FileStamp::of(f);
            if s.stamp.is_none() || now != s.stamp {
                let before = std::mem::take(&mut s.remembered);
                s.remembered = read_origins(f);
                for gone in before.difference(&s.remembered) {
                    tracing::info!(origin = %gone, "approval withdrawn in origins.json");
                }
                s.stamp = now;
            }
        }
        s
    }

    fn save(&self, s: &mut ConsentState) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            write_origins(f, &s.remembered)?;
            s.stamp = FileStamp::of(f);
        }
        Ok(())
    }

    pub fn is_approved(&self, origin: &str) -> bool {
        let s = self.state();
        s.remembered.contains(origin) || s.session.contains(origin)
    }

    pub fn approve(&self, origin: &str, remember: bool) -> std::io::Result<()> {
        let mut s = self.state();
        if remember {
            s.remembered.insert(origin.to_string());
            self.save(&mut s)?;
        } else {
            s.session.insert(origin.to_string());
        }
        Ok(())
    }
}

impl Consents {
    /// The remembered origins and the ones allowed until certray stops.
    pub fn list(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let s = self.state();
        (s.remembered.clone(), s.session.clone())
    }

    /// Withdraw an approval, remembered or for this session; whether there was one.
    pub fn revoke(&self, origin: &str) -> std::io::Result<bool> {
        let mut s = self.state();
        let session = s.session.remove(origin);
        let remembered = s.remembered.remove(origin);
        if remembered {
            self.save(&mut s)?;
        }
        Ok(session || remembered)
    }
}

fn read_origins(path: &Path) -> BTreeSet<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<ConsentFile>(&text) {
            Ok(f) => f.approved,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable approvals file");
                BTreeSet::new()
            }
        },
        Err(_) => BTreeSet::new(),
    }
}

/// The file, rewritten whole, 0600 in a 0700 directory (also when it was readable by
/// others before).
fn write_origins(path: &Path, origins: &BTreeSet<String>) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&ConsentFile {
        approved: origins.clone(),
    })?;
    crate::platform::files::write_private(path, text.as_bytes())
}

/// The origins remembered in `<dir>/origins.json`.
pub fn remembered_origins(dir: &Path) -> BTreeSet<String> {
    read_origins(&dir.join("origins.json"))
}

/// Forget a remembered origin; whether it was there. A running daemon of this user
/// notices before its next decision (it watches the file): the approval and the grants that
/// came with it end at once. An approval given "this time" only (never written to the file)
/// lasts until that daemon stops, or until it is revoked in its 已授权网站 window.
pub fn revoke_origin(dir: &Path, origin: &str) -> std::io::Result<bool> {
    let path = dir.join("origins.json");
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
    fn one_prompt_at_a_time_per_requester() {
        let a = Approvals::new(&BridgeConfig::default(), None);
        let site = Requester::Website("https://etax.example".into());
        let first = a.begin_prompt(&site).expect("the first prompt opens");
        // Refused while the first is open, and the refusal does not close the first.
        assert!(a.begin_prompt(&site).is_none());
        assert!(a.begin_prompt(&site).is_none());
        assert!(a.begin_prompt(&Requester::Local).is_some());
        drop(first);
        assert!(a.begin_prompt(&site).is_some());
    }

    #[test]
    fn who_may_send_the_pin_and_grants() {
        let config = BridgeConfig {
            page_pin_origins: vec!["https://legacy.example".into()],
            ..BridgeConfig::default()
        };
        let a = Approvals::new(&config, None);
        assert!(a.page_pin_allowed(&Requester::Local));
        assert!(a.page_pin_allowed(&Requester::OwnPage("http://127.0.0.1:1".into())));
        assert!(a.page_pin_allowed(&Requester::Website("https://legacy.example".into())));
        assert!(!a.page_pin_allowed(&Requester::Website("https://etax.example".into())));
        let site = Requester::Website("https://etax.example".into());
        let cert = CertId::new("c-0011223344556677");
        a.grant(&site, &cert);
        // A website's grants count only while it may call at all.
        assert!(!a.granted(&site, &cert));
        a.consents().approve("https://etax.example", false).unwrap();
        assert!(a.granted(&site, &cert));
        assert!(!a.granted(&Requester::Local, &cert));
        // Issue 14, item 7: a local program's grant is its own, not every local program's.
        let one = Requester::Program {
            peer: "pid 100 started 5".into(),
        };
        let other = Requester::Program {
            peer: "pid 101 started 6".into(),
        };
        a.grant(&one, &cert);
        assert!(a.granted(&one, &cert));
        assert!(!a.granted(&other, &cert) && !a.granted(&Requester::Local, &cert));
        assert_eq!(one.name(), "local", "audited as a local program");
        assert!(a.page_pin_allowed(&one));
        a.revoke("https://etax.example").unwrap();
        assert!(
            !a.granted(&site, &cert),
            "revoking withdraws the grants too"
        );
    }

    /// Issue 14, item 6: `certray origins revoke` printed "approval withdrawn" while the
    /// running daemon kept serving the origin from its copy.
    #[test]
    fn a_revoke_from_the_command_line_reaches_the_running_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("certray");
        let daemon = Approvals::new(&BridgeConfig::default(), Some(&state));
        daemon
            .consents()
            .approve("https://etax.example", true)
            .unwrap();
        let site = Requester::Website("https://etax.example".into());
        assert_eq!(daemon.known(&site), Some(true));
        // The command line, another process: it edits the file.
        assert!(revoke_origin(&state, "https://etax.example").unwrap());
        assert_eq!(daemon.known(&site), None, "still approved in the daemon");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&state.join("origins.json")), 0o600);
            assert_eq!(mode(&state), 0o700);
        }
    }

    #[test]
    fn approvals_persist_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let c = Consents::open(Some(dir.path()));
        c.approve("https://etax.example", true).unwrap();
        c.approve("https://once.example", false).unwrap();
        assert!(c.is_approved("https://etax.example") && c.is_approved("https://once.example"));
        let again = Consents::open(Some(dir.path()));
        assert!(again.is_approved("https://etax.example"));
        assert!(!again.is_approved("https://once.example"));
        assert!(revoke_origin(dir.path(), "https://etax.example").unwrap());
        assert!(!Consents::open(Some(dir.path())).is_approved("https://etax.example"));
        assert!(!revoke_origin(dir.path(), "https://etax.example").unwrap());
    }
}
