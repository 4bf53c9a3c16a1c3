//! The tray icon and its menu (tray-icon), on a thread of its own.
//!
//! A `TrayIcon` is `!Send` and must live on a thread that runs the platform's event loop:
//! on Linux a GTK main loop (tray-icon builds on GTK 3 and ayatana-appindicator, which falls
//! back to an XEmbed icon when no StatusNotifier host is there), on Windows a Win32 message
//! loop. The tray thread only renders [`TrayView`]s the controller sends; clicks go back as
//! [`Action`]s through muda's one process-wide event handler. macOS: the main thread's
//! event loop, which `main` keeps for the tray ([`main_thread`]).

use std::sync::{Mutex, Once, mpsc};

use super::icons::{self, IconState};
use super::view::{Action, TrayView};

/// Where menu clicks go: set by [`start`], cleared when its tray stops. muda takes one
/// event handler per process, once, so the handler forwards to this.
type Clicks = Box<dyn Fn(Action) + Send + Sync>;
static CLICKS: Mutex<Option<Clicks>> = Mutex::new(None);

/// Windows copies at most 128 UTF-16 units, without room for the terminator.
const TOOLTIP_MAX: usize = 120;

/// What the tray thread is told.
enum Command {
    Show(Box<TrayView>),
    Stop,
}

/// Talks to the tray thread. Dropping it removes the icon and ends the thread.
pub struct TrayHandle {
    tx: mpsc::Sender<Command>,
    waker: platform::Waker,
}

impl TrayHandle {
    /// Show `view` (icon, tooltip, menu). Never blocks.
    pub fn show(&self, view: TrayView) {
        if self.tx.send(Command::Show(Box::new(view))).is_ok() {
            self.waker.wake();
        }
    }
}

impl Drop for TrayHandle {
    fn drop(&mut self) {
        *CLICKS.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.tx.send(Command::Stop).is_ok() {
            self.waker.wake();
        }
    }
}

/// Start the tray thread showing `view`; menu clicks call `on_click` (on the tray thread:
/// it must return at once). Fails when there is no tray to be had (GTK cannot open the
/// display, ayatana-appindicator is not installed, macOS).
pub fn start(
    view: TrayView,
    on_click: impl Fn(Action) + Send + Sync + 'static,
) -> Result<TrayHandle, String> {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        tray_icon::menu::MenuEvent::set_event_handler(Some(|e: tray_icon::menu::MenuEvent| {
            let Some(action) = Action::from_id(e.id().as_ref()) else {
                return;
            };
            if let Some(f) = &*CLICKS.lock().unwrap_or_else(|e| e.into_inner()) {
                f(action);
            }
        }));
    });
    *CLICKS.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(on_click));
    let (tx, rx) = mpsc::channel();
    match platform::spawn(view, rx) {
        Ok(waker) => Ok(TrayHandle { tx, waker }),
        Err(e) => {
            *CLICKS.lock().unwrap_or_else(|e| e.into_inner()) = None;
            Err(e)
        }
    }
}

/// The image for a state.
fn icon(state: IconState) -> Result<tray_icon::Icon, String> {
    icons::tray_icon(state).ok_or_else(|| format!("no tray image for {state:?}"))
}

/// The tray as it lives on its thread.
struct Local {
    rx: mpsc::Receiver<Command>,
    tray: tray_icon::TrayIcon,
    state: IconState,
}

impl Local {
    fn new(view: &TrayView, rx: mpsc::Receiver<Command>) -> Result<Local, String> {
        let mut builder = tray_icon::TrayIconBuilder::new()
            .with_id("certray")
            .with_icon(icon(view.state)?)
            .with_tooltip(clip(&view.tooltip))
            .with_menu(Box::new(menu::build(view)?));
        // Icons are written to files on Linux: one directory per process, so that two
        // certray processes (tests) never remove each other's icons.
        if cfg!(target_os = "linux") {
            builder = builder.with_temp_dir_path(icon_dir());
        }
        let tray = builder.build().map_err(|e| e.to_string())?;
        Ok(Local {
            rx,
            tray,
            state: view.state,
        })
    }

    fn apply(&mut self, view: &TrayView) {
        if view.state != self.state {
            match icon(view.state)
                .and_then(|i| self.tray.set_icon(Some(i)).map_err(|e| e.to_string()))
            {
                Ok(()) => self.state = view.state,
                Err(e) => tracing::warn!(error = %e, "cannot change the tray icon"),
            }
        }
        if let Err(e) = self.tray.set_tooltip(Some(clip(&view.tooltip))) {
            tracing::debug!(error = %e, "cannot set the tray tooltip");
        }
        match menu::build(view) {
            Ok(m) => self.tray.set_menu(Some(Box::new(m))),
            Err(e) => tracing::warn!(error = %e, "cannot rebuild the tray menu"),
        }
    }

    /// Apply what has arrived; false once the tray is to stop.
    fn drain(&mut self) -> bool {
        let mut latest = None;
        loop {
            match self.rx.try_recv() {
                // Only the newest view matters.
                Ok(Command::Show(v)) => latest = Some(v),
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if let Some(v) = latest {
            self.apply(&v);
        }
        true
    }
}

/// Where tray-icon writes the icon files on Linux: one directory per process (two certray
/// processes, as in tests, must not remove each other's icons) in the runtime directory,
/// which the session empties at logout.
fn icon_dir() -> std::path::PathBuf {
    icon_parent().join(format!("{ICON_DIR_PREFIX}{}", std::process::id()))
}

const ICON_DIR_PREFIX: &str = "certray-tray-";

fn icon_parent() -> std::path::PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Remove the icon directories of certray processes that are gone (killed, so they could
/// not clean up).
#[cfg(target_os = "linux")]
fn remove_stale_icon_dirs() {
    let Ok(entries) = std::fs::read_dir(icon_parent()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(ICON_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn clip(s: &str) -> String {
    let mut units = 0;
    let mut out = String::new();
    for c in s.chars() {
        units += c.len_utf16();
        if units > TOOLTIP_MAX - 1 {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

/// A [`TrayView`]'s menu as muda items.
mod menu {
    use tray_icon::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};

    use crate::ui::view::{Entry, TrayView};

    pub fn build(view: &TrayView) -> Result<Menu, String> {
        let menu = Menu::new();
        for item in items(&view.menu)? {
            menu.append(item.as_ref()).map_err(|e| e.to_string())?;
        }
        Ok(menu)
    }

    fn items(entries: &[Entry]) -> Result<Vec<Box<dyn IsMenuItem>>, String> {
        let mut out: Vec<Box<dyn IsMenuItem>> = Vec::new();
        for e in entries {
            match e {
                Entry::Note(t) => out.push(Box::new(MenuItem::new(text(t), false, None))),
                Entry::Item {
                    label,
                    action,
                    enabled,
                } => out.push(Box::new(MenuItem::with_id(
                    action.id(),
                    text(label),
                    *enabled,
                    None,
                ))),
                Entry::Check {
                    label,
                    action,
                    checked,
                } => out.push(Box::new(CheckMenuItem::with_id(
                    action.id(),
                    text(label),
                    true,
                    *checked,
                    None,
                ))),
                Entry::Submenu { label, entries } => {
                    let sub = Submenu::new(text(label), true);
                    for item in items(entries)? {
                        sub.append(item.as_ref()).map_err(|e| e.to_string())?;
                    }
                    out.push(Box::new(sub));
                }
                Entry::Separator => out.push(Box::new(PredefinedMenuItem::separator())),
            }
        }
        Ok(out)
    }

    /// muda reads `&` as a mnemonic marker; names may contain one.
    fn text(s: &str) -> String {
        s.replace('&', "&&")
    }
}

/// Linux: GTK on the tray thread; updates arrive as glib idle callbacks.
#[cfg(target_os = "linux")]
mod platform {
    use std::cell::RefCell;
    use std::sync::mpsc;

    use gtk::glib;

    use super::{Command, Local};
    use crate::ui::view::TrayView;

    thread_local! {
        /// The tray, on the tray thread only.
        static TRAY: RefCell<Option<Local>> = const { RefCell::new(None) };
    }

    pub struct Waker;

    impl Waker {
        pub fn wake(&self) {
            // Runs on the thread that runs the default main context: the tray thread.
            glib::idle_add_once(drain);
        }
    }

    fn drain() {
        TRAY.with(|t| {
            let mut t = t.borrow_mut();
            let keep = t.as_mut().is_some_and(Local::drain);
            if !keep && t.take().is_some() {
                let _ = std::fs::remove_dir_all(super::icon_dir());
                gtk::main_quit();
            }
        });
    }

    pub fn spawn(view: TrayView, rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tray".into())
            .spawn(move || {
                // ayatana-appindicator is loaded at run time; tray-icon panics when it is
                // missing.
                super::remove_stale_icon_dirs();
                let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    gtk::init().map_err(|e| format!("GTK cannot start: {e}"))?;
                    Local::new(&view, rx)
                }))
                .unwrap_or_else(|p| Err(super::panic_text(&*p)));
                match built {
                    Ok(local) => {
                        TRAY.with(|t| *t.borrow_mut() = Some(local));
                        let _ = ready_tx.send(Ok(()));
                        gtk::main();
                        tracing::debug!("tray stopped");
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("cannot start the tray thread: {e}"))?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err("the tray thread ended".into()))?;
        Ok(Waker)
    }
}

/// Windows: a Win32 message loop on the tray thread; updates are announced with a thread
/// message.
#[cfg(windows)]
mod platform {
    use std::sync::mpsc;

    use super::{Command, Local};
    use crate::ui::view::TrayView;

    /// The few user32/kernel32 calls a message loop needs.
    mod win32 {
        use std::ffi::c_void;

        #[repr(C)]
        pub struct Msg {
            pub hwnd: *mut c_void,
            pub message: u32,
            pub wparam: usize,
            pub lparam: isize,
            pub time: u32,
            pub pt: [i32; 2],
            /// Room for fields newer headers may add.
            pub reserved: [u32; 4],
        }

        pub const WM_APP: u32 = 0x8000;
        pub const PM_NOREMOVE: u32 = 0;

        #[link(name = "user32")]
        unsafe extern "system" {
            pub fn GetMessageW(msg: *mut Msg, hwnd: *mut c_void, min: u32, max: u32) -> i32;
            pub fn PeekMessageW(
                msg: *mut Msg,
                hwnd: *mut c_void,
                min: u32,
                max: u32,
                remove: u32,
            ) -> i32;
            pub fn TranslateMessage(msg: *const Msg) -> i32;
            pub fn DispatchMessageW(msg: *const Msg) -> isize;
            pub fn PostThreadMessageW(thread: u32, msg: u32, wparam: usize, lparam: isize) -> i32;
        }

        #[link(name = "kernel32")]
        unsafe extern "system" {
            pub fn GetCurrentThreadId() -> u32;
        }
    }

    /// "Commands are waiting": the tray thread drains its channel.
    const WM_WAKE: u32 = win32::WM_APP + 1;

    pub struct Waker {
        thread: u32,
    }

    impl Waker {
        pub fn wake(&self) {
            // SAFETY: plain Win32 call; a thread that has gone makes it fail, harmlessly.
            unsafe { win32::PostThreadMessageW(self.thread, WM_WAKE, 0, 0) };
        }
    }

    pub fn spawn(view: TrayView, rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tray".into())
            .spawn(move || {
                // SAFETY: Msg is plain data; the calls only write into it.
                let mut msg: win32::Msg = unsafe { std::mem::zeroed() };
                // The thread's message queue must exist before anyone posts to it.
                unsafe {
                    win32::PeekMessageW(&mut msg, std::ptr::null_mut(), 0, 0, win32::PM_NOREMOVE)
                };
                let thread = unsafe { win32::GetCurrentThreadId() };
                let mut local = match Local::new(&view, rx) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(thread));
                loop {
                    let r = unsafe { win32::GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) };
                    if r <= 0 {
                        break;
                    }
                    if msg.hwnd.is_null() && msg.message == WM_WAKE {
                        if !local.drain() {
                            break;
                        }
                        continue;
                    }
                    unsafe {
                        win32::TranslateMessage(&msg);
                        win32::DispatchMessageW(&msg);
                    }
                }
            })
            .map_err(|e| format!("cannot start the tray thread: {e}"))?;
        let thread = ready_rx
            .recv()
            .unwrap_or_else(|_| Err("the tray thread ended".into()))?;
        Ok(Waker { thread })
    }
}

/// macOS: AppKit runs on the main thread only, so there the tray lives on the main thread:
/// `main` hands the rest of certray to a thread of its own ([`main_thread`]) and serves the
/// tray with a winit event loop (no Dock icon); updates arrive as user events.
#[cfg(target_os = "macos")]
mod platform {
    use std::sync::{Mutex, mpsc};

    use winit::application::ApplicationHandler;
    use winit::event::{StartCause, WindowEvent};
    use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
    use winit::platform::macos::{ActivationPolicy, EventLoopBuilderExtMacOS};
    use winit::window::WindowId;

    use super::{Command, Local};
    use crate::ui::view::TrayView;

    /// Told whether the tray could be shown.
    type Ready = mpsc::Sender<Result<(), String>>;

    /// What the main thread is asked to do.
    pub enum Main {
        Tray {
            view: Box<TrayView>,
            rx: mpsc::Receiver<Command>,
            ready: Ready,
        },
        Wake,
        /// certray is done: leave with this exit code.
        Exit(i32),
    }

    /// How to reach the main thread: its channel until the event loop runs, then the loop's
    /// proxy. One lock for both, so that nothing sent falls between them.
    struct Route {
        tx: Option<mpsc::Sender<Main>>,
        proxy: Option<EventLoopProxy<Main>>,
    }

    static ROUTE: Mutex<Route> = Mutex::new(Route {
        tx: None,
        proxy: None,
    });

    fn post(message: Main) -> Result<(), String> {
        let route = ROUTE.lock().unwrap_or_else(|e| e.into_inner());
        match (&route.proxy, &route.tx) {
            (Some(p), _) => p
                .send_event(message)
                .map_err(|_| "the main thread's event loop has ended".to_string()),
            (None, Some(tx)) => tx
                .send(message)
                .map_err(|_| "the main thread has stopped serving".to_string()),
            (None, None) => Err("the tray needs the main thread, which nothing serves".into()),
        }
    }

    pub struct Waker;

    impl Waker {
        pub fn wake(&self) {
            let _ = post(Main::Wake);
        }
    }

    pub fn spawn(view: TrayView, rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
        let (ready, ready_rx) = mpsc::channel();
        post(Main::Tray {
            view: Box::new(view),
            rx,
            ready,
        })?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err("the main thread did not answer".into()))?;
        Ok(Waker)
    }

    /// Run `body` (the whole of certray) on a thread of its own and serve the tray on this,
    /// the main thread, until `body` returns; its exit code.
    pub fn serve(body: fn() -> i32) -> i32 {
        let (tx, rx) = mpsc::channel();
        ROUTE.lock().unwrap_or_else(|e| e.into_inner()).tx = Some(tx);
        let spawned = std::thread::Builder::new()
            .name("certray".into())
            .spawn(move || {
                let code = std::panic::catch_unwind(body).unwrap_or(101);
                if post(Main::Exit(code)).is_err() {
                    std::process::exit(code);
                }
            });
        if let Err(e) = spawned {
            eprintln!("certray: cannot start: {e}");
            return 1;
        }
        loop {
            match rx.recv() {
                Ok(Main::Exit(code)) => return code,
                Ok(Main::Tray {
                    view,
                    rx: commands,
                    ready,
                }) => {
                    if let Some(code) = run_loop(*view, commands, ready, &rx) {
                        return code;
                    }
                }
                Ok(Main::Wake) => {}
                Err(_) => return 1,
            }
        }
    }

    /// The tray's event loop; `Some(code)` once certray is done, `None` when the loop could
    /// not start (the tray is then off and this thread waits for the end as before).
    fn run_loop(
        view: TrayView,
        commands: mpsc::Receiver<Command>,
        ready: Ready,
        early: &mpsc::Receiver<Main>,
    ) -> Option<i32> {
        let event_loop = match EventLoop::<Main>::with_user_event()
            .with_activation_policy(ActivationPolicy::Accessory)
            .build()
        {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot start the tray's event loop: {e}")));
                return None;
            }
        };
        ROUTE.lock().unwrap_or_else(|e| e.into_inner()).proxy = Some(event_loop.create_proxy());
        let mut app = App {
            start: Some((view, commands, ready)),
            tray: None,
            exit: None,
        };
        // Whatever was posted before the proxy was in place.
        for m in early.try_iter() {
            app.handle(None, m);
        }
        let result = event_loop.run_app(&mut app);
        ROUTE.lock().unwrap_or_else(|e| e.into_inner()).proxy = None;
        if let Err(e) = result {
            tracing::error!(error = %e, "the tray's event loop failed");
        }
        Some(app.exit.unwrap_or(1))
    }

    struct App {
        start: Option<(TrayView, mpsc::Receiver<Command>, Ready)>,
        tray: Option<Local>,
        exit: Option<i32>,
    }

    impl App {
        fn handle(&mut self, event_loop: Option<&ActiveEventLoop>, message: Main) {
            match message {
                Main::Wake => {
                    if let Some(t) = &mut self.tray
                        && !t.drain()
                    {
                        // Removes the icon.
                        self.tray = None;
                    }
                }
                Main::Exit(code) => {
                    self.exit = Some(code);
                    self.tray = None;
                    if let Some(l) = event_loop {
                        l.exit();
                    }
                }
                Main::Tray { ready, .. } => {
                    let _ = ready.send(Err("the tray is already shown".into()));
                }
            }
        }
    }

    impl ApplicationHandler<Main> for App {
        fn new_events(&mut self, event_loop: &ActiveEventLoop, cause: StartCause) {
            if self.exit.is_some() {
                event_loop.exit();
                return;
            }
            // tray-icon's advice: create the icon once the application has started.
            if cause == StartCause::Init
                && let Some((view, commands, ready)) = self.start.take()
            {
                match Local::new(&view, commands) {
                    Ok(t) => {
                        self.tray = Some(t);
                        let _ = ready.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            }
        }

        fn resumed(&mut self, _event_loop: &ActiveEventLoop) {}

        fn user_event(&mut self, event_loop: &ActiveEventLoop, message: Main) {
            self.handle(Some(event_loop), message);
        }

        fn window_event(&mut self, _: &ActiveEventLoop, _: WindowId, _: WindowEvent) {}
    }
}

/// The main thread on macOS, where AppKit (and so the tray) must run: `main` calls
/// [`main_thread::run`] with the whole program.
pub mod main_thread {
    /// Run `body` and return its exit code. On macOS `body` runs on a thread of its own
    /// while the main thread serves the tray; `certray dialog-host` keeps the main thread
    /// (its windows need it) and has no tray. Elsewhere `body` simply runs here.
    pub fn run(body: fn() -> i32) -> i32 {
        #[cfg(target_os = "macos")]
        if !std::env::args().any(|a| a == "dialog-host") {
            return super::platform::serve(body);
        }
        body()
    }
}

/// Neither Linux, Windows nor macOS: no tray.
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
mod platform {
    use std::sync::mpsc;

    use super::Command;
    use crate::ui::view::TrayView;

    pub struct Waker;

    impl Waker {
        pub fn wake(&self) {}
    }

    pub fn spawn(_view: TrayView, _rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
        Err("the tray is not supported on this platform".into())
    }
}

/// A caught panic's message.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the tray panicked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tooltips_are_clipped_for_windows() {
        let long = "北京云杉测试科技有限公司".repeat(20);
        let c = clip(&long);
        assert!(c.encode_utf16().count() <= TOOLTIP_MAX, "{c}");
        assert!(c.ends_with('…'));
        assert_eq!(clip("未插入密钥"), "未插入密钥");
    }

    #[test]
    fn every_state_has_an_image() {
        for s in [
            IconState::NoKey,
            IconState::Ok,
            IconState::Expiring,
            IconState::Alert,
        ] {
            icon(s).unwrap();
        }
    }
}
