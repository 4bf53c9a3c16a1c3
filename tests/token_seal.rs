//! The seal image (签章图片) on real SoftHSM tokens: written as data objects with
//! `pkcs11-tool`, found by the scan (a named seal before other pictures, public objects only,
//! nothing but images, nothing too large), reported by `certray list --json` and `show`, and
//! put on the demo token.
//!
//! OpenSC 0.23's `pkcs11-tool --write-object` silently keeps only the first 5000 bytes of the
//! file (its MAX_OBJECT_SIZE), so larger objects are created with cryptoki's C_CreateObject.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use certray::model::{HashAlg, SignInput};
use certray::model::{Token, TokenScan};
use certray::token::demo::SEAL_PNG;
use certray::token::pkcs11::{Auth, ModuleHandle, SignRequest};
use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;
use serde_json::Value;

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

/// A data object to write.
struct Data<'a> {
    label: &'a str,
    application: Option<&'a str>,
    private: bool,
    value: &'a [u8],
}

impl<'a> Data<'a> {
    fn public(label: &'a str, value: &'a [u8]) -> Data<'a> {
        Data {
            label,
            application: None,
            private: false,
            value,
        }
    }
}

/// `pkcs11-tool --write-object FILE --type data` (at most 5000 bytes: see the module docs).
fn write_data(hsm: &SoftHsm, token: &str, data: &Data<'_>) {
    assert!(data.value.len() <= 5000, "pkcs11-tool would truncate it");
    let file = hsm.dir().join(format!("{token}-{}.bin", data.label));
    std::fs::write(&file, data.value).unwrap();
    let mut args: Vec<OsString> = ["--token-label", token, "-l", "--pin", PIN, "--write-object"]
        .map(OsString::from)
        .to_vec();
    args.push(file.clone().into_os_string());
    args.extend(["--type", "data", "--label", data.label].map(OsString::from));
    if let Some(app) = data.application {
        args.extend(["--application-label", app].map(OsString::from));
    }
    if data.private {
        args.push("--private".into());
    }
    pkcs11_tool_run(&hsm.module(), &hsm.env(), &args);
    std::fs::remove_file(&file).unwrap();
}

/// C_CreateObject through cryptoki, for objects `pkcs11-tool` would truncate. Run before
/// anything else in the process loads SoftHSM: the context is finalized afterwards.
fn create_data(hsm: &SoftHsm, token: &str, data: &Data<'_>) {
    let ctx = Pkcs11::new(hsm.module()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token)
        .unwrap_or_else(|| panic!("no token {token}"));
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&SecretString::from(PIN)))
        .unwrap();
    let mut template = vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(data.private),
        Attribute::Label(data.label.as_bytes().to_vec()),
        Attribute::Value(data.value.to_vec()),
    ];
    if let Some(app) = data.application {
        template.push(Attribute::Application(app.as_bytes().to_vec()));
    }
    session.create_object(&template).unwrap();
    session.logout().unwrap();
    drop(session);
    ctx.finalize().unwrap();
}

fn delete_data(hsm: &SoftHsm, token: &str, label: &str) {
    pkcs11_tool_run(
        &hsm.module(),
        &hsm.env(),
        &[
            "--token-label",
            token,
            "-l",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "data",
            "--label",
            label,
        ],
    );
}

/// A `size`×`size` RGBA PNG, encoded for real: a red ring round a red dot when `seal`, a
/// grey square otherwise.
fn png_image(size: u32, seal: bool) -> Vec<u8> {
    let c = size as f32 / 2.0;
    let mut pixels = Vec::new();
    for y in 0..size {
        for x in 0..size {
            let d = ((x as f32 + 0.5 - c).powi(2) + (y as f32 + 0.5 - c).powi(2)).sqrt();
            let red = d < c * 0.25 || (c * 0.8..c).contains(&d);
            pixels.extend(match (seal, red) {
                (true, true) => [0xd7, 0x14, 0x1a, 0xff],
                (true, false) => [0, 0, 0, 0],
                (false, _) => [0x80, 0x80, 0x80, 0xff],
            });
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, size, size);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&pixels).unwrap();
    w.finish().unwrap();
    out
}

/// The smallest GIF: one transparent pixel.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn token<'a>(scan: &'a [TokenScan], label: &str) -> &'a Token {
    &scan
        .iter()
        .find(|t| t.token.label == label)
        .unwrap_or_else(|| panic!("token {label} not scanned"))
        .token
}

fn seal_of(scan: &[TokenScan], label: &str) -> Option<Arc<Vec<u8>>> {
    token(scan, label).seal.as_ref().map(|s| s.bytes.clone())
}

/// Which of the test's images `bytes` are, for short assertion messages.
fn which(bytes: Option<&[u8]>, known: &[(&'static str, &[u8])]) -> String {
    match bytes {
        None => "none".into(),
        Some(b) => known
            .iter()
            .find(|(_, k)| *k == b)
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| {
                format!(
                    "{} other bytes starting {:02x?}",
                    b.len(),
                    &b[..b.len().min(16)]
                )
            }),
    }
}

#[test]
fn the_scan_finds_the_seal_among_public_data_objects() {
    let hsm = SoftHsm::new();
    // SAFETY: the only test in this binary that loads SoftHSM in-process (create_data and the
    // worker), before it does; the others only start processes, which std serialises with
    // `set_var`.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
    let seal = png_image(48, true);
    let logo = png_image(3, false);
    let too_big = [b"\x89PNG\r\n\x1a\n".as_slice(), &vec![0; 2 << 20]].concat();
    let notes = "开票说明：非图片数据".as_bytes();

    // The seal, after a picture and a text that come first in the token's order.
    hsm.init_token("sealed", SO_PIN, PIN);
    write_data(&hsm, "sealed", &Data::public("logo", &logo));
    write_data(&hsm, "sealed", &Data::public("notes", notes));
    write_data(
        &hsm,
        "sealed",
        &Data {
            application: Some("certray-seal"),
            ..Data::public("seal", &seal)
        },
    );
    // No object names a seal: the one picture is taken.
    hsm.init_token("unnamed", SO_PIN, PIN);
    write_data(&hsm, "unnamed", &Data::public("config", notes));
    write_data(&hsm, "unnamed", &Data::public("picture", GIF));
    // A named seal too large to read is passed over for one named in Chinese.
    hsm.init_token("large", SO_PIN, PIN);
    create_data(&hsm, "large", &Data::public("seal", &too_big));
    create_data(&hsm, "large", &Data::public("电子印章", SEAL_PNG));
    // Nothing that is an image: a text starting "BM" is no bitmap; an oversized "PNG".
    hsm.init_token("plain", SO_PIN, PIN);
    write_data(
        &hsm,
        "plain",
        &Data::public("seal", b"BMW 320i, not a bitmap"),
    );
    create_data(&hsm, "plain", &Data::public("stamp", &too_big));
    // A private seal, on a token with a key to keep a login with.
    hsm.init_token("private", SO_PIN, PIN);
    write_data(
        &hsm,
        "private",
        &Data {
            private: true,
            ..Data::public("seal", &seal)
        },
    );
    hsm.import(
        "private",
        PIN,
        "01",
        Some(&fixture("rsa-utf8.der")),
        Some(&fixture("rsa-utf8.key.der")),
        "rsa",
    );

    let module = ModuleHandle::spawn(&hsm.module()).expect("load SoftHSM");
    let known = [
        ("seal", seal.as_slice()),
        ("demo seal", SEAL_PNG),
        ("logo", logo.as_slice()),
        ("gif", GIF),
        ("too big", too_big.as_slice()),
    ];
    let seen = |scan: &[TokenScan], label: &str| {
        which(seal_of(scan, label).as_deref().map(Vec::as_slice), &known)
    };
    let scan = module.scan().unwrap();
    assert_eq!(seen(&scan, "sealed"), "seal");
    assert_eq!(seen(&scan, "unnamed"), "gif");
    assert_eq!(seen(&scan, "large"), "demo seal");
    assert_eq!(seen(&scan, "plain"), "none");
    assert_eq!(seen(&scan, "private"), "none");

    // A kept login sees the private seal, and still the scan does not report it.
    let private = token(&scan, "private").clone();
    module
        .sign(SignRequest {
            token_id: private.id.clone(),
            key_id: vec![1],
            hash: HashAlg::Sha256,
            input: SignInput::Data(b"data".to_vec()),
            auth: Auth::Pin {
                pin: SecretString::from(PIN),
                force: false,
                remember: true,
            },
        })
        .expect("sign and keep the login");
    let again = module.scan().unwrap();
    assert_eq!(seen(&again, "private"), "none");
    // Unchanged data objects: the seal found before is reused, not read again.
    assert!(Arc::ptr_eq(
        &seal_of(&scan, "sealed").unwrap(),
        &seal_of(&again, "sealed").unwrap()
    ));

    // The seal removed: the token's other picture is what remains.
    delete_data(&hsm, "sealed", "seal");
    module.reinitialize().unwrap();
    let after = module.scan().unwrap();
    assert_eq!(seen(&after, "sealed"), "logo");
    delete_data(&hsm, "sealed", "logo");
    module.reinitialize().unwrap();
    assert_eq!(seen(&module.scan().unwrap(), "sealed"), "none");
}

#[test]
fn list_and_show_say_which_token_has_a_seal() {
    let hsm = SoftHsm::new();
    for label in ["sealed", "plain"] {
        hsm.init_token(label, SO_PIN, PIN);
        hsm.import(
            label,
            PIN,
            "01",
            Some(&fixture(if label == "sealed" {
                "rsa-utf8.der"
            } else {
                "rsa-bmp.der"
            })),
            None,
            label,
        );
    }
    let seal = png_image(64, true);
    write_data(&hsm, "sealed", &Data::public("印章", &seal));
    let config = hsm.config_file();
    let env = hsm.env();
    let cmd = || {
        let mut c = certray(&env);
        c.arg("--config").arg(&config);
        c
    };
    let list: Value = serde_json::from_slice(&run(cmd().args(["list", "--json"])).stdout).unwrap();
    let tokens = list["tokens"].as_array().unwrap();
    let has_seal = |label: &str| {
        tokens
            .iter()
            .find(|t| t["label"] == label)
            .unwrap_or_else(|| panic!("{label} not listed: {list}"))["has_seal"]
            .clone()
    };
    assert_eq!(has_seal("sealed"), true);
    assert_eq!(has_seal("plain"), false);

    let sha = openssl_sha256(&fixture("rsa-utf8.der"));
    let cert = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sha256"] == sha.as_str())
        .unwrap();
    let human = run(cmd().args(["show", cert["id"].as_str().unwrap()])).stdout;
    let human = String::from_utf8(human).unwrap();
    let row = human
        .lines()
        .find(|l| l.contains("签章图片"))
        .unwrap_or_else(|| panic!("no seal row:\n{human}"));
    assert!(row.trim_end().ends_with('有'), "{row}");
}

/// `certray demo --no-run` with its data under `home`: the token's SoftHSM config.
fn demo(home: &Path) -> std::path::PathBuf {
    let env = vec![
        ("XDG_DATA_HOME", home.as_os_str().to_owned()),
        ("XDG_CONFIG_HOME", home.join("cfg").into_os_string()),
    ];
    let out = run(certray(&env).args(["demo", "--no-run"]));
    let text = String::from_utf8(out.stdout).unwrap();
    let conf = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("SOFTHSM2_CONF="))
        .unwrap_or_else(|| panic!("no SOFTHSM2_CONF line:\n{text}"));
    conf.into()
}

#[test]
fn the_demo_token_carries_its_seal_and_gets_it_back() {
    softhsm_module();
    let home = tempfile::tempdir().unwrap();
    let conf = demo(home.path());
    let softhsm = [("SOFTHSM2_CONF", conf.clone().into_os_string())];
    let read_seal = || {
        let file = home.path().join("seal-read.png");
        let _ = std::fs::remove_file(&file);
        let out = run_unchecked(&mut pkcs11_tool_cmd(
            &softhsm_module(),
            &softhsm,
            &[
                OsString::from("--token-label"),
                "certray-demo".into(),
                "--read-object".into(),
                "--type".into(),
                "data".into(),
                "--label".into(),
                "seal".into(),
                "--output-file".into(),
                file.clone().into_os_string(),
            ],
        ));
        out.status.success().then(|| std::fs::read(&file).unwrap())
    };
    // Public: read without a login.
    assert_eq!(read_seal().as_deref(), Some(SEAL_PNG));

    let config = home.path().join("softhsm.toml");
    std::fs::write(
        &config,
        format!("[pkcs11]\nmodules = [\"{SOFTHSM_MODULE}\"]\nuse_defaults = false\n"),
    )
    .unwrap();
    let mut list = certray(&softhsm);
    list.arg("--config").arg(&config).args(["list", "--json"]);
    let list: Value = serde_json::from_slice(&run(&mut list).stdout).unwrap();
    assert_eq!(list["tokens"][0]["label"], "certray-demo");
    assert_eq!(list["tokens"][0]["has_seal"], true);

    // A demo token made before the seal existed gets it on the next `certray demo`.
    pkcs11_tool_run(
        &softhsm_module(),
        &softhsm,
        &[
            "--token-label",
            "certray-demo",
            "-l",
            "--pin",
            "123456",
            "--delete-object",
            "--type",
            "data",
            "--label",
            "seal",
        ],
    );
    assert_eq!(read_seal(), None);
    assert_eq!(demo(home.path()), conf);
    assert_eq!(read_seal().as_deref(), Some(SEAL_PNG));
}
