//! `certray doctor` (环境检测) against real components: a SoftHSM token holding the
//! certificate fixtures, a module path that does not exist, a private pcscd that is stopped or
//! running with the vpcd reader and vicc's card, `certray run --headless` on its port or
//! another program there, autostart files in a private XDG_CONFIG_HOME, and a private session
//! D-Bus.
//!
//! Every run gets its own XDG_CONFIG_HOME and a PCSCLITE_CSOCK_NAME of its own (where nothing
//! listens unless the test starts a pcscd), and a bridge port nothing listens on unless the
//! test says otherwise, so the machine's own pcscd, daemon and autostart files do not leak in.

use crate::common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bridge::Daemon;
use common::pcsc::{Pcscd, VICC_ATR, Vicc};
use common::*;
use serde_json::Value;

const LABEL: &str = "doctor-test";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const VICC_ATR_TEXT: &str = "3B 95 13 81 01 80 73 FF 01 00 0B";

/// A SoftHSM token with 01 rsa-utf8 (valid), 02 ec-expiring (30 days), 05 ec-expired, each
/// with its key, and 04 sm2 without one.
fn token() -> SoftHsm {
    let hsm = SoftHsm::new();
    hsm.init_token(LABEL, SO_PIN, PIN);
    for (id, name) in [
        ("01", "rsa-utf8"),
        ("02", "ec-expiring"),
        ("05", "ec-expired"),
    ] {
        hsm.import(
            LABEL,
            PIN,
            id,
            Some(&fixture(&format!("{name}.der"))),
            Some(&fixture(&format!("{name}.key.der"))),
            name,
        );
    }
    hsm.import(LABEL, PIN, "04", Some(&fixture("sm2.der")), None, "sm2");
    hsm
}

/// A TCP port on 127.0.0.1 nothing listens on (bound once and let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// One doctor setup: its temp dir (config file, XDG_CONFIG_HOME, a dead PC/SC socket path)
/// and environment.
struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, OsString)>,
    config: PathBuf,
}

impl Setup {
    /// `modules` only (`use_defaults = false`), the bridge on `port` (a free one when
    /// `None`), then `extra` TOML appended.
    fn new(hsm: Option<&SoftHsm>, modules: &[&Path], port: Option<u16>, extra: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("certray-doctor-")
            .tempdir()
            .expect("tempdir");
        let list: Vec<String> = modules
            .iter()
            .map(|m| format!("\"{}\"", m.display()))
            .collect();
        let port = port.unwrap_or_else(free_port);
        let text = format!(
            "[pkcs11]\nmodules = [{}]\nuse_defaults = false\n\n[bridge]\nlisten = \"127.0.0.1:{port}\"\n\n{extra}",
            list.join(", ")
        );
        let config = dir.path().join("certray.toml");
        std::fs::write(&config, text).expect("write config");
        let xdg = dir.path().join("xdg-config");
        std::fs::create_dir(&xdg).expect("mkdir xdg-config");
        let mut env: Vec<(&'static str, OsString)> =
            hsm.map(|h| h.env().to_vec()).unwrap_or_default();
        env.push(("XDG_CONFIG_HOME", xdg.into_os_string()));
        env.push((
            common::pcsc::SOCKET_ENV,
            dir.path().join("no-pcscd.comm").into_os_string(),
        ));
        Setup { dir, env, config }
    }

    /// Talk to this pcscd instead of the dead socket.
    fn with_pcscd(mut self, pcscd: &Pcscd) -> Setup {
        self.env.retain(|(k, _)| *k != common::pcsc::SOCKET_ENV);
        self.env.extend(pcscd.env());
        self
    }

    fn xdg_config(&self) -> PathBuf {
        self.dir.path().join("xdg-config")
    }

    fn cmd(&self) -> Command {
        let mut c = certray(&self.env);
        c.arg("--config").arg(&self.config);
        c
    }

    /// `doctor --json`: the report and the exit code.
    fn json(&self) -> Report {
        self.json_with(|_| {})
    }

    fn json_with(&self, adjust: impl FnOnce(&mut Command)) -> Report {
        let mut cmd = self.cmd();
        cmd.args(["doctor", "--json"]);
        adjust(&mut cmd);
        let out = run_unchecked(&mut cmd);
        Report::from(&out)
    }
}

struct Report {
    json: Value,
    code: i32,
    text: String,
}

impl Report {
    fn from(out: &Output) -> Report {
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{}", output_text(out)));
        Report {
            json,
            code: out.status.code().expect("exit code"),
            text: output_text(out),
        }
    }

    fn check(&self, id: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in:\n{}", self.text))
    }

    /// Assert the status of check `id`, showing the check when it differs.
    fn expect(&self, id: &str, status: &str) -> &Value {
        let c = self.check(id);
        assert_eq!(c["status"], status, "check {id}: {c:#}");
        c
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn softhsm_token_modules_tokens_and_certificates() {
    let hsm = token();
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], None, "");
    let r = setup.json();

    // Shape: every check has the fields, the summary counts them.
    let checks = r.json["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| s(&c["id"])).collect();
    assert_eq!(
        ids,
        [
            "config",
            "pcscd",
            "readers",
            "cards",
            "modules",
            "tokens",
            "certificates",
            "pin",
            "skf",
            "bridge",
            "xtx",
            "autostart",
            "display",
            "clock"
        ]
    );
    for c in checks {
        for key in ["id", "status", "title", "finding", "hint", "data"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
        assert!(["ok", "warning", "error"].contains(&s(&c["status"])), "{c}");
    }
    let count = |st: &str| checks.iter().filter(|c| c["status"] == st).count();
    let summary = &r.json["summary"];
    assert_eq!(summary["ok"], count("ok"));
    assert_eq!(summary["warning"], count("warning"));
    assert_eq!(summary["error"], count("error"));
    // No pcscd here: that is an error, so the exit code is 50.
    r.expect("pcscd", "error");
    assert_eq!(r.code, 50, "{}", r.text);

    let config = r.expect("config", "ok");
    assert_eq!(s(&config["data"]["path"]), setup.config.to_str().unwrap());

    let modules = r.expect("modules", "ok");
    let m = &modules["data"]["modules"][0];
    assert_eq!(s(&m["path"]), SOFTHSM_MODULE);
    assert_eq!(m["loaded"], true);
    assert_eq!(m["configured"], true);
    assert!(s(&m["manufacturer"]).contains("SoftHSM"), "{m}");
    assert!(!s(&m["library_version"]).is_empty(), "{m}");
    assert!(s(&modules["finding"]).contains(SOFTHSM_MODULE));

    let tokens = r.expect("tokens", "ok");
    let t = &tokens["data"]["tokens"];
    assert_eq!(t.as_array().unwrap().len(), 1, "{t}");
    assert_eq!(t[0]["label"], LABEL);
    assert_eq!(t[0]["certificates"], 4);
    assert!(s(&tokens["finding"]).contains(LABEL));

    // Expiring and expired are listed with the holder (and organisation) and the days; the
    // valid RSA certificate has a key, so something can still sign: a warning, not an
    // error. The holder is the CN (owner used to be subject O): ec-expiring is 王五 at
    // 深圳未来测试有限公司, ec-expired "Expired EC" (its O 过期测试 is the organisation),
    // rsa-utf8 张三 at 北京云杉测试科技有限公司 (a staff certificate).
    let certs = r.expect("certificates", "warning");
    let finding = s(&certs["finding"]);
    assert!(finding.contains("王五 · 深圳未来测试有限公司"), "{finding}");
    assert!(finding.contains("天后到期"), "{finding}");
    assert!(
        finding.contains("Expired EC · 过期测试") && finding.contains("已过期"),
        "{finding}"
    );
    assert!(
        !finding.contains("北京云杉测试科技有限公司") && !finding.contains("张三"),
        "valid ones are not listed: {finding}"
    );
    let by_owner = |owner: &str| {
        certs["data"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["owner"] == owner)
            .unwrap_or_else(|| panic!("{owner} not in {certs:#}"))
            .clone()
    };
    let expiring = by_owner("王五");
    assert_eq!(expiring["organization"], "深圳未来测试有限公司");
    assert_eq!(expiring["status"], "expiring");
    let days = expiring["days_left"].as_i64().unwrap();
    assert!((28..=30).contains(&days), "{expiring}");
    assert!(finding.contains(&format!("{days} 天后到期")), "{finding}");
    let expired = by_owner("Expired EC");
    assert_eq!(expired["organization"], "过期测试");
    assert_eq!(expired["status"], "expired");
    assert!(expired["days_left"].as_i64().unwrap() < -365 * 5);
    let rsa = by_owner("张三");
    assert_eq!(rsa["organization"], "北京云杉测试科技有限公司");
    assert_eq!(rsa["status"], "valid");
    assert!(s(&certs["hint"]).contains("CA"));

    r.expect("pin", "ok");
    // The clock is checked against the certificates too: it is right here.
    let clock = r.expect("clock", "ok");
    assert!(clock["data"]["newest_not_before"].is_string(), "{clock}");
}

#[test]
fn missing_module_is_an_error_naming_the_path_and_the_reason() {
    let hsm = token();
    let missing = Path::new("/nonexistent/certray/libvendor-pkcs11.so");
    let setup = Setup::new(Some(&hsm), &[&hsm.module(), missing], None, "");
    let r = setup.json();
    assert_ne!(r.code, 0);
    let modules = r.expect("modules", "error");
    let finding = s(&modules["finding"]);
    assert!(finding.contains(missing.to_str().unwrap()), "{finding}");
    let bad = modules["data"]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == missing.to_str().unwrap())
        .expect("the missing module is listed");
    assert_eq!(bad["loaded"], false);
    let reason = s(&bad["error"]);
    assert!(
        reason.contains("not found") || reason.contains("No such file"),
        "{reason}"
    );
    assert!(
        finding.contains(reason),
        "the finding gives the reason: {finding}"
    );
    assert!(modules["hint"].is_string());
    // The module that loads keeps working.
    let ok = modules["data"]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == SOFTHSM_MODULE)
        .unwrap();
    assert_eq!(ok["loaded"], true);
    r.expect("tokens", "ok");
    r.expect("certificates", "warning");
    r.expect("pin", "ok");
    r.expect("config", "ok");
}

#[test]
fn pcscd_stopped_is_an_error_with_the_fix() {
    let pcscd = Pcscd::stopped();
    let setup = Setup::new(None, &[], None, "").with_pcscd(&pcscd);
    let r = setup.json_with(|c| {
        c.env("CERTRAY_LANG", "en_US.UTF-8");
    });
    assert_ne!(r.code, 0, "{}", r.text);
    let c = r.expect("pcscd", "error");
    assert!(s(&c["hint"]).contains("sudo systemctl start pcscd"), "{c}");
    assert_eq!(c["data"]["reachable"], false);
    assert_eq!(c["data"]["code"], "NoService");
    assert_eq!(s(&c["data"]["socket"]), pcscd.socket().to_str().unwrap());
    r.expect("readers", "warning");
    r.expect("cards", "warning");
    // No module at all: a warning that says what to install.
    let m = r.expect("modules", "warning");
    assert!(s(&m["hint"]).contains("OpenSC"), "{m}");

    // The human output says the same in Chinese, and the exit code is 1.
    let out = run_unchecked(setup.cmd().arg("doctor"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(50), "{}", output_text(&out));
    assert!(text.contains("环境检测"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("✗ ") && l.contains("PC/SC")),
        "{text}"
    );
    assert!(
        text.contains("→ 启动 pcscd：`sudo systemctl start pcscd`"),
        "{text}"
    );
}

#[test]
fn pcscd_running_with_vpcd_readers_and_the_vicc_card() {
    let hsm = token();
    let mut pcscd = Pcscd::start();
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], None, "").with_pcscd(&pcscd);

    // Readers, no card.
    let r = setup.json();
    r.expect("pcscd", "ok");
    let readers = r.expect("readers", "ok");
    let names: Vec<&str> = readers["data"]["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(names.contains(&"Virtual PCD 00 00"), "{readers}");
    assert_eq!(
        names,
        pcscd
            .reader_names()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(s(&readers["finding"]).contains("Virtual PCD 00 00"));
    r.expect("cards", "warning");

    // vicc's card: unknown to the registry.
    let vicc = Vicc::insert(&pcscd);
    let r = setup.json();
    let cards = r.expect("cards", "warning");
    let card = &cards["data"]["cards"][0];
    assert_eq!(
        cards["data"]["cards"].as_array().unwrap().len(),
        1,
        "{cards}"
    );
    assert_eq!(card["reader"], "Virtual PCD 00 00");
    assert_eq!(card["atr"], VICC_ATR_TEXT);
    assert_eq!(card["name"], Value::Null);
    assert!(s(&cards["finding"]).contains(VICC_ATR_TEXT), "{cards}");
    let hint = s(&cards["hint"]);
    assert!(
        hint.contains("[[cards]]") && hint.contains(VICC_ATR_TEXT),
        "{hint}"
    );
    assert_eq!(
        VICC_ATR_TEXT,
        VICC_ATR
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // A [[cards]] entry maps the card to the SoftHSM module, which is loaded.
    let mapped = Setup::new(
        Some(&hsm),
        &[&hsm.module()],
        None,
        &format!("[[cards]]\natr = \"{VICC_ATR_TEXT}\"\nmodule = \"{SOFTHSM_MODULE}\"\nname = \"vicc 测试卡\"\n"),
    )
    .with_pcscd(&pcscd);
    let r = mapped.json();
    let cards = r.expect("cards", "ok");
    let card = &cards["data"]["cards"][0];
    assert_eq!(card["name"], "vicc 测试卡");
    assert_eq!(card["modules"][0]["path"], SOFTHSM_MODULE);
    assert_eq!(card["modules"][0]["loaded"], true);
    assert!(s(&cards["finding"]).contains(SOFTHSM_MODULE), "{cards}");
    assert!(cards["hint"].is_null());

    // The same entry while the module is not among those loaded: an error naming it.
    let unloaded = Setup::new(
        Some(&hsm),
        &[],
        None,
        &format!("[[cards]]\natr = \"{VICC_ATR_TEXT}\"\nmodule = \"{SOFTHSM_MODULE}\"\n"),
    )
    .with_pcscd(&pcscd);
    let r = unloaded.json();
    let cards = r.expect("cards", "error");
    assert!(s(&cards["finding"]).contains(SOFTHSM_MODULE), "{cards}");
    assert!(s(&cards["hint"]).contains("[pkcs11] modules"), "{cards}");

    // pcscd goes away: the same setup now reports it.
    drop(vicc);
    pcscd.stop();
    let r = setup.json();
    r.expect("pcscd", "error");
}

/// A program on `listener` that answers every connection with a line that is not HTTP.
fn garbage_server(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 1024];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"SSH-2.0-NotCertray\r\n");
        }
    });
}

#[test]
fn bridge_running_absent_or_taken_by_another_program() {
    let hsm = token();
    let daemon = Daemon::start(&hsm, "");
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], Some(daemon.port()), "");
    let r = setup.json();
    let bridge = r.expect("bridge", "ok");
    assert_eq!(bridge["data"]["running"], true);
    assert_eq!(bridge["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(bridge["data"]["tokens"], 1);
    assert!(s(&bridge["finding"]).contains(&daemon.port().to_string()));
    drop(daemon);

    // Nothing listens.
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], None, "");
    let r = setup.json();
    let bridge = r.expect("bridge", "warning");
    assert_eq!(bridge["data"]["running"], false);
    assert!(s(&bridge["hint"]).contains("certray run"), "{bridge}");

    // Another program holds the port.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    garbage_server(listener);
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], Some(port), "");
    let r = setup.json_with(|c| {
        c.env("CERTRAY_LANG", "en_US.UTF-8");
    });
    let bridge = r.expect("bridge", "error");
    let finding = s(&bridge["finding"]);
    assert!(finding.contains("in use by another program"), "{finding}");
    assert!(finding.contains("SSH-2.0-NotCertray"), "{finding}");
    assert_eq!(bridge["data"]["answer"], "SSH-2.0-NotCertray");
    if cfg!(target_os = "linux") {
        // This test process listens: /proc names it.
        assert_eq!(
            bridge["data"]["owner"]["pid"],
            std::process::id(),
            "{bridge}"
        );
    }
    assert_ne!(r.code, 0);
}

#[test]
fn human_output_in_chinese_by_default_and_english_on_request() {
    let hsm = token();
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], None, "");
    let out = run_unchecked(setup.cmd().arg("doctor"));
    let zh = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(zh.contains("环境检测"), "{zh}");
    for title in [
        "读卡器",
        "PKCS#11 模块",
        "证书有效期",
        "系统时间",
        "本地服务",
    ] {
        assert!(zh.contains(title), "{title} missing:\n{zh}");
    }
    assert!(zh.contains("项正常") && zh.contains("项错误"), "{zh}");
    // Markers, and the findings start in one column (titles are padded by display width).
    let rows: Vec<&str> = zh
        .lines()
        .filter(|l| l.starts_with("✓ ") || l.starts_with("! ") || l.starts_with("✗ "))
        .collect();
    assert_eq!(rows.len(), 14, "{zh}");
    use_width_check(&rows);

    let out = run_unchecked(setup.cmd().args(["--lang", "en", "doctor"]));
    let en = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(en.contains("environment check"), "{en}");
    for title in [
        "Readers",
        "PKCS#11 modules",
        "Certificate validity",
        "System clock",
    ] {
        assert!(en.contains(title), "{title} missing:\n{en}");
    }
    assert!(!en.contains("读卡器") && !en.contains("证书有效期"), "{en}");
    assert!(en.contains("expires in") && en.contains("expired"), "{en}");
    assert_eq!(out.status.code(), Some(50));
}

/// The findings start in one display column: after the marker, the title padded by display
/// width, and two spaces (a title never holds two spaces in a row).
fn use_width_check(rows: &[&str]) {
    use unicode_width::UnicodeWidthStr;
    let columns: Vec<usize> = rows
        .iter()
        .map(|r| {
            let end = r.find("  ").expect("two spaces after the title");
            let rest = &r[end..];
            let pad = rest.len() - rest.trim_start_matches(' ').len();
            r[..end].width() + pad
        })
        .collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "findings do not start in one column: {columns:?}\n{}",
        rows.join("\n")
    );
}

#[test]
fn autostart_entries_and_systemd_user_unit() {
    let setup = Setup::new(None, &[], None, "");
    let system_wide = ["/etc/xdg/autostart/certray.desktop"]
        .iter()
        .any(|p| Path::new(p).exists())
        || std::fs::read_dir("/etc/systemd/user").is_ok_and(|d| {
            d.flatten()
                .any(|e| e.path().join("certray.service").exists())
        });
    let xdg = setup.xdg_config();
    if !system_wide {
        let r = setup.json();
        let a = r.expect("autostart", "warning");
        assert!(
            s(&a["hint"]).contains("systemctl --user enable --now certray"),
            "{a}"
        );
    }
    // The tray's toggle writes an XDG autostart entry.
    let entry = xdg.join("autostart/certray.desktop");
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    std::fs::write(
        &entry,
        "[Desktop Entry]\nType=Application\nName=certray\nExec=certray run\n",
    )
    .unwrap();
    let r = setup.json();
    let a = r.expect("autostart", "ok");
    assert_eq!(s(&a["data"]["xdg_autostart"]), entry.to_str().unwrap());
    // Turned off by the user (this also hides a system-wide entry).
    std::fs::write(&entry, "[Desktop Entry]\nType=Application\nHidden=true\n").unwrap();
    if !system_wide {
        let r = setup.json();
        let a = r.expect("autostart", "warning");
        assert_eq!(s(&a["data"]["xdg_disabled_by"]), entry.to_str().unwrap());
    }
    // `systemctl --user enable certray` makes this link.
    let wants = xdg.join("systemd/user/default.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    let unit = xdg.join("systemd/user/certray.service");
    std::fs::write(&unit, "[Service]\nExecStart=certray run --headless\n").unwrap();
    std::os::unix::fs::symlink(&unit, wants.join("certray.service")).unwrap();
    let r = setup.json();
    let a = r.expect("autostart", "ok");
    assert!(
        s(&a["data"]["systemd_user_unit"]).ends_with("default.target.wants/certray.service"),
        "{a}"
    );
}

/// A private session bus (dbus-daemon with its own config), stopped on drop. With
/// `notifications`, the bus can start `org.freedesktop.Notifications` on demand (a service
/// file in its own service directory), as a desktop's bus can.
struct SessionBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl SessionBus {
    fn start(notifications: bool) -> SessionBus {
        let daemon = require("dbus-daemon", "dbus-daemon");
        require("dbus-send", "dbus-bin");
        let dir = tempfile::Builder::new()
            .prefix("certray-dbus-")
            .tempdir()
            .expect("tempdir");
        let services = dir.path().join("services");
        std::fs::create_dir(&services).unwrap();
        if notifications {
            std::fs::write(
                services.join("org.freedesktop.Notifications.service"),
                "[D-BUS Service]\nName=org.freedesktop.Notifications\nExec=/bin/false\n",
            )
            .unwrap();
        }
        let conf = dir.path().join("session.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <servicedir>{}</servicedir>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display(),
                services.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(daemon)
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("dbus-daemon.log")).unwrap())
            .spawn()
            .expect("start dbus-daemon");
        let mut stdout = child.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut text = Vec::new();
        let mut buf = [0u8; 256];
        while !text.contains(&b'\n') {
            assert!(Instant::now() < deadline, "dbus-daemon printed no address");
            let n = stdout.read(&mut buf).expect("read dbus-daemon's address");
            assert!(n > 0, "dbus-daemon exited");
            text.extend_from_slice(&buf[..n]);
        }
        let address = String::from_utf8_lossy(&text).trim().to_string();
        SessionBus {
            child,
            address,
            _dir: dir,
        }
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn display_and_notification_service() {
    let setup = Setup::new(None, &[], None, "");
    let headless = |c: &mut Command| {
        c.env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_RUNTIME_DIR");
    };
    let r = setup.json_with(headless);
    let d = r.expect("display", "warning");
    assert_eq!(d["data"]["notifications"]["state"], "no_bus");
    assert!(d["data"]["display"].as_array().unwrap().is_empty());

    // A display and a bus, but nothing on the bus provides notifications.
    let bus = SessionBus::start(false);
    let r = setup.json_with(|c| {
        headless(c);
        c.env("DISPLAY", ":99")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    });
    let d = r.expect("display", "warning");
    assert_eq!(d["data"]["notifications"]["state"], "missing", "{d}");
    assert!(s(&d["finding"]).contains("org.freedesktop.Notifications"));
    drop(bus);

    // The bus can start a notification service.
    let bus = SessionBus::start(true);
    let r = setup.json_with(|c| {
        headless(c);
        c.env("WAYLAND_DISPLAY", "wayland-0")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    });
    let d = r.expect("display", "ok");
    assert_eq!(d["data"]["notifications"]["state"], "activatable", "{d}");
    assert_eq!(d["data"]["display"][0], "WAYLAND_DISPLAY=wayland-0");
}

#[test]
fn invalid_config_is_reported_and_the_other_checks_still_run() {
    let setup = Setup::new(None, &[], None, "");
    std::fs::write(&setup.config, "[pkcs11]\nmodulez = []\n").unwrap();
    let r = setup.json();
    let c = r.expect("config", "error");
    assert!(s(&c["finding"]).contains("modulez"), "{c}");
    assert!(
        s(&c["hint"]).contains(setup.config.to_str().unwrap()),
        "{c}"
    );
    assert_eq!(r.code, 50);
    assert_eq!(r.json["checks"].as_array().unwrap().len(), 14);
}

#[test]
fn pin_count_low_after_a_wrong_pin() {
    let hsm = token();
    // SoftHSM never locks, but a wrong PIN sets "user PIN count low".
    let out = run_unchecked(&mut pkcs11_tool_cmd(
        &hsm.module(),
        &hsm.env(),
        &[
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            "000000",
            "--list-objects",
        ],
    ));
    assert!(!out.status.success(), "the wrong PIN was accepted");
    let setup = Setup::new(Some(&hsm), &[&hsm.module()], None, "");
    let r = setup.json();
    let pin = r.expect("pin", "warning");
    assert_eq!(pin["data"]["tokens"][0]["count_low"], true, "{pin}");
    assert!(s(&pin["finding"]).contains(LABEL));
}
