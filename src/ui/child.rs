//! The dialog process, `certray dialog-host`: the daemon starts it to show windows and lets
//! it go when they are closed ([`super::process`]). It holds no token and no bridge: it
//! draws the dialogs ([`super::host`]) from the state the daemon sends, and asks the daemon
//! over the pipe ([`super::link`]) for everything else.
//!
//! It ends when the daemon closes the pipe (also when the daemon dies).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};

use crate::core::{ConsentAnswer, PinAnswer};
use crate::i18n::Lang;
use crate::model::Snapshot;
use crate::model::TokenId;
use crate::model::{Pin, PinState};

use super::backend::{self, Refusal, Services};
use super::dialogs::{DialogRequest, RemoteReply, Reply};
use super::host::{Host, HostHandle};
use super::link::{self, Answer, Call, CallResult, Down, LineReader, Request, Up, WirePin};
use super::notify::Notifier;
use crate::error::Code;

/// Run the dialog process; its exit code.
pub fn main() -> i32 {
    let out = match raw_stdout() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("certray dialog-host: no stdout: {e}");
            return 2;
        }
    };
    // The daemon's messages carry no PIN, so the standard (buffered) stdin is fine.
    let mut lines = LineReader::new(io::stdin());
    let first = match lines.read::<Down>() {
        Ok(Some(Down::State(s))) => s,
        Ok(None) => return 0,
        other => {
            eprintln!(
                "certray dialog-host is started by `certray run`, which first sends the state (got {:?})",
                other.map(|o| o.map(|_| "another message"))
            );
            return 2;
        }
    };
    let remote = Arc::new(Remote {
        state: RwLock::new(Shown::default()),
        out: Mutex::new(out),
        next_id: AtomicU64::new(0),
        calls: Mutex::new(HashMap::new()),
        gone: Mutex::new(HashSet::new()),
    });
    remote.set_state(*first);

    let to_daemon = remote.clone();
    let notifier = Notifier::forward(move |notice| to_daemon.send(&Up::Notify { notice }));
    let (host, handle) = Host::new(remote.clone(), notifier);
    let reader = remote.clone();
    let spawned = std::thread::Builder::new()
        .name("dialog-host-read".into())
        .spawn(move || {
            read(lines, &reader, &handle);
            // The daemon has let go (or is gone): whatever is still open is not wanted.
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        remote.send(&Up::Failed {
            error: format!("cannot start the reader thread: {e}"),
        });
        return 1;
    }
    // The windows on the main thread, which macOS requires.
    let on_round = remote.clone();
    host.run(Box::new(move |r| {
        on_round.send(&match r {
            Ok(received) => Up::Idle { received },
            Err(error) => Up::Failed { error },
        })
    }));
    // Windows turned out impossible; the daemon, told so, closes the pipe.
    loop {
        std::thread::park();
    }
}

/// Take the daemon's messages until it closes the pipe.
fn read(mut lines: LineReader<io::Stdin>, remote: &Arc<Remote>, host: &HostHandle) {
    lines.for_each("the daemon", |message: Down| {
        match message {
            Down::State(s) => {
                remote.set_state(*s);
                host.wake();
            }
            Down::Open { seq, request } => {
                // False once windows failed; the daemon knows from `Failed`.
                host.open(remote.request(seq, request));
            }
            Down::Gone { seq } => {
                remote
                    .gone
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(seq);
                host.wake();
            }
            Down::Result { id, result } => remote.fulfil(id, result),
        }
        true
    });
}

/// Stdout as a plain file: `std::io::Stdout` buffers, and a buffer would keep PIN bytes.
fn raw_stdout() -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsHandle;
        Ok(File::from(io::stdout().as_handle().try_clone_to_owned()?))
    }
}

/// What the daemon last said the dialogs show.
#[derive(Default)]
struct Shown {
    lang: Lang,
    warning_days: u32,
    config_path: Option<PathBuf>,
    snapshot: Arc<Snapshot>,
}

/// [`Services`] answered by the daemon.
struct Remote {
    state: RwLock<Shown>,
    out: Mutex<File>,
    next_id: AtomicU64,
    /// Calls waiting for the daemon's answer.
    calls: Mutex<HashMap<u64, mpsc::Sender<CallResult>>>,
    /// Prompts whose web request went away.
    gone: Mutex<HashSet<u64>>,
}

impl Remote {
    fn set_state(&self, s: link::State) {
        let mut shown = self.state.write().unwrap_or_else(|e| e.into_inner());
        let snapshot = s.snapshot.into_snapshot(&shown.snapshot);
        *shown = Shown {
            lang: s.lang,
            warning_days: s.warning_days,
            config_path: s.config_path,
            snapshot: Arc::new(snapshot),
        };
    }

    fn send(&self, message: &Up) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = link::write(&mut *out, message) {
            // The daemon is gone; this process ends when its stdin closes.
            tracing::debug!(error = %e, "cannot write to the daemon");
        }
    }

    /// Ask the daemon and wait for its answer; `None` when it cannot answer any more.
    fn call(&self, call: Call) -> Option<CallResult> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        self.send(&Up::Call { id, call });
        rx.recv().ok()
    }

    fn fulfil(&self, id: u64, result: CallResult) {
        let waiting = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(tx) = waiting {
            let _ = tx.send(result);
        }
    }

    fn pin_call(&self, call: Call) -> Result<PinState, Refusal> {
        match self.call(call) {
            Some(CallResult::Pin(r)) => r,
            _ => Err(Refusal {
                code: Code::Internal,
                pin_state: None,
            }),
        }
    }

    /// The dialog request for a message; a prompt answers over the pipe.
    fn request(self: &Arc<Self>, seq: u64, request: Request) -> DialogRequest {
        match request {
            Request::Card { cert_id } => DialogRequest::Card { cert_id },
            Request::Details { cert_id } => DialogRequest::Details { cert_id },
            Request::ChangePin { token_id } => DialogRequest::ChangePin { token_id },
            Request::Unlock { token_id } => DialogRequest::Unlock { token_id },
            Request::Consent { origin } => DialogRequest::Consent {
                origin,
                reply: Reply::remote(Box::new(Back {
                    seq,
                    remote: self.clone(),
                })),
            },
            Request::PagePinConsent { origin } => DialogRequest::PagePinConsent {
                origin,
                reply: Reply::remote(Box::new(Back {
                    seq,
                    remote: self.clone(),
                })),
            },
            Request::Pin { request } => DialogRequest::Pin {
                request,
                reply: Reply::remote(Box::new(Back {
                    seq,
                    remote: self.clone(),
                })),
            },
            Request::Doctor => DialogRequest::Doctor,
            Request::Origins => DialogRequest::Origins,
            Request::PickToken { then } => DialogRequest::PickToken { then },
        }
    }
}

impl Services for Remote {
    fn lang(&self) -> Lang {
        self.state.read().unwrap_or_else(|e| e.into_inner()).lang
    }

    fn warning_days(&self) -> u32 {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .warning_days
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot
            .clone()
    }

    fn pin_state(&self, token_id: &TokenId) -> Result<PinState, Refusal> {
        self.pin_call(Call::PinState {
            token_id: token_id.clone(),
        })
    }

    fn change_pin(
        &self,
        token_id: &TokenId,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Refusal> {
        self.pin_call(Call::ChangePin {
            token_id: token_id.clone(),
            old: WirePin(old),
            new: WirePin(new),
            force,
        })
    }

    fn unlock(
        &self,
        token_id: &TokenId,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Refusal> {
        self.pin_call(Call::Unlock {
            token_id: token_id.clone(),
            so_pin: WirePin(so_pin),
            new: WirePin(new),
            force,
        })
    }

    fn origins(&self) -> (Vec<String>, Vec<String>) {
        match self.call(Call::Origins) {
            Some(CallResult::Origins {
                remembered,
                session,
            }) => (remembered, session),
            _ => Default::default(),
        }
    }

    fn revoke_origin(&self, origin: &str) -> io::Result<bool> {
        match self.call(Call::RevokeOrigin {
            origin: origin.to_string(),
        }) {
            Some(CallResult::Revoked(r)) => r.map_err(io::Error::other),
            _ => Err(io::Error::other("certray is not answering")),
        }
    }

    fn doctor_command(&self) -> std::process::Command {
        let shown = self.state.read().unwrap_or_else(|e| e.into_inner());
        backend::doctor_command(shown.config_path.as_deref(), shown.lang)
    }
}

/// A prompt's answer, on its way back to the daemon.
struct Back {
    seq: u64,
    remote: Arc<Remote>,
}

impl Back {
    fn answer(self, answer: Answer) {
        self.remote.send(&Up::Answer {
            seq: self.seq,
            answer,
        });
    }

    fn waiting(&self) -> bool {
        !self
            .remote
            .gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&self.seq)
    }
}

impl RemoteReply<ConsentAnswer> for Back {
    fn send(self: Box<Self>, answer: ConsentAnswer) {
        self.answer(Answer::Consent { answer });
    }

    fn waiting(&self) -> bool {
        Back::waiting(self)
    }
}

impl RemoteReply<PinAnswer> for Back {
    fn send(self: Box<Self>, answer: PinAnswer) {
        self.answer(answer.into());
    }

    fn waiting(&self) -> bool {
        Back::waiting(self)
    }
}
