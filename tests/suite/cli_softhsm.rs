//! The CLI end to end on a real SoftHSM token made for each test: list, show, sign, PIN
//! change and unlock, config errors and module load failures. Fields are checked against
//! `openssl` output for the same certificate; signatures are verified with `openssl dgst`.

use crate::common;

use std::ffi::OsString;
use std::path::Path;

use common::*;
use serde_json::Value;

const LABEL: &str = "certray-test";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

/// A SoftHSM token holding the fixtures:
/// 01 rsa-utf8 cert + key, 02 ec-expiring cert + key (P-384), 03 rsa-bmp cert only,
/// 04 sm2 cert only, 05 ec-expired cert + key, 06 serial-uscc cert only, 07 garbage.
struct Token {
    hsm: SoftHsm,
    config: std::path::PathBuf,
}

impl Token {
    fn new() -> Token {
        let hsm = SoftHsm::new();
        hsm.init_token(LABEL, SO_PIN, PIN);
        let f = |n: &str| fixture(n);
        let with_key = [
            ("01", "rsa-utf8"),
            ("02", "ec-expiring"),
            ("05", "ec-expired"),
        ];
        for (id, name) in with_key {
            let key = f(&format!("{name}.key.der"));
            hsm.import(
                LABEL,
                PIN,
                id,
                Some(&f(&format!("{name}.der"))),
                Some(&key),
                name,
            );
        }
        for (id, name) in [("03", "rsa-bmp"), ("04", "sm2"), ("06", "serial-uscc")] {
            hsm.import(LABEL, PIN, id, Some(&f(&format!("{name}.der"))), None, name);
        }
        let garbage = std::fs::read(f("garbage.der")).unwrap();
        hsm.write_raw_cert(LABEL, PIN, "07", &garbage, "garbage");
        let config = hsm.config_file();
        Token { hsm, config }
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        self.hsm.env().to_vec()
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = certray(&self.env());
        c.arg("--config").arg(&self.config);
        c
    }

    fn list(&self) -> Value {
        let out = run(self.cmd().args(["list", "--json"]));
        serde_json::from_slice(&out.stdout).expect("list --json is JSON")
    }

    /// The listed certificate whose SHA-256 is that of the fixture `name`.
    fn cert(&self, list: &Value, name: &str) -> Value {
        let sha = openssl_sha256(&fixture(&format!("{name}.der")));
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["sha256"] == sha.as_str())
            .unwrap_or_else(|| panic!("{name} ({sha}) not listed"))
            .clone()
    }

    /// The id of the listed certificate of the fixture `name`.
    fn cert_id(&self, list: &Value, name: &str) -> String {
        self.cert(list, name)["id"].as_str().unwrap().to_string()
    }

    /// The id of the (one) token listed.
    fn token_id(list: &Value) -> String {
        list["tokens"][0]["id"].as_str().unwrap().to_string()
    }

    fn sign(&self, cert_id: &str, extra: &[&str], pin: &str, dir: &Path) -> std::process::Output {
        let data = dir.join("data.txt");
        if !data.exists() {
            std::fs::write(&data, "纳税申报表 2026-11 · certray test data\n".repeat(50)).unwrap();
        }
        let mut cmd = self.cmd();
        cmd.args(["sign", "--cert", cert_id, "--in"])
            .arg(&data)
            .arg("--out")
            .arg(dir.join("sig.bin"))
            .arg("--pin-stdin")
            .args(extra);
        certray_with_input(&mut cmd, &format!("{pin}\n"))
    }
}

/// `openssl x509 -noout FIELD` for a fixture, the value after `=`.
fn openssl_field(name: &str, args: &[&str]) -> String {
    let der = fixture(&format!("{name}.der"));
    let mut all: Vec<&std::ffi::OsStr> = ["x509", "-inform", "DER", "-noout", "-in"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    all.push(der.as_os_str());
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let out = openssl(&all);
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .split_once('=')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or(text)
}

/// OpenSSL prints `notAfter=Jan  1 00:00:00 2021 GMT`; certray RFC 3339.
fn openssl_date(name: &str, which: &str) -> String {
    let text = openssl_field(name, &[which]);
    let fmt = time::format_description::parse(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT",
    )
    .unwrap();
    let t = time::PrimitiveDateTime::parse(&text, &fmt).unwrap_or_else(|e| panic!("{text}: {e}"));
    t.assume_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn list_shows_every_certificate_as_openssl_reads_it() {
    let t = Token::new();
    let list = t.list();

    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{list:#}");
    let tok = &tokens[0];
    assert_eq!(tok["label"], LABEL);
    assert_eq!(tok["manufacturer"], "SoftHSM project");
    assert_eq!(tok["model"], "SoftHSM v2");
    assert_eq!(tok["module"], SOFTHSM_MODULE);
    let slots = t.hsm.list_token_slots();
    let serial = tok["serial"].as_str().unwrap();
    assert!(
        slots.contains(serial),
        "serial {serial} not in pkcs11-tool -T:\n{slots}"
    );
    assert!(
        tok["id"].as_str().unwrap().starts_with("t-") && tok["id"].as_str().unwrap().len() == 18
    );
    assert_eq!(tok["pin"]["min_len"], 4);
    assert_eq!(tok["pin"]["max_len"], 255);
    assert_eq!(tok["pin"]["initialized"], true);
    assert_eq!(tok["pin"]["locked"], false);

    let certs = list["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 7, "{list:#}");
    for c in certs {
        assert_eq!(c["token_id"], tok["id"]);
        let sha = c["sha256"].as_str().unwrap();
        assert_eq!(c["id"].as_str().unwrap(), format!("c-{}", &sha[..16]));
    }

    for name in [
        "rsa-utf8",
        "ec-expiring",
        "rsa-bmp",
        "sm2",
        "ec-expired",
        "serial-uscc",
    ] {
        let c = t.cert(&list, name);
        // OpenSSL prints whole bytes; certray drops leading zero bytes ("00" alone is "0").
        let openssl_serial = openssl_field(name, &["-serial"]).to_lowercase();
        let mut serial = openssl_serial.as_str();
        while serial.len() > 2 && serial.starts_with("00") {
            serial = &serial[2..];
        }
        let serial = if serial == "00" { "0" } else { serial };
        assert_eq!(c["serial"], serial, "{name} serial");
        assert_eq!(
            c["not_before"],
            openssl_date(name, "-startdate"),
            "{name} not_before"
        );
        assert_eq!(
            c["not_after"],
            openssl_date(name, "-enddate"),
            "{name} not_after"
        );
        assert_eq!(c["label"], name);
        assert!(c["error"].is_null(), "{name}: {}", c["error"]);
    }

    let rsa = t.cert(&list, "rsa-utf8");
    // A staff certificate (CN 张三 at O 北京云杉…): the holder is the person in the CN, the
    // company is the organisation they sign for (owner used to be subject O).
    assert_eq!(rsa["owner"], "张三");
    assert_eq!(rsa["organization"], "北京云杉测试科技有限公司");
    assert!(rsa["holder_kind"].is_null(), "{rsa:#}");
    assert_eq!(rsa["subject"]["cn"], "张三");
    assert_eq!(rsa["subject"]["o"], "北京云杉测试科技有限公司");
    assert_eq!(
        rsa["subject"]["dn"].as_str().unwrap(),
        openssl_field("rsa-utf8", &["-subject", "-nameopt", "RFC2253,-esc_msb"])
    );
    assert_eq!(rsa["key"]["algorithm"], "rsa");
    assert_eq!(rsa["key"]["bits"], 2048);
    assert_eq!(rsa["status"], "valid");
    assert_eq!(rsa["has_private_key"], true);
    assert_eq!(rsa["ids"]["uscc_valid"], true);
    assert!(
        rsa["key_usage"]
            .as_array()
            .unwrap()
            .contains(&Value::from("digitalSignature"))
    );
    assert!(
        rsa["extended_key_usage"]
            .as_array()
            .unwrap()
            .contains(&Value::from("clientAuth"))
    );

    let bmp = t.cert(&list, "rsa-bmp");
    assert!(
        bmp["owner"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{bmp:#}"
    );
    assert_eq!(bmp["has_private_key"], false);

    let sm2 = t.cert(&list, "sm2");
    assert_eq!(sm2["key"]["algorithm"], "sm2");
    assert_eq!(sm2["signature_algorithm"], "SM2-with-SM3");

    let expiring = t.cert(&list, "ec-expiring");
    assert_eq!(expiring["status"], "expiring");
    assert_eq!(expiring["key"]["curve"], "P-384");
    assert!(
        (28..=30).contains(&expiring["days_left"].as_i64().unwrap()),
        "{expiring:#}"
    );
    assert_eq!(expiring["has_private_key"], true);

    let expired = t.cert(&list, "ec-expired");
    assert_eq!(expired["status"], "expired");
    assert!(expired["days_left"].as_i64().unwrap() < 0);
    // Its USCC has a wrong check character: not a USCC, an unverified identifier.
    assert!(expired["ids"]["uscc"].is_null(), "{expired:#}");
    assert_eq!(expired["ids"]["uscc_valid"], false);
    let unverified = expired["ids"]["unverified"].as_array().unwrap();
    assert!(
        unverified
            .iter()
            .any(|u| u["value"] == "91350100M000100Y44" && u["kind"] == "uscc"),
        "{expired:#}"
    );

    let serial_uscc = t.cert(&list, "serial-uscc");
    assert_eq!(
        serial_uscc["ids"]["uscc"],
        serial_uscc["subject"]["serial_number"]
    );

    let garbage = certs
        .iter()
        .find(|c| c["label"] == "garbage")
        .expect("garbage listed");
    assert_eq!(garbage["status"], "invalid");
    assert!(garbage["error"].as_str().unwrap().len() > 3);
    assert!(garbage["owner"].is_null());
    // Every field is there for an object that does not parse too, null when unknown.
    for key in ["organization", "holder_kind", "issuer_verified", "chain"] {
        assert!(garbage[key].is_null(), "{key}: {garbage:#}");
    }
    assert_eq!(garbage["ids"]["unverified"], serde_json::json!([]));
}

#[test]
fn human_list_is_chinese_and_aligned_and_english_on_request() {
    let t = Token::new();
    let out = run(t.cmd().arg("list"));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "密钥 (1)",
        "证书 (7)",
        // rsa-utf8's holder and, in the organisation column, the company.
        "张三",
        "北京云杉测试科技有限公司",
        "即将过期",
        "已过期",
        "有效",
        "无法解析",
        "统一社会信用代码",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    // Every certificate row starts its second column at the same display width.
    use unicode_width::UnicodeWidthStr;
    let header = text.lines().find(|l| l.starts_with("证书编号")).unwrap();
    let owner_col = header[..header.find("持有者").unwrap()].width();
    for row in text.lines().filter(|l| l.starts_with("c-")) {
        let rest = &row[18..];
        let start = 18 + rest.len() - rest.trim_start().len();
        assert_eq!(row[..start].width(), owner_col, "misaligned row: {row}");
    }
    let out = run(t.cmd().args(["--lang", "en", "list"]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Certificates (7)")
            && text.contains("expiring")
            && text.contains("Holder")
            && text.contains("Organisation"),
        "{text}"
    );
}

#[test]
fn show_prints_json_pem_and_der_of_one_certificate() {
    let t = Token::new();
    let list = t.list();
    let id = t.cert_id(&list, "rsa-utf8");
    let out = run(t.cmd().args(["show", &id, "--json"]));
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(one, t.cert(&list, "rsa-utf8"));
    let dir = tempfile::tempdir().unwrap();
    let der = dir.path().join("c.der");
    run(t.cmd().args(["show", &id[..8], "--der"]).arg(&der));
    assert_eq!(
        std::fs::read(&der).unwrap(),
        std::fs::read(fixture("rsa-utf8.der")).unwrap()
    );
    let out = run(t.cmd().args(["show", &id, "--pem"]));
    let pem = String::from_utf8(out.stdout).unwrap();
    let pem_file = dir.path().join("c.pem");
    std::fs::write(&pem_file, &pem).unwrap();
    let from_pem = openssl(&[
        std::ffi::OsStr::new("x509"),
        std::ffi::OsStr::new("-in"),
        pem_file.as_os_str(),
        std::ffi::OsStr::new("-outform"),
        std::ffi::OsStr::new("DER"),
    ]);
    assert_eq!(
        from_pem.stdout,
        std::fs::read(fixture("rsa-utf8.der")).unwrap()
    );
    let human = String::from_utf8(run(t.cmd().args(["show", &id])).stdout).unwrap();
    assert!(
        human.contains("张三") && human.contains("SoftHSM v2") && human.contains("数字签名"),
        "{human}"
    );
    // The organisation line, and the issuer check: the fixture CA is not on this token.
    assert!(
        human.contains("北京云杉测试科技有限公司")
            && human.contains("颁发者验证")
            && human.contains("无法验证颁发者：未找到颁发者证书"),
        "{human}"
    );

    let out = run_unchecked(t.cmd().args(["show", "c-0000000000000000", "--json"]));
    assert_eq!(out.status.code(), Some(12));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"]["code"], "CERT_NOT_FOUND");
    assert!(!err["error"]["hint"].as_str().unwrap().is_empty());
}

#[test]
fn signatures_verify_with_openssl() {
    let t = Token::new();
    let list = t.list();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.txt");
    let sig = dir.path().join("sig.bin");
    let cases = [
        ("rsa-utf8", "sha256"),
        ("rsa-utf8", "sha1"),
        ("rsa-utf8", "sha384"),
        ("rsa-utf8", "sha512"),
        ("ec-expiring", "sha256"),
        ("ec-expiring", "sha384"),
        ("ec-expired", "sha512"),
    ];
    for (name, hash) in cases {
        let id = t.cert_id(&list, name);
        let out = t.sign(&id, &["--hash", hash], PIN, dir.path());
        assert!(out.status.success(), "{name} {hash}: {}", output_text(&out));
        assert!(
            openssl_verify(&fixture(&format!("{name}.der")), hash, &sig, &data),
            "{name} {hash} does not verify"
        );
    }
    // A precomputed digest signs the same message.
    for name in ["rsa-utf8", "ec-expiring"] {
        let digest = dir.path().join("digest.bin");
        let d = openssl(&[
            std::ffi::OsStr::new("dgst"),
            std::ffi::OsStr::new("-sha256"),
            std::ffi::OsStr::new("-binary"),
            data.as_os_str(),
        ]);
        std::fs::write(&digest, d.stdout).unwrap();
        let id = t.cert_id(&list, name);
        let mut cmd = t.cmd();
        cmd.args(["sign", "--cert", &id, "--digest", "--in"])
            .arg(&digest)
            .arg("--out")
            .arg(&sig)
            .arg("--pin-stdin");
        let out = certray_with_input(&mut cmd, &format!("{PIN}\n"));
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(
            openssl_verify(&fixture(&format!("{name}.der")), "sha256", &sig, &data),
            "{name} digest"
        );
        // A digest of the wrong length is refused before any PIN is used.
        let mut cmd = t.cmd();
        cmd.args([
            "sign", "--cert", &id, "--digest", "--hash", "sha384", "--in",
        ])
        .arg(&digest)
        .arg("--out")
        .arg(&sig)
        .arg("--pin-stdin");
        let out = certray_with_input(&mut cmd, &format!("{PIN}\n"));
        assert!(!out.status.success());
    }
}

#[test]
fn signing_refuses_what_cannot_sign() {
    let t = Token::new();
    let list = t.list();
    let dir = tempfile::tempdir().unwrap();
    let no_key = t.cert_id(&list, "rsa-bmp");
    let out = t.sign(&no_key, &[], PIN, dir.path());
    assert_eq!(out.status.code(), Some(12), "{}", output_text(&out));
    assert!(output_text(&out).contains("NO_PRIVATE_KEY"));
    let sm2 = t.cert_id(&list, "sm2");
    let out = t.sign(&sm2, &[], PIN, dir.path());
    assert_eq!(out.status.code(), Some(12), "{}", output_text(&out)); // no key imported
    let garbage = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "garbage")
        .unwrap();
    let out = t.sign(garbage["id"].as_str().unwrap(), &[], PIN, dir.path());
    assert_eq!(out.status.code(), Some(12), "{}", output_text(&out));
    assert!(output_text(&out).contains("CERT_INVALID"));
    assert!(!dir.path().join("sig.bin").exists());
}

#[test]
fn wrong_pin_reports_incorrect_with_the_token_flags() {
    let t = Token::new();
    let list = t.list();
    let id = t.cert_id(&list, "rsa-utf8");
    let token = Token::token_id(&list);
    let dir = tempfile::tempdir().unwrap();
    let out = t.sign(&id, &[], "000000", dir.path());
    assert_eq!(out.status.code(), Some(20), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("PIN_INCORRECT") && text.contains("密码（PIN）错误"),
        "{text}"
    );
    let status = run(t.cmd().args(["pin", "status", "--token", &token, "--json"]));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pin"]["count_low"], true, "{status:#}");
    assert_eq!(status["pin"]["locked"], false);
    // The right PIN still works: SoftHSM never locks.
    let out = t.sign(&id, &[], PIN, dir.path());
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn pin_change_and_unlock_set_the_pin_the_token_then_accepts() {
    let t = Token::new();
    let list = t.list();
    let id = t.cert_id(&list, "rsa-utf8");
    let token = Token::token_id(&list);
    let dir = tempfile::tempdir().unwrap();
    let change = |input: &str| {
        let mut cmd = t.cmd();
        cmd.args(["pin", "change", "--token", &token, "--pin-stdin"]);
        certray_with_input(&mut cmd, input)
    };
    // Too short for the token (min 4): refused before the token is asked; PIN unchanged.
    let out = change(&format!("{PIN}\n123\n"));
    assert_eq!(out.status.code(), Some(23), "{}", output_text(&out));
    assert!(output_text(&out).contains("PIN_LEN_RANGE"));
    assert!(t.sign(&id, &[], PIN, dir.path()).status.success());
    // Wrong current PIN.
    let out = change("999999\n654321\n");
    assert_eq!(out.status.code(), Some(20), "{}", output_text(&out));
    // Right one.
    let out = change(&format!("{PIN}\n654321\n"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(t.sign(&id, &[], PIN, dir.path()).status.code(), Some(20));
    assert!(t.sign(&id, &[], "654321", dir.path()).status.success());
    // Unlock with the SO PIN sets a new user PIN.
    let mut cmd = t.cmd();
    cmd.args(["pin", "unlock", "--token", &token, "--pin-stdin"]);
    let out = certray_with_input(&mut cmd, &format!("{SO_PIN}\nab12cd34\n"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(t.sign(&id, &[], "ab12cd34", dir.path()).status.success());
    assert!(openssl_verify(
        &fixture("rsa-utf8.der"),
        "sha256",
        &dir.path().join("sig.bin"),
        &dir.path().join("data.txt")
    ));
    // A wrong SO PIN is PIN_INCORRECT and changes nothing.
    let out = certray_with_input(&mut cmd, "00000000\nzzzz9999\n");
    assert_eq!(out.status.code(), Some(20), "{}", output_text(&out));
    assert!(t.sign(&id, &[], "ab12cd34", dir.path()).status.success());
}

#[test]
fn unknown_config_key_is_an_error_naming_it() {
    let t = Token::new();
    let bad = t.hsm.dir().join("bad.toml");
    std::fs::write(&bad, "[pkcs11]\nmodules = []\nuse_defualts = false\n").unwrap();
    let out = run_unchecked(certray(&t.env()).arg("--config").arg(&bad).arg("list"));
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("CONFIG_INVALID") && text.contains("use_defualts"),
        "{text}"
    );
}

#[test]
fn a_module_that_fails_to_load_is_reported_and_the_others_work() {
    let t = Token::new();
    let cfg = t.hsm.dir().join("two.toml");
    std::fs::write(
        &cfg,
        format!("[pkcs11]\nmodules = [\"/nonexistent/libvendor-pkcs11.so\", \"{SOFTHSM_MODULE}\"]\nuse_defaults = false\n"),
    )
    .unwrap();
    // Not a library at all.
    let fake = t.hsm.dir().join("fake.so");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let cfg2 = t.hsm.dir().join("three.toml");
    std::fs::write(
        &cfg2,
        format!(
            "[pkcs11]\nmodules = [\"{}\", \"{SOFTHSM_MODULE}\"]\nuse_defaults = false\n",
            fake.display()
        ),
    )
    .unwrap();
    for (cfg, path) in [
        (&cfg, "/nonexistent/libvendor-pkcs11.so".to_string()),
        (&cfg2, fake.display().to_string()),
    ] {
        let out = run(certray(&t.env())
            .arg("--config")
            .arg(cfg)
            .args(["list", "--json"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&path) && stderr.contains("无法加载"),
            "{stderr}"
        );
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
        assert_eq!(list["certificates"].as_array().unwrap().len(), 7);
    }
}

#[test]
fn demo_creates_its_token_once_and_lists_it() {
    softhsm_module();
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("XDG_DATA_HOME", home.path().as_os_str().to_owned()),
        ("XDG_CONFIG_HOME", home.path().join("cfg").into_os_string()),
    ];
    let first = run(certray(&env).args(["demo", "--no-run"]));
    let text = String::from_utf8(first.stdout).unwrap();
    for needle in [
        "123456",
        "certray-demo",
        // The demo token holds an enterprise 一证通 certificate (CN the company) and a staff
        // certificate (CN 李四 at the company): both holders, and the company as organisation.
        "李四",
        "北京云杉测试科技有限公司",
        "91110108MA01CRTY01",
        "即将过期",
        "证书 (2)",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let second = String::from_utf8(run(certray(&env).args(["demo", "--no-run"])).stdout).unwrap();
    let ids = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("c-") || l.starts_with("t-"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&text), ids(&second), "the demo token was made again");
    assert_eq!(ids(&text).len(), 3);
}

#[test]
fn pins_never_reach_the_logs_even_at_trace_level() {
    let t = Token::new();
    let list = t.list();
    let id = t.cert_id(&list, "rsa-utf8");
    let token = Token::token_id(&list);
    let dir = tempfile::tempdir().unwrap();
    let mut logs = String::new();
    let mut go = |args: &[&str], input: &str| {
        let mut cmd = t.cmd();
        cmd.env("RUST_LOG", "trace").args(args);
        let out = certray_with_input(&mut cmd, input);
        logs.push_str(&output_text(&out));
        out
    };
    let data = dir.path().join("d.txt");
    std::fs::write(&data, "x").unwrap();
    let (d, s) = (data.to_str().unwrap(), dir.path().join("s.bin"));
    let s = s.to_str().unwrap();
    // Distinctive PINs, so that no timestamp or id can contain one by chance.
    assert!(
        go(
            &["pin", "change", "--token", &token, "--pin-stdin"],
            &format!("{PIN}\nN3wPin4242\n")
        )
        .status
        .success()
    );
    assert!(
        go(
            &["sign", "--cert", &id, "--in", d, "--out", s, "--pin-stdin"],
            "N3wPin4242\n"
        )
        .status
        .success()
    );
    assert!(
        !go(
            &["sign", "--cert", &id, "--in", d, "--out", s, "--pin-stdin"],
            "Wr0ngPin77\n"
        )
        .status
        .success()
    );
    assert!(
        !go(
            &["pin", "unlock", "--token", &token, "--pin-stdin"],
            "S0wrongPin\nUnl0ck5151\n"
        )
        .status
        .success()
    );
    assert!(
        go(
            &["pin", "unlock", "--token", &token, "--pin-stdin"],
            &format!("{SO_PIN}\nUnl0ck5151\n")
        )
        .status
        .success()
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging did not run:\n{logs}"
    );
    for secret in ["Wr0ngPin77", "N3wPin4242", "S0wrongPin", "Unl0ck5151"] {
        assert!(
            !logs.contains(secret),
            "{secret} appears in the logs:\n{logs}"
        );
    }
}

#[test]
fn demo_runs_the_daemon_on_its_token_and_a_second_daemon_is_refused() {
    use std::io::BufRead;
    softhsm_module();
    let home = tempfile::tempdir().unwrap();
    let cfg_dir = home.path().join("cfg/certray");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("config.toml"),
        "[pkcs11]\nuse_defaults = false\n[bridge]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let env = [
        ("XDG_DATA_HOME", home.path().join("data").into_os_string()),
        ("XDG_CONFIG_HOME", home.path().join("cfg").into_os_string()),
        ("XDG_STATE_HOME", home.path().join("state").into_os_string()),
    ];
    // A first run: no state directory yet, so no log directory either.
    assert!(!home.path().join("state").exists());
    let stderr = home.path().join("demo.stderr");
    let mut demo = certray(&env)
        .args(["demo", "--no-browser"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = demo.stdout.take().unwrap();
    let demo = Kill(demo);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("demo ended early").unwrap();
        if let Some(rest) = line.strip_prefix("证书检测页：") {
            assert!(line.contains("123456"), "{line}");
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Nothing on stderr about the log directory the run creates (tracing-appender used to
    // complain that it could not read it), and the log file is there.
    let errors = std::fs::read_to_string(&stderr).unwrap();
    assert!(!errors.contains("log directory"), "{errors}");
    let logs = home.path().join("state/certray/logs");
    let log_file = |f: std::io::Result<std::fs::DirEntry>| {
        f.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("certray")
    };
    assert!(
        std::fs::read_dir(&logs).unwrap().any(log_file),
        "no log file in {}",
        logs.display()
    );
    // The daemon serves the demo token's two certificates.
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /v1/certificates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let list: Value = serde_json::from_str(body).unwrap();
    assert_eq!(list["certificates"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(list["certificates"][0]["ids"]["uscc"], "91110108MA01CRTY01");
    // One daemon per user: a second says which one runs.
    let out = run_unchecked(certray(&env).arg("run"));
    assert_eq!(out.status.code(), Some(42), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("ALREADY_RUNNING")
            && text.contains(&url)
            && text.contains(&format!("PID {}", demo.0.id())),
        "{text}"
    );
}

/// `scripts/demo` on a fresh machine: pcscd is among the demo's packages, and
/// `certray_ensure_pcscd` (scripts/lib.sh) starts the PC/SC service when it is not running —
/// pcscd itself without systemd, its socket under systemd — leaves a running one alone, and
/// only warns when it cannot be started. The programs it calls are stubs on PATH that record
/// their arguments (the stub `id` says "not root", so everything goes through `sudo`).
#[test]
fn the_demo_script_installs_and_starts_pcscd() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let up = dir.path().join("pcscd-up");
    let calls = dir.path().join("calls");
    let stub = |name: &str, body: &str| write_script(&bin.join(name), body);
    let (up_s, calls_s) = (up.display(), calls.display());
    stub("id", "echo 1000");
    stub(
        "sudo",
        &format!("echo \"sudo $*\" >> '{calls_s}'; exec \"$@\""),
    );
    stub("pidof", &format!("[ \"$1\" = pcscd ] && [ -e '{up_s}' ]"));
    stub(
        "pcscd",
        &format!("echo \"pcscd $*\" >> '{calls_s}'; touch '{up_s}'"),
    );
    stub(
        "systemctl",
        &format!(
            "echo \"systemctl $*\" >> '{calls_s}'\n\
             case \"$1\" in is-active) [ -e '{up_s}' ];; start) touch '{up_s}';; esac"
        ),
    );
    let ensure = |systemd: bool| {
        let _ = std::fs::remove_file(&calls);
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = run(std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". scripts/lib.sh; certray_has_systemd() {{ {systemd}; }}; certray_ensure_pcscd"
            ))
            .current_dir(root)
            .env("PATH", path));
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        (std::fs::read_to_string(&calls).unwrap_or_default(), said)
    };

    // No systemd, no pcscd: pcscd is started (as root, in the background: no --auto-exit).
    let (called, said) = ensure(false);
    assert_eq!(
        called,
        format!("sudo {}/pcscd\npcscd \n", bin.display()),
        "{said}"
    );
    assert!(said.contains("starting the PC/SC service"), "{said}");
    assert!(up.exists());
    // Running: left alone.
    let (called, said) = ensure(false);
    assert_eq!(called, "", "{said}");
    assert!(said.contains("pcscd) running"), "{said}");

    // Under systemd: its socket, which starts pcscd on demand.
    std::fs::remove_file(&up).unwrap();
    let (called, said) = ensure(true);
    assert!(
        called.contains("sudo systemctl start pcscd.socket") && !called.contains("pcscd \n"),
        "{called}\n{said}"
    );
    assert!(up.exists());

    // A pcscd that does not come up: a warning, and the demo goes on.
    std::fs::remove_file(&up).unwrap();
    stub("pcscd", "exit 1");
    let (_, said) = ensure(false);
    assert!(said.contains("did not start"), "{said}");

    // The demo installs pcscd and asks for it after installing.
    let out = run(std::process::Command::new("bash")
        .arg("-c")
        .arg(". scripts/lib.sh; printf '%s\\n' \"${CERTRAY_DEMO_PACKAGES[@]}\"")
        .current_dir(root));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|p| p == "pcscd"),
        "pcscd is not a demo package"
    );
    let demo = std::fs::read_to_string(root.join("scripts/demo")).unwrap();
    let installs = demo.find("certray_ensure_packages").unwrap();
    let starts = demo
        .find("certray_ensure_pcscd")
        .expect("scripts/demo starts pcscd");
    assert!(installs < starts, "pcscd is started before it is installed");
}

#[test]
fn config_path_show_and_check() {
    let t = Token::new();
    let out = run(t.cmd().args(["config", "path"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        t.config.display().to_string()
    );
    let out = run(t.cmd().args(["config", "show"]));
    let shown: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(shown["pkcs11"]["use_defaults"].as_bool(), Some(false));
    assert_eq!(
        shown["alerts"]["expiry_warning_days"].as_integer(),
        Some(90)
    );
    assert_eq!(shown["bridge"]["listen"].as_str(), Some("127.0.0.1:21088"));
    let out = run(t.cmd().args(["config", "check"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("配置有效"));
    for (text, needle) in [
        ("[pkcs11]\nuse_defualts = false\n", "use_defualts"),
        ("[[cards]]\natr = \"3B 9\"\nmodule = \"/x.so\"\n", "atr"),
        ("[bridge]\nlisten = \"0.0.0.0:21088\"\n", "loopback"),
    ] {
        let bad = t.hsm.dir().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let out = run_unchecked(
            certray(&t.env())
                .arg("--config")
                .arg(&bad)
                .args(["config", "check"]),
        );
        assert_eq!(out.status.code(), Some(3), "{text}: {}", output_text(&out));
        assert!(
            output_text(&out).contains(needle),
            "{text}: {}",
            output_text(&out)
        );
    }
}

#[test]
fn autostart_on_and_off_write_the_users_entry() {
    let home = tempfile::tempdir().unwrap();
    let env = [("XDG_CONFIG_HOME", home.path().as_os_str().to_owned())];
    let entry = home.path().join("autostart/certray.desktop");
    let out = run(certray(&env).args(["autostart", "on"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("已开启"));
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(
        text.contains(" run") && text.contains("Hidden=false"),
        "{text}"
    );
    // Off hides the entry (and a system-wide one of the same name) rather than deleting it.
    let out = run(certray(&env).args(["autostart", "off"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("已关闭"));
    assert!(
        std::fs::read_to_string(&entry)
            .unwrap()
            .contains("Hidden=true")
    );
    let out = run(certray(&env).args(["--lang", "en", "autostart"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Start at login: off"));
    // doctor reads the same entry.
    let doctor_says = || {
        let out = run_unchecked(certray(&env).args(["doctor", "--json"]));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "autostart")
            .cloned();
        check.unwrap()
    };
    assert_eq!(doctor_says()["status"], "warning");
    run(certray(&env).args(["autostart", "on"]));
    assert_eq!(doctor_says()["status"], "ok");
}
