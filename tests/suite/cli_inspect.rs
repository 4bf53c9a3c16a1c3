//! `certray inspect FILE…` on real certificates of the corpus (read in place from
//! `../shared/fixtures/real-certs`): the holder as the CA names it, bundles (PKCS#7 .p7b, PEM
//! with two certificates), files that are not certificates, the JSON shape of `show`, and the
//! issuer checked against `[trust] ca_paths` and the other files given.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const CFCA_ORG: &str = "15-cfca-sm2-org-psbc.der";
const MCSCA_PERSONAL: &str = "24-mcsca-sm2-personal-idext.der";
const SHECA_PERSONAL: &str = "22-sheca-sm2-personal-bmpstring.der";
const SHECA_SUBCA: &str = "02-sheca-sm2-subca.der";
const NRCAC_ROOT: &str = "01-nrcac-sm2-root.der";

/// A scratch directory with a config file: no PKCS#11 module, `ca_paths` = `ca_paths`.
struct Scratch {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Scratch {
    fn new(ca_paths: &[PathBuf]) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("certray.toml");
        let quoted: Vec<String> = ca_paths
            .iter()
            .map(|p| format!("\"{}\"", p.to_str().unwrap()))
            .collect();
        std::fs::write(
            &config,
            format!(
                "[pkcs11]\nmodules = []\nuse_defaults = false\n\n[trust]\nca_paths = [{}]\n",
                quoted.join(", ")
            ),
        )
        .unwrap();
        Scratch { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn inspect<S: AsRef<OsStr>>(&self, args: &[S]) -> std::process::Output {
        let mut cmd = certray(&[]);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("inspect")
            .args(args);
        run_unchecked(&mut cmd)
    }

    fn inspect_json(&self, files: &[&Path]) -> Vec<Value> {
        let mut args: Vec<&OsStr> = files.iter().map(|p| p.as_os_str()).collect();
        args.push("--json".as_ref());
        let out = self.inspect(&args);
        assert!(out.status.success(), "{}", output_text(&out));
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("inspect --json is JSON")
            .as_array()
            .expect("an array")
            .clone()
    }

    /// `openssl x509 -inform DER -in der -out pem`.
    fn pem_of(&self, der: &Path) -> PathBuf {
        let pem = self.path(&format!(
            "{}.pem",
            der.file_stem().unwrap().to_str().unwrap()
        ));
        openssl(&[
            OsStr::new("x509"),
            OsStr::new("-inform"),
            OsStr::new("DER"),
            OsStr::new("-in"),
            der.as_os_str(),
            OsStr::new("-out"),
            pem.as_os_str(),
        ]);
        pem
    }
}

fn sha256s(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|c| c["sha256"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cfca_and_mcsca_files_show_their_holder() {
    let s = Scratch::new(&[]);
    let cfca = corpus(CFCA_ORG);
    let mcsca = corpus(MCSCA_PERSONAL);
    let list = s.inspect_json(&[&cfca, &mcsca]);
    assert_eq!(list.len(), 2);
    assert_eq!(
        sha256s(&list),
        [openssl_sha256(&cfca), openssl_sha256(&mcsca)]
    );
    // CFCA packs the holder into the CN (051@name@id@seq), O is the CA's own name.
    assert_eq!(list[0]["owner"], "邮储线上收单商户", "{:#}", list[0]);
    assert_eq!(list[0]["key"]["algorithm"], "sm2");
    assert_eq!(list[0]["label"], cfca.to_str().unwrap());
    assert_eq!(list[0]["has_private_key"], false);
    // MCSCA: userid@name@01@seq.
    assert_eq!(list[1]["owner"], "唐好凯", "{:#}", list[1]);
    assert!(list[1]["organization"].is_null(), "{:#}", list[1]);

    // The human view, zh-CN by default and en on request.
    let out = s.inspect(&[&cfca, &mcsca]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("邮储线上收单商户") && text.contains("唐好凯"),
        "{text}"
    );
    assert!(text.contains("持有者"), "{text}");
    assert!(
        text.contains(&format!("文件: {}", cfca.display())),
        "{text}"
    );
    let out = s.inspect(&[OsStr::new("--lang"), OsStr::new("en"), mcsca.as_os_str()]);
    assert!(
        output_text(&out).contains("Holder"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn bundles_give_every_certificate_in_file_order() {
    let s = Scratch::new(&[]);
    let ders = [
        corpus(SHECA_PERSONAL),
        corpus(SHECA_SUBCA),
        corpus(NRCAC_ROOT),
    ];
    let pems: Vec<PathBuf> = ders.iter().map(|d| s.pem_of(d)).collect();
    // A PKCS#7 certs-only bundle (.p7b, DER) of three.
    let p7b = s.path("chain.p7b");
    let mut args: Vec<&OsStr> = vec![
        "crl2pkcs7".as_ref(),
        "-nocrl".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        p7b.as_os_str(),
    ];
    for p in &pems {
        args.extend(["-certfile".as_ref(), p.as_os_str()]);
    }
    openssl(&args);
    let list = s.inspect_json(&[&p7b]);
    let mut expected: Vec<String> = ders.iter().map(|d| openssl_sha256(d)).collect();
    let mut got = sha256s(&list);
    // OpenSSL may order a bundle's certificates as it likes: compare as sets, in full.
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert!(list[0]["label"].as_str().unwrap().ends_with("chain.p7b #1"));
    // The bundle holds the whole chain: the personal certificate is verified by its CA in it.
    let personal = list
        .iter()
        .find(|c| c["sha256"] == openssl_sha256(&ders[0]).as_str())
        .unwrap();
    assert_eq!(
        personal["issuer_verified"]["status"], "verified",
        "{personal:#}"
    );
    assert_eq!(personal["issuer_verified"]["issuer_source"], "files");
    assert_eq!(personal["chain"]["end"], "root", "{personal:#}");

    // A PEM file with two certificates, in its order.
    let two = s.path("two.pem");
    let text = [
        std::fs::read_to_string(&pems[0]).unwrap(),
        std::fs::read_to_string(&pems[1]).unwrap(),
    ]
    .concat();
    std::fs::write(&two, text).unwrap();
    let list = s.inspect_json(&[&two]);
    assert_eq!(
        sha256s(&list),
        [openssl_sha256(&ders[0]), openssl_sha256(&ders[1])]
    );
    let out = s.inspect(&[&two]);
    let human = output_text(&out);
    assert!(
        human.contains("two.pem #1") && human.contains("two.pem #2"),
        "{human}"
    );
}

#[test]
fn a_file_that_is_not_a_certificate_is_refused_with_the_reason() {
    let s = Scratch::new(&[]);
    let text = s.path("notes.txt");
    std::fs::write(&text, "这不是证书 / not a certificate\n").unwrap();
    let out = s.inspect(&[&text]);
    let msg = output_text(&out);
    assert_eq!(out.status.code(), Some(12), "{msg}");
    assert!(msg.contains("NOT_A_CERTIFICATE"), "{msg}");
    assert!(msg.contains("该文件不是证书"), "{msg}");
    assert!(msg.contains("notes.txt"), "{msg}");
    assert!(msg.contains("without a PEM certificate"), "{msg}");

    let junk = s.path("junk.cer");
    std::fs::write(&junk, [0x30u8, 0x03, 0x02, 0x01, 0x05]).unwrap();
    let out = s.inspect(&[OsStr::new("--json"), junk.as_os_str()]);
    assert_eq!(out.status.code(), Some(12), "{}", output_text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).expect("the error as JSON");
    assert_eq!(err["error"]["code"], "NOT_A_CERTIFICATE", "{err:#}");
    assert!(
        err["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("junk.cer"),
        "{err:#}"
    );

    // With a good file beside it: the good one is shown, the command still fails.
    let good = corpus(MCSCA_PERSONAL);
    let out = s.inspect(&[good.as_os_str(), text.as_os_str()]);
    assert_eq!(out.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&out.stdout).contains("唐好凯"));

    // A file that is not there: an I/O error naming it.
    let out = s.inspect(&[s.path("missing.cer")]);
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert!(output_text(&out).contains("missing.cer"));
}

#[test]
fn issuer_verified_with_ca_paths_and_not_without() {
    let personal = corpus(SHECA_PERSONAL);
    let without = Scratch::new(&[]);
    let c = &without.inspect_json(&[&personal])[0];
    assert_eq!(c["issuer_verified"]["status"], "issuer_not_found", "{c:#}");
    let human = output_text(&without.inspect(&[&personal]));
    assert!(human.contains("无法验证颁发者"), "{human}");

    let with = Scratch::new(&[corpus(SHECA_SUBCA), corpus(NRCAC_ROOT)]);
    let c = &with.inspect_json(&[&personal])[0];
    assert_eq!(c["issuer_verified"]["status"], "verified", "{c:#}");
    assert_eq!(c["issuer_verified"]["issuer_source"], "ca_paths");
    assert_eq!(c["chain"]["end"], "root");
    let human = output_text(&with.inspect(&[&personal]));
    assert!(human.contains("颁发者已验证"), "{human}");

    // A tampered copy does not verify, and says so.
    let mut der = std::fs::read(&personal).unwrap();
    let n = der.len();
    der[n - 10] ^= 0x01; // inside the signature value
    let tampered = with.path("tampered.der");
    std::fs::write(&tampered, der).unwrap();
    let c = &with.inspect_json(&[&tampered])[0];
    assert_eq!(c["issuer_verified"]["status"], "signature_invalid", "{c:#}");
}

#[test]
fn json_is_the_shape_show_prints() {
    // The same certificate on a SoftHSM token, through `show --json`.
    let hsm = SoftHsm::new();
    hsm.init_token("inspect", "12345678", "123456");
    let cfca = corpus(CFCA_ORG);
    hsm.import("inspect", "123456", "01", Some(&cfca), None, "cfca");
    let config = hsm.config_file();
    let mut cmd = certray(&hsm.env());
    cmd.arg("--config").arg(&config);
    let list: Value = serde_json::from_slice(&run(cmd.args(["list", "--json"])).stdout).unwrap();
    let id = list["certificates"][0]["id"].as_str().unwrap().to_string();
    let mut cmd = certray(&hsm.env());
    cmd.arg("--config").arg(&config);
    let show: Value =
        serde_json::from_slice(&run(cmd.args(["show", &id, "--json"])).stdout).unwrap();

    let mut cmd = certray(&hsm.env());
    cmd.arg("--config")
        .arg(&config)
        .arg("inspect")
        .arg(&cfca)
        .arg("--json");
    let inspected: Value = serde_json::from_slice(&run(&mut cmd).stdout).unwrap();
    let inspected = &inspected[0];
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(inspected), keys(&show));
    // And the same values, but for where the certificate is.
    for k in keys(&show) {
        if [
            "token_id",
            "label",
            "has_private_key",
            "issuer_verified",
            "chain",
        ]
        .contains(&k.as_str())
        {
            continue;
        }
        assert_eq!(inspected[&k], show[&k], "{k}");
    }
}
