//! What a person sees of real Chinese certificates: a CFCA organisation certificate (the
//! holder 邮储线上收单商户 packed into `051@…@…@1`), an MCSCA personal one (唐好凯 in
//! `<id>@唐好凯@01@012`) and SHECA's personal SM2 certificate, from the corpus in
//! `../shared/fixtures/real-certs` (read in place), on a SoftHSM token, with `[trust]
//! ca_paths` naming the corpus' CFCA test OCA1, SHECA SM2 CA and NRCAC root.
//!
//! - The card and 查看证书 in egui_kittest: what they say (holder, organisation, issuer
//!   check, chain), by accessible names.
//! - The same windows drawn for real by `certray dialog-host` on a private Xvfb, captured
//!   with ImageMagick's `import` into `target/corpus-screens/` to be looked at.
//! - The check page (served by `certray run --headless`) in Debian's Chromium driven by
//!   playwright-core (`tests/browser/check-page-shot.mjs`): what each certificate card says,
//!   and a full-page screenshot (heavy: needs Chromium and node).
//!
//! A missing program fails the test naming its Debian package.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certray::config::{Config, ModuleConfig};
use certray::core::{Live, LiveOptions};
use certray::i18n::Lang;
use certray::model::CertId;
use certray::ui::dialogs::{self, Cx, Dialog, DialogRequest, Outcome};
use certray::ui::{Backend, BackendOptions, Dialogs, Notifier, Services};
use common::bridge::Daemon;
use common::browser::{CHROMIUM, browser_dir, ensure_node_modules, require_browser_tools};
use common::desktop::{XSession, dialog_host, poll, require_all};
use common::*;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const LABEL: &str = "corpus";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

const CFCA: &str = "15-cfca-sm2-org-psbc.der";
const MCSCA: &str = "24-mcsca-sm2-personal-idext.der";
const SHECA: &str = "22-sheca-sm2-personal-bmpstring.der";
/// The issuers `[trust] ca_paths` names: CFCA's test OCA1 (15's issuer), SHECA SM2 (22's)
/// and the NRCAC root above it. No file names 24's issuer (none in the corpus has its key).
const CA_FILES: [&str; 3] = [
    "04-cfca-test-sm2-oca1.der",
    "02-sheca-sm2-subca.der",
    "01-nrcac-sm2-root.der",
];

const PROGRAMS: &[(&str, &str)] = &[
    ("Xvfb", "xvfb"),
    ("dbus-daemon", "dbus-daemon"),
    ("xdotool", "xdotool"),
    ("import", "imagemagick"),
    ("identify", "imagemagick"),
];
const FILES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "fonts-noto-cjk",
    ),
    (
        "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so",
        "libgl1-mesa-dri",
    ),
];

/// `target/corpus-screens/`, where the pictures go (not committed).
fn screens() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_certray"))
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("corpus-screens");
    std::fs::create_dir_all(&dir).expect("make target/corpus-screens");
    dir
}

/// The SoftHSM store (one per process: SoftHSM reads `SOFTHSM2_CONF` once), its token and
/// an inventory over it with the corpus' CA files as `ca_paths`.
struct Store {
    hsm: SoftHsm,
    live: Arc<Live>,
    cfca: CertId,
    mcsca: CertId,
    sheca: CertId,
}

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let hsm = SoftHsm::new();
        hsm.init_token(LABEL, SO_PIN, PIN);
        for (id, name, label) in [
            ("15", CFCA, "cfca"),
            ("24", MCSCA, "mcsca"),
            ("22", SHECA, "sheca"),
        ] {
            hsm.import(LABEL, PIN, id, Some(&corpus(name)), None, label);
        }
        // SAFETY: set once, while every other test thread waits on this OnceLock, before
        // SoftHSM (which reads it at C_Initialize) is loaded.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
        let mut config = Config::default();
        config.pkcs11.modules = vec![ModuleConfig::new(SOFTHSM_MODULE)];
        config.pkcs11.use_defaults = false;
        config.trust.ca_paths = CA_FILES.iter().map(|f| corpus(f)).collect();
        let live = Live::start(
            &config,
            LiveOptions {
                watch: true,
                pcsc: false,
            },
        )
        .expect("Live::start");
        let snap = live.snapshot();
        let id_of = |label: &str| {
            snap.certificates
                .iter()
                .find(|c| c.label == label)
                .unwrap_or_else(|| panic!("{label} not on the token"))
                .id
                .clone()
        };
        Store {
            cfca: id_of("cfca"),
            mcsca: id_of("mcsca"),
            sheca: id_of("sheca"),
            hsm,
            live: Arc::new(live),
        }
    })
}

fn backend() -> Arc<Backend> {
    Backend::new(
        store().live.clone(),
        BackendOptions {
            approvals: None,
            lang: Lang::ZhCn,
            warning_days: 30,
            check_page: None,
            config_path: None,
            state_dir: None,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// What the dialogs say (egui_kittest, no screen)
// ---------------------------------------------------------------------------------------------

struct Win {
    dialog: Box<dyn Dialog>,
    backend: Arc<dyn Services>,
    notifier: Notifier,
}

fn window(request: DialogRequest, tall: bool) -> Harness<'static, Win> {
    require_all(&[], &FILES[..1]);
    let backend: Arc<dyn Services> = backend();
    let dialog = dialogs::build(request, &backend).expect("the certificate is there");
    let size = if tall {
        egui::vec2(760.0, 2400.0)
    } else {
        dialog.size()
    };
    let mut h = Harness::builder()
        .with_size(size)
        .with_context_setup(|ctx| {
            assert!(certray::ui::fonts::install(ctx).is_some(), "no CJK font");
        })
        .build_ui_state(
            |ui, w: &mut Win| {
                let mut open = Vec::new();
                let mut cx = Cx {
                    lang: w.backend.lang(),
                    backend: &w.backend,
                    notifier: &w.notifier,
                    open: &mut open,
                };
                let _: Outcome = egui::CentralPanel::default()
                    .show(ui, |ui| w.dialog.ui(ui, &mut cx))
                    .inner;
            },
            Win {
                dialog,
                backend,
                notifier: Notifier::recording(),
            },
        );
    h.step();
    h
}

fn shows(h: &Harness<'static, Win>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

#[track_caller]
fn assert_shows(h: &Harness<'static, Win>, text: &str) {
    assert!(shows(h, text), "{text:?} is not shown");
}

#[test]
fn the_card_names_the_holders_cfca_and_mcsca_pack_into_their_common_names() {
    let s = store();
    // CFCA: the organisation 邮储线上收单商户, not the CA's OCA in subject O; its issuer
    // (CFCA TEST SM2 OCA1) is a configured CA file.
    let h = window(
        DialogRequest::Card {
            cert_id: s.cfca.clone(),
        },
        false,
    );
    assert_shows(&h, "邮储线上收单商户");
    assert!(
        !shows(&h, "CFCA TEST OCA1"),
        "the CA's own name is not the holder"
    );
    assert!(!shows(&h, "051@"), "the CN's wrapper is taken apart");
    assert_shows(&h, "颁发者验证");
    assert_shows(&h, "颁发者已验证（配置的 CA 证书）");
    // MCSCA: the person 唐好凯; no issuer certificate anywhere.
    let h = window(
        DialogRequest::Card {
            cert_id: s.mcsca.clone(),
        },
        false,
    );
    assert_shows(&h, "唐好凯");
    assert!(
        !shows(&h, "1765246873783844864@"),
        "the CN's wrapper is taken apart"
    );
    assert_shows(&h, "无法验证颁发者：未找到颁发者证书");
    // SHECA: the person, with O = SHECA (the CA itself) not shown as the organisation.
    let h = window(
        DialogRequest::Card {
            cert_id: s.sheca.clone(),
        },
        false,
    );
    assert_shows(&h, "王玉林SM2_test1");
    assert!(
        !shows(&h, "单位"),
        "SHECA is the CA, not the holder's organisation"
    );
    assert_shows(&h, "颁发者已验证（配置的 CA 证书）");
}

#[test]
fn details_show_the_chain() {
    let s = store();
    let h = window(
        DialogRequest::Details {
            cert_id: s.sheca.clone(),
        },
        true,
    );
    assert_shows(&h, "证书链");
    assert_shows(&h, "CN=SHECA SM2,O=UniTrust,C=CN（配置的 CA 证书）");
    assert_shows(&h, "CN=ROOTCA,O=NRCAC,C=CN（配置的 CA 证书）");
    assert_shows(&h, "根证书");
    assert_shows(&h, "到根证书，全部验证通过");
    let h = window(
        DialogRequest::Details {
            cert_id: s.cfca.clone(),
        },
        true,
    );
    assert_shows(&h, "CA 用户编号");
    assert_shows(&h, "N51011300018878");
    assert_shows(&h, "持有者类型");
    assert_shows(
        &h,
        "CN=CFCA TEST SM2 OCA1,O=China Financial Certification Authority,C=CN（配置的 CA 证书）",
    );
    assert_shows(&h, "上级证书未找到");
}

// ---------------------------------------------------------------------------------------------
// The same windows, drawn for real (Xvfb)
// ---------------------------------------------------------------------------------------------

/// The dialog process (`certray dialog-host`) on `session`.
fn dialogs_on(session: &XSession) -> Dialogs {
    let home = session.dir.path().to_path_buf();
    Dialogs::spawn_with(backend(), Notifier::off(), dialog_host(session.env(), home))
        .expect("start the dialogs thread")
}

/// A picture of window `w` that no longer changes (drawn, and done drawing), at `path`.
fn settled_capture(session: &XSession, w: u64, path: &Path) {
    let probe = session.path("probe.png");
    let mut last: Option<Vec<u8>> = None;
    let done = poll(Duration::from_millis(300), || {
        let out = run_unchecked(
            session
                .x("import")
                .args(["-window", &w.to_string()])
                .arg(&probe),
        );
        if !out.status.success() {
            return None;
        }
        let colours = run_unchecked(session.x("identify").args(["-format", "%k"]).arg(&probe));
        let painted = String::from_utf8_lossy(&colours.stdout)
            .trim()
            .parse::<u32>()
            .is_ok_and(|n| n > 16);
        let bytes = std::fs::read(&probe).ok()?;
        let same = last.as_ref() == Some(&bytes);
        last = Some(bytes);
        (painted && same).then_some(())
    });
    assert!(done.is_some(), "window {w} was never drawn to the end");
    std::fs::copy(&probe, path).expect("keep the picture");
}

fn wait_window(session: &XSession, title: &str) -> u64 {
    poll(Duration::from_millis(100), || session.window_titled(title))
        .unwrap_or_else(|| panic!("no window titled {title:?}"))
}

fn wait_gone(session: &XSession, w: u64) {
    poll(Duration::from_millis(100), || {
        (!session.search(&["--name", "."]).contains(&w)).then_some(())
    })
    .unwrap_or_else(|| panic!("window {w} did not close"));
}

#[test]
fn screenshots_of_the_card_and_details() {
    let s = store();
    require_all(PROGRAMS, FILES);
    let session = XSession::start((1024, 900));
    let dialogs = dialogs_on(&session);
    let out = screens();
    for (id, name) in [(&s.cfca, "card-cfca.png"), (&s.mcsca, "card-mcsca.png")] {
        assert!(dialogs.open(DialogRequest::Card {
            cert_id: id.clone()
        }));
        let w = wait_window(&session, "证书信息 - 证书助手");
        settled_capture(&session, w, &out.join(name));
        // Enter closes the card; the next one gets a window of its own.
        session.focus(w, None).unwrap_or_else(|e| panic!("{e}"));
        session
            .xdo(&["key", "Return"])
            .unwrap_or_else(|e| panic!("{e}"));
        wait_gone(&session, w);
    }
    assert!(dialogs.open(DialogRequest::Details {
        cert_id: s.sheca.clone()
    }));
    let w = wait_window(&session, "查看证书 - 证书助手");
    settled_capture(&session, w, &out.join("details-sheca.png"));
    // Scrolled down to the chain.
    session.focus(w, None).unwrap_or_else(|e| panic!("{e}"));
    let geometry = session.geometry(w).expect("the window's place");
    let (x, y) = (geometry.0 + geometry.2 / 2, geometry.1 + geometry.3 / 2);
    session
        .xdo(&["mousemove", &x.to_string(), &y.to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..6 {
        session
            .xdo(&["click", "5"])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    settled_capture(&session, w, &out.join("details-sheca-chain.png"));
    for name in [
        "card-cfca.png",
        "card-mcsca.png",
        "details-sheca.png",
        "details-sheca-chain.png",
    ] {
        eprintln!("screenshot: {}", out.join(name).display());
    }
}

// ---------------------------------------------------------------------------------------------
// The check page (Chromium)
// ---------------------------------------------------------------------------------------------

/// `[trust] ca_paths = [...]` with the corpus' CA files.
fn trust_config() -> String {
    let paths: Vec<String> = CA_FILES
        .iter()
        .map(|f| format!("\"{}\"", corpus(f).display()))
        .collect();
    format!("[trust]\nca_paths = [{}]\n", paths.join(", "))
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn the_check_page_shows_holders_organisations_and_issuer_checks() {
    let s = store();
    let (node, npm) = require_browser_tools();
    ensure_node_modules(&npm);
    let daemon = Daemon::start(&s.hsm, &trust_config());
    let shot = screens().join("check-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = run(Command::new(node)
        .arg("check-page-shot.mjs")
        .current_dir(browser_dir())
        .env("CERTRAY_BRIDGE_URL", daemon.url("/"))
        .env("CERTRAY_SCREENSHOT", &shot)
        .env("CERTRAY_CHROMIUM", CHROMIUM));
    let cards: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-page-shot.mjs printed no JSON ({e}): {}",
            output_text(&out)
        )
    });
    let card = |id: &CertId| -> (String, String) {
        let c = cards
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no card for {id}: {cards:#}"));
        (
            c["issuerStatus"].as_str().unwrap_or_default().to_string(),
            c["text"].as_str().unwrap_or_default().to_string(),
        )
    };
    // CFCA: the merchant, its issuer verified with the configured CA file, the CA user
    // number; the CA's OCA in subject O is not the organisation.
    let (status, text) = card(&s.cfca);
    assert_eq!(status, "verified", "{text}");
    assert!(text.contains("邮储线上收单商户"), "{text}");
    assert!(
        text.contains("颁发者已验证") && text.contains("配置的 CA 证书"),
        "{text}"
    );
    assert!(text.contains("N51011300018878"), "{text}");
    assert!(text.contains("单位\n—"), "no organisation: {text}");
    // MCSCA: the person, no issuer to verify with.
    let (status, text) = card(&s.mcsca);
    assert_eq!(status, "issuer_not_found", "{text}");
    assert!(
        text.contains("唐好凯") && text.contains("无法验证颁发者"),
        "{text}"
    );
    // SHECA: the chain up to the NRCAC root.
    let (status, text) = card(&s.sheca);
    assert_eq!(status, "verified", "{text}");
    assert!(
        text.contains("CN=ROOTCA,O=NRCAC,C=CN") && text.contains("到根证书，全部验证通过"),
        "{text}"
    );
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}
