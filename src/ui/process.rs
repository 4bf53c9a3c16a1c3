//! The daemon's side of the windows. Windows are shown by a dialog process
//! (`certray dialog-host`, [`super::child`]) started when one is wanted and let go once its
//! window has closed, so the daemon never loads OpenGL: on Mesa's software renderer that
//! alone is 100 MiB that would stay mapped for the rest of the session.
//!
//! One `dialogs` thread owns the process: it starts it, keeps it supplied with the
//! inventory ([`Dialogs::refresh`]), passes requests and the bridge's prompts on, and does
//! what the dialogs ask (PIN commands on worker threads, so one slow token holds nothing
//! else up). Messages go over [`super::link`].
//!
//! [`Dialogs::stop`] ends it all and waits: the pipe is closed (the dialog process exits
//! when it is, open windows and all), the process gets [`EXIT_GRACE`] to do so before it is
//! killed, and the reader and PIN-command threads are joined, so that once `stop` returns
//! nothing here holds the [`Backend`] (and the inventory behind it) any more.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

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
/// How long a dialog process has to exit once its pipe is closed at [`Dialogs::stop`]
/// before it is killed.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Opens windows in the dialog process. Cheap to clone; the `dialogs` thread (and the
/// process) ends at [`Dialogs::stop`], or when the last clone is dropped.
#[derive(Clone)]
pub struct Dialogs {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Mutex<mpsc::Sender<Event>>,
    /// False once windows turned out impossible (no display, no OpenGL), and after `stop`.
    running: Arc<AtomicBool>,
    /// The `dialogs` thread, until [`Dialogs::stop`] joins it.
    thread: Mutex<Option<thread::JoinHandle<()>>>,
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

/// The program that draws the windows: this executable, or where it is `certray-desktop`
/// (see [`super::tray::link`]), `certray` beside it. The windows need no tray, and without
/// GTK to load the dialog process starts sooner and is smaller.
fn dialog_program() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name() == Some(super::tray::DESKTOP_EXE.as_ref())
        && let Ok(cli) = crate::platform::beside_this_exe(super::tray::CLI_EXE)
        && cli.is_file()
    {
        return Ok(cli);
    }
    Ok(exe)
}

enum Event {
    Open(DialogRequest),
    Refresh,
    /// From dialog process number `.0`.
    Up(u64, Up),
    /// Dialog process number `.0` closed its end of the pipe: it is exiting.
    Eof(u64),
    Stop,
}

impl Dialogs {
    /// Start the `dialogs` thread. No process runs until a window is wanted.
    pub fn spawn(backend: Arc<Backend>, notifier: Notifier) -> io::Result<Dialogs> {
        let program = dialog_program()?;
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
            leaving: Vec::new(),
            workers: Vec::new(),
            generation: 0,
            next_seq: 0,
            prompts: HashMap::new(),
            crashes: 0,
        };
        let thread = thread::Builder::new()
            .name("dialogs".into())
            .spawn(move || manager.run(rx))?;
        Ok(Dialogs {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                running,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Close every window and end the dialog process (killed when it has not exited within
    /// [`EXIT_GRACE`]), wait for the PIN commands under way, and join the `dialogs` thread.
    /// Windows cannot be opened afterwards; a prompt still open is answered as refused or
    /// cancelled. Returns at once when already stopped.
    pub fn stop(&self) {
        self.inner.running.store(false, Ordering::SeqCst);
        self.send(Event::Stop);
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
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

/// A dialog process.
struct Child {
    generation: u64,
    /// `None` once let go: closing the pipe ends the process. Shared with the PIN-command
    /// threads that answer on it; whoever writes late finds it closed.
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    process: std::process::Child,
    /// Reads its messages until it exits.
    reader: thread::JoinHandle<()>,
    /// Requests sent to it; it is done once it has taken them all and its window closed.
    sent: u64,
    /// It has shown (or is showing) a window: not a crash at start-up.
    idled: bool,
}

impl Child {
    /// Close the pipe: the process exits (with any window still open).
    fn let_go(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Reap the process, which has closed its end of the pipe (it is exiting), and its
    /// reader.
    fn reap(mut self) -> io::Result<ExitStatus> {
        self.let_go();
        let status = self.process.wait();
        let _ = self.reader.join();
        status
    }

    /// Kill the process, which did not exit in time, and reap it. Its reader ends when the
    /// pipe closes: joined when it has, else left to end on its own (it holds nothing but
    /// the pipe; a process of the dialog process's own could keep that open).
    fn kill(mut self) {
        tracing::warn!(
            generation = self.generation,
            "the dialog process did not exit when let go; killed"
        );
        self.let_go();
        let _ = self.process.kill();
        let _ = self.process.wait();
        if self.reader.is_finished() {
            let _ = self.reader.join();
        }
    }
}

struct Manager {
    backend: Arc<Backend>,
    notifier: Notifier,
    /// The program to run as `… dialog-host`.
    command: Box<dyn Fn() -> Command + Send>,
    events: mpsc::Sender<Event>,
    running: Arc<AtomicBool>,
    child: Option<Child>,
    /// Processes let go whose exit has not been seen yet.
    leaving: Vec<Child>,
    /// PIN commands under way (joined at stop: they hold the backend).
    workers: Vec<thread::JoinHandle<()>>,
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
                Some(Event::Eof(g)) => self.ended(g),
            }
            self.forget_abandoned_prompts();
        }
        self.shut_down(&rx);
    }

    /// Let every process go and wait for it (up to [`EXIT_GRACE`], then kill it), and wait
    /// for the PIN commands under way. The dialogs' prompts answer "deny" / "cancelled" as
    /// they drop.
    fn shut_down(&mut self, rx: &mpsc::Receiver<Event>) {
        self.running.store(false, Ordering::SeqCst);
        self.prompts.clear();
        self.let_go();
        let deadline = Instant::now() + EXIT_GRACE;
        while !self.leaving.is_empty() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Eof(g)) => self.ended(g),
                // Too late for anything else: a window asked for now is refused as it drops.
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for child in self.leaving.drain(..) {
            child.kill();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }

    /// Close the current process's pipe; it exits and is reaped when its reader says so.
    fn let_go(&mut self) {
        if let Some(c) = self.child.take() {
            c.let_go();
            self.leaving.push(c);
        }
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
        // A broken pipe means the process is ending; `Eof` will say so and clean up.
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
            let _ = process.kill();
            let _ = process.wait();
            return Err(io::Error::other("the dialog process has no pipes"));
        };
        self.generation += 1;
        let generation = self.generation;
        let events = self.events.clone();
        let spawned = thread::Builder::new()
            .name("dialogs-read".into())
            .spawn(move || {
                // Until the process exits; messages after the `dialogs` thread ended are
                // not read (the process is being let go).
                LineReader::new(stdout).for_each("the dialog process", |m: Up| {
                    events.send(Event::Up(generation, m)).is_ok()
                });
                let _ = events.send(Event::Eof(generation));
            });
        let reader = match spawned {
            Ok(r) => r,
            Err(e) => {
                drop(stdin);
                let _ = process.kill();
                let _ = process.wait();
                return Err(e);
            }
        };
        tracing::debug!(generation, "dialog process started");
        self.child = Some(Child {
            generation,
            stdin: Arc::new(Mutex::new(Some(stdin))),
            process,
            reader,
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
                        self.let_go();
                    }
                }
            }
            Up::Failed { error } => {
                tracing::error!(error = %error, "cannot open windows; dialogs are off");
                self.running.store(false, Ordering::SeqCst);
                self.let_go();
                // No one could be asked, as when headless.
                for (_, p) in self.prompts.drain() {
                    p.send(link::Answer::Unavailable);
                }
            }
        }
    }

    /// Do what a dialog asked. PIN commands wait on the token, so they run on a thread of
    /// their own and answer from there.
    fn call(&mut self, id: u64, call: Call) {
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
                self.workers.retain(|w| !w.is_finished());
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
                match spawned {
                    Ok(worker) => self.workers.push(worker),
                    // The dialog waits for an answer it will not get; its process ends
                    // with the daemon at the latest.
                    Err(e) => tracing::error!(error = %e, "cannot start a PIN command thread"),
                }
            }
        }
    }

    /// Dialog process `generation` is exiting: reap it. The current one ending is a crash
    /// (or windows failing to open).
    fn ended(&mut self, generation: u64) {
        if let Some(i) = self.leaving.iter().position(|c| c.generation == generation) {
            let status = self.leaving.swap_remove(i).reap();
            tracing::debug!(generation, ?status, "dialog process ended");
            return;
        }
        let Some(child) = self.child.take_if(|c| c.generation == generation) else {
            return;
        };
        let shown = child.idled;
        let status = child.reap();
        tracing::warn!(generation, ?status, "the dialog process ended unexpectedly");
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

/// Write to the dialog process. A failure means it is ending, which its reader reports;
/// a process let go is not written to.
fn write(stdin: &Mutex<Option<ChildStdin>>, message: &Down) {
    let mut w = stdin.lock().unwrap_or_else(|e| e.into_inner());
    let Some(w) = w.as_mut() else { return };
    if let Err(e) = link::write(w, message) {
        tracing::debug!(error = %e, "cannot write to the dialog process");
    }
}
