//! opencryptoki (package `opencryptoki`): the system-wide soft token in slot 3, a token that
//! really locks a PIN (SoftHSM never does). Needs root.
//!
//! Quirks found on Debian 12 (opencryptoki 3.8.1):
//! - The soft token has NO elliptic-curve mechanisms at all (no `EC:prime256v1` keygen:
//!   "Generate EC key mechanism 1040 not supported", no CKM_ECDSA) and no CKM_SHA256_RSA_PKCS
//!   (only MD5/SHA1-RSA-PKCS, the *-RSA-PKCS-PSS ones and raw RSA-PKCS). EC keys can be
//!   imported but not used. Use RSA keys with CKM_RSA_PKCS there.
//! - PIN flags as printed by `pkcs11-tool -T` ("token flags" line): after wrong user PIN 1
//!   "user PIN count low", 2 "final user PIN try", 3 "user PIN locked" (C_Login then returns
//!   CKR_PIN_LOCKED (0xa4)); the lock survives a pkcsslotd restart; `--init-pin --so-pin …`
//!   (C_Login(SO) + C_InitPIN) unlocks. The SO PIN locks the same way ("SO PIN count low",
//!   "final SO PIN try", "SO PIN locked") after wrong SO logins, and then even C_InitToken
//!   fails with CKR_PIN_LOCKED: [`Opencryptoki::reset_token`] then wipes the token store. A
//!   wrong SO PIN given to C_InitToken itself is not counted.
//! - PIN length is 4..=8 (CKR_PIN_LEN_RANGE otherwise; "pin min/max : 4/8").
//! - A freshly (re)initialised token shows "user PIN to be changed" until `--init-pin`, and
//!   always "SO PIN to be changed" while the SO PIN is the default 87654321.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::config::write_config;
use super::pkcs11::{Select, import_objects, keygen_pair, raw_cert};
use super::{
    output_text, pkcs11_tool, pkcs11_tool_cmd, pkcs11_tool_run, require, run, run_unchecked,
};

/// The opencryptoki slot that holds the software token.
pub const OPENCRYPTOKI_SLOT: u64 = 3;
/// The SO PIN [`Opencryptoki::reset_token`] uses (opencryptoki's default). Keep it fixed:
/// re-initialising the token needs the current SO PIN.
pub const OPENCRYPTOKI_SO_PIN: &str = "87654321";
/// The module path on x86_64 Debian; [`Opencryptoki::setup`] finds the real one.
pub const OPENCRYPTOKI_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so";

const OCK_CONF: &str = "/etc/opencryptoki/opencryptoki.conf";
const OCK_CONF_BACKUP: &str = "/etc/opencryptoki/opencryptoki.conf.certray-orig";
const OCK_CONF_TEXT: &str = "version opencryptoki-3.1\nslot 3\n{\nstdll = libpkcs11_sw.so\n}\n";
const OCK_SWTOK: &str = "/var/lib/opencryptoki/swtok";
const OCK_SOCKET: &str = "/var/run/pkcsslotd.socket";
const OCK_SHM: &str = "/dev/shm/var.lib.opencryptoki.swtok";
/// pkcsslotd's stdout and stderr (it outlives the tests: a log under `target/`, not a
/// temporary file).
const OCK_LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/certray-pkcsslotd.log");

/// The system-wide opencryptoki soft token (slot 3), for PIN-lockout tests.
///
/// Needs root. There is one instance per machine: mark the tests
/// `#[serial_test::serial(opencryptoki)]`. (`cargo test` runs test binaries one after another,
/// so the key only has to be the same within one binary.) Test processes that run at the same
/// time (a runner like nextest, another checkout's tests on the same machine) take turns
/// through a lock file: the first use in a process waits for it and keeps it until the
/// process exits. Being root-only and system-wide, they are heavy tests too:
/// `#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]`.
///
/// PIN lengths 4..=8. RSA only (see the module docs).
pub struct Opencryptoki {
    module: PathBuf,
}

impl Opencryptoki {
    /// Make the soft token usable, from any state, including a fresh `apt-get install
    /// opencryptoki` (whose postinst cannot start the daemon without an init system):
    /// - panics unless root;
    /// - creates group `pkcs11` if missing, and `/var/lib/opencryptoki/swtok/TOK_OBJ`,
    ///   `/var/lock/opencryptoki/swtok` (0770 root:pkcs11) if missing;
    /// - writes `/etc/opencryptoki/opencryptoki.conf` with only slot 3 (`libpkcs11_sw.so`) if
    ///   it differs, keeping the original once as `opencryptoki.conf.certray-orig`;
    /// - (re)starts `pkcsslotd` unless one is running with its socket (and restarts it when
    ///   the config changed);
    /// - checks that slot 3 is there.
    pub fn setup() -> Opencryptoki {
        assert_root();
        machine_lock();
        let module = find_opencryptoki_module();
        let slotd = require("pkcsslotd", "opencryptoki");
        pkcs11_tool();
        let gid = ensure_pkcs11_group();
        for d in [
            "/var/lib/opencryptoki",
            OCK_SWTOK,
            "/var/lib/opencryptoki/swtok/TOK_OBJ",
            "/var/lock/opencryptoki",
            "/var/lock/opencryptoki/swtok",
        ] {
            ensure_dir(Path::new(d), gid);
        }
        let conf_changed = ensure_conf();
        let running = slotd_pids();
        if conf_changed || (!running.is_empty() && !Path::new(OCK_SOCKET).exists()) {
            stop_slotd();
        }
        if slotd_pids().is_empty() {
            start_slotd(&slotd);
        }
        let ock = Opencryptoki { module };
        let slots = ock.list_slots();
        assert!(
            slots.contains(&format!("(0x{OPENCRYPTOKI_SLOT:x})")),
            "opencryptoki has no slot {OPENCRYPTOKI_SLOT}:\n{slots}"
        );
        ock
    }

    /// Put the machine back to the state right after `apt-get install opencryptoki` on a
    /// machine without an init system: pkcsslotd stopped, token store empty (not even
    /// `TOK_OBJ`), no `/var/lock/opencryptoki`, no shared memory, the package's config file
    /// back (from the `.certray-orig` backup). For the harness self-test; [`Opencryptoki::setup`]
    /// must recover from it.
    pub fn simulate_fresh_install() {
        assert_root();
        machine_lock();
        stop_slotd();
        if Path::new(OCK_SWTOK).is_dir() {
            empty_dir(Path::new(OCK_SWTOK));
        }
        let _ = fs::remove_dir_all("/var/lock/opencryptoki");
        let _ = fs::remove_file(OCK_SHM);
        let _ = fs::remove_file(OCK_SOCKET);
        if let Ok(orig) = fs::read_to_string(OCK_CONF_BACKUP) {
            fs::write(OCK_CONF, orig).expect("restore opencryptoki.conf");
        }
    }

    /// The module path found on this machine.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// C_InitPIN as the SO (`pkcs11-tool --init-pin`): sets the user PIN, which also unlocks
    /// a locked one.
    pub fn init_pin(&self, pin: &str) {
        let slot = OPENCRYPTOKI_SLOT.to_string();
        pkcs11_tool_run(
            &self.module,
            &[],
            &[
                "--slot",
                &slot,
                "--init-pin",
                "--so-pin",
                OPENCRYPTOKI_SO_PIN,
                "--pin",
                pin,
            ],
        );
    }

    /// Re-initialise the token in slot 3 from scratch: `--init-token --label L --so-pin
    /// 87654321`, then `--init-pin --so-pin 87654321 --pin P` (P: 4..=8 characters). All
    /// objects are gone and the user PIN is unlocked. If init-token fails (SO PIN locked or
    /// changed, broken store), wipes the token store and restarts pkcsslotd, then retries once.
    pub fn reset_token(&self, label: &str, pin: &str) {
        let slot = OPENCRYPTOKI_SLOT.to_string();
        let init = [
            "--slot",
            &slot,
            "--init-token",
            "--label",
            label,
            "--so-pin",
            OPENCRYPTOKI_SO_PIN,
        ];
        let first = run_unchecked(&mut pkcs11_tool_cmd(&self.module, &[], &init));
        if !first.status.success() {
            eprintln!(
                "opencryptoki init-token failed, wiping the token store: {}",
                output_text(&first).trim()
            );
            wipe_token_store();
            pkcs11_tool_run(&self.module, &[], &init);
        }
        self.init_pin(pin);
    }

    /// Like [`SoftHsm::import`], on slot 3. (EC keys import but the token cannot use them.)
    pub fn import(
        &self,
        pin: &str,
        id_hex: &str,
        cert_der: Option<&Path>,
        key_pkcs8_der: Option<&Path>,
        obj_label: &str,
    ) {
        let scratch = tempfile::tempdir().expect("tempdir");
        import_objects(
            &self.module,
            &[],
            Select::SlotId(OPENCRYPTOKI_SLOT),
            scratch.path(),
            pin,
            id_hex,
            cert_der,
            key_pkcs8_der,
            obj_label,
        );
    }

    /// Like [`SoftHsm::write_raw_cert`], on slot 3.
    pub fn write_raw_cert(&self, pin: &str, id_hex: &str, bytes: &[u8], obj_label: &str) {
        let scratch = tempfile::tempdir().expect("tempdir");
        raw_cert(
            &self.module,
            &[],
            Select::SlotId(OPENCRYPTOKI_SLOT),
            scratch.path(),
            pin,
            id_hex,
            bytes,
            obj_label,
        );
    }

    /// Generate a key pair on slot 3. Only `rsa:N` works (opencryptoki 3.8.1 has no EC).
    pub fn keygen(&self, pin: &str, key_type: &str, id_hex: &str, obj_label: &str) -> Output {
        keygen_pair(
            &self.module,
            &[],
            Select::SlotId(OPENCRYPTOKI_SLOT),
            pin,
            key_type,
            id_hex,
            obj_label,
        )
    }

    /// `pkcs11-tool --slot 3 --login --pin P --list-objects`, whatever its status: with a
    /// wrong PIN it fails with "CKR_PIN_INCORRECT" or "CKR_PIN_LOCKED" in stderr.
    pub fn try_login(&self, pin: &str) -> Output {
        let slot = OPENCRYPTOKI_SLOT.to_string();
        run_unchecked(&mut pkcs11_tool_cmd(
            &self.module,
            &[],
            &["--slot", &slot, "--login", "--pin", pin, "--list-objects"],
        ))
    }

    /// `pkcs11-tool -L` stdout (slot 3 prints as `Slot 0 (0x3): Linux`).
    pub fn list_slots(&self) -> String {
        let out = pkcs11_tool_run(&self.module, &[], &["--list-slots"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pkcs11-tool -T` stdout.
    pub fn list_token_slots(&self) -> String {
        let out = pkcs11_tool_run(&self.module, &[], &["--list-token-slots"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The "token flags" line of `pkcs11-tool -T`, after the colon, e.g.
    /// `login required, rng, SO PIN to be changed, token initialized, PIN initialized, user
    /// PIN locked, other flags=0x40`.
    pub fn token_flags(&self) -> String {
        let text = self.list_token_slots();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token flags"))
            .map(|rest| rest.trim_start().trim_start_matches(':').trim().to_string())
            .unwrap_or_else(|| panic!("no token flags in pkcs11-tool -T output:\n{text}"))
    }

    /// Write `<dir>/certray.toml` that loads only the opencryptoki module; returns its path.
    pub fn config_file(&self, dir: &Path) -> PathBuf {
        write_config(&dir.join("certray.toml"), &self.module)
    }
}

/// Held by the process that uses the token (see [`Opencryptoki`]).
const OCK_LOCK: &str = "/var/tmp/certray-opencryptoki-test.lock";

/// Wait for the machine-wide [`OCK_LOCK`], then keep it until this process exits: another
/// process's pkcsslotd restart or token reset would pull the token from under a test.
fn machine_lock() {
    static LOCK: std::sync::OnceLock<fs::File> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| {
        let file = fs::File::create(OCK_LOCK).unwrap_or_else(|e| panic!("{OCK_LOCK}: {e}"));
        file.lock()
            .unwrap_or_else(|e| panic!("lock {OCK_LOCK}: {e}"));
        file
    });
}

fn assert_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("Uid line in /proc/self/status");
    if euid != "0" {
        panic!(
            "opencryptoki tests need root (euid is {euid}): they write \
             /etc/opencryptoki/opencryptoki.conf, start pkcsslotd and use \
             /var/lib/opencryptoki (root:pkcs11). Run them as root, as CI does \
             (e.g. `sudo -E scripts/test`)."
        );
    }
}

/// The opencryptoki PKCS#11 module: the usual multiarch paths, else `dpkg -L opencryptoki`.
fn find_opencryptoki_module() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "powerpc64" => "powerpc64-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "x86" => "i386-linux-gnu",
        other => other,
    };
    let candidates = [
        OPENCRYPTOKI_MODULE.to_string(),
        format!("/usr/lib/{arch}/pkcs11/libopencryptoki.so"),
        format!("/usr/lib/{arch}/opencryptoki/libopencryptoki.so"),
        "/usr/lib64/pkcs11/libopencryptoki.so".to_string(),
        "/usr/lib/pkcs11/libopencryptoki.so".to_string(),
        "/usr/lib64/opencryptoki/libopencryptoki.so".to_string(),
        "/usr/lib/opencryptoki/libopencryptoki.so".to_string(),
    ];
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return found;
    }
    if let Ok(out) = Command::new("dpkg")
        .args(["-L", "opencryptoki"])
        .stdin(Stdio::null())
        .output()
    {
        let listing = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = listing
            .lines()
            .find(|l| l.ends_with("/pkcs11/libopencryptoki.so"))
        {
            return PathBuf::from(line);
        }
    }
    panic!("{OPENCRYPTOKI_MODULE} not found: apt-get install opencryptoki");
}

/// The gid of group `pkcs11` (which pkcsslotd and the library insist on), creating it first
/// if it is missing (the package's postinst normally does).
fn ensure_pkcs11_group() -> u32 {
    let lookup = || {
        let out = Command::new("getent")
            .args(["group", "pkcs11"])
            .stdin(Stdio::null())
            .output()
            .expect("run getent");
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .and_then(|g| g.trim().parse().ok())
    };
    if let Some(gid) = lookup() {
        return gid;
    }
    run(Command::new(require("groupadd", "passwd")).args(["--system", "pkcs11"]));
    lookup().expect("group pkcs11 after groupadd")
}

fn ensure_dir(dir: &Path, gid: u32) {
    if !dir.is_dir() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        std::os::unix::fs::chown(dir, Some(0), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
        fs::set_permissions(dir, fs::Permissions::from_mode(0o770))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    }
}

/// Write the slot-3-only config if it differs; true if it was written.
fn ensure_conf() -> bool {
    let conf = Path::new(OCK_CONF);
    let current = fs::read_to_string(conf).ok();
    if current.as_deref() == Some(OCK_CONF_TEXT) {
        return false;
    }
    if let Some(orig) = &current
        && !Path::new(OCK_CONF_BACKUP).exists()
    {
        fs::write(OCK_CONF_BACKUP, orig).expect("back up opencryptoki.conf");
    }
    fs::create_dir_all("/etc/opencryptoki").expect("mkdir /etc/opencryptoki");
    fs::write(conf, OCK_CONF_TEXT).expect("write opencryptoki.conf");
    true
}

/// Live (not zombie) pkcsslotd processes, from /proc (`pgrep -x` also lists zombies, which
/// do show up here: nothing reaps the daemon once it dies in a container without init).
fn slotd_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if process_is_live_slotd(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn process_is_live_slotd(pid: u32) -> bool {
    // /proc/PID/stat: "PID (comm) STATE ..."; comm may contain spaces, so split at the last ')'.
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
    comm == "pkcsslotd" && state != "Z" && state != "X"
}

/// SIGTERM every live pkcsslotd (by pid) and wait until they are gone.
fn stop_slotd() {
    let pids = slotd_pids();
    if pids.is_empty() {
        return;
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    // The shell's builtin kill: /bin/kill (procps) may be missing on a minimal system.
    let _ = run_unchecked(
        Command::new("sh")
            .arg("-c")
            .arg(format!("kill {}", list.join(" "))),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| process_is_live_slotd(p)) {
        assert!(
            Instant::now() < deadline,
            "pkcsslotd {list:?} did not stop within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start pkcsslotd (it daemonises) and wait for its socket.
fn start_slotd(slotd: &Path) {
    // A stale shared-memory segment or socket from a dead daemon: the segment can hold stale
    // token state, and a leftover socket would make the wait below return too early.
    let _ = fs::remove_file(OCK_SHM);
    let _ = fs::remove_file(OCK_SOCKET);
    // The daemon keeps its stdout/stderr: point them at a file, not at pipes we would wait on.
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(OCK_LOG)
        .unwrap_or_else(|e| panic!("open {OCK_LOG}: {e}"));
    let status = Command::new(slotd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", slotd.display()));
    let log_text = || fs::read_to_string(OCK_LOG).unwrap_or_default();
    assert!(
        status.success(),
        "pkcsslotd failed ({status}); {OCK_LOG}:\n{}",
        log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(OCK_SOCKET).exists() || slotd_pids().is_empty() {
        assert!(
            Instant::now() < deadline,
            "pkcsslotd started but {OCK_SOCKET} did not appear within 10 s; {OCK_LOG}:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Remove everything in `dir`. What is already gone (another process wiped it first) is fine.
fn empty_dir(dir: &Path) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let p = entry.path();
        let res = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        match res {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("remove {}: {e}", p.display())
            }
            _ => {}
        }
    }
}

/// Stop pkcsslotd, empty the soft token's store (recreating `TOK_OBJ`), start pkcsslotd: the
/// token is then uninitialised and its SO PIN is the default again.
fn wipe_token_store() {
    let slotd = require("pkcsslotd", "opencryptoki");
    let gid = ensure_pkcs11_group();
    stop_slotd();
    empty_dir(Path::new(OCK_SWTOK));
    // Without TOK_OBJ token objects silently end up in shared memory only.
    ensure_dir(&Path::new(OCK_SWTOK).join("TOK_OBJ"), gid);
    start_slotd(&slotd);
}
