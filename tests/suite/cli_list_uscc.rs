//! `certray list --uscc CODE` ("which of my keys holds this company's certificate") on a
//! SoftHSM token holding real corpus certificates (read in place from
//! `../shared/fixtures/real-certs`): one with a unified social credit code, one without.

use crate::common;

use common::*;
use serde_json::Value;

const BJCA_ORG: &str = "18-bjca-sm2-org-uscc-name.der";
const BJCA_USCC: &str = "91110108722619411A";
const MCSCA_PERSONAL: &str = "24-mcsca-sm2-personal-idext.der";

struct Fixture {
    hsm: SoftHsm,
    config: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let hsm = SoftHsm::new();
        hsm.init_token("uscc", "12345678", "123456");
        hsm.import(
            "uscc",
            "123456",
            "01",
            Some(&corpus(BJCA_ORG)),
            None,
            "bjca",
        );
        hsm.import(
            "uscc",
            "123456",
            "02",
            Some(&corpus(MCSCA_PERSONAL)),
            None,
            "mcsca",
        );
        let config = hsm.config_file();
        Fixture { hsm, config }
    }

    fn list(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = certray(&self.hsm.env());
        cmd.arg("--config").arg(&self.config).arg("list").args(args);
        run_unchecked(&mut cmd)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend(args);
        let out = self.list(&all);
        assert!(out.status.success(), "{}", output_text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn labels(list: &Value) -> Vec<String> {
    let mut l: Vec<String> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap().to_string())
        .collect();
    l.sort();
    l
}

#[test]
fn list_uscc_keeps_that_companys_certificates_and_refuses_a_bad_code() {
    let f = Fixture::new();
    assert_eq!(labels(&f.json(&[])), ["bjca", "mcsca"]);

    let only = f.json(&["--uscc", BJCA_USCC]);
    assert_eq!(labels(&only), ["bjca"]);
    assert_eq!(only["certificates"][0]["ids"]["uscc"], BJCA_USCC);
    assert_eq!(only["tokens"].as_array().unwrap().len(), 1);
    // As typed by a person: lower case, spaces.
    let typed = f.json(&["--uscc", "9111 0108 7226 1941 1a"]);
    assert_eq!(labels(&typed), ["bjca"]);

    // Another valid code nobody here holds: nothing, and no key.
    let none = f.json(&["--uscc", "91440300MA5GY4X4XH"]);
    assert_eq!(labels(&none), Vec::<String>::new());
    assert_eq!(none["tokens"].as_array().unwrap().len(), 0);

    // The human table.
    let out = f.list(&["--uscc", BJCA_USCC]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(BJCA_USCC) && text.contains("北京数字认证股份有限公司"),
        "{text}"
    );
    assert!(!text.contains("唐好凯"), "{text}");

    // A wrong check character: refused, saying why, before any token is read.
    let bad = "91110108722619411B";
    let out = f.list(&["--uscc", bad]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("USCC_INVALID") && text.contains("统一社会信用代码格式有误"),
        "{text}"
    );
    assert!(text.contains(bad) && text.contains("GB 32100"), "{text}");
    let out = f.list(&["--json", "--uscc", bad]);
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"]["code"], "USCC_INVALID", "{err:#}");
}
