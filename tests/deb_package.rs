//! The Debian package end to end: build it (`scripts/package-deb`: `cargo deb`, then lintian
//! with no errors), `dpkg -i` it, check what it installed, start the installed
//! `/usr/bin/certray run --headless` on a SoftHSM token and ask `GET /v1/status`, stop it,
//! `dpkg -r` (only the conffile, the XDG autostart entry, may stay) and `dpkg --purge`
//! (nothing may stay).
//!
//! Needs root (dpkg) and Debian (apt-get installs the package's Depends when missing: pcscd,
//! libayatana-appindicator3-1). The first run on a fresh machine takes minutes: `cargo install
//! cargo-deb` and a release build. `CERTRAY_DEB=/path/to/certray_….deb` tests that package
//! instead of building one.
//!
//! It leaves the machine as it found it: a guard purges the package even when the test fails.
//! It refuses to run when certray is already installed by someone else (it would replace
//! that installation); a package left behind by a killed run of this test (marked in
//! [`MARKER`]) is purged first. Runs of this test, in this process or another, take turns
//! ([`LOCK`]). The dependencies it installs with apt stay installed, like the other tools the
//! tests drive.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bridge::{Request, config_text};
use common::{SoftHsm, output_text, require, run, run_unchecked};

/// Held (flock) while the test runs, so two runs never install and purge at the same time.
const LOCK: &str = "/var/tmp/certray-deb-package-test.lock";
/// Exists while this test has the package installed: a later run may purge it.
const MARKER: &str = "/var/tmp/certray-deb-package-test.installed";
const PACKAGE: &str = "certray";
const AUTOSTART: &str = "/etc/xdg/autostart/certray.desktop";

/// Files the package must install.
const EXPECTED_FILES: &[&str] = &[
    "/usr/bin/certray",
    "/usr/bin/certray-desktop",
    "/usr/lib/systemd/user/certray.service",
    AUTOSTART,
    "/usr/share/applications/certray.desktop",
    "/usr/share/man/man1/certray.1.gz",
    "/usr/share/man/man1/certray-desktop.1.gz",
    "/usr/share/icons/hicolor/scalable/apps/certray.svg",
    "/usr/share/icons/hicolor/16x16/apps/certray.png",
    "/usr/share/icons/hicolor/32x32/apps/certray.png",
    "/usr/share/icons/hicolor/48x48/apps/certray.png",
    "/usr/share/icons/hicolor/64x64/apps/certray.png",
    "/usr/share/icons/hicolor/128x128/apps/certray.png",
    "/usr/share/icons/hicolor/256x256/apps/certray.png",
    "/usr/share/doc/certray/README.md",
    "/usr/share/doc/certray/copyright",
    "/usr/share/doc/certray/changelog.Debian.gz",
];

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn deb_builds_installs_runs_and_removes_cleanly() {
    assert!(
        is_root(),
        "the Debian package test needs root (dpkg -i / dpkg --purge): run it as root (scripts/test does in CI)"
    );
    let dpkg = require("dpkg", "dpkg");
    require("apt-get", "apt");

    let lock = File::create(LOCK).unwrap_or_else(|e| panic!("{LOCK}: {e}"));
    lock.lock().unwrap_or_else(|e| panic!("lock {LOCK}: {e}"));

    // Never clobber an installation that is not ours.
    match package_status() {
        None => {}
        Some(status) if Path::new(MARKER).exists() => {
            eprintln!("purging certray ({status}) left behind by an earlier run of this test");
            run(Command::new(&dpkg).args(["--purge", PACKAGE]));
        }
        Some(status) => panic!(
            "certray is already on this machine (dpkg status {status:?}); this test would replace \
             it. Remove it first (dpkg --purge certray) or run the test elsewhere"
        ),
    }
    let _ = fs::remove_file(MARKER);

    let deb = build_package();
    eprintln!("testing {}", deb.display());

    // The control fields the issue asks for.
    let depends = deb_field(&deb, "Depends");
    for dep in [
        "pcscd",
        "libayatana-appindicator3-1",
        "libc6",
        "libpcsclite1",
        // The tray (linked) and what the windows open at run time.
        "libgtk-3-0",
        "libgl1",
        "libxkbcommon-x11-0",
    ] {
        assert!(
            dependency_names(&depends).contains(dep),
            "Depends lacks {dep}: {depends}"
        );
    }
    // OpenSC for real keys; Mesa's drivers and a CJK font for the windows.
    assert_eq!(
        dependency_names(&deb_field(&deb, "Recommends")),
        BTreeSet::from(["opensc", "libgl1-mesa-dri", "fonts-noto-cjk"].map(String::from))
    );
    assert_eq!(deb_field(&deb, "Section"), "utils");
    assert_eq!(
        deb_field(&deb, "Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );

    install_dependencies(&depends);

    // From here on the package is installed: the guard purges it, whatever happens.
    let guard = Installed::new();
    fs::write(MARKER, deb.as_os_str().as_encoded_bytes()).expect("write marker");
    run(Command::new(&dpkg).args(["-i"]).arg(&deb));
    assert_eq!(package_status().as_deref(), Some("installed"));

    // What it installed.
    let listed = dpkg_list().expect("dpkg -L certray after dpkg -i");
    for file in EXPECTED_FILES {
        assert!(
            listed.contains(*file),
            "dpkg -L certray does not list {file}:\n{listed:#?}"
        );
        assert!(Path::new(file).is_file(), "{file} is not installed");
    }
    let conffiles = dpkg_query("${Conffiles}");
    assert!(
        conffiles.contains(AUTOSTART),
        "{AUTOSTART} is not a conffile: {conffiles:?}"
    );
    let autostart = fs::read_to_string(AUTOSTART).expect("read autostart entry");
    for line in [
        "Exec=certray run",
        "X-GNOME-Autostart-enabled=true",
        "NoDisplay=true",
    ] {
        assert!(
            autostart.lines().any(|l| l == line),
            "{AUTOSTART} lacks {line:?}:\n{autostart}"
        );
    }
    let unit = fs::read_to_string("/usr/lib/systemd/user/certray.service").expect("read unit");
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/bin/certray run --headless"),
        "the unit does not start certray run --headless:\n{unit}"
    );
    verify_unit();

    // Both executables are the same program and version (`certray-desktop` with the tray).
    for program in ["/usr/bin/certray", "/usr/bin/certray-desktop"] {
        let out = run(Command::new(program).arg("--version"));
        assert_eq!(
            output_text(&out).trim(),
            format!("certray {}", env!("CARGO_PKG_VERSION")),
            "{program}"
        );
    }

    // The installed binary runs the daemon on a SoftHSM token.
    let hsm = SoftHsm::new();
    hsm.init_token("deb-package", "12345678", "123456");
    let home = tempfile::Builder::new()
        .prefix("certray-deb-home-")
        .tempdir()
        .expect("tempdir");
    {
        let mut daemon = InstalledDaemon::start(&hsm, home.path());
        let status = Request::new(daemon.addr, "GET", "/v1/status").send();
        assert_eq!(status.status, 200, "GET /v1/status: {}", status.text());
        let body = status.json();
        assert_eq!(body["name"], "certray", "{body}");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
        assert_eq!(body["tokens"], 1, "the SoftHSM token is not seen: {body}");
        daemon.stop();
    }

    // dpkg -r: everything goes but the conffile (the autostart entry, inert without the
    // binary: TryExec=certray) and the user's data.
    run(Command::new(&dpkg).args(["-r", PACKAGE]));
    assert_eq!(package_status().as_deref(), Some("config-files"));
    for file in &listed {
        let path = Path::new(file);
        if file != AUTOSTART && (path.is_file() || path.is_symlink()) {
            panic!("{file} is still there after dpkg -r");
        }
    }
    assert!(
        Path::new(AUTOSTART).is_file(),
        "dpkg -r removed the conffile {AUTOSTART} (only --purge should)"
    );
    assert!(
        !Path::new("/usr/bin/certray").exists(),
        "/usr/bin/certray is still there after dpkg -r"
    );
    assert!(
        home.path().join("state/certray").is_dir(),
        "the user's state dir went away"
    );

    // dpkg --purge: nothing stays.
    run(Command::new(&dpkg).args(["--purge", PACKAGE]));
    assert_eq!(package_status(), None, "certray is still known to dpkg");
    assert!(
        dpkg_list().is_none(),
        "dpkg -L certray still lists files after --purge"
    );
    for file in &listed {
        let path = Path::new(file);
        if path.is_file() || path.is_symlink() {
            panic!("{file} is still there after dpkg --purge");
        }
    }
    assert!(!Path::new("/usr/share/doc/certray").exists());
    drop(guard);
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/// `$CERTRAY_DEB`, or the package `scripts/package-deb` builds (its last stdout line).
fn build_package() -> PathBuf {
    if let Some(deb) = std::env::var_os("CERTRAY_DEB") {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "CERTRAY_DEB={} is not a file", deb.display());
        return deb;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let log = tempfile::NamedTempFile::new().expect("temp log");
    // The build's own TMPDIR, removed when it is done: lintian leaves files in it.
    let scratch = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root.join("scripts/package-deb"))
        .current_dir(root)
        .env("TMPDIR", scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.reopen().expect("reopen log"))
        .output()
        .expect("run scripts/package-deb");
    let log_text = fs::read_to_string(log.path()).unwrap_or_default();
    assert!(
        out.status.success(),
        "scripts/package-deb failed ({}); its stderr (last 200 lines):\n{}",
        out.status,
        tail(&log_text, 200)
    );
    // What lintian said, for the test log.
    eprintln!(
        "scripts/package-deb took {:.0?}; lintian:\n{}",
        started.elapsed(),
        log_text
            .lines()
            .filter(|l| l.starts_with("E: ") || l.starts_with("W: ") || l.starts_with("I: "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.is_file() && deb.extension().is_some_and(|e| e == "deb"),
        "scripts/package-deb did not print a .deb path: {stdout:?}"
    );
    deb
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One control field of a .deb.
fn deb_field(deb: &Path, field: &str) -> String {
    let out = run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(field));
    output_text(&out).trim().to_owned()
}

/// The package names in a Depends field (first alternative, no version).
fn dependency_names(depends: &str) -> BTreeSet<String> {
    depends
        .split(',')
        .filter_map(|dep| {
            let first = dep.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// apt-get install the Depends that are not installed (dpkg -i does not fetch them).
fn install_dependencies(depends: &str) {
    let missing: Vec<String> = dependency_names(depends)
        .into_iter()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("apt-get install {}", missing.join(" "));
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"));
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"));
}

fn is_installed(package: &str) -> bool {
    let out =
        run_unchecked(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", package]));
    out.status.success() && output_text(&out).trim() == "installed"
}

// ---------------------------------------------------------------------------------------------
// dpkg state
// ---------------------------------------------------------------------------------------------

fn is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    output_text(&out).trim() == "0"
}

/// dpkg's status of certray (`installed`, `config-files`, …), or None when dpkg does not
/// know it (never installed, or purged).
fn package_status() -> Option<String> {
    let out =
        run_unchecked(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", PACKAGE]));
    let status = output_text(&out).trim().to_owned();
    (out.status.success() && !status.is_empty() && status != "not-installed").then_some(status)
}

fn dpkg_query(format: &str) -> String {
    let out = run(Command::new("dpkg-query").args(["-W", &format!("-f={format}"), PACKAGE]));
    output_text(&out)
}

/// `dpkg -L certray`, or None when it fails (the package is unknown).
fn dpkg_list() -> Option<BTreeSet<String>> {
    let out = run_unchecked(Command::new("dpkg").args(["-L", PACKAGE]));
    out.status.success().then(|| {
        output_text(&out)
            .lines()
            .filter(|l| l.starts_with('/'))
            .map(str::to_owned)
            .collect()
    })
}

/// `systemd-analyze verify --user` on the installed unit: it parses, its ExecStart exists and
/// its Documentation (man:certray(1)) resolves. It needs no running systemd, only a runtime
/// directory.
fn verify_unit() {
    let analyze = require("systemd-analyze", "systemd");
    let runtime = tempfile::Builder::new()
        .prefix("certray-deb-xdg-runtime-")
        .tempdir()
        .expect("tempdir");
    let out = run_unchecked(
        Command::new(analyze)
            .args(["verify", "--user", "/usr/lib/systemd/user/certray.service"])
            .env("XDG_RUNTIME_DIR", runtime.path()),
    );
    let text = output_text(&out);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify --user certray.service ({}):\n{text}",
        out.status
    );
}

/// Purges certray when dropped (the test's end, or a panic), and removes the marker.
struct Installed;

impl Installed {
    fn new() -> Installed {
        Installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if package_status().is_some() {
            let out = run_unchecked(Command::new("dpkg").args(["--purge", PACKAGE]));
            if !out.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge certray failed:\n{}",
                    output_text(&out)
                );
                return; // keep the marker: the next run purges it
            }
        }
        let _ = fs::remove_file(MARKER);
    }
}

// ---------------------------------------------------------------------------------------------
// The installed daemon
// ---------------------------------------------------------------------------------------------

/// `/usr/bin/certray run --headless` with HOME and the XDG dirs in `home`, its config at the
/// default place (`$XDG_CONFIG_HOME/certray/config.toml`: SoftHSM only, port chosen by the
/// OS). Killed on drop.
struct InstalledDaemon {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl InstalledDaemon {
    fn start(hsm: &SoftHsm, home: &Path) -> InstalledDaemon {
        let dirs = ["config", "state", "data", "cache", "runtime"].map(|d| home.join(d));
        for dir in &dirs {
            fs::create_dir_all(dir).expect("mkdir");
        }
        let [config, state, data, cache, runtime] = dirs;
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))
            .expect("chmod runtime dir");
        fs::create_dir_all(config.join("certray")).expect("mkdir");
        fs::write(config.join("certray/config.toml"), config_text("")).expect("write config");
        let stderr = home.join("stderr.log");
        let mut child = Command::new("/usr/bin/certray")
            .args(["--log-level", "info", "run", "--headless"])
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_STATE_HOME", &state)
            .env("XDG_DATA_HOME", &data)
            .env("XDG_CACHE_HOME", &cache)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("CERTRAY_LANG", "en")
            .envs(hsm.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("stderr.log"))
            .spawn()
            .expect("start /usr/bin/certray run --headless");
        let rx = common::first_stdout_line(child.stdout.take().expect("stdout"));
        let mut daemon = InstalledDaemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the installed certray run printed no address within 30 s; stderr:\n{}",
                    daemon.stderr_text()
                )
            });
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.trim_end_matches('/').parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no http://127.0.0.1:PORT/ in {line:?}"));
        daemon.addr.set_port(port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Request::new(daemon.addr, "GET", "/v1/status")
            .try_send()
            .is_ok_and(|r| r.status == 200)
        {
            assert!(
                Instant::now() < deadline,
                "GET /v1/status did not answer within 20 s; stderr:\n{}",
                daemon.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, as systemd and session managers stop it: it must exit 0 within 15 s.
    fn stop(&mut self) {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "certray run exited with {status} on SIGTERM; stderr:\n{}",
                    self.stderr_text()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "certray run did not stop within 15 s of SIGTERM; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for InstalledDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
