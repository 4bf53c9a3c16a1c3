//! The tray of `certray run` on a real X server: Xvfb with trayer as the tray host and a
//! private session bus. trayer must embed certray's icon; the menu, driven with the
//! keyboard through xdotool, must flip start-at-login, switch the language (kept across a
//! restart) and stop the daemon. That daemon is `certray run` handed over to
//! `certray-desktop` (the same process), while a headless `certray` never loads GTK.
//! Without a tray (`--headless`, no display, a display that cannot be opened, no
//! `certray-desktop` beside `certray`) the daemon says so and serves as before.
//!
//! Every wait polls for its effect up to a generous deadline; nothing is timed. A missing
//! program fails the test naming its Debian package (xvfb, trayer, x11-utils, xdotool,
//! dbus-daemon).

use crate::common;

use std::ffi::OsString;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use common::desktop::{
    APPINDICATOR, Proc, WAIT, XSession, loads_gtk, poll, program_of, require_all,
};
use common::*;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// Poll `probe` until it gives a value; fail naming `what` at the deadline.
fn wait_for<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(POLL, probe).unwrap_or_else(|| panic!("gave up waiting for {what}"))
}

/// Xvfb, a session bus and trayer. Fields drop in order: trayer, then bus and X.
struct Desktop {
    _trayer: Proc,
    session: XSession,
}

impl Desktop {
    fn start() -> Desktop {
        require_all(
            &[
                ("Xvfb", "xvfb"),
                ("dbus-daemon", "dbus-daemon"),
                ("trayer", "trayer"),
                ("xwininfo", "x11-utils"),
                ("xdotool", "xdotool"),
            ],
            &[APPINDICATOR],
        );
        let session = XSession::start((1024, 768));
        let d = Desktop {
            _trayer: session.trayer(),
            session,
        };
        wait_for("trayer's panel", || {
            d.tree().contains("(\"panel\" \"trayer\")").then_some(())
        });
        d
    }

    fn tree(&self) -> String {
        self.session.tree()
    }

    fn tray_icon(&self) -> Option<(i64, i64)> {
        self.session.tray_icon()
    }

    /// certray's visible menu windows (GTK popups of class `Certray`).
    fn menus(&self) -> Vec<u64> {
        self.session
            .search(&["--onlyvisible", "--class", "^Certray$"])
    }

    /// Click the icon ([`XSession::click_until`]); the menu's size once it is up.
    fn open_menu(&self, icon: (i64, i64)) -> (i64, i64) {
        let (menu, _) = self
            .session
            .click_until(icon, || self.menus().into_iter().next())
            .unwrap_or_else(|e| panic!("the tray menu: {e}"));
        wait_for("the menu's size", || {
            self.session.geometry(menu).map(|(_, _, w, h)| (w, h))
        })
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.session
                .xdo(&["key", k])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn close_menus(&self) {
        self.keys(&["Escape"]);
        wait_for("the menu to close", || {
            self.menus().is_empty().then_some(())
        });
    }
}

/// `certray run` in a home of its own; stdout lines arrive on a channel.
struct Daemon {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

/// A home for certray: config (no modules, any port, no notifications), state, autostart.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("certray.toml"),
            "[pkcs11]\nuse_defaults = false\n[bridge]\nlisten = \"127.0.0.1:0\"\n\
             [ui]\non_insert = \"notify\"\nnotifications = false\n",
        )
        .expect("config");
        Home { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        let runtime = self.path("runtime");
        std::fs::create_dir_all(&runtime).expect("mkdir");
        vec![
            ("HOME", self.dir.path().into()),
            ("XDG_CONFIG_HOME", self.path("config").into()),
            ("XDG_STATE_HOME", self.path("state").into()),
            ("XDG_DATA_HOME", self.path("data").into()),
            ("XDG_CACHE_HOME", self.path("cache").into()),
            ("XDG_RUNTIME_DIR", runtime.into()),
            // GTK would start an accessibility bus of its own otherwise.
            ("NO_AT_BRIDGE", "1".into()),
            ("GDK_BACKEND", "x11".into()),
        ]
    }

    /// `certray` in this home, with `display` and `bus` (empty: none).
    fn certray(&self, display: &str, bus: &str) -> Command {
        self.certray_at(env!("CARGO_BIN_EXE_certray").as_ref(), display, bus)
    }

    /// [`Home::certray`], run from `program`.
    fn certray_at(&self, program: &Path, display: &str, bus: &str) -> Command {
        let mut cmd = certray_at(program, &self.env());
        cmd.env_remove("WAYLAND_DISPLAY")
            .env("DISPLAY", display)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .arg("--config")
            .arg(self.path("certray.toml"));
        cmd
    }

    fn run(&self, display: &str, bus: &str, extra: &[&str]) -> Daemon {
        self.run_at(env!("CARGO_BIN_EXE_certray").as_ref(), display, bus, extra)
    }

    /// [`Home::run`], run from `program`.
    fn run_at(&self, program: &Path, display: &str, bus: &str, extra: &[&str]) -> Daemon {
        let log = self.path(&format!("certray-{}.log", std::process::id()));
        let (proc, stdout) = Proc::spawn_piped(
            "certray run",
            self.certray_at(program, display, bus)
                .args(["--log-level", "info", "run"])
                .args(extra),
            log.clone(),
        );
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { proc, lines, log }
    }

    /// `certray autostart` (status) says it is on.
    fn autostart_on(&self) -> bool {
        let out = run(self.certray("", "").arg("autostart"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("开机自动启动"), "{text}");
        text.contains("已开启")
    }

    fn saved_lang(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.path("state/certray/ui.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["lang"].as_str().map(str::to_string)
    }
}

impl Daemon {
    fn line(&self) -> String {
        self.lines.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "certray run printed nothing more:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }

    /// The first two lines: the URL, and whether the desktop UI is on.
    fn started(&self) -> (String, String) {
        let first = self.line();
        let url = first
            .strip_prefix("证书助手已启动：")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        (url, self.line())
    }

    fn exit(&mut self) -> ExitStatus {
        wait_for("certray run to exit", || {
            self.proc.child().try_wait().expect("wait")
        })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file name of the program the process runs now.
    fn program(&self) -> String {
        program_of(self.proc.pid())
    }

    /// Whether GTK is loaded into the process.
    fn has_gtk(&self) -> bool {
        loads_gtk(self.proc.pid())
    }
}

/// `GET /v1/tokens` answers: the bridge serves.
fn bridge_serves(url: &str) -> bool {
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let body = common::bridge::Request::new(addr, "GET", "/v1/tokens")
        .send()
        .expect(200);
    body["tokens"].is_array()
}

#[test]
fn trayer_embeds_the_icon_and_the_menu_works() {
    let desktop = Desktop::start();
    let home = Home::new();
    let mut daemon = home.run(&desktop.session.display, &desktop.session.bus, &[]);
    let (url, ui) = daemon.started();
    assert_eq!(ui, "桌面界面：已开启（托盘图标、对话框和通知）");
    let icon = wait_for("trayer to embed certray's icon", || desktop.tray_icon());
    assert!(bridge_serves(&url));
    // `certray` gave its process to `certray-desktop`, which has the tray.
    assert_eq!(daemon.program(), "certray-desktop");
    assert!(daemon.has_gtk());

    // 开机自动启动: the second line from the bottom (GTK skips greyed lines and separators).
    let before = home.autostart_on();
    let zh = desktop.open_menu(icon);
    desktop.keys(&["Up", "Up", "Return"]);
    wait_for("start-at-login to flip", || {
        (home.autostart_on() != before).then_some(())
    });
    wait_for("the menu to close", || {
        desktop.menus().is_empty().then_some(())
    });

    // 语言 › English: remembered in ui.json, and the menu is rebuilt in English (its size
    // changes with its texts).
    desktop.open_menu(icon);
    desktop.keys(&["Up", "Up", "Up", "Right"]);
    wait_for("the language submenu", || {
        (desktop.menus().len() == 2).then_some(())
    });
    desktop.keys(&["Down", "Return"]);
    wait_for("ui.json to say en", || {
        (home.saved_lang().as_deref() == Some("en")).then_some(())
    });
    wait_for("the menus to close", || {
        desktop.menus().is_empty().then_some(())
    });
    let en = wait_for("the menu in English", || {
        let size = desktop.open_menu(icon);
        desktop.close_menus();
        (size != zh).then_some(size)
    });

    // 退出: the last line. The daemon stops cleanly.
    desktop.open_menu(icon);
    desktop.keys(&["Up", "Return"]);
    let status = daemon.exit();
    assert!(status.success(), "{status}\n{}", daemon.log_text());
    assert!(
        daemon.log_text().contains("quit from the tray"),
        "{}",
        daemon.log_text()
    );
    wait_for("the icon to leave the tray", || {
        desktop.tray_icon().is_none().then_some(())
    });

    // Started again, it speaks English from the start.
    let mut daemon = home.run(&desktop.session.display, &desktop.session.bus, &[]);
    daemon.started();
    let icon = wait_for("the icon again", || desktop.tray_icon());
    assert_eq!(
        desktop.open_menu(icon),
        en,
        "the menu is not the English one"
    );
    desktop.keys(&["Up", "Return"]);
    assert!(daemon.exit().success(), "{}", daemon.log_text());
}

#[test]
fn without_a_tray_the_daemon_says_so_and_serves() {
    let home = Home::new();

    // --headless: the desktop is not even looked at.
    let d = home.run(":0", "", &["--headless"]);
    let (url, ui) = d.started();
    assert_eq!(ui, "桌面界面：未开启（--headless）");
    assert!(bridge_serves(&url));
    // Not handed over, and without GTK in its memory.
    assert_eq!(d.program(), "certray");
    assert!(!d.has_gtk(), "a headless daemon loaded GTK");
    drop(d);

    // No display at all.
    let d = home.run("", "", &[]);
    let (url, ui) = d.started();
    assert_eq!(ui, "桌面界面：未开启（没有图形显示）");
    assert!(bridge_serves(&url));
    drop(d);

    // A display that cannot be opened: the desktop is on, the tray cannot start; that is
    // logged and the daemon serves on.
    let d = home.run(":4999", "", &[]);
    let (url, ui) = d.started();
    assert_eq!(ui, "桌面界面：已开启（托盘图标、对话框和通知）");
    wait_for("the warning that there is no tray", || {
        d.log_text().contains("no tray icon").then_some(())
    });
    assert!(bridge_serves(&url));
}

#[test]
fn without_certray_desktop_beside_it_certray_says_so_and_serves() {
    let home = Home::new();
    // `certray` alone in a directory: a hard link, so `current_exe` is there.
    let alone = home.path("bin");
    std::fs::create_dir_all(&alone).expect("mkdir");
    let program = alone.join("certray");
    std::fs::hard_link(env!("CARGO_BIN_EXE_certray"), &program)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_certray"), &program).map(drop))
        .expect("link certray");

    let d = home.run_at(&program, ":4999", "", &[]);
    let (url, ui) = d.started();
    assert_eq!(ui, "桌面界面：已开启（托盘图标、对话框和通知）");
    assert!(bridge_serves(&url));
    assert_eq!(d.program(), "certray");
    assert!(!d.has_gtk());
    let log = d.log_text();
    assert!(
        log.contains("无法启动托盘程序") && log.contains("certray-desktop"),
        "{log}"
    );
    wait_for("the warning that there is no tray", || {
        d.log_text().contains("no tray icon").then_some(())
    });
}
