//! Self-test of the test harness in `tests/common/mod.rs`: SoftHSM2 tokens, imports, the
//! garbage-certificate writer, and opencryptoki's PIN lockout (needs root).

use crate::common;

use std::path::Path;

use common::*;

const SO_PIN: &str = "12345678";
const PIN: &str = "123456";

/// A self-signed RSA certificate and its PKCS#8 DER key, made with openssl in `dir`.
fn rsa_cert_and_key(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join(format!("{name}.key.der"));
    let cert = dir.join(format!("{name}.der"));
    let key_pem = dir.join(format!("{name}.key.pem"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key_pem.to_str().unwrap(),
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        key_pem.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key_pem.to_str().unwrap(),
        "-subj",
        "/CN=harness selftest",
        "-days",
        "30",
        "-outform",
        "DER",
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

#[test]
#[should_panic(expected = "certray-no-such-tool not found: apt-get install no-such-package")]
fn require_names_the_package() {
    require("certray-no-such-tool", "no-such-package");
}

#[test]
fn require_finds_sh() {
    assert!(require("sh", "dash").is_absolute());
    assert_eq!(require("/bin/sh", "dash"), Path::new("/bin/sh"));
}

#[test]
fn softhsm_init_keygen_list() {
    let hsm = SoftHsm::new();
    hsm.init_token("selftest", SO_PIN, PIN);
    hsm.keygen("selftest", PIN, "rsa:2048", "01", "rsa key");
    hsm.keygen("selftest", PIN, "EC:prime256v1", "02", "ec key");
    let objects = hsm.list_objects("selftest", Some(PIN));
    assert!(objects.contains("Private Key Object; RSA"), "{objects}");
    assert!(
        objects.contains("Public Key Object; RSA 2048 bits"),
        "{objects}"
    );
    assert!(objects.contains("Private Key Object; EC"), "{objects}");
    assert!(objects.contains("label:      rsa key"), "{objects}");
    assert!(objects.contains("ID:         02"), "{objects}");
    let slots = hsm.list_token_slots();
    assert!(slots.contains("token label        : selftest"), "{slots}");
    // SoftHSM does not lock: a wrong PIN sets only "user PIN count low".
    let bad = run_unchecked(&mut pkcs11_tool_cmd(
        &hsm.module(),
        &hsm.env(),
        &[
            "--token-label",
            "selftest",
            "-l",
            "--pin",
            "0000",
            "--list-objects",
        ],
    ));
    assert!(!bad.status.success());
    assert!(
        output_text(&bad).contains("CKR_PIN_INCORRECT"),
        "{}",
        output_text(&bad)
    );

    let config = std::fs::read_to_string(hsm.config_file()).unwrap();
    assert_eq!(
        config,
        "[pkcs11]\nmodules = [\"/usr/lib/softhsm/libsofthsm2.so\"]\nuse_defaults = false\n"
    );
}

#[test]
fn softhsm_import_and_raw_cert() {
    let hsm = SoftHsm::new();
    hsm.init_token("imports", SO_PIN, PIN);
    let (cert, key) = rsa_cert_and_key(hsm.dir(), "rsa");
    hsm.import("imports", PIN, "0a", Some(&cert), Some(&key), "imported");
    let objects = hsm.list_objects("imports", Some(PIN));
    assert!(
        objects.contains("Certificate Object; type = X.509 cert"),
        "{objects}"
    );
    assert!(
        objects.contains("subject:    DN: CN=harness selftest"),
        "{objects}"
    );
    assert!(objects.contains("Private Key Object; RSA"), "{objects}");
    assert!(
        objects.contains("Public Key Object; RSA 2048 bits"),
        "{objects}"
    );
    assert_eq!(objects.matches("ID:         0a").count(), 3, "{objects}");

    // pkcs11-tool refuses a non-certificate as --type cert ...
    let garbage = b"this is not a certificate \x00\x01\x02\xff";
    let garbage_file = hsm.dir().join("garbage.der");
    std::fs::write(&garbage_file, garbage).unwrap();
    let refused = run_unchecked(&mut pkcs11_tool_cmd(
        &hsm.module(),
        &hsm.env(),
        &[
            "--token-label",
            "imports",
            "-l",
            "--pin",
            PIN,
            "--write-object",
            garbage_file.to_str().unwrap(),
            "--type",
            "cert",
            "--id",
            "0b",
        ],
    ));
    assert!(!refused.status.success());
    assert!(
        output_text(&refused).contains("OpenSSL error during X509 certificate parsing"),
        "{}",
        output_text(&refused)
    );
    // ... so write_raw_cert goes through python3/ctypes.
    hsm.write_raw_cert("imports", PIN, "0b", garbage, "garbage");
    let back = pkcs11_tool_run(
        &hsm.module(),
        &hsm.env(),
        &[
            "--token-label",
            "imports",
            "--read-object",
            "--type",
            "cert",
            "--id",
            "0b",
        ],
    );
    assert_eq!(back.stdout, garbage);
    let objects = hsm.list_objects("imports", None);
    assert!(objects.contains("label:      garbage"), "{objects}");
}

const OCK_PIN: &str = "1234";

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial_test::serial(opencryptoki)]
fn opencryptoki_locks_after_three_wrong_pins() {
    let ock = Opencryptoki::setup();
    ock.reset_token("lockout", OCK_PIN);
    let flags = ock.token_flags();
    assert!(flags.contains("PIN initialized"), "{flags}");
    assert!(!flags.contains("user PIN locked"), "{flags}");
    assert!(ock.try_login(OCK_PIN).status.success());

    let expected = [
        "user PIN count low",
        "final user PIN try",
        "user PIN locked",
    ];
    for (i, flag) in expected.iter().enumerate() {
        let out = ock.try_login("0000");
        assert!(!out.status.success());
        assert!(
            output_text(&out).contains("CKR_PIN_INCORRECT (0xa0)"),
            "try {}: {}",
            i + 1,
            output_text(&out)
        );
        let flags = ock.token_flags();
        assert!(
            flags.contains(flag),
            "after {} wrong PIN(s) expected {flag:?}: {flags}",
            i + 1
        );
    }
    // Locked: even the right PIN is refused.
    let out = ock.try_login(OCK_PIN);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("CKR_PIN_LOCKED (0xa4)"),
        "{}",
        output_text(&out)
    );

    // The SO unlocks it with C_InitPIN.
    ock.init_pin("4321");
    assert!(!ock.token_flags().contains("user PIN locked"));
    assert!(ock.try_login("4321").status.success());

    // And reset_token starts from scratch.
    ock.reset_token("lockout", OCK_PIN);
    assert!(ock.try_login(OCK_PIN).status.success());
    assert!(
        ock.list_token_slots()
            .contains("token label        : lockout")
    );
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial_test::serial(opencryptoki)]
fn opencryptoki_pin_length_is_4_to_8() {
    let ock = Opencryptoki::setup();
    ock.reset_token("pinlen", OCK_PIN);
    assert!(ock.list_token_slots().contains("pin min/max        : 4/8"));
    let slot = OPENCRYPTOKI_SLOT.to_string();
    for bad in ["123", "123456789"] {
        let out = run_unchecked(&mut pkcs11_tool_cmd(
            ock.module(),
            &[],
            &[
                "--slot",
                &slot,
                "--init-pin",
                "--so-pin",
                OPENCRYPTOKI_SO_PIN,
                "--pin",
                bad,
            ],
        ));
        assert!(!out.status.success(), "PIN {bad:?} accepted");
        assert!(
            output_text(&out).contains("CKR_PIN_LEN_RANGE"),
            "{}",
            output_text(&out)
        );
    }
    ock.reset_token("pinlen", "12345678");
    assert!(ock.try_login("12345678").status.success());
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial_test::serial(opencryptoki)]
fn opencryptoki_reset_recovers_from_locked_so_pin() {
    let ock = Opencryptoki::setup();
    ock.reset_token("solock", OCK_PIN);
    let slot = OPENCRYPTOKI_SLOT.to_string();
    for _ in 0..3 {
        let out = run_unchecked(&mut pkcs11_tool_cmd(
            ock.module(),
            &[],
            &[
                "--slot",
                &slot,
                "--init-pin",
                "--so-pin",
                "00000000",
                "--pin",
                "4321",
            ],
        ));
        assert!(!out.status.success());
    }
    let flags = ock.token_flags();
    assert!(flags.contains("SO PIN locked"), "{flags}");
    ock.reset_token("solock", OCK_PIN);
    let flags = ock.token_flags();
    assert!(!flags.contains("SO PIN locked"), "{flags}");
    assert!(ock.try_login(OCK_PIN).status.success());
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial_test::serial(opencryptoki)]
fn opencryptoki_from_a_fresh_install() {
    Opencryptoki::simulate_fresh_install();
    let ock = Opencryptoki::setup();
    let slots = ock.list_slots();
    assert!(slots.contains("token state:   uninitialized"), "{slots}");
    ock.reset_token("fresh", OCK_PIN);
    ock.keygen(OCK_PIN, "rsa:2048", "01", "generated");

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = rsa_cert_and_key(dir.path(), "ock");
    ock.import(OCK_PIN, "02", Some(&cert), Some(&key), "imported");
    ock.write_raw_cert(OCK_PIN, "03", b"\x30\x03garbage", "garbage");

    // A new process (pkcs11-tool) sees everything: objects are on disk, in TOK_OBJ.
    let out = pkcs11_tool_run(
        ock.module(),
        &[],
        &[
            "--slot",
            &OPENCRYPTOKI_SLOT.to_string(),
            "-l",
            "--pin",
            OCK_PIN,
            "--list-objects",
        ],
    );
    let objects = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        objects.matches("Private Key Object; RSA").count(),
        2,
        "{objects}"
    );
    assert!(objects.contains("label:      generated"), "{objects}");
    assert!(
        objects.contains("subject:    DN: CN=harness selftest"),
        "{objects}"
    );
    assert!(objects.contains("label:      garbage"), "{objects}");

    let config = std::fs::read_to_string(ock.config_file(dir.path())).unwrap();
    assert!(
        config.contains(&format!("modules = [\"{}\"]", ock.module().display())),
        "{config}"
    );
    assert!(config.contains("use_defaults = false"), "{config}");
}
