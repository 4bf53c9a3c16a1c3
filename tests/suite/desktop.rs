// The desktop for real (issue 5): `certray run` with its tray icon in trayer, notifications
// through dunst on a private D-Bus session, the certificate card and the PIN dialog, all
// on a private Xvfb, with a key inserted through a private pcscd (vpcd + vicc) and SoftHSM.
//
// What it checks: the tray icon appears and its menu opens; the insertion's `Notify` call,
// as dbus-monitor sees it, names the certificate's owner and its days left, the icon
// changes and the card pops up; a PIN changed in the dialog (opened from the menu, typed
// with xdotool) is the PIN the token accepts afterwards and the old one is refused
// (`certray sign`); pulling the key is notified and the open card says so. Screenshots of
// each step go to `target/desktop-artifacts/` for people to look at.
//
// No window manager runs: windows sit where certray puts them, undecorated, and nobody
// gives them the input focus; the test does (`xdotool windowfocus`) before typing, as a
// window manager would on a click. The tray menu is driven with the keyboard (GTK menus
// grab it).
//
// Every wait polls for its effect up to a generous deadline; nothing is timed. A missing
// program fails the test naming its Debian package.
//
// `bench_desktop` in tests/desktop/main.rs (`scripts/bench-desktop` runs it on a release
// build) measures the daemon's memory with the tray and the time from a card insertion to
// the card window, on the desktop this file sets up: that target `include!`s this file.
// Hence `//` comments here, never `//!` or `#![…]`: an included file may hold no inner
// attributes.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::desktop::{
    APPINDICATOR, Proc, WAIT, XSession, loads_gtk, poll, program_of, require_all, tail,
};
use crate::common::pcsc::{Pcscd, Vicc};
use crate::common::*;
use serde_json::Value;

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const NEW_PIN: &str = "246810";
/// The token's label: what the PIN dialog and the PIN notifications name.
const LABEL: &str = "云杉测试密钥";

/// How often a wait looks again (each wait gives up after [`WAIT`]: a debug build rendering
/// through llvmpipe on two busy cores is slow).
const POLL: Duration = Duration::from_millis(50);

/// The screen; certray puts its windows near the top-right corner, under the tray.
const SCREEN: (u32, u32) = (1024, 768);

/// Window titles: `dialogs::window_title` ("<what> - 证书助手").
const CARD_TITLE: &str = "证书信息 - 证书助手";
const CHANGE_PIN_TITLE: &str = "修改密码 - 证书助手";

// ---------------------------------------------------------------------------------------------
// The desktop: Xvfb, D-Bus, dbus-monitor, dunst, trayer
// ---------------------------------------------------------------------------------------------

/// The programs the desktop needs, with their Debian packages.
const PROGRAMS: &[(&str, &str)] = &[
    ("Xvfb", "xvfb"),
    ("dbus-daemon", "dbus-daemon"),
    ("dbus-monitor", "dbus-bin"),
    ("dbus-send", "dbus-bin"),
    ("dunst", "dunst"),
    ("trayer", "trayer"),
    ("xdotool", "xdotool"),
    ("xwininfo", "x11-utils"),
    ("xev", "x11-utils"),
    ("import", "imagemagick"),
    ("identify", "imagemagick"),
    ("convert", "imagemagick"),
    ("compare", "imagemagick"),
];

/// Files the desktop needs that are not programs: the Chinese font, Mesa's software
/// OpenGL for eframe, and the library tray-icon loads at run time.
const FILES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "fonts-noto-cjk",
    ),
    (
        "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so",
        "libgl1-mesa-dri",
    ),
    APPINDICATOR,
];

/// Notifications appear bottom-right, away from certray's windows at the top-right (whose
/// buttons they would otherwise cover), with a CJK font. Those that come without a timeout
/// of their own stay until closed; certray's ask for 10 s.
const DUNSTRC: &str = "\
[global]
    origin = bottom-right
    offset = 12x12
    width = 380
    font = Noto Sans CJK SC 10
    frame_width = 1
    frame_color = \"#8aa4c8\"
[urgency_low]
    timeout = 0
[urgency_normal]
    timeout = 0
[urgency_critical]
    timeout = 0
";

/// A private X display with a tray, a session bus with a notification service, and a
/// monitor recording every `Notify` call. Fields drop in order: trayer first, Xvfb last.
struct Desktop {
    trayer: Proc,
    dunst: Proc,
    monitor: Proc,
    /// Xvfb, the bus, and the scratch directory (logs, the bus socket, dunstrc).
    session: XSession,
    root: u64,
    artifacts: PathBuf,
    /// Other logs to show when a step fails (certray's).
    logs: RefCell<Vec<(String, PathBuf)>>,
}

impl Desktop {
    /// Start everything and wait until each part is ready.
    fn start(artifacts: PathBuf) -> Desktop {
        require_all(PROGRAMS, FILES);
        fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", artifacts.display()));
        let session = XSession::start(SCREEN);
        let monitor = Proc::spawn(
            "dbus-monitor",
            Command::new(require("dbus-monitor", "dbus-bin"))
                .arg("--address")
                .arg(&session.bus)
                .arg(
                    "type='method_call',interface='org.freedesktop.Notifications',member='Notify'",
                ),
            session.path("notify-calls.log"),
        );
        let dunst = Proc::spawn(
            "dunst",
            &mut session.dunst(Some(DUNSTRC)),
            session.path("dunst.log"),
        );
        let trayer = session.trayer();

        let mut desktop = Desktop {
            trayer,
            dunst,
            monitor,
            session,
            root: 0,
            artifacts,
            logs: RefCell::new(Vec::new()),
        };
        desktop.root = desktop.root();
        // dbus-monitor has become a monitor once it reports losing its own name.
        desktop.wait_for("dbus-monitor ready", || {
            desktop
                .monitor
                .log_text()
                .contains("member=NameLost")
                .then_some(())
        });
        desktop.wait_for("dunst owns org.freedesktop.Notifications", || {
            desktop.notification_service_up().then_some(())
        });
        desktop.wait_for("trayer's panel", || desktop.panel());
        desktop
    }

    /// An X client program on this display.
    fn x(&self, program: &str) -> Command {
        self.session.x(program)
    }

    /// xdotool, which must succeed.
    fn xdo(&self, args: &[&str]) -> String {
        self.session.xdo(args).unwrap_or_else(|e| self.fail(&e))
    }

    /// The root window's id.
    fn root(&self) -> u64 {
        let out = run(self.x("xwininfo").arg("-root"));
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("Window id: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| panic!("no root window id in xwininfo's output:\n{text}"))
    }

    /// The top-level windows that are mapped now.
    fn visible_toplevels(&self) -> Vec<u64> {
        self.session
            .search(&["--onlyvisible", "--maxdepth", "1", "--name", ""])
            .into_iter()
            .filter(|w| *w != self.root)
            .collect()
    }

    /// trayer's panel window.
    fn panel(&self) -> Option<u64> {
        self.session
            .search(&["--name", "^panel$"])
            .into_iter()
            .next()
    }

    fn notification_service_up(&self) -> bool {
        let out = run_unchecked(
            self.x("dbus-send")
                .arg(format!("--bus={}", self.session.bus))
                .args([
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.Notifications",
                ]),
        );
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// The `Notify` calls dbus-monitor has seen so far.
    fn notify_calls(&self) -> Vec<NotifyCall> {
        NotifyCall::parse(&self.monitor.log_text())
    }

    /// A screenshot of the whole screen into the artifacts folder.
    fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.artifacts.join(name);
        let out = run_unchecked(self.x("import").args(["-window", "root"]).arg(&path));
        if !out.status.success() {
            self.fail(&format!(
                "import -window root failed: {}",
                output_text(&out)
            ));
        }
        path
    }

    /// `region` (w, h, x, y) of a screenshot, scaled up, next to it as `name`.
    fn zoom(&self, shot: &Path, name: &str, region: (i64, i64, i64, i64), scale: u32) {
        let (w, h, x, y) = region;
        run(self
            .x("convert")
            .arg(shot)
            .args(["-crop", &format!("{w}x{h}+{x}+{y}"), "+repage"])
            .args(["-filter", "point", "-resize", &format!("{}%", scale * 100)])
            .arg(self.artifacts.join(name)));
    }

    /// A picture of window `w` alone, in the scratch directory (None: it cannot be read,
    /// e.g. it is not mapped).
    fn capture(&self, w: u64, name: &str) -> Option<PathBuf> {
        let path = self.session.path(name);
        let out = run_unchecked(
            self.x("import")
                .args(["-window", &w.to_string()])
                .arg(&path),
        );
        out.status.success().then_some(path)
    }

    /// How many pixels differ between two pictures of the same size.
    fn pixels_differing(&self, a: &Path, b: &Path) -> u64 {
        // `compare` prints the count on stderr and exits 1 when the pictures differ.
        let out = run_unchecked(
            self.x("compare")
                .args(["-metric", "AE"])
                .arg(a)
                .arg(b)
                .arg("null:"),
        );
        let text = String::from_utf8_lossy(&out.stderr);
        match text.split_whitespace().next().map(str::parse::<f64>) {
            Some(Ok(n)) => n as u64,
            // Not even the same size.
            _ if text.contains("differ") => u64::MAX,
            _ => self.fail(&format!("compare gave no pixel count: {text}")),
        }
    }

    /// Whether window `w` shows more than a few colours: drawn, not just mapped.
    fn painted(&self, w: u64) -> bool {
        let probe = self.session.path("probe.png");
        let shot = run_unchecked(
            self.x("import")
                .args(["-window", &w.to_string()])
                .arg(&probe),
        );
        if !shot.status.success() {
            return false;
        }
        let out = run_unchecked(self.x("identify").args(["-format", "%k"]).arg(&probe));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .is_ok_and(|colours| colours > 16)
    }

    /// Give window `w` the keyboard ([`XSession::focus`]).
    fn focus(&self, w: u64, at: Option<(i64, i64)>) {
        if let Err(e) = self.session.focus(w, at) {
            self.fail(&e);
        }
    }

    /// Type `text` into the focused window.
    fn type_text(&self, text: &str) {
        self.xdo(&["type", "--delay", "40", text]);
    }

    fn key(&self, key: &str) {
        self.xdo(&["key", key]);
    }

    /// Show `path` (certray's log) too when a step fails.
    fn add_log(&self, name: &str, path: &Path) {
        self.logs
            .borrow_mut()
            .push((name.to_string(), path.to_path_buf()));
    }

    /// Poll `probe` until it gives a value; fail with everything there is to see when it
    /// has not within [`WAIT`].
    fn wait_for<T>(&self, what: &str, probe: impl FnMut() -> Option<T>) -> T {
        poll(POLL, probe).unwrap_or_else(|| self.fail(&format!("{what}: not seen within {WAIT:?}")))
    }

    /// Panic with a screenshot (`failure.png`), the window tree and the logs' tails.
    fn fail(&self, what: &str) -> ! {
        let shot = self.artifacts.join("failure.png");
        let _ = run_unchecked(self.x("import").args(["-window", "root"]).arg(&shot));
        let tree = run_unchecked(self.x("xwininfo").args(["-root", "-tree"]));
        let mut logs = String::new();
        let own = [
            &self.session.xvfb,
            &self.session.bus_daemon,
            &self.monitor,
            &self.dunst,
            &self.trayer,
        ];
        for p in own {
            logs += &format!("\n--- {} ---\n{}", p.name, tail(&p.log_text(), 40));
        }
        for (name, path) in self.logs.borrow().iter() {
            let text = fs::read_to_string(path).unwrap_or_default();
            logs += &format!("\n--- {name} ---\n{}", tail(&text, 80));
        }
        panic!(
            "{what}\nscreenshot: {}\n--- windows ---\n{}{logs}",
            shot.display(),
            String::from_utf8_lossy(&tree.stdout)
        );
    }
}

/// One `Notify` call as dbus-monitor prints it.
#[derive(Debug, Clone)]
struct NotifyCall {
    app_name: String,
    summary: String,
    body: String,
}

impl NotifyCall {
    /// The calls in dbus-monitor's output: `Notify(app_name, replaces_id, app_icon, summary,
    /// body, actions, hints, timeout)`, each argument on its own line; the first four
    /// strings are app name, icon, summary and body.
    fn parse(log: &str) -> Vec<NotifyCall> {
        let mut calls = Vec::new();
        for block in log.split("method call ").skip(1) {
            if !block
                .lines()
                .next()
                .is_some_and(|l| l.contains("member=Notify"))
            {
                continue;
            }
            let strings: Vec<String> = block
                .lines()
                .skip(1)
                .filter_map(|l| l.trim().strip_prefix("string \""))
                .map(|s| s.strip_suffix('"').unwrap_or(s).to_string())
                .take(4)
                .collect();
            if let [app_name, _icon, summary, body] = strings.as_slice() {
                calls.push(NotifyCall {
                    app_name: app_name.clone(),
                    summary: summary.clone(),
                    body: body.clone(),
                });
            }
        }
        calls
    }
}

/// `target/desktop-artifacts/` (next to the profile directories), emptied of old pictures.
fn artifacts_dir(sub: &str) -> PathBuf {
    // target/<profile>/certray → target/
    let dir = Path::new(env!("CARGO_BIN_EXE_certray"))
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("desktop-artifacts")
        .join(sub);
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    dir
}

// ---------------------------------------------------------------------------------------------
// certray
// ---------------------------------------------------------------------------------------------

/// `certray run` (with the desktop, or `--headless`) on its own HOME, XDG directories and
/// bridge port, seeing SoftHSM and the private pcscd.
struct Daemon {
    proc: Proc,
    env: Vec<(&'static str, OsString)>,
    config: PathBuf,
    url: String,
}

/// SoftHSM only, marked as PC/SC-backed and re-initialised on card events (as the events
/// tests do), so a card insertion makes the daemon see a token created meanwhile.
fn config_text() -> String {
    format!(
        "[pkcs11]\nuse_defaults = false\nmodules = [{{ path = \"{SOFTHSM_MODULE}\", reinitialize_on_change = true, pcsc = true }}]\n\n\
         [bridge]\nlisten = \"127.0.0.1:0\"\n\n[ui]\non_insert = \"popup\"\nnotifications = true\n"
    )
}

/// The environment certray runs in: everything of its own under `home`.
fn certray_env(
    home: &Path,
    hsm: &SoftHsm,
    pcscd: &Pcscd,
    desktop: Option<&Desktop>,
) -> Vec<(&'static str, OsString)> {
    let sub = |name: &str| {
        let p = home.join(name);
        fs::create_dir_all(&p).expect("mkdir");
        p.into_os_string()
    };
    let runtime = sub("runtime");
    fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod runtime");
    let mut env = vec![
        ("HOME", home.as_os_str().to_owned()),
        ("XDG_CONFIG_HOME", sub("config")),
        ("XDG_STATE_HOME", sub("state")),
        ("XDG_DATA_HOME", sub("data")),
        ("XDG_CACHE_HOME", sub("cache")),
        ("XDG_RUNTIME_DIR", runtime),
        // GTK's accessibility bridge would start the AT-SPI bus on our session bus.
        ("NO_AT_BRIDGE", "1".into()),
        ("GDK_BACKEND", "x11".into()),
    ];
    env.extend(hsm.env());
    env.extend(pcscd.env());
    match desktop {
        Some(d) => env.extend(d.session.env()),
        // Headless for real: no display to find, no bus to talk to.
        None => env.extend([
            ("DISPLAY", OsString::new()),
            ("DBUS_SESSION_BUS_ADDRESS", OsString::new()),
        ]),
    }
    env
}

impl Daemon {
    /// Start `certray run` and wait for its "running at URL" line.
    fn start(
        home: &Path,
        hsm: &SoftHsm,
        pcscd: &Pcscd,
        desktop: Option<&Desktop>,
        headless: bool,
    ) -> Daemon {
        let env = certray_env(home, hsm, pcscd, desktop);
        let config = home.join("certray.toml");
        fs::write(&config, config_text()).expect("write config");
        let mut cmd = certray(&env);
        cmd.env_remove("WAYLAND_DISPLAY")
            .arg("--config")
            .arg(&config)
            .args(["--log-level", "info", "run"]);
        if headless {
            cmd.arg("--headless");
        }
        let log = home.join(if headless {
            "certray-headless.log"
        } else {
            "certray.log"
        });
        if let Some(d) = desktop {
            d.add_log("certray run (stderr)", &log);
        }
        let (mut proc, stdout) = Proc::spawn_piped("certray run", &mut cmd, log);
        let url = match first_stdout_line(stdout).recv_timeout(WAIT) {
            Ok(line) => line
                .split("http://")
                .nth(1)
                .map(|rest| format!("http://{rest}"))
                .unwrap_or_else(|| panic!("no URL in certray's first line: {line:?}")),
            Err(_) => {
                let alive = proc.running();
                let text = proc.log_text();
                match desktop {
                    Some(d) => d.fail(&format!(
                        "certray run printed no address within {WAIT:?} (running: {alive})"
                    )),
                    None => panic!("certray run printed no address (running: {alive})\n{text}"),
                }
            }
        };
        Daemon {
            proc,
            env,
            config,
            url,
        }
    }

    /// certray (the CLI) in the daemon's environment and config.
    fn cli(&self) -> Command {
        let mut cmd = certray(&self.env);
        cmd.arg("--config").arg(&self.config);
        cmd
    }

    /// `certray list --json`.
    fn list(&self) -> Value {
        let out = run(self.cli().args(["list", "--json"]));
        serde_json::from_slice(&out.stdout).expect("list --json is JSON")
    }

    /// The daemon's dialog processes (`certray dialog-host`), by pid.
    fn dialog_hosts(&self) -> Vec<u32> {
        let daemon = self.proc.pid();
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // "pid (comm) state ppid …": the comm may hold spaces, so split after ')'.
            let parent = fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                });
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if parent == Some(daemon) && cmdline.split(|b| *b == 0).any(|arg| arg == b"dialog-host")
            {
                found.push(pid);
            }
        }
        found
    }

    /// The OpenGL and Mesa libraries mapped into the daemon (none: windows are drawn by
    /// the dialog process).
    fn graphics_libraries(&self) -> Vec<String> {
        let maps =
            fs::read_to_string(format!("/proc/{}/maps", self.proc.pid())).expect("daemon maps");
        let mut libs: Vec<String> = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|path| {
                [
                    "libGL",
                    "libEGL",
                    "libGLX",
                    "_dri.so",
                    "libLLVM",
                    "libgallium",
                ]
                .iter()
                .any(|name| path.contains(name))
            })
            .map(str::to_string)
            .collect();
        libs.dedup();
        libs
    }
}

/// The one key of these tests: the RSA certificate of 张三 at 北京云杉 and its key on token
/// [`LABEL`].
/// Returns the token's directory in the store (SoftHSM keeps each token in one).
fn make_token(hsm: &SoftHsm) -> PathBuf {
    let tokens = hsm.dir().join("tokens");
    let listing = || -> Vec<PathBuf> {
        fs::read_dir(&tokens)
            .expect("the token store")
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let before = listing();
    hsm.rsa_utf8_token(LABEL, SO_PIN, PIN);
    let mut made: Vec<PathBuf> = listing()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(made.len(), 1, "one new token directory: {made:?}");
    made.remove(0)
}

/// Pull the card and wait until pcscd has seen it go, so that whoever looks next finds the
/// reader empty.
fn pull(card: Vicc, pcscd: &Pcscd) {
    let mark = pcscd.log_mark();
    card.remove();
    let needle = format!("Card Removed From {}", pcscd.reader_name());
    pcscd.wait_log(mark, &needle, WAIT, "the card's removal");
}

/// `certray sign` of a small file with `pin` (stdin); the output, the signature's path.
fn sign_with(daemon: &Daemon, cert_id: &str, pin: &str, dir: &Path) -> (Output, PathBuf) {
    let data = dir.join("data.txt");
    fs::write(&data, "纳税申报表 2026-11 · certray desktop test\n").expect("write data");
    let sig = dir.join(format!("sig-{pin}.bin"));
    let mut cmd = daemon.cli();
    cmd.args(["sign", "--cert", cert_id, "--in"])
        .arg(&data)
        .arg("--out")
        .arg(&sig)
        .arg("--pin-stdin");
    (certray_with_input(&mut cmd, &format!("{pin}\n")), sig)
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn tray_notification_card_and_pin_change_on_a_real_desktop() {
    let started = Instant::now();
    let artifacts = artifacts_dir("");
    let desktop = Desktop::start(artifacts.clone());
    let hsm = SoftHsm::new();
    let pcscd = Pcscd::start();
    let home = tempfile::Builder::new()
        .prefix("certray-desktop-home-")
        .tempdir()
        .expect("tempdir");
    let daemon = Daemon::start(home.path(), &hsm, &pcscd, Some(&desktop), false);
    eprintln!(
        "certray runs at {} on {}",
        daemon.url, desktop.session.display
    );

    // 1. The tray icon: trayer's panel grows from its empty 2 px to hold it (and moves
    // left to do so: the icon is clicked only once it is inside the panel).
    let panel = desktop.panel().expect("panel");
    let icon = desktop.wait_for("the tray icon in trayer", || desktop.session.tray_icon());
    let icon_nokey = desktop.capture(panel, "icon-nokey.png").expect("the panel");
    let shot = desktop.screenshot("01-tray.png");
    desktop.zoom(
        &shot,
        "01-tray-zoom.png",
        (240, 48, i64::from(SCREEN.0) - 240, 0),
        4,
    );

    // 2. The menu: a click on the icon opens it. No key yet: 修改密码… is greyed.
    let menu = open_menu(&desktop, icon);
    desktop.screenshot("02-menu.png");
    desktop.key("Escape");
    desktop.wait_for("the menu to close", || {
        (!desktop.visible_toplevels().contains(&menu)).then_some(())
    });

    // 3. The key goes in: the token is made by another process (the running SoftHSM cannot
    // see it) and the card insertion makes the daemon look again.
    let token_dir = make_token(&hsm);
    let notes_before = desktop.notify_calls().len();
    let card = Vicc::insert(&pcscd);

    // 4. The notification names the owner and the days left, as the CLI sees them.
    let inserted = desktop.wait_for("the Notify call for the insertion", || {
        desktop
            .notify_calls()
            .into_iter()
            .skip(notes_before)
            .find(|n| n.summary == "已插入密钥")
    });
    let list = daemon.list();
    let cert = list["certificates"]
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("no certificate listed: {list:#}"))
        .clone();
    let owner = cert["owner"].as_str().expect("owner");
    let days = cert["days_left"].as_i64().expect("days_left");
    // rsa-utf8 is a staff certificate: its holder is the person in the CN (the owner used
    // to be subject O, the company, which is now the organisation).
    assert_eq!(owner, "张三");
    assert_eq!(cert["organization"], "北京云杉测试科技有限公司");
    assert!(days > 300, "{cert:#}");
    assert!(
        inserted.body.contains(owner),
        "the notification does not name the owner {owner}: {inserted:?}"
    );
    assert!(
        inserted.body.contains(&format!("剩余 {days} 天")),
        "the notification does not give {days} days left: {inserted:?}"
    );
    eprintln!("notification: {inserted:?}");
    // The tray icon no longer says "no key".
    desktop.wait_for("the tray icon to show the key", || {
        desktop
            .capture(panel, "icon-now.png")
            .filter(|now| desktop.pixels_differing(&icon_nokey, now) > 20)
    });

    // 5. The certificate card pops up by itself.
    let card_window = desktop.wait_for("the certificate card window", || {
        desktop
            .session
            .window_titled(CARD_TITLE)
            .filter(|w| desktop.painted(*w))
    });
    let shot = desktop.screenshot("03-card.png");
    if let Some((x, y, w, h)) = desktop.session.geometry(card_window) {
        desktop.zoom(&shot, "03-card-zoom.png", (w, h, x, y), 2);
    }
    // It is drawn by a dialog process of the daemon's, and OpenGL is not in the daemon.
    let hosts = daemon.dialog_hosts();
    assert_eq!(hosts.len(), 1, "dialog processes: {hosts:?}");
    let owner = desktop.xdo(&["getwindowpid", &card_window.to_string()]);
    assert_eq!(owner.trim(), hosts[0].to_string(), "the card's process");
    // The daemon is `certray-desktop` (it has the tray); the windows are drawn by `certray`
    // beside it, which has no GTK to load.
    assert_eq!(program_of(daemon.proc.pid()), "certray-desktop");
    assert_eq!(program_of(hosts[0]), "certray");
    assert!(!loads_gtk(hosts[0]), "the dialog process loaded GTK");
    let gl = daemon.graphics_libraries();
    assert!(gl.is_empty(), "the daemon loaded {gl:?}");

    // 6. The PIN dialog: 修改密码… from the tray menu (one key in: the dialog opens
    // directly, on top of the card), chosen with the keyboard. GTK skips greyed lines and
    // separators, so the selectable lines are the key's submenu, then 修改密码…
    // (`ui::view::tray`).
    open_menu(&desktop, icon);
    desktop.key("Down");
    desktop.key("Down");
    desktop.screenshot("04-menu-with-key.png");
    desktop.key("Return");
    let pin_window = desktop.wait_for("the PIN change dialog", || {
        desktop
            .session
            .window_titled(CHANGE_PIN_TITLE)
            .filter(|w| desktop.painted(*w))
    });
    desktop.screenshot("05-pin-dialog.png");

    // 7. Current PIN, new PIN, confirmation; Enter presses 确定.
    desktop.focus(pin_window, None);
    desktop.type_text(PIN);
    desktop.key("Tab");
    desktop.type_text(NEW_PIN);
    desktop.key("Tab");
    desktop.type_text(NEW_PIN);
    desktop.screenshot("06-pin-typed.png");
    let notes_before = desktop.notify_calls().len();
    desktop.key("Return");
    let changed = desktop.wait_for("the PIN-changed notification", || {
        desktop
            .notify_calls()
            .into_iter()
            .skip(notes_before)
            .find(|n| n.summary == "密码已修改")
    });
    assert!(changed.body.contains(LABEL), "{changed:?}");
    // The dialog closes on success, and the card it was opened over shows again.
    desktop.wait_for("the card again after the PIN dialog", || {
        desktop
            .session
            .window_titled(CARD_TITLE)
            .filter(|w| desktop.painted(*w))
    });
    desktop.screenshot("07-pin-changed.png");

    // 8. The token takes the new PIN and refuses the old one (the CLI, another process).
    let id = cert["id"].as_str().expect("certificate id");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (out, sig) = sign_with(&daemon, id, NEW_PIN, scratch.path());
    assert!(
        out.status.success(),
        "signing with the new PIN failed: {}",
        output_text(&out)
    );
    assert!(openssl_verify(
        &fixture("rsa-utf8.der"),
        "sha256",
        &sig,
        &scratch.path().join("data.txt")
    ));
    let (out, _) = sign_with(&daemon, id, PIN, scratch.path());
    assert_eq!(
        out.status.code(),
        Some(20),
        "the old PIN still works: {}",
        output_text(&out)
    );

    // 9. The key comes out (its token leaves the store, then the card the reader): a
    // notification names it.
    let card_window = desktop
        .session
        .window_titled(CARD_TITLE)
        .unwrap_or_else(|| desktop.fail("the card is not shown before the removal"));
    let card_before = desktop
        .capture(card_window, "card-before-removal.png")
        .expect("the card window");
    let notes_before = desktop.notify_calls().len();
    fs::remove_dir_all(&token_dir).expect("remove the token");
    pull(card, &pcscd);
    let removed = desktop.wait_for("the Notify call for the removal", || {
        desktop
            .notify_calls()
            .into_iter()
            .skip(notes_before)
            .find(|n| n.summary == "已拔出密钥")
    });
    assert!(removed.body.contains(LABEL), "{removed:?}");
    // The open card says the key has gone (its whole body changes).
    desktop.wait_for("the card to show the key removed", || {
        desktop
            .capture(card_window, "card-now.png")
            .filter(|now| desktop.pixels_differing(&card_before, now) > 5000)
    });
    desktop.screenshot("08-removed.png");

    // 10. Closing the card ends the dialog process; the daemon never loaded OpenGL.
    desktop.focus(card_window, None);
    desktop.key("Escape");
    desktop.wait_for("the card to close", || {
        desktop
            .session
            .window_titled(CARD_TITLE)
            .is_none()
            .then_some(())
    });
    desktop.wait_for("the dialog process to end", || {
        daemon.dialog_hosts().is_empty().then_some(())
    });
    let gl = daemon.graphics_libraries();
    assert!(gl.is_empty(), "the daemon loaded {gl:?}");

    eprintln!(
        "desktop test done in {:.1} s; notifications: {:?}; screenshots in {}",
        started.elapsed().as_secs_f64(),
        desktop
            .notify_calls()
            .iter()
            .map(|n| format!("{} / {} / {}", n.app_name, n.summary, n.body))
            .collect::<Vec<_>>(),
        artifacts.display()
    );
}

/// Click the tray icon at `icon` and wait for the menu: a new window, drawn.
fn open_menu(desktop: &Desktop, icon: (i64, i64)) -> u64 {
    let before = desktop.visible_toplevels();
    let (menu, clicks) = desktop
        .session
        .click_until(icon, || {
            desktop
                .visible_toplevels()
                .into_iter()
                .find(|w| !before.contains(w) && desktop.painted(*w))
        })
        .unwrap_or_else(|e| desktop.fail(&format!("the tray menu: {e}")));
    if let Some((x, y, w, h)) = desktop.session.geometry(menu) {
        eprintln!("tray menu: {w}x{h} at {x},{y} (click {clicks})");
    }
    menu
}
