//! Desktop notifications against real parts: a private D-Bus session bus (`dbus-daemon`),
//! `dbus-monitor` watching the `org.freedesktop.Notifications` calls on it, and dunst (the
//! notification service) on a private Xvfb display.
//!
//! notify-rust finds the bus through `DBUS_SESSION_BUS_ADDRESS` each time it shows a
//! notification, so these tests set that variable for the whole process: they run one at a
//! time (`#[serial]`) and only touch the environment while no notifier thread is busy.
//!
//! Nothing here waits on a clock: each step blocks on an event that must come (a line from
//! `dbus-monitor`, a log record from the notifier thread, a helper's exit), and a helper
//! that dies instead ends the wait with its output.
//!
//! Needs: Xvfb (xvfb), dbus-daemon (dbus-daemon), dbus-monitor (dbus-bin), dunst (dunst).

// D-Bus notifications: the Linux desktop's (macOS has its own notification centre).
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};

use certray::i18n::Lang;
use certray::ui::{Notice, Notifier};
use common::desktop::{Proc, XSession};
use serial_test::serial;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

/// What a test waits for.
#[derive(Debug)]
enum Seen {
    /// One message `dbus-monitor` printed.
    Bus(Message),
    /// A log record of the notifier.
    Log { level: Level, message: String },
    /// A helper's output ended (it exited): its name and what it said.
    Ended { name: &'static str, output: String },
}

/// A D-Bus message as `dbus-monitor` prints it: the header line and the top-level arguments
/// (nested lines are kept in `text`).
#[derive(Debug, Default)]
struct Message {
    header: String,
    args: Vec<String>,
    text: String,
}

impl Message {
    fn member(&self) -> &str {
        self.header
            .split("member=")
            .nth(1)
            .unwrap_or("")
            .split(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap_or("")
    }

    /// Whether all its arguments are there (dbus-monitor ends a message only by starting
    /// the next, so each kind says when it is complete).
    fn complete(&self) -> bool {
        match self.member() {
            // app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout
            "Notify" => self.args.len() == 8,
            "NameOwnerChanged" => self.args.len() == 3,
            _ => !self.args.is_empty(),
        }
    }

    /// The `string "…"` arguments, unquoted, in order.
    fn strings(&self) -> Vec<String> {
        self.args
            .iter()
            .filter_map(|a| a.strip_prefix("string \""))
            .map(|s| s.strip_suffix('"').unwrap_or(s).to_string())
            .collect()
    }

    /// The `urgency` hint's byte.
    fn urgency(&self) -> Option<u8> {
        let mut lines = self.text.lines();
        lines.find(|l| l.trim() == "string \"urgency\"")?;
        lines
            .next()?
            .trim()
            .strip_prefix("variant")?
            .trim()
            .strip_prefix("byte ")?
            .parse()
            .ok()
    }
}

/// Where log records of the running test go.
static SINK: Mutex<Option<mpsc::Sender<Seen>>> = Mutex::new(None);

/// Sends the notifier's log records to [`SINK`]. Installed once for the process (the
/// notifier logs from its own thread, so a thread-local subscriber would miss them).
struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        if let Some(tx) = &*SINK.lock().unwrap() {
            let _ = tx.send(Seen::Log {
                level: *event.metadata().level(),
                message: text.0,
            });
        }
    }
}

fn install_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let only_notify = tracing_subscriber::filter::filter_fn(|m| {
            m.target().starts_with("certray::ui::notify")
        });
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::Layer::with_filter(Capture, only_notify));
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

/// The events of one test: bus messages, log records, helpers' ends.
fn events() -> (mpsc::Sender<Seen>, mpsc::Receiver<Seen>) {
    install_capture();
    let (tx, rx) = mpsc::channel();
    *SINK.lock().unwrap() = Some(tx.clone());
    (tx, rx)
}

/// Set the session bus for notify-rust.
///
/// SAFETY (of the `set_var`): the tests are `#[serial]`, and each calls this only while no
/// notifier thread is inside notify-rust (before it sends, or after the notifier reported
/// the previous notice), so nothing reads the environment at the same time.
fn use_bus(address: &str) {
    // SAFETY: see above: nothing reads the environment meanwhile.
    unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", address) };
}

/// Xvfb, a session bus, dbus-monitor and dunst, each a child of the test, all stopped on drop.
/// Fields drop in order: dunst, monitor, then bus and X.
struct Desktop {
    _dunst: Proc,
    _monitor: Proc,
    session: XSession,
}

impl Desktop {
    fn start(tx: &mpsc::Sender<Seen>, rx: &mpsc::Receiver<Seen>) -> Desktop {
        common::desktop::require_all(
            &[
                ("Xvfb", "xvfb"),
                ("dbus-daemon", "dbus-daemon"),
                ("dbus-monitor", "dbus-bin"),
                ("dunst", "dunst"),
            ],
            &[],
        );
        let session = XSession::start((800, 600));

        let mut monitor = Proc::start(
            "dbus-monitor",
            Command::new(common::require("dbus-monitor", "dbus-bin"))
                .arg("--address")
                .arg(&session.bus)
                .arg("type='method_call',interface='org.freedesktop.Notifications'")
                .arg(
                    "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',\
                     arg0='org.freedesktop.Notifications'",
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            session.path("dbus-monitor.log"),
        );
        read_monitor(
            monitor.child().stdout.take().unwrap(),
            monitor.child().stderr.take().unwrap(),
            tx.clone(),
        );
        // A monitor drops its own bus name when it becomes one: from then on it sees all.
        wait_for(
            rx,
            "dbus-monitor to start",
            |seen| matches!(seen, Seen::Bus(m) if m.member() == "NameLost"),
        );

        // Notices go out only once dunst owns the service name.
        let mut dunst = Proc::start(
            "dunst",
            session
                .dunst(None)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
            session.path("dunst.log"),
        );
        read_to_end(dunst.child().stderr.take().unwrap(), "dunst", tx.clone());
        wait_for(rx, "dunst to own org.freedesktop.Notifications", |seen| {
            matches!(seen, Seen::Bus(m) if m.member() == "NameOwnerChanged"
                && m.strings().first().map(String::as_str) == Some("org.freedesktop.Notifications")
                && m.strings().get(2).is_some_and(|owner| !owner.is_empty()))
        });
        Desktop {
            _dunst: dunst,
            _monitor: monitor,
            session,
        }
    }
}

/// Turn dbus-monitor's output into [`Seen::Bus`] messages.
fn read_monitor(
    stdout: std::process::ChildStdout,
    stderr: std::process::ChildStderr,
    tx: mpsc::Sender<Seen>,
) {
    read_to_end(stderr, "dbus-monitor (stderr)", tx.clone());
    std::thread::spawn(move || {
        let mut current: Option<Message> = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !line.starts_with(' ') {
                // A header: the previous message (if any) was complete already.
                current = Some(Message {
                    header: line.clone(),
                    ..Message::default()
                });
            } else if let Some(m) = &mut current {
                m.text.push_str(&line);
                m.text.push('\n');
                // Top-level arguments are indented by exactly three spaces; an array's
                // closing `]` is indented the same but is no argument.
                if line.starts_with("   ") && !line[3..].starts_with(' ') && &line[3..] != "]" {
                    m.args.push(line[3..].to_string());
                }
            }
            if current.as_ref().is_some_and(Message::complete) {
                let _ = tx.send(Seen::Bus(current.take().unwrap()));
            }
        }
        let _ = tx.send(Seen::Ended {
            name: "dbus-monitor",
            output: String::new(),
        });
    });
}

/// Collect a helper's stderr; report it when the helper exits.
fn read_to_end(
    pipe: impl std::io::Read + Send + 'static,
    name: &'static str,
    tx: mpsc::Sender<Seen>,
) {
    std::thread::spawn(move || {
        let mut output = String::new();
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut output);
        let _ = tx.send(Seen::Ended { name, output });
    });
}

/// Block until `want` matches an event. A helper that ends first fails the test with its
/// output; other events are passed by (and returned, for the caller to look at).
fn wait_for(rx: &mpsc::Receiver<Seen>, what: &str, want: impl Fn(&Seen) -> bool) -> Vec<Seen> {
    let mut passed = Vec::new();
    loop {
        let seen = rx.recv().expect("event channel open");
        if want(&seen) {
            passed.push(seen);
            return passed;
        }
        if let Seen::Ended { name, output } = &seen {
            panic!("waiting for {what}: {name} exited:\n{output}");
        }
        passed.push(seen);
    }
}

/// Wait for the notifier's outcome of one notice and the Notify call dbus-monitor saw for
/// it. A failure to show it fails the test with the notifier's log.
fn shown(rx: &mpsc::Receiver<Seen>) -> Message {
    let mut call = None;
    let mut done = false;
    while !(done && call.is_some()) {
        match rx.recv().expect("event channel open") {
            Seen::Bus(m) if m.member() == "Notify" => call = Some(m),
            Seen::Log { message, .. } if message.contains("notification shown") => done = true,
            Seen::Log { level, message }
                if level <= Level::INFO || message.contains("not shown") =>
            {
                panic!("the notifier failed: {level} {message}")
            }
            Seen::Ended { name, output } => panic!("{name} exited:\n{output}"),
            _ => {}
        }
    }
    call.unwrap()
}

#[test]
#[serial]
fn notices_reach_a_real_notification_service() {
    let (tx, rx) = events();
    let desktop = Desktop::start(&tx, &rx);
    use_bus(&desktop.session.bus);

    // The service on the bus is a real dunst, not a stand-in.
    let server = notify_rust::get_server_information().expect("GetServerInformation");
    assert_eq!(server.name, "dunst");

    let english = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lang = {
        let english = english.clone();
        move || {
            if english.load(std::sync::atomic::Ordering::SeqCst) {
                Lang::En
            } else {
                Lang::ZhCn
            }
        }
    };
    let notifier = Notifier::desktop(lang);
    notifier.send(Notice::Inserted {
        owner: "北京云杉测试科技有限公司".into(),
        days_left: 45,
    });
    let call = shown(&rx);
    let strings = call.strings();
    // app_name, app_icon, summary, body
    assert_eq!(strings[0], "证书助手", "{}", call.text);
    assert_eq!(strings[1], "certray", "the app icon: {}", call.text);
    assert_eq!(strings[2], "已插入密钥");
    assert_eq!(strings[3], "北京云杉测试科技有限公司 · 证书剩余 45 天");
    assert_eq!(call.urgency(), Some(1), "normal: {}", call.text);
    assert_eq!(call.args[7], "int32 10000", "a short timeout");

    // The language is asked per notice; locked is critical.
    english.store(true, std::sync::atomic::Ordering::SeqCst);
    notifier.send(Notice::PinLocked {
        label: "云杉测试 Key".into(),
    });
    let call = shown(&rx);
    let strings = call.strings();
    assert_eq!(strings[0], "certray");
    assert_eq!(strings[2], "Key locked");
    assert!(strings[3].contains("云杉测试 Key"), "{}", strings[3]);
    assert_eq!(call.urgency(), Some(2), "critical: {}", call.text);

    // Issue 14, item 8: a hostile token names itself with notification markup (dunst reads
    // body markup): the body carries it as text, every markup character an entity. Before,
    // `<a href=…>` and `<img>` went to the service as markup.
    assert!(
        notify_rust::get_capabilities()
            .unwrap()
            .iter()
            .any(|c| c == "body-markup"),
        "dunst reads body markup"
    );
    notifier.send(Notice::PinChanged {
        label: "<a href=\"https://evil.example\">Key</a> & <img src=\"/etc/x\"/>\u{1b}[31m".into(),
    });
    let call = shown(&rx);
    let body = &call.strings()[3];
    assert!(
        body.contains(
            "&lt;a href=&quot;https://evil.example&quot;&gt;Key&lt;/a&gt; &amp; &lt;img src=&quot;/etc/x&quot;/&gt;\\u{1b}[31m"
        ),
        "{body}"
    );
    assert!(!body.contains('<') && !body.contains('\u{1b}'), "{body}");

    drop(notifier);
    drop(desktop);
}

#[test]
#[serial]
fn a_missing_bus_is_logged_once_and_the_notifier_carries_on() {
    let (tx, rx) = events();
    // A socket that nobody listens on any more: connecting is refused.
    let dead = tempfile::tempdir().unwrap();
    let socket = dead.path().join("bus");
    drop(UnixListener::bind(&socket).unwrap());
    use_bus(&format!("unix:path={}", socket.display()));

    let notifier = Notifier::desktop(|| Lang::ZhCn);
    notifier.send(Notice::PinChanged {
        label: "甲".into()
    });
    notifier.send(Notice::PinCountLow {
        label: "乙".into()
    });
    notifier.send(Notice::Removed {
        label: "丙".into()
    });
    // send() returned at once for all three; now the notifier reports each failure.
    let mut failures = Vec::new();
    while failures.len() < 3 {
        match rx.recv().unwrap() {
            Seen::Log { level, message } => failures.push((level, message)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let warnings: Vec<_> = failures.iter().filter(|(l, _)| *l == Level::WARN).collect();
    assert_eq!(warnings.len(), 1, "warned once: {failures:?}");
    assert_eq!(
        failures[0].0,
        Level::WARN,
        "the first failure warns: {failures:?}"
    );
    assert!(
        failures[0].1.contains("cannot show desktop notifications"),
        "{failures:?}"
    );
    for (level, message) in &failures[1..] {
        assert_eq!(*level, Level::DEBUG, "{message}");
        assert!(message.contains("not shown"), "{message}");
    }

    // The same notifier works once a bus is there: its thread is alive and well.
    let desktop = Desktop::start(&tx, &rx);
    use_bus(&desktop.session.bus);
    notifier.send(Notice::Inserted {
        owner: "北京云杉测试科技有限公司".into(),
        days_left: 3,
    });
    let call = shown(&rx);
    assert_eq!(
        call.strings()[3],
        "北京云杉测试科技有限公司 · 证书剩余 3 天"
    );

    drop(notifier);
    drop(desktop);
}
