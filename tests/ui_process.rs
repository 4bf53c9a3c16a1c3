//! The bridge's prompts answered in the dialog process, for real: `certray::ui::Dialogs`
//! starts the certray binary as `certray dialog-host` on a private Xvfb, the inventory comes
//! from a real SoftHSM token, and the windows are driven with xdotool. What crosses the
//! pipe is checked end to end: the window belongs to the dialog process (not this one), an
//! answer given there resolves the bridge's future here, a prompt whose web request goes
//! away closes its window, the process ends once nothing is shown, and without a display
//! the prompts say no one can be asked.
//!
//! No window manager runs: the test gives a window the input focus (`xdotool windowfocus`)
//! before typing, as a window manager would on a click.
//!
//! Every wait polls for its effect up to [`WAIT`]; nothing is timed. A missing program fails
//! the test naming its Debian package.

mod common;

use std::ffi::OsString;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certray::core::Live;
use certray::core::{ConsentAnswer, PinAnswer, PinRequest, Prompt};
use certray::i18n::Lang;
use certray::ui::{Backend, BackendOptions, Dialogs, Notifier, UiPrompt};
use common::desktop::{HOME_VARS, WAIT, XSession, dialog_host, poll, require_all};
use common::*;
use secrecy::ExposeSecret;

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const LABEL: &str = "ui-process";
const ORIGIN: &str = "https://etax.example";

/// Window titles: `dialogs::window_title` ("<what> - 证书助手") of `Consent` and `PinPrompt`.
const CONSENT_TITLE: &str = "网站授权 - 证书助手";
const PIN_TITLE: &str = "输入密码 - 证书助手";

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The programs the desktop tests need, with their Debian packages.
const PROGRAMS: &[(&str, &str)] = &[
    ("Xvfb", "xvfb"),
    ("dbus-daemon", "dbus-daemon"),
    ("xdotool", "xdotool"),
    ("xmodmap", "x11-xserver-utils"),
];

/// The Chinese font the dialogs load, and Mesa's software OpenGL for eframe.
const FILES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "fonts-noto-cjk",
    ),
    (
        "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so",
        "libgl1-mesa-dri",
    ),
];

// ---------------------------------------------------------------------------------------------
// The token, the backend and the dialogs
// ---------------------------------------------------------------------------------------------

/// One SoftHSM store for the whole binary (SoftHSM reads `SOFTHSM2_CONF` once per process):
/// token `ui-process` with rsa-utf8 and its key.
struct Store {
    _hsm: SoftHsm,
    live: Arc<Live>,
    /// rsa-utf8's id in the inventory.
    cert: String,
}

/// Every test calls this first (through [`desktop`] or itself), before it starts anything else.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let hsm = SoftHsm::new();
        // The static is never dropped.
        common::remove_at_exit(hsm.dir());
        hsm.rsa_utf8_token(LABEL, SO_PIN, PIN);
        // SAFETY: set once, while every other test thread waits on this OnceLock, before
        // SoftHSM (which reads it at C_Initialize) is loaded.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
        let live = live_on(SOFTHSM_MODULE);
        let cert = fixture_cert_id(&live.snapshot(), "rsa-utf8");
        Store {
            _hsm: hsm,
            live: Arc::new(live),
            cert,
        }
    })
}

/// The daemon's backend over the SoftHSM store.
fn backend() -> Arc<Backend> {
    Backend::new(
        store().live.clone(),
        BackendOptions {
            approvals: None,
            lang: Lang::ZhCn,
            warning_days: 30,
            check_page: None,
            config_path: None,
            state_dir: None,
        },
    )
}

/// The dialogs, running `certray dialog-host` (the binary under test) with `env` and a
/// home of its own in `home`.
fn dialogs(env: Vec<(&'static str, OsString)>, home: PathBuf) -> Dialogs {
    Dialogs::spawn_with(backend(), Notifier::off(), dialog_host(env, home))
        .expect("start the dialogs thread")
}

/// Xvfb (with `-noreset`: clients here come and go) and a session bus, and the dialogs on
/// them. Fields drop in order: the dialogs (their process ends as its pipe closes), then
/// Xvfb.
struct Desktop {
    dialogs: Dialogs,
    session: XSession,
}

/// The SoftHSM store first ([`store`]), then the desktop.
fn desktop() -> Desktop {
    store();
    require_all(PROGRAMS, FILES);
    let session = XSession::start((1024, 768));
    let dialogs = dialogs(session.env(), session.dir.path().to_path_buf());
    Desktop { dialogs, session }
}

/// What the bridge asks when a page signs 32 bytes with rsa-utf8.
fn pin_request() -> PinRequest {
    PinRequest {
        origin: Some(ORIGIN.into()),
        certificate_id: store().cert.clone().into(),
        owner: "云杉".into(),
        operation: "sign, 32 bytes".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Drive a prompt's future to its answer; fail naming `what` if none comes within [`WAIT`].
fn answer<T>(rt: &tokio::runtime::Runtime, what: &str, asked: impl Future<Output = T>) -> T {
    rt.block_on(async { tokio::time::timeout(WAIT, asked).await })
        .unwrap_or_else(|_| panic!("no answer to {what} within {WAIT:?}"))
}

/// Poll `probe` until it gives a value; fail naming `what` at the deadline.
fn wait_for<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(POLL, probe).unwrap_or_else(|| panic!("gave up waiting for {what} ({WAIT:?})"))
}

// ---------------------------------------------------------------------------------------------
// Windows (xdotool) and processes (/proc)
// ---------------------------------------------------------------------------------------------

/// xdotool, which must succeed; its output.
fn xdo(session: &XSession, args: &[&str]) -> String {
    session.xdo(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Give window `w` the keyboard ([`XSession::focus`]).
fn focus(session: &XSession, w: u64) {
    session.focus(w, None).unwrap_or_else(|e| panic!("{e}"));
}

fn key(session: &XSession, key: &str) {
    xdo(session, &["key", key]);
}

fn type_text(session: &XSession, text: &str) {
    xdo(session, &["type", "--delay", "20", text]);
}

/// The process that owns window `w` (`_NET_WM_PID`), which must be `certray dialog-host`,
/// a child of this process.
fn dialog_process(session: &XSession, w: u64) -> u32 {
    let out = xdo(session, &["getwindowpid", &w.to_string()]);
    let pid = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid for window {w}: {out:?}"));
    assert_ne!(pid, std::process::id(), "window {w} is this process's");
    let args = cmdline(pid);
    assert!(
        args.iter().any(|a| a == "dialog-host"),
        "window {w}'s process {pid} is not the dialog process: {args:?}"
    );
    assert_eq!(parent(pid), Some(std::process::id()), "the parent of {pid}");
    pid
}

/// A process's command line, argument by argument.
fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// A process's parent.
fn parent(pid: u32) -> Option<u32> {
    // "pid (comm) state ppid …": the comm may hold spaces, so split after ')'.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The process has ended and been reaped.
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Wait for the window titled `title` to close, then for process `pid` to end.
fn wait_closed(session: &XSession, title: &str, pid: u32) {
    wait_for(&format!("the window {title:?} to close"), || {
        session.window_titled(title).is_none().then_some(())
    });
    wait_for(&format!("the dialog process {pid} to end"), || {
        gone(pid).then_some(())
    });
}

/// Give `c` a key of its own in the display's keymap, on a keycode that has nothing, before
/// the dialog process reads the keymap. Otherwise `xdotool type` binds a spare keycode just
/// for the keystroke and takes it back at once, and a client that rereads the keymap after
/// the change (winit) may find it gone already and drop the character.
fn bind_key(session: &XSession, c: char) {
    let out = run(session.x("xmodmap").arg("-pke"));
    let table = String::from_utf8_lossy(&out.stdout);
    let free = table
        .lines()
        .filter_map(|l| l.strip_prefix("keycode"))
        .filter_map(|l| l.split_once('='))
        .find(|(_, keysyms)| keysyms.trim().is_empty())
        .map(|(code, _)| code.trim().to_string())
        .unwrap_or_else(|| panic!("no free keycode in the keymap:\n{table}"));
    run(session
        .x("xmodmap")
        .arg("-e")
        .arg(format!("keycode {free} = U{:04X}", u32::from(c))));
}

/// A display number no X server listens on.
fn dead_display() -> String {
    (7999..)
        .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .map(|n| format!(":{n}"))
        .expect("a free display number")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn consent_is_asked_in_the_dialog_process() {
    let d = desktop();
    let session = &d.session;
    let prompt = UiPrompt::new(d.dialogs.clone());
    assert!(prompt.available());
    let rt = runtime();

    let asked = prompt.consent(ORIGIN);
    let w = wait_for("the consent window", || {
        session.window_titled(CONSENT_TITLE)
    });

    // Drawn by `certray dialog-host`, a child of this process, not by this process.
    let pid = dialog_process(session, w);

    // The default button, 拒绝, has the focus once the dialog's first second is over
    // (issue 14, item 5: it was 仅本次允许, which a page could time a request to press):
    // Enter presses it.
    focus(session, w);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    key(session, "Return");
    assert_eq!(
        answer(&rt, "the consent prompt", asked),
        ConsentAnswer::Deny
    );

    // Nothing else to show: the window closes and the process ends.
    wait_closed(session, CONSENT_TITLE, pid);
    assert!(prompt.available(), "dialogs went off after a normal round");
}

#[test]
fn a_pin_typed_in_the_dialog_process_reaches_the_bridge() {
    let d = desktop();
    let session = &d.session;
    let prompt = UiPrompt::new(d.dialogs.clone());
    let rt = runtime();

    // SoftHSM takes 4–255 bytes; this one is 11, with what JSON escapes and what is not
    // ASCII.
    let typed = "pin\"\\456中";
    bind_key(session, '中');
    let asked = prompt.pin(pin_request());
    let w = wait_for("the PIN window", || session.window_titled(PIN_TITLE));
    let pid = dialog_process(session, w);

    // The PIN field has the focus; Enter in it presses 确定.
    focus(session, w);
    type_text(session, typed);
    key(session, "Return");
    match answer(&rt, "the PIN prompt", asked) {
        PinAnswer::Pin { pin, remember } => {
            assert_eq!(pin.expose_secret(), typed, "the PIN that arrived");
            assert!(!remember, "remember was not ticked");
        }
        other => panic!("not a PIN: {other:?}"),
    }
    wait_closed(session, PIN_TITLE, pid);
}

#[test]
fn a_prompt_whose_request_goes_away_closes() {
    let d = desktop();
    let session = &d.session;
    let prompt = UiPrompt::new(d.dialogs.clone());

    let asked = prompt.consent(ORIGIN);
    let w = wait_for("the consent window", || {
        session.window_titled(CONSENT_TITLE)
    });
    let pid = dialog_process(session, w);

    // The web page goes away: its request, and the future with it, is dropped.
    drop(asked);
    wait_closed(session, CONSENT_TITLE, pid);
    assert!(prompt.available(), "dialogs went off after a closed prompt");
}

#[test]
fn no_display_turns_dialogs_off() {
    store();
    let home = tempfile::tempdir().expect("tempdir");
    let dialogs = dialogs(
        vec![("DISPLAY", dead_display().into())],
        home.path().to_path_buf(),
    );
    let prompt = UiPrompt::new(dialogs);
    assert!(prompt.available(), "before any window was tried");
    let rt = runtime();

    // The dialog process cannot open a window and says so; the waiting prompt hears that
    // no one can be asked, as when headless.
    assert_eq!(
        answer(&rt, "the consent prompt", prompt.consent(ORIGIN)),
        ConsentAnswer::Unavailable
    );
    wait_for("the dialogs to turn off", || {
        (!prompt.available()).then_some(())
    });

    // From now on no one can be asked.
    assert_eq!(
        answer(&rt, "a second consent prompt", prompt.consent(ORIGIN)),
        ConsentAnswer::Unavailable
    );
    let pin = prompt.pin(pin_request());
    assert!(matches!(
        answer(&rt, "a PIN prompt", pin),
        PinAnswer::Unavailable
    ));
}

// ---------------------------------------------------------------------------------------------
// Stopping
// ---------------------------------------------------------------------------------------------

#[test]
fn stopping_closes_an_open_dialog_and_waits_for_its_process() {
    let d = desktop();
    let session = &d.session;
    let prompt = UiPrompt::new(d.dialogs.clone());
    let rt = runtime();

    let asked = prompt.pin(pin_request());
    let w = wait_for("the PIN window", || session.window_titled(PIN_TITLE));
    let pid = dialog_process(session, w);

    // `stop` returns once the dialog process has exited and been reaped: nothing of the
    // dialogs (and so of the backend behind them) is left running.
    d.dialogs.stop();
    assert!(gone(pid), "the dialog process {pid} outlived Dialogs::stop");
    assert!(
        !prompt.available(),
        "windows can still be opened after stop"
    );
    // The page waiting for the PIN hears that it was cancelled.
    assert!(matches!(
        answer(&rt, "the PIN prompt", asked),
        PinAnswer::Cancelled
    ));
    wait_for("the PIN window to go", || {
        session.window_titled(PIN_TITLE).is_none().then_some(())
    });
    // Stopping twice is harmless.
    d.dialogs.stop();
}

#[test]
fn a_dialog_process_that_does_not_exit_is_killed_at_stop() {
    store();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    // A stand-in for `certray dialog-host` that reads the pipe to its end and then stays
    // (exec keeps its pid): only a kill ends it.
    let script = format!(
        "echo $$ > '{}'; cat > /dev/null; exec sleep 600",
        pid_file.display()
    );
    let dialogs = Dialogs::spawn_with(backend(), Notifier::off(), move || {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&script);
        cmd
    })
    .expect("start the dialogs thread");
    let prompt = UiPrompt::new(dialogs.clone());
    let rt = runtime();
    let asked = prompt.consent(ORIGIN);
    let pid: u32 = wait_for("the stand-in to start", || {
        fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });

    // Run `stop` on a thread of its own, so that a stop that never returns fails the test
    // instead of hanging it.
    let (done, stopped) = std::sync::mpsc::channel();
    let stopping = dialogs.clone();
    std::thread::spawn(move || {
        stopping.stop();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(WAIT)
        .expect("Dialogs::stop did not return");
    assert!(gone(pid), "the stand-in {pid} was not killed and reaped");
    assert_eq!(
        answer(&rt, "the consent prompt", asked),
        ConsentAnswer::Deny
    );
}

#[test]
fn the_daemon_stops_with_a_pin_dialog_open_and_finalizes_the_token() {
    store();
    require_all(PROGRAMS, FILES);
    let session = XSession::start((1024, 768));
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("certray.toml");
    fs::write(
        &config,
        format!(
            "[pkcs11]\nmodules = [\"{SOFTHSM_MODULE}\"]\nuse_defaults = false\n\
             [bridge]\nlisten = \"127.0.0.1:0\"\n[ui]\nnotifications = false\n"
        ),
    )
    .expect("config");
    let log = home.path().join("stderr.log");
    let mut env = session.env();
    for var in HOME_VARS.into_iter().chain(["XDG_RUNTIME_DIR"]) {
        env.push((var, home.path().into()));
    }
    // The daemon, with SOFTHSM2_CONF from `store`, logging at debug level to `log`.
    let mut daemon = certray(&env)
        .env_remove("WAYLAND_DISPLAY")
        .env("NO_AT_BRIDGE", "1")
        .arg("--config")
        .arg(&config)
        .args(["--log-level", "debug", "run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start certray run");
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    let first = first_stdout_line(daemon.stdout.take().expect("stdout"))
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("certray run did not start:\n{}", log_text()));
    let port: u16 = first
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // A local program signs without a PIN: the daemon asks for it in its dialog.
    let body = serde_json::json!({
        "certificate_id": store().cert,
        "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"stop"),
    });
    let signing = std::thread::spawn(move || {
        common::bridge::Request::new(addr, "POST", "/v1/sign")
            .json(&body)
            .send()
    });
    let w = wait_for("the PIN window", || session.window_titled(PIN_TITLE));
    let out = xdo(&session, &["getwindowpid", &w.to_string()]);
    let host: u32 = out.trim().parse().expect("the window's pid");
    assert_eq!(
        parent(host),
        Some(daemon.id()),
        "the dialog process's parent"
    );

    // SIGTERM with the dialog open and the request waiting on it.
    // SAFETY: kill(2) on a child of this process, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_for("certray run to exit", || daemon.try_wait().expect("wait"));
    let text = log_text();
    assert!(status.success(), "{status}\n{text}");

    // The waiting request was answered: cancelled, as a person closing the dialog would.
    let answer = signing.join().expect("the signing request");
    assert_eq!(
        answer.json()["error"]["code"],
        "USER_CANCELLED",
        "{}",
        answer.text()
    );
    // The daemon waited for its dialog process (it is reaped, not left to init)...
    assert!(gone(host), "the dialog process {host} outlived the daemon");
    // ...and then, as the inventory's last owner, for SoftHSM to be finalized.
    let host_ended = text.find("dialog process ended");
    let finalized = text.find("module thread stopped");
    assert!(
        host_ended.is_some() && finalized.is_some() && host_ended < finalized,
        "not in order: the dialog process ended, then the module was finalized:\n{text}"
    );
    assert!(!text.contains("still held"), "{text}");
}
