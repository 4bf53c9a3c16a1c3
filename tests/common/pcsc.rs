//! A private pcscd with a virtual reader (vsmartcard's vpcd) and a virtual card (vicc).
//!
//! What Debian 12 (pcsc-lite 1.9.9, vsmartcard 3.3) allows, found by trying:
//! - The client library (libpcsclite) honours `PCSCLITE_CSOCK_NAME`; the daemon does NOT (it
//!   always creates `/run/pcscd/pcscd.comm`). But pcscd is built with libsystemd and accepts
//!   a socket handed over by *socket activation* (`LISTEN_FDS=1`, `LISTEN_PID`, fd 3; it
//!   logs "Started by systemd"). [`Pcscd`] binds its own socket in a private directory and
//!   hands it over that way, through a `sh` that `exec`s pcscd (so `$$` is pcscd's pid).
//!   A socket-activated pcscd skips its "/run/pcscd/pcscd.comm already exists" check and
//!   leaves that file alone, so it runs next to a system pcscd (tried: both kept working)
//!   and next to other private ones. It still writes, and on SIGTERM removes,
//!   `/run/pcscd/pcscd.pid`, a system pcscd's too; only `pcscd -H` and pcscd's start-up
//!   check for a stale socket read that file.
//! - `pcscd -c DIR` reads a private reader.conf.d directory, so the vpcd reader listens on a
//!   port of our choosing (`DEVICENAME /dev/null:0xPORT`). One vpcd entry makes TWO readers,
//!   "Virtual PCD 00 00" on PORT and "Virtual PCD 00 01" on PORT+1; both ports are reserved.
//! - pcscd still watches USB through libudev: on a desktop with a real CCID reader, the
//!   private daemon would claim it too. CI machines have none.
//! - The socket is only moved to its final path once pcscd logged "daemon ready" (readers
//!   are set up before that), so a client never sees a half-started daemon; see
//!   [`Pcscd::restart_with`] for inserting a card before clients can look.
//! - vicc connects to vpcd and exits by itself when pcscd goes away (its connection drops):
//!   after a pcscd restart the card must be inserted again.
//! - libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process (the first time a context is
//!   established) and caches it. Child processes get it through [`Pcscd::env`]; a test
//!   process that uses PC/SC itself calls [`process_socket`] first and keeps that path for
//!   every [`Pcscd`] it starts (serialise those tests).

use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::require;

/// The ATR of vicc's `iso7816` card.
pub const VICC_ATR: [u8; 11] = [
    0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B,
];

/// The reader's friendly name in the private reader.conf; pcscd appends " 00 00" / " 00 01".
pub const VPCD_NAME: &str = "Virtual PCD";

/// How long to wait for pcscd to be ready or a card to show up in its log.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The log line pcscd writes once its readers are set up.
const READY_LINE: &str = "daemon ready.";

/// The env var libpcsclite reads to find pcscd's socket.
pub const SOCKET_ENV: &str = "PCSCLITE_CSOCK_NAME";

/// `pcscd` (package `pcscd`).
pub fn pcscd_program() -> PathBuf {
    require("pcscd", "pcscd")
}

/// The socket path for PC/SC used by THIS process, set once in `PCSCLITE_CSOCK_NAME`.
///
/// Call it before the first PC/SC context in the process is established (libpcsclite caches
/// the path on first use) and start every [`Pcscd`] of the process with
/// [`Pcscd::start_at`]/[`Pcscd::stopped_at`] on this path; tests sharing it must be
/// serialised. The directory, `$TMPDIR/certray-pcsc-<pid>`, is removed when the process
/// exits ([`super::remove_at_exit`]); the next call in another process removes those a killed
/// process left.
pub fn process_socket() -> &'static Path {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_dead_process_dirs(&tmp);
        let dir = tmp.join(format!("{PROCESS_DIR_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        super::remove_at_exit(&dir);
        let socket = dir.join("pcscd.comm");
        // SAFETY: called once, before this process uses PC/SC; the tests that get here are
        // serialised, so no other test thread is reading the environment concurrently.
        unsafe { std::env::set_var(SOCKET_ENV, &socket) };
        socket
    })
}

const PROCESS_DIR_PREFIX: &str = "certray-pcsc-";

/// Remove the [`process_socket`] directories of processes that no longer exist.
fn remove_dead_process_dirs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PROCESS_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A private pcscd (foreground child, stopped on drop) with its own socket and a vpcd reader
/// pair on its own ports.
pub struct Pcscd {
    /// reader.conf.d, logs; and the socket, unless given.
    dir: tempfile::TempDir,
    socket: PathBuf,
    port: u16,
    child: Option<Child>,
    /// This run's log (pcscd's stdout and stderr, `--debug`).
    log: PathBuf,
    runs: u32,
    /// The reader config is in place.
    vpcd: bool,
}

impl Pcscd {
    /// Start pcscd on a fresh private socket (give its [`env`](Self::env) to child processes).
    pub fn start() -> Pcscd {
        let mut p = Pcscd::stopped();
        p.restart();
        p
    }

    /// Start pcscd on `socket` (for in-process PC/SC: [`process_socket`]).
    pub fn start_at(socket: &Path) -> Pcscd {
        let mut p = Pcscd::stopped_at(socket);
        p.restart();
        p
    }

    /// A private pcscd that is not running yet ([`restart`](Self::restart) starts it): its
    /// socket path and ports are chosen, nothing listens.
    pub fn stopped() -> Pcscd {
        Pcscd::prepare(None)
    }

    /// Like [`stopped`](Self::stopped), on `socket`. A stale file there is removed.
    pub fn stopped_at(socket: &Path) -> Pcscd {
        Pcscd::prepare(Some(socket))
    }

    fn prepare(socket: Option<&Path>) -> Pcscd {
        pcscd_program();
        super::require_file(Path::new(VPCD_DRIVER), "vsmartcard-vpcd");
        let dir = tempfile::Builder::new()
            .prefix("certray-pcscd-")
            .tempdir()
            .expect("tempdir");
        let socket = socket.map_or_else(|| dir.path().join("pcscd.comm"), Path::to_path_buf);
        assert!(
            socket.as_os_str().len() < 100,
            "socket path too long for a Unix socket: {}",
            socket.display()
        );
        let _ = fs::remove_file(&socket);
        let port = free_port_pair();
        fs::create_dir(dir.path().join("reader.conf.d")).expect("mkdir reader.conf.d");
        let log = dir.path().join("pcscd-0.log");
        let mut p = Pcscd {
            dir,
            socket,
            port,
            child: None,
            log,
            runs: 0,
            vpcd: false,
        };
        p.set_vpcd(true);
        p
    }

    /// Whether the next (re)start has the vpcd readers (the default) or no reader at all.
    pub fn set_vpcd(&mut self, enabled: bool) {
        let file = self.dir.path().join("reader.conf.d/vpcd");
        if enabled {
            let port = self.port;
            fs::write(
                &file,
                format!(
                    "FRIENDLYNAME \"{VPCD_NAME}\"\nDEVICENAME   /dev/null:0x{port:04X}\n\
                     LIBPATH      {VPCD_DRIVER}\nCHANNELID    0x{port:04X}\n"
                ),
            )
            .expect("write reader.conf.d/vpcd");
        } else {
            let _ = fs::remove_file(&file);
        }
        self.vpcd = enabled;
    }

    /// The socket clients must use.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Environment for child processes (certray binaries) that must talk to this pcscd.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![(SOCKET_ENV, self.socket.clone().into_os_string())]
    }

    /// The first vpcd reader, where [`Vicc::insert`] puts the card: "Virtual PCD 00 00".
    pub fn reader_name(&self) -> String {
        format!("{VPCD_NAME} 00 00")
    }

    /// Both readers the vpcd entry creates, in pcscd's order.
    pub fn reader_names(&self) -> [String; 2] {
        [format!("{VPCD_NAME} 00 00"), format!("{VPCD_NAME} 00 01")]
    }

    /// The TCP port vicc connects to for the first reader (the second is `port + 1`).
    pub fn vicc_port(&self) -> u16 {
        self.port
    }

    /// Whether the daemon is running (reaps it if it died).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The current (or last) run's log.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The length of the current log, to look for lines written after this point.
    pub fn log_mark(&self) -> usize {
        fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    /// Wait until `needle` appears in the current log after `mark`; panics after `timeout`
    /// with `what` and the log.
    pub fn wait_log(&self, mark: usize, needle: &str, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if text.get(mark..).is_some_and(|t| t.contains(needle)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: \"{needle}\" not in pcscd's log within {timeout:?}\n--- {} ---\n{text}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stop pcscd (SIGTERM, as a service manager does; SIGKILL after 5 s) and remove its
    /// socket. Clients then get `NoService`. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(format!("kill -TERM {}", child.id()))
                    .stdin(Stdio::null())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = fs::remove_file(&self.socket);
    }

    /// Kill pcscd with SIGKILL (a crash: no cleanup) and remove its socket.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_file(&self.socket);
    }

    /// Stop pcscd if it runs and start it again with the same socket and ports.
    pub fn restart(&mut self) {
        self.restart_with(|_| ());
    }

    /// Like [`restart`](Self::restart), but runs `before_publish` once the new daemon is
    /// ready and before its socket appears at [`socket`](Self::socket): e.g.
    /// `|p| Vicc::insert(p)` makes a card present from the first moment clients can look,
    /// as a card in a USB reader is when pcscd starts.
    pub fn restart_with<T>(&mut self, before_publish: impl FnOnce(&Pcscd) -> T) -> T {
        self.stop();
        let staging = self.socket.with_extension("staging");
        let _ = fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging)
            .unwrap_or_else(|e| panic!("bind {}: {e}", staging.display()));
        self.runs += 1;
        self.log = self.dir.path().join(format!("pcscd-{}.log", self.runs));
        let log = fs::File::create(&self.log).expect("create pcscd log");
        // Socket activation: the listener arrives as stdin, becomes fd 3, and `exec` keeps
        // the shell's pid, which LISTEN_PID must name.
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "exec 3<&0 </dev/null; export LISTEN_FDS=1 LISTEN_PID=$$; \
                 exec \"$0\" --foreground --debug --config \"$1\"",
            )
            .arg(pcscd_program())
            .arg(self.dir.path().join("reader.conf.d"))
            .env_remove("LISTEN_FDNAMES")
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pcscd: {e}"));
        self.child = Some(child);
        self.wait_ready();
        let out = before_publish(self);
        fs::rename(&staging, &self.socket).unwrap_or_else(|e| {
            panic!(
                "rename {} to {}: {e}",
                staging.display(),
                self.socket.display()
            )
        });
        out
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.log_text().contains(READY_LINE) {
                break;
            }
            if !self.is_running() {
                panic!(
                    "pcscd exited before it was ready\n--- {} ---\n{}",
                    self.log.display(),
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "pcscd not ready within {READY_TIMEOUT:?}\n--- {} ---\n{}",
                self.log.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Both vpcd readers are set up before "daemon ready"; check rather than assume.
        let text = self.log_text();
        let ports = if self.vpcd {
            vec![self.port, self.port + 1]
        } else {
            Vec::new()
        };
        for port in ports {
            assert!(
                text.contains(&format!("Waiting for virtual ICC on port {port}")),
                "vpcd did not open port {port}\n--- {} ---\n{text}",
                self.log.display()
            );
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        // SIGTERM: pcscd then removes /run/pcscd/pcscd.pid, which a SIGKILL leaves behind.
        self.stop();
        let _ = fs::remove_file(self.socket.with_extension("staging"));
    }
}

/// vpcd's driver (package `vsmartcard-vpcd`).
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

/// A port P such that P and P+1 are free on all addresses (vpcd listens on 0.0.0.0).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind(("0.0.0.0", 0)).expect("bind an ephemeral port");
        let port = first.local_addr().expect("local_addr").port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free TCP ports found");
}

// ---------------------------------------------------------------------------------------------
// vicc
// ---------------------------------------------------------------------------------------------

/// Debian's python, which has `Cryptodome` (a pyenv or venv `python3` on PATH does not).
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";
/// Where Debian 12 installs vicc's module (not on `sys.path`).
pub const VICC_MODULE_DIR: &str = "/usr/lib/python3/site-packages/virtualsmartcard";
/// Debian's PyCryptodome, which vicc imports as `Crypto`.
pub const CRYPTODOME_DIR: &str = "/usr/lib/python3/dist-packages/Cryptodome";

/// vicc's `iso7816` card in the first reader of a [`Pcscd`]. Dropping it (or
/// [`remove`](Self::remove)) kills vicc: a real card removal.
pub struct Vicc {
    child: Option<Child>,
    /// The shim dir and vicc's log.
    dir: tempfile::TempDir,
}

impl Vicc {
    /// Start `vicc -t iso7816 -P <port>` and wait until pcscd has seen the card.
    pub fn insert(pcscd: &Pcscd) -> Vicc {
        let vicc = require("/usr/bin/vicc", "vsmartcard-vpicc");
        require(DEBIAN_PYTHON, "python3");
        super::require_file(
            &Path::new(VICC_MODULE_DIR).join("virtualsmartcard/VirtualSmartcard.py"),
            "vsmartcard-vpicc",
        );
        if !Path::new(CRYPTODOME_DIR).is_dir() {
            panic!("{CRYPTODOME_DIR} not found: apt-get install python3-pycryptodome");
        }
        let dir = tempfile::Builder::new()
            .prefix("certray-vicc-")
            .tempdir()
            .expect("tempdir");
        let shim = dir.path().join("shim");
        fs::create_dir(&shim).expect("mkdir shim");
        std::os::unix::fs::symlink(CRYPTODOME_DIR, shim.join("Crypto")).expect("symlink Crypto");
        let mut pythonpath = OsString::from(VICC_MODULE_DIR);
        pythonpath.push(":");
        pythonpath.push(&shim);
        let log_path = dir.path().join("vicc.log");
        let log = fs::File::create(&log_path).expect("create vicc log");
        let mark = pcscd.log_mark();
        let child = Command::new(DEBIAN_PYTHON)
            .arg(&vicc)
            .args(["-t", "iso7816", "-P"])
            .arg(pcscd.vicc_port().to_string())
            .env("PYTHONPATH", pythonpath)
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start vicc: {e}"));
        let mut card = Vicc {
            child: Some(child),
            dir,
        };
        let needle = format!("Card inserted into {}", pcscd.reader_name());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if pcscd
                .log_text()
                .get(mark..)
                .is_some_and(|t| t.contains(&needle))
            {
                return card;
            }
            let exited = card
                .child
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || Instant::now() >= deadline {
                panic!(
                    "vicc {}: pcscd did not log \"{needle}\"\n--- vicc log ---\n{}\n--- pcscd log ---\n{}",
                    if exited { "exited" } else { "timed out" },
                    card.log_text(),
                    pcscd.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// vicc's own output.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.path().join("vicc.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Whether vicc still runs (it exits by itself when pcscd goes away).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kill vicc: the card leaves the reader (pcscd notices within about 0.4 s).
    pub fn remove(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Vicc {
    fn drop(&mut self) {
        self.kill();
    }
}
