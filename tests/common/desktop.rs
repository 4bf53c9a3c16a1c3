//! A private desktop for the UI tests (`suite/ui_tray.rs`, `ui_notify.rs`, `suite/desktop.rs`): Xvfb on a display
//! it picks itself, a session bus of its own, and the helpers on them (trayer, dunst), each
//! a [`Proc`] that stops its whole process group on drop.
//!
//! A missing program fails the test naming its Debian package, as [`super::require`] does.
//! Nothing waits on a clock: readiness is a line a helper prints, or a probe polled up to
//! [`WAIT`].

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{first_stdout_line, output_text, require, require_file, run_unchecked};

/// How often the xdotool helpers look again.
const XDO_POLL: Duration = Duration::from_millis(50);

/// How long any one thing may take to happen (a debug build on two busy cores is slow; a
/// step that never happens fails at this deadline).
pub const WAIT: Duration = Duration::from_secs(45);

/// The library tray-icon loads at run time, and its Debian package.
pub const APPINDICATOR: (&str, &str) = (
    "/usr/lib/x86_64-linux-gnu/libayatana-appindicator3.so.1",
    "libayatana-appindicator3-1",
);

/// Check every program (on PATH) and file a test needs before anything starts; panics
/// naming the Debian package of the first one missing.
pub fn require_all(programs: &[(&str, &str)], files: &[(&str, &str)]) {
    for (program, package) in programs {
        require(program, package);
    }
    for (file, package) in files {
        require_file(Path::new(file), package);
    }
}

/// Poll `probe` every `every` until it gives a value; `None` once [`WAIT`] has passed.
pub fn poll<T>(every: Duration, probe: impl FnMut() -> Option<T>) -> Option<T> {
    poll_within(WAIT, every, probe)
}

/// [`poll`] with a deadline of its own: `None` once `within` has passed.
pub fn poll_within<T>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// The file name of the program process `pid` runs now (`certray`, `certray-desktop`).
pub fn program_of(pid: u32) -> String {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("/proc/PID/exe");
    exe.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether GTK 3 is mapped into process `pid`.
pub fn loads_gtk(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("/proc/PID/maps")
        .contains("libgtk-3.so")
}

/// A child in a process group of its own, its output in a log file. Dropping it stops the
/// whole group (SIGTERM, then SIGKILL), so what it started goes with it.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdin closed and stdout and stderr going to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        cmd.stdout(out.try_clone().expect("dup log"));
        Proc::start(name, cmd.stderr(out), log)
    }

    /// Like [`Proc::spawn`] with stdout piped to the caller (stderr to `log`).
    pub fn spawn_piped(name: &str, cmd: &mut Command, log: PathBuf) -> (Proc, ChildStdout) {
        let err = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut p = Proc::start(name, cmd.stdout(Stdio::piped()).stderr(err), log);
        let stdout = p.child().stdout.take().expect("stdout");
        (p, stdout)
    }

    /// Start `cmd` as it is set up, with stdin closed; `log` is where its output goes, if
    /// anywhere (for [`Proc::log_text`]).
    pub fn start(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The child (its pipes, its exit status). Panics once it is stopped.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process was stopped")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM to the group, up to 5 s for the leader to go, then SIGKILL to the group.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = child.id();
        signal_group(group, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(group, "KILL");
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -SIG -GROUP` through sh's builtin (no libc here; dash's `kill` takes no `--`).
fn signal_group(group: u32, sig: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} -{group} 2>/dev/null"))
        .stdin(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------------------------
// The X display and the session bus
// ---------------------------------------------------------------------------------------------

/// Xvfb and a session bus of our own, with a scratch directory for the helpers' logs.
/// Fields drop in order: the bus, Xvfb, then the directory.
pub struct XSession {
    pub bus_daemon: Proc,
    pub xvfb: Proc,
    /// Logs, the bus socket, configs. Last: the processes are gone before it is removed.
    pub dir: tempfile::TempDir,
    /// `:N`
    pub display: String,
    /// The bus's address (`unix:path=…`).
    pub bus: String,
}

/// The variables that name a user's home and its XDG directories: a test's certray gets
/// its own by setting each to a temporary directory.
pub const HOME_VARS: [&str; 5] = [
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
];

/// What starts `certray dialog-host` (the binary under test) for `Dialogs::spawn_with`:
/// with `env` (a session's display and bus, say), no Wayland, no `RUST_LOG`, and every home
/// directory (`HOME`, `XDG_*_HOME`) in `home`.
pub fn dialog_host(
    env: Vec<(&'static str, std::ffi::OsString)>,
    home: PathBuf,
) -> impl Fn() -> Command + Send + 'static {
    let program = env!("CARGO_BIN_EXE_certray");
    move || {
        let mut cmd = Command::new(program);
        cmd.env_remove("WAYLAND_DISPLAY")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (*k, v)));
        for var in HOME_VARS {
            cmd.env(var, &home);
        }
        cmd
    }
}

impl XSession {
    /// Start Xvfb with a `width`x`height` screen and a session bus; both are ready (they
    /// have printed the display number and the address) when this returns.
    pub fn start(screen: (u32, u32)) -> XSession {
        let xvfb = require("Xvfb", "xvfb");
        let bus_daemon = require("dbus-daemon", "dbus-daemon");
        let dir = tempfile::Builder::new()
            .prefix("certray-desktop-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();

        // -displayfd: Xvfb picks a free display and writes its number once it accepts
        // clients. -noreset: by default Xvfb resets when its last client disconnects and
        // turns new ones away meanwhile; clients here come and go (xdotool, the dialog
        // process), and the next one must find the display.
        let (mut xvfb, stdout) = Proc::spawn_piped(
            "Xvfb",
            Command::new(xvfb)
                .args(["-displayfd", "1", "-noreset", "-screen", "0"])
                .arg(format!("{}x{}x24", screen.0, screen.1))
                .args(["-nolisten", "tcp"]),
            d.join("xvfb.log"),
        );
        let display = match first_stdout_line(stdout).recv_timeout(WAIT) {
            Ok(n) if !n.trim().is_empty() => format!(":{}", n.trim()),
            _ => panic!(
                "Xvfb did not start (running: {})\n{}",
                xvfb.running(),
                xvfb.log_text()
            ),
        };

        // A session bus of our own: its config (`--session`) can start services by D-Bus
        // activation, and they must find our display.
        let (mut bus_proc, stdout) = Proc::spawn_piped(
            "dbus-daemon",
            Command::new(bus_daemon)
                .args(["--session", "--nofork", "--print-address=1"])
                .arg(format!("--address=unix:path={}", d.join("bus").display()))
                .env("DISPLAY", &display)
                .env_remove("DBUS_SESSION_BUS_ADDRESS"),
            d.join("dbus-daemon.log"),
        );
        let bus = match first_stdout_line(stdout).recv_timeout(WAIT) {
            Ok(address) if !address.trim().is_empty() => address.trim().to_string(),
            _ => panic!(
                "dbus-daemon printed no address (running: {})\n{}",
                bus_proc.running(),
                bus_proc.log_text()
            ),
        };

        XSession {
            bus_daemon: bus_proc,
            xvfb,
            dir,
            display,
            bus,
        }
    }

    /// `name` in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// DISPLAY and the session bus, for every program of the desktop.
    pub fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("DISPLAY", self.display.clone().into()),
            ("DBUS_SESSION_BUS_ADDRESS", self.bus.clone().into()),
        ]
    }

    /// An X client program on this display (and this bus).
    pub fn x(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env()).env_remove("WAYLAND_DISPLAY");
        cmd
    }

    /// xdotool (package `xdotool`) on this display: its output, whether it succeeded or not.
    pub fn xdotool(&self, args: &[&str]) -> Output {
        run_unchecked(self.x("xdotool").args(args))
    }

    /// xdotool, which must succeed: its standard output, or what went wrong.
    pub fn xdo(&self, args: &[&str]) -> Result<String, String> {
        let out = self.xdotool(args);
        if !out.status.success() {
            return Err(format!("xdotool {args:?} failed: {}", output_text(&out)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Window ids `xdotool search` finds for `args` (no match is no window, not an error).
    pub fn search(&self, args: &[&str]) -> Vec<u64> {
        let mut all = vec!["search"];
        all.extend_from_slice(args);
        let out = self.xdotool(&all);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub fn window_name(&self, w: u64) -> String {
        let out = self.xdotool(&["getwindowname", &w.to_string()]);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// The mapped top-level window whose title is exactly `title`. eframe maps its window
    /// once the first frame is drawn, so a window found here has its dialog laid out.
    pub fn window_titled(&self, title: &str) -> Option<u64> {
        self.search(&["--onlyvisible", "--maxdepth", "1", "--name", ""])
            .into_iter()
            .find(|w| self.window_name(*w) == title)
    }

    /// The window tree (`xwininfo -root -tree`).
    pub fn tree(&self) -> String {
        let out = run_unchecked(self.x("xwininfo").args(["-root", "-tree"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Where certray's icon sits inside trayer's panel (its centre), once it is there and
    /// the panel has grown around it. Right after embedding, the icon already has its size
    /// while the 2 px panel has not yet moved left to hold it: a click at that position hits
    /// the screen's edge, not the icon (seen under load: the menu never came).
    pub fn tray_icon(&self) -> Option<(i64, i64)> {
        let tree = self.tree();
        let mut lines = tree.lines();
        let panel = lines.find(|l| l.contains("(\"panel\" \"trayer\")"))?;
        let depth = |l: &str| l.len() - l.trim_start().len();
        let panel_depth = depth(panel);
        // Within the panel's subtree: lines indented deeper than it.
        let icon = lines
            .take_while(|l| depth(l) > panel_depth)
            .find(|l| l.contains("\"tray-icon tray app certray\""))?;
        let (px, py, pw, ph) = absolute(panel)?;
        let (x, y, w, h) = absolute(icon)?;
        let inside = x >= px && y >= py && x + w <= px + pw && y + h <= py + ph;
        (w >= 16 && h >= 16 && inside).then_some((x + w / 2, y + h / 2))
    }

    /// x, y, width, height of a window.
    pub fn geometry(&self, w: u64) -> Option<(i64, i64, i64, i64)> {
        let out = self.xdotool(&["getwindowgeometry", "--shell", &w.to_string()]);
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
        };
        Some((field("X")?, field("Y")?, field("WIDTH")?, field("HEIGHT")?))
    }

    /// Give window `w` the keyboard, as a window manager would on a click: the pointer on
    /// it (at its centre, or at `at` inside it) and the input focus set to it. winit takes
    /// no text while the focus is merely PointerRoot (keys such as Tab do arrive).
    pub fn focus(&self, w: u64, at: Option<(i64, i64)>) -> Result<(), String> {
        let (x, y, width, height) = self
            .geometry(w)
            .ok_or_else(|| format!("no geometry for window {w}"))?;
        let (dx, dy) = at.unwrap_or((width / 2, height / 2));
        self.xdo(&[
            "mousemove",
            "--sync",
            &(x + dx).to_string(),
            &(y + dy).to_string(),
        ])?;
        let id = w.to_string();
        self.xdo(&["windowfocus", &id])?;
        poll(XDO_POLL, || {
            let out = self.xdotool(&["getwindowfocus"]);
            (String::from_utf8_lossy(&out.stdout).trim() == id).then_some(())
        })
        .ok_or_else(|| format!("the input focus on window {w}: not seen within {WAIT:?}"))
    }

    /// Click at `at` (a tray icon) until `opened` finds what the click opens; that and how
    /// many clicks it took, or what went wrong once [`WAIT`] has passed.
    ///
    /// A click that lands while GTK is still realising a freshly embedded icon is dropped
    /// (seen once in CI, on a loaded machine: the icon was there, the menu never came). A
    /// person clicks again, and so does this: every few seconds until `opened` gives a
    /// value. What it finds must still come from a click at `at`, the first or a later one.
    pub fn click_until<T>(
        &self,
        at: (i64, i64),
        mut opened: impl FnMut() -> Option<T>,
    ) -> Result<(T, u32), String> {
        const PER_CLICK: Duration = Duration::from_secs(5);
        let deadline = Instant::now() + WAIT;
        let (x, y) = (at.0.to_string(), at.1.to_string());
        let mut clicks = 0;
        loop {
            // No --sync: when the pointer is there already (a second click) it waits ~15 s
            // for a motion that never comes. xdotool's motion and click reach the server in
            // order on one connection, so the click lands at `at` all the same.
            self.xdo(&["mousemove", &x, &y, "click", "1"])?;
            clicks += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(v) = poll_within(PER_CLICK.min(left), XDO_POLL, &mut opened) {
                return Ok((v, clicks));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nothing opened within {WAIT:?} ({clicks} clicks at {x},{y})"
                ));
            }
            eprintln!("nothing opened after click {clicks} at {x},{y}: clicking again");
        }
    }

    /// trayer (package `trayer`) as a tray host at the top right, logging to `trayer.log`.
    /// Not on our bus: it needs none. Ready once its panel window is there (the caller
    /// waits for that).
    pub fn trayer(&self) -> Proc {
        Proc::spawn(
            "trayer",
            Command::new(require("trayer", "trayer"))
                .args([
                    "--edge",
                    "top",
                    "--align",
                    "right",
                    "--widthtype",
                    "request",
                    "--height",
                    "32",
                    "--SetDockType",
                    "true",
                    "--transparent",
                    "false",
                ])
                .env("DISPLAY", &self.display)
                .env_remove("DBUS_SESSION_BUS_ADDRESS"),
            self.path("trayer.log"),
        )
    }

    /// dunst (package `dunst`) on this display and bus, not started yet (the caller chooses
    /// where its output goes). With `config`, that dunstrc; without, dunst's defaults (HOME
    /// and XDG_CONFIG_HOME are the scratch directory, so no user's dunstrc is read). dunst is
    /// started by the test, not by D-Bus activation, so that it is a child to stop.
    pub fn dunst(&self, config: Option<&str>) -> Command {
        let mut cmd = Command::new(require("dunst", "dunst"));
        match config {
            Some(text) => {
                let rc = self.path("dunstrc");
                fs::write(&rc, text).expect("write dunstrc");
                cmd.arg("-config").arg(rc);
            }
            None => {
                cmd.env("HOME", self.dir.path())
                    .env("XDG_CONFIG_HOME", self.dir.path());
            }
        }
        cmd.env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus);
        cmd
    }
}

/// A window's absolute x, y, width and height from its `xwininfo -tree` line (which ends
/// `WxH+relx+rely  +absx+absy`).
fn absolute(line: &str) -> Option<(i64, i64, i64, i64)> {
    let mut fields = line.rsplit(' ').filter(|f| !f.is_empty());
    let abs = fields.next()?;
    let size = fields.next()?;
    let (w, h) = size.split('+').next()?.split_once('x')?;
    let mut xy = abs.trim_start_matches('+').split('+');
    Some((
        xy.next()?.parse().ok()?,
        xy.next()?.parse().ok()?,
        w.parse().ok()?,
        h.parse().ok()?,
    ))
}
