//! The daemon (`certray run`): the composition root. It builds the live inventory, the
//! core's approvals, audit log and signing, the localhost bridge and (on a desktop) the
//! tray, dialogs and notifications, serves until Ctrl-C, SIGTERM or the tray's 退出, and
//! then takes everything down in the order it depends on each other:
//!
//! 1. **Prompts are withdrawn.** A web request waiting for a person (consent, PIN) is
//!    answered at once as refused / cancelled, and new ones are refused as when headless;
//!    the dialogs of withdrawn prompts close.
//! 2. **The bridge stops** (and the BJCA-compatible listeners of `[xtx]`, `daemon/xtx.rs`,
//!    whose sockets close): no new connections, event streams end, requests in flight get
//!    [`BRIDGE_GRACE`] to finish (a signature on a token completes); then the runtime shuts
//!    down (its tasks dropped, its threads joined, within [`RUNTIME_GRACE`]). Nothing of
//!    the bridge holds the inventory any more.
//! 3. **The desktop stops** ([`crate::ui::Desktop::stop`]): the controller thread is joined
//!    (the tray icon leaves); the dialogs thread closes the dialog process's pipe, gives it
//!    [`crate::ui::process::EXIT_GRACE`] to exit before killing it, joins its reader and
//!    PIN-command threads, and is joined.
//! 4. **The inventory is dropped by its last owner, here**: the PC/SC watcher and the
//!    inventory thread are joined, and each module thread finalizes its module and is
//!    joined, before the process exits (SoftHSM crashes when its library is torn down under
//!    a running C_Finalize).
//! 5. The instance lock is released: a new daemon can start.
//!
//! No reference count is polled and nothing is leaked: each step joins the threads it
//! started, so when step 4 runs the inventory has no other owner.

mod xtx;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::bridge::{self, BridgeOptions, BridgeState};
use crate::config::{self, Config};
use crate::core::{
    self, Approvals, Audit, Headless, Live, LiveOptions, LoadFailure, Prompt, Signing,
};
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::PinState;
use crate::platform::{InstanceLock, LockError};
use crate::ui;

/// How long requests in flight may take to finish once the daemon stops.
pub const BRIDGE_GRACE: Duration = Duration::from_secs(5);

/// The async runtime of `certray run` (the bridge and its listeners): one worker thread.
///
/// The work that takes time is the tokens' (one thread each) and the blocking pool's; the
/// bridge's own work per request is microseconds. A second worker did not serve more
/// requests (`GET /v1/certificates` under wrk was the same), but while every core signs on
/// its own token it competed with them: on 2 cores, two tokens of one module signing side
/// by side made 903 signatures/s with two workers and 1,084 with one (`scripts/bench-bridge`
/// (d), which the module's own ceiling there, 1,105/s, bounds). The price: a large body
/// (up to 16 MiB) is decoded on this one thread while other requests wait
/// (`scripts/bench-hostile`: 32 of them at once took 2.4–2.7 s instead of 1.9–2.1 s, three
/// runs each; `GET /v1/status` latency, loaded or not, varied as much between runs of
/// either).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

/// How long the runtime's threads may take to end after the bridge stopped.
pub const RUNTIME_GRACE: Duration = Duration::from_secs(2);

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The inventory did not start (its code: CONFIG_INVALID for a bad `[[cards]]` entry,
    /// INTERNAL otherwise).
    #[error(transparent)]
    Core(#[from] core::Error),
    /// The configuration cannot be served as it is (e.g. a bridge address off loopback).
    #[error("{0}")]
    Config(String),
    /// Another certray daemon runs for this user: who, and where.
    #[error("{0}")]
    AlreadyRunning(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::Core(e) => e.code(),
            Error::Config(_) => Code::ConfigInvalid,
            Error::AlreadyRunning(_) => Code::AlreadyRunning,
            Error::Io(_) => Code::Io,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// The token's PIN state when the error carries one.
    pub fn pin_state(&self) -> Option<PinState> {
        match self {
            Error::Core(e) => e.pin_state(),
            _ => None,
        }
    }
}

/// How to run the daemon.
pub struct Options {
    pub config: Config,
    /// `--config FILE` as given, passed on to `certray doctor` from the tray.
    pub config_path: Option<PathBuf>,
    pub lang: Lang,
    /// Show the desktop (tray, dialogs, notifications) when there is a display.
    pub desktop: bool,
}

/// Whether the desktop UI runs, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopUi {
    On,
    /// Not asked for (`--headless`).
    Headless,
    /// Asked for, but there is no display.
    NoDisplay,
}

/// What the daemon tells its caller once it serves.
#[derive(Debug)]
pub struct Ready<'a> {
    /// The bridge's address as it holds it, `http://127.0.0.1:PORT/` (its check page).
    pub url: &'a str,
    pub desktop: DesktopUi,
    /// The BJCA-compatible endpoint's URLs (`ws://…/xtxapp/`, `wss://…/xtxapp/`) when on.
    pub xtx: &'a [String],
}

/// What the caller hears about while the daemon starts.
pub trait Hooks {
    /// The inventory started; these modules could not be loaded.
    fn loaded(&mut self, failures: &[LoadFailure]);
    /// The bridge serves (and the desktop runs, when it does).
    fn ready(&mut self, ready: &Ready<'_>);
}

/// Run the daemon until Ctrl-C, SIGTERM or the tray's 退出; returns once everything it
/// started has stopped and the modules are finalized (see the module docs).
pub fn run(options: Options, hooks: &mut dyn Hooks) -> Result<(), Error> {
    let Options {
        config,
        config_path,
        lang,
        desktop,
    } = options;
    bridge::check_listen(config.bridge.listen).map_err(Error::Config)?;
    // One daemon per user: a second one says which is running, before touching anything.
    let lock_dir =
        crate::platform::lock_dir().ok_or_else(|| Error::Io("no home directory".into()))?;
    let mut lock = InstanceLock::acquire(&lock_dir).map_err(|e| match e {
        LockError::Held(holder) => Error::AlreadyRunning(holder.to_string()),
        e => Error::Io(e.to_string()),
    })?;
    // Idle sockets must not run the process out of descriptors: up to the hard limit.
    match crate::platform::resources::raise_open_file_limit() {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = runtime().map_err(|e| Error::Internal(e.to_string()))?;
    let live = Arc::new(Live::start(&config, LiveOptions::watching())?);
    hooks.loaded(live.failures());
    // Filled in by the dialogs once they run (they need the Backend this prompt goes into).
    let slot = (desktop && ui::display_available()).then(ui::PromptSlot::new);
    let mut running = Running {
        backend: None,
        desktop: None,
    };
    let served = runtime.block_on(serve(
        &config,
        config_path,
        lang,
        desktop,
        &live,
        slot,
        &mut lock,
        &mut running,
        hooks,
    ));
    // 2. The bridge has stopped; its tasks go with the runtime.
    runtime.shutdown_timeout(RUNTIME_GRACE);
    // 3. The desktop, which joins its threads.
    if let Some(d) = running.desktop.take() {
        d.stop();
    }
    drop(running);
    // 4. The inventory, from its last owner: the modules are finalized here, before exit.
    match Arc::try_unwrap(live) {
        Ok(live) => drop(live),
        Err(live) => tracing::error!(
            owners = Arc::strong_count(&live),
            "the inventory is still held after shutdown; its modules finalize with the last owner"
        ),
    }
    tracing::debug!("stopped");
    // 5. Only now may another daemon start.
    drop(lock);
    served
}

/// What runs while the bridge serves, taken down after it.
struct Running {
    backend: Option<Arc<ui::Backend>>,
    desktop: Option<ui::Desktop>,
}

/// Bind, build the core and the front doors, serve until asked to stop.
#[allow(clippy::too_many_arguments)]
async fn serve(
    config: &Config,
    config_path: Option<PathBuf>,
    lang: Lang,
    desktop: bool,
    live: &Arc<Live>,
    slot: Option<Arc<ui::PromptSlot>>,
    lock: &mut InstanceLock,
    running: &mut Running,
    hooks: &mut dyn Hooks,
) -> Result<(), Error> {
    let listen = config.bridge.listen;
    // The address asked for, and the other one `localhost` may mean on its port.
    let listeners = match bridge::Listeners::bind(listen).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(Error::Io(format!(
                "{listen} is in use by another program (or another certray); set [bridge] listen"
            )));
        }
        Err(e) => return Err(Error::Io(format!("{listen}: {e}"))),
    };
    let port = listeners.port();
    let state_dir = config::state_dir();
    let approvals = Arc::new(Approvals::new(&config.bridge, state_dir.as_deref()));
    let prompt: Arc<dyn Prompt> = match &slot {
        Some(s) => s.clone(),
        None => Arc::new(Headless),
    };
    let signing = Arc::new(Signing::new(
        live.clone(),
        approvals.clone(),
        Arc::new(Audit::open(state_dir.as_deref())),
        prompt,
    ));
    let xtx = xtx::start(config, signing.clone())
        .await
        .map_err(Error::Config)?;
    let app = BridgeState::new(
        signing,
        BridgeOptions {
            config: config.bridge.clone(),
            port,
            warning_days: config.alerts.expiry_warning_days,
        },
    );
    // The address it holds (`listen = "127.0.0.2:…"` is served there, not on 127.0.0.1).
    let url = listeners.url();
    if let Err(e) = lock.describe(Some(&url)) {
        tracing::warn!(path = %lock.path().display(), error = %e, "cannot note the URL in the lock file");
    }
    if let Some(slot) = &slot {
        let backend = ui::Backend::new(
            live.clone(),
            ui::BackendOptions {
                approvals: Some(approvals.clone()),
                lang,
                warning_days: config.alerts.expiry_warning_days,
                check_page: Some(url.clone()),
                config_path,
                state_dir: state_dir.clone(),
            },
        );
        running.desktop = Some(ui::start(&backend, slot, &config.ui));
        running.backend = Some(backend);
    }
    hooks.ready(&Ready {
        url: &url,
        desktop: match (running.backend.is_some(), desktop) {
            (true, _) => DesktopUi::On,
            (false, false) => DesktopUi::Headless,
            (false, true) => DesktopUi::NoDisplay,
        },
        xtx: xtx.as_ref().map_or(&[], |x| x.urls.as_slice()),
    });
    let _ = std::io::stdout().flush();
    // Ctrl-C, SIGTERM, or the tray's 退出; then (1.) the prompts are withdrawn.
    let quit = running.backend.clone();
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        match quit {
            Some(b) => tokio::select! {
                _ = shutdown_signal() => {}
                _ = b.quitting() => tracing::info!("stopping"),
            },
            None => shutdown_signal().await,
        }
        if let Some(slot) = slot {
            slot.close();
        }
        let _ = stopping.send(());
    };
    // 2. The bridge drains its requests, for a while.
    let serving = bridge::serve_bound(listeners, app, shutdown);
    tokio::pin!(serving);
    let served = tokio::select! {
        r = &mut serving => r.map_err(|e| Error::Io(e.to_string())),
        _ = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(BRIDGE_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace = ?BRIDGE_GRACE, "requests still open when stopping; dropped");
            Ok(())
        }
    };
    // The BJCA-compatible listeners stop with the bridge (their sockets close).
    if let Some(x) = xtx {
        x.stop().await;
    }
    served
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
}
