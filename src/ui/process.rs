//! The daemon's side of the windows. Windows are shown by a dialog process
//! (`certray dialog-host`, [`super::child`]) started when one is wanted and let go once its
//! window has closed, so the daemon never loads OpenGL: on Mesa's software renderer that
//! alone is 100 MiB that would stay mapped for the rest of the session.
//!
//! One `dialogs` thread owns the process: it starts it, keeps it supplied with the
//! inventory ([`Dialogs::refresh`]), passes requests and the bridge's prompts on, and does
//! what the dialogs ask (PIN commands on worker threads, so one slow token holds nothing
//! else up). Messages go over [`super::link`].

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use super::backend::{Backend, Services};
use super::dialogs::DialogRequest;
use super::link::{self, Call, CallResult, Down, LineReader, Prompted, Request, Up, WireSnapshot};
use super::notify::Notifier;

/// How often the web requests behind open prompts are checked (a page that went away
/// closes its prompt).
const PROMPT_CHECK: Duration = Duration::from_millis(250);
/// Dialog processes that may end without ever showing a window before windows are given
/// up for this session.
const CRASHES_TOLERATED: u32 = 3;

/// Opens windows in the dialog process. Cheap to clone; the `dialogs` thread (and the
/// process) ends when the last clone is dropped.
#[derive(Clone)]
pub struct Dialogs {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Mutex<mpsc::Sender<Event>>,
    /// False once windows turned out impossible (no display, no OpenGL).
    running: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Event::Stop);
    }
}

enum Event {
    Open(DialogRequest),
    Refresh,
    /// From dialog process number `.0`.
    Up(u64, Up),
    Ended(u64, io::Result<ExitStatus>),
    Stop,
}

impl Dialogs {
    /// Start the `dialogs` thread. No process runs until a window is wanted.
    pub fn spawn(backend: Arc<Backend>, notifier: Notifier) -> io::Result<Dialogs> {
        let program = std::env::current_exe()?;
        Dialogs::spawn_with(backend, notifier, move || Command::new(&program))
    }

    /// As [`Dialogs::spawn`], running `command() dialog-host` (tests give the certray
    /// binary and the display to use).
    pub fn spawn_with(
        backend: Arc<Backend>,
        notifier: Notifier,
        command: impl Fn() -> Command + Send + 'static,
    ) -> io::Result<Dialogs> {
        let (tx, rx) = mpsc::channel();
        let running = Arc::new(AtomicBool::new(true));
        let mut manager = Manager {
            backend,
            notifier,
            command: Box::new(command),
            events: tx.clone(),
            running: running.clone(),
            child: None,
            generation: 0,
            next_seq: 0,
            prompts: HashMap::new(),
            crashes: 0,
        };
        thread::Builder::new()
            .name("dialogs".into())
            .spawn(move || manager.run(rx))?;
        Ok(Dialogs {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                running,
            }),
        })
    }

    /// Ask for a window; false when no window can be shown (the request is dropped, so a
    /// prompt's reply channel closes).
    pub fn open(&self, request: DialogRequest) -> bool {
        self.is_running() && self.send(Event::Open(request))
    }

    /// The inventory or the language changed: the open windows show it.
    pub fn refresh(&self) {
        self.send(Event::Refresh);
    }

    /// Whether windows can be shown.
    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::SeqCst)
    }

    fn send(&self, e: Event) -> bool {
        let tx = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.send(e).is_ok()
    }
}

/// The dialog process that runs now.
struct Child {
    generation: u64,
    stdin: Arc<Mutex<ChildStdin>>,
    /// Requests sent to it; it is done once it has taken them all and its window closed.
    sent: u64,
    /// It has shown (or is showing) a window: not a crash at start-up.
    idled: bool,
}

struct Manager {
    backend: Arc<Backend>,
    notifier: Notifier,
    /// The program to run as `… dialog-host`.
    command: Box<dyn Fn() -> Command + Send>,
    events: mpsc::Sender<Event>,
    running: Arc<AtomicBool>,
    child: Option<Child>,
    generation: u64,
    next_seq: u64,
    /// The bridge's prompts shown now, by the `seq` they were opened with.
    prompts: HashMap<u64, Prompted>,
    /// Processes in a row that ended without a window.
    crashes: u32,
}

impl Manager {
    fn run(&mut self, rx: mpsc::Receiver<Event>) {
        loop {
            // A timeout only while prompts are open: otherwise the thread sleeps.
            let event = if self.prompts.is_empty() {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(PROMPT_CHECK) {
                    Ok(e) => Some(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.forget_abandoned_prompts();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            };
            match event {
                None | Some(Event::Stop) => break,
                Some(Event::Open(r)) => self.open(r),
                Some(Event::Refresh) => {
                    if self.child.is_some() {
                        self.send_state();
                    }
                }
                Some(Event::Up(g, m)) if self.is_current(g) => self.up(m),
                Some(Event::Up(..)) => {}
                Some(Event::Ended(g, status)) => self.ended(g, status),
            }
            self.forget_abandoned_prompts();
        }
        // Closing the pipe ends the process; its dialogs' prompts answer "deny" as they drop.
        self.child = None;
        self.prompts.clear();
    }

    fn is_current(&self, generation: u64) -> bool {
        self.child
            .as_ref()
            .is_some_and(|c| c.generation == generation)
    }

    fn open(&mut self, request: DialogRequest) {
        if self.child.is_none()
            && let Err(e) = self.start()
        {
            tracing::error!(error = %e, "cannot start the dialog process; dialogs are off");
            self.running.store(false, Ordering::SeqCst);
            return;
        }
        let (request, prompted) = Request::split(request);
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(p) = prompted {
            self.prompts.insert(seq, p);
        }
        if let Some(c) = &mut self.child {
            c.sent += 1;
        }
        // A broken pipe means the process is ending; `Ended` will say so and clean up.
        self.send(&Down::Open { seq, request });
    }

    fn start(&mut self) -> io::Result<()> {
        let mut cmd = (self.command)();
        cmd.arg("dialog-host")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        #[cfg(windows)]
        super::no_console(&mut cmd);
        let mut process = cmd.spawn()?;
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            return Err(io::Error::other("the dialog process has no pipes"));
        };
        self.generation += 1;
        let generation = self.generation;
        let events = self.events.clone();
        thread::Builder::new()
            .name("dialogs-read".into())
            .spawn(move || {
                LineReader::new(stdout).for_each("the dialog process", |m: Up| {
                    events.send(Event::Up(generation, m)).is_ok()
                });
                let status = process.wait();
                let _ = events.send(Event::Ended(generation, status));
            })?;
        tracing::debug!(generation, "dialog process started");
        self.child = Some(Child {
            generation,
            stdin: Arc::new(Mutex::new(stdin)),
            sent: 0,
            idled: false,
        });
        self.send_state();
        Ok(())
    }

    fn send_state(&self) {
        let b = &self.backend;
        self.send(&Down::State(Box::new(link::State {
            lang: b.lang(),
            warning_days: b.warning_days(),
            config_path: b.config_path().map(PathBuf::from),
            snapshot: WireSnapshot::new(&b.snapshot()),
        })));
    }

    fn send(&self, message: &Down) {
        if let Some(c) = &self.child {
            write(&c.stdin, message);
        }
    }

    fn up(&mut self, message: Up) {
        match message {
            Up::Call { id, call } => self.call(id, call),
            Up::Answer { seq, answer } => {
                if let Some(p) = self.prompts.remove(&seq) {
                    p.send(answer);
                }
            }
            Up::Notify { notice } => self.notifier.send(notice),
            Up::Idle { received } => {
                if let Some(c) = &mut self.child {
                    c.idled = true;
                    self.crashes = 0;
                    if received == c.sent {
                        // Nothing left to show: closing the pipe ends the process.
                        tracing::debug!(generation = c.generation, "dialog process done");
                        self.child = None;
                    }
                }
            }
            Up::Failed { error } => {
                tracing::error!(error = %error, "cannot open windows; dialogs are off");
                self.running.store(false, Ordering::SeqCst);
                self.child = None;
                // No one could be asked, as when headless.
                for (_, p) in self.prompts.drain() {
                    p.send(link::Answer::Unavailable);
                }
            }
        }
    }

    /// Do what a dialog asked. PIN commands wait on the token, so they run on a thread of
    /// their own and answer from there.
    fn call(&self, id: u64, call: Call) {
        let Some(c) = &self.child else { return };
        let stdin = c.stdin.clone();
        let reply = move |result: CallResult| write(&stdin, &Down::Result { id, result });
        match call {
            Call::Origins => {
                let (remembered, session) = self.backend.origins();
                reply(CallResult::Origins {
                    remembered,
                    session,
                });
            }
            Call::RevokeOrigin { origin } => reply(CallResult::Revoked(
                self.backend
                    .revoke_origin(&origin)
                    .map_err(|e| e.to_string()),
            )),
            pin => {
                let backend = self.backend.clone();
                let spawned = thread::Builder::new()
                    .name("dialogs-pin".into())
                    .spawn(move || {
                        reply(CallResult::Pin(match pin {
                            Call::PinState { token_id } => backend.pin_state(&token_id),
                            Call::ChangePin {
                                token_id,
                                old,
                                new,
                                force,
                            } => backend.change_pin(&token_id, old.0, new.0, force),
                            Call::Unlock {
                                token_id,
                                so_pin,
                                new,
                                force,
                            } => backend.unlock(&token_id, so_pin.0, new.0, force),
                            Call::Origins | Call::RevokeOrigin { .. } => unreachable!(),
                        }))
                    });
                if let Err(e) = spawned {
                    // The dialog waits for an answer it will not get; its process ends
                    // with the daemon at the latest.
                    tracing::error!(error = %e, "cannot start a PIN command thread");
                }
            }
        }
    }

    fn ended(&mut self, generation: u64, status: io::Result<ExitStatus>) {
        if !self.is_current(generation) {
            tracing::debug!(generation, ?status, "dialog process ended");
            return;
        }
        let shown = self.child.as_ref().is_some_and(|c| c.idled);
        tracing::warn!(generation, ?status, "the dialog process ended unexpectedly");
        self.child = None;
        // Their dialogs are gone: the waiting pages get "deny" / "cancelled".
        self.prompts.clear();
        if !shown {
            self.crashes += 1;
            if self.crashes >= CRASHES_TOLERATED {
                tracing::error!("the dialog process keeps failing; dialogs are off");
                self.running.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Close the prompts whose web request went away.
    fn forget_abandoned_prompts(&mut self) {
        let gone: Vec<u64> = self
            .prompts
            .iter()
            .filter(|(_, p)| !p.waiting())
            .map(|(seq, _)| *seq)
            .collect();
        for seq in gone {
            self.prompts.remove(&seq);
            self.send(&Down::Gone { seq });
        }
    }
}

/// Write to the dialog process. A failure means it is ending, which its reader reports.
fn write(stdin: &Mutex<ChildStdin>, message: &Down) {
    let mut w = stdin.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = link::write(&mut *w, message) {
        tracing::debug!(error = %e, "cannot write to the dialog process");
    }
}
