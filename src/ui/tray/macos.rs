//! macOS: AppKit runs on the main thread only, so there the tray lives on the main thread:
//! `main` hands the rest of certray to a thread of its own ([`super::main_thread`]) and
//! serves the tray with a winit event loop (no Dock icon); updates arrive as user events.

use std::sync::{Mutex, mpsc};

use winit::application::ApplicationHandler;
use winit::event::{StartCause, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::platform::macos::{ActivationPolicy, EventLoopBuilderExtMacOS};
use winit::window::WindowId;

use super::Command;
use super::local::Local;
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
