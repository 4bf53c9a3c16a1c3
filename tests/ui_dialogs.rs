//! The desktop dialogs, driven by egui_kittest without a screen: widgets are found by their
//! accessible names (as a screen reader would), typed into and clicked, against a real
//! SoftHSM store seen through a real `Live` inventory, with the CJK font installed (the
//! harness panics on any character no font can draw, so every Chinese text is checked too).
//!
//! One SoftHSM store for the whole binary (SoftHSM reads `SOFTHSM2_CONF` once per process),
//! with one token per test that changes PINs, so tests run in parallel without meeting.
//! PIN changes are checked from outside: `pkcs11-tool` logs in with the new PIN.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use certray::bridge::{BridgeOptions, BridgeState};
use certray::config::{BridgeConfig, Config};
use certray::core::{
    Approvals, ConsentAnswer, Headless, Live, LiveOptions, PinAnswer, PinRequest, Signing,
};
use certray::error::Code;
use certray::i18n::Lang;
use certray::model::{CertId, TokenId};
use certray::model::{PinState, Snapshot};
use certray::ui::backend::BackendOptions;
use certray::ui::dialogs::{
    self, Card, Consent, Cx, Dialog, DialogRequest, Doctor, Outcome, PickThen, PinPrompt,
};
use certray::ui::{Backend, Notice, Notifier, Services};
use common::*;
use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use secrecy::ExposeSecret;

/// `6–16 个字符，区分大小写`, as the dialogs word a token's PIN length range.
fn pin_range(p: PinState) -> String {
    format!("{}–{} 个字符，区分大小写", p.min_len, p.max_len)
}

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
/// The Debian package with the CJK font the dialogs load.
const NOTO: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

// ---------------------------------------------------------------------------------------------
// The token store, the inventory and a window
// ---------------------------------------------------------------------------------------------

/// Tokens: `ui-card` holds rsa-utf8 (01) and ec-expiring (02) with their keys; the others
/// hold nothing and are each one test's to change.
const CARD: &str = "ui-card";
const WRONG: &str = "ui-wrong";
const REFUSE: &str = "ui-refuse";
const CHANGE: &str = "ui-change";
const UNLOCK: &str = "ui-unlock";

struct Shared {
    hsm: SoftHsm,
    live: Arc<Live>,
    /// rsa-utf8 and ec-expiring on `ui-card`.
    rsa: CertId,
    ec: CertId,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let hsm = SoftHsm::new();
        // The static is never dropped.
        common::remove_at_exit(hsm.dir());
        hsm.init_token(CARD, SO_PIN, PIN);
        for (id, name) in [("01", "rsa-utf8"), ("02", "ec-expiring")] {
            hsm.import(
                CARD,
                PIN,
                id,
                Some(&fixture(&format!("{name}.der"))),
                Some(&fixture(&format!("{name}.key.der"))),
                name,
            );
        }
        for label in [WRONG, REFUSE, CHANGE, UNLOCK] {
            hsm.init_token(label, SO_PIN, PIN);
        }
        // SAFETY: set once, while every other test thread waits on this OnceLock, before
        // SoftHSM (which reads it at C_Initialize) is loaded.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
        let live = live_on(SOFTHSM_MODULE);
        let snap = live.snapshot();
        let id_of = |name: &str| CertId::new(fixture_cert_id(&snap, name));
        let (rsa, ec) = (id_of("rsa-utf8"), id_of("ec-expiring"));
        Shared {
            hsm,
            live: Arc::new(live),
            rsa,
            ec,
        }
    })
}

fn options(approvals: Option<Arc<Approvals>>) -> BackendOptions {
    BackendOptions {
        approvals,
        lang: Lang::ZhCn,
        warning_days: 30,
        check_page: None,
        config_path: None,
        state_dir: None,
    }
}

/// A backend over the SoftHSM store.
fn backend() -> Arc<dyn Services> {
    Backend::new(shared().live.clone(), options(None))
}

/// A backend over an inventory with no module at all: every key pulled.
fn empty_backend() -> Arc<Backend> {
    let mut config = Config::default();
    config.pkcs11.modules.clear();
    config.pkcs11.use_defaults = false;
    let live = Live::start(
        &config,
        LiveOptions {
            watch: true,
            pcsc: false,
        },
    )
    .expect("Live::start");
    Backend::new(Arc::new(live), options(None))
}

fn token_id(label: &str) -> TokenId {
    shared()
        .live
        .snapshot()
        .tokens
        .iter()
        .find(|t| t.label == label)
        .unwrap_or_else(|| panic!("token {label} not in the inventory"))
        .id
        .clone()
}

/// What the host does for the topmost dialog, frame by frame.
struct Win {
    dialog: Box<dyn Dialog>,
    backend: Arc<dyn Services>,
    notifier: Notifier,
    /// Requests the dialog made for dialogs on top of it.
    opened: Vec<DialogRequest>,
    closed: bool,
}

fn window(dialog: Box<dyn Dialog>, backend: Arc<dyn Services>) -> Harness<'static, Win> {
    window_sized(dialog, backend, None)
}

fn window_sized(
    dialog: Box<dyn Dialog>,
    backend: Arc<dyn Services>,
    size: Option<egui::Vec2>,
) -> Harness<'static, Win> {
    require_file(Path::new(NOTO), "fonts-noto-cjk");
    let size = size.unwrap_or_else(|| dialog.size());
    let win = Win {
        dialog,
        backend,
        notifier: Notifier::recording(),
        opened: Vec::new(),
        closed: false,
    };
    let mut h = Harness::builder()
        .with_size(size)
        .with_context_setup(|ctx| {
            let font = certray::ui::fonts::install(ctx);
            assert!(font.is_some(), "no CJK font found");
        })
        .build_ui_state(
            |ui, w: &mut Win| {
                if w.closed {
                    return;
                }
                let mut open = Vec::new();
                let mut cx = Cx {
                    lang: w.backend.lang(),
                    backend: &w.backend,
                    notifier: &w.notifier,
                    open: &mut open,
                };
                let outcome = egui::CentralPanel::default()
                    .show(ui, |ui| w.dialog.ui(ui, &mut cx))
                    .inner;
                w.opened.extend(open);
                if outcome == Outcome::Close {
                    w.closed = true;
                }
            },
            win,
        );
    h.step();
    h
}

/// Step frames until `done` holds (a worker thread answers in its own time).
fn step_until(
    h: &mut Harness<'static, Win>,
    what: &str,
    done: impl Fn(&Harness<'static, Win>) -> bool,
) {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        h.step();
        if done(h) {
            return;
        }
        assert!(Instant::now() < give_up, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Some text on screen contains `text`.
fn shows(h: &Harness<'static, Win>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

fn assert_shows(h: &Harness<'static, Win>, text: &str) {
    assert!(shows(h, text), "{text:?} is not shown");
}

/// Type into the field named `label`.
fn type_into(h: &mut Harness<'static, Win>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.step();
    h.get_by_label(label).type_text(text);
    h.step();
}

fn click(h: &mut Harness<'static, Win>, button: &str) {
    h.get_by_role_and_label(Role::Button, button).click();
    h.step();
    h.step();
}

/// The PIN dialog for `label`, with its first PIN-state read done.
fn pin_dialog(label: &str, unlock: bool) -> Harness<'static, Win> {
    let b = backend();
    let id = token_id(label);
    let request = if unlock {
        DialogRequest::Unlock { token_id: id }
    } else {
        DialogRequest::ChangePin { token_id: id }
    };
    let d = dialogs::build(request, &b).expect("token is there");
    let mut h = window(d, b);
    // The spinner of the first read goes away when it is done.
    for _ in 0..3 {
        h.step();
    }
    h
}

/// Whether `pkcs11-tool` (another process, reading the store from disk) logs in with `pin`.
fn logs_in(label: &str, pin: &str) -> bool {
    let hsm = &shared().hsm;
    run_unchecked(&mut pkcs11_tool_cmd(
        &hsm.module(),
        &hsm.env(),
        &["--token-label", label, "-l", "--pin", pin, "--list-objects"],
    ))
    .status
    .success()
}

// ---------------------------------------------------------------------------------------------
// 修改密码 and 解锁
// ---------------------------------------------------------------------------------------------

#[test]
fn a_wrong_current_pin_shows_the_error_and_the_new_pin_state() {
    let mut h = pin_dialog(WRONG, false);
    assert!(
        h.get_by_label("当前密码").is_focused(),
        "the first field has the focus on open"
    );
    let before = backend().pin_state(&token_id(WRONG)).unwrap();
    assert!(!before.count_low);
    assert_shows(&h, &format!("PIN：正常 · {}", pin_range(before)));
    // The new PIN's rule is shown before anything is typed.
    assert_shows(&h, &format!("新密码要求：{}", pin_range(before)));

    type_into(&mut h, "当前密码", "000000");
    type_into(&mut h, "新密码", "654321");
    type_into(&mut h, "确认新密码", "654321");
    click(&mut h, "确定");
    step_until(&mut h, "the token's answer", |h| {
        shows(h, Code::PinIncorrect.message(Lang::ZhCn))
    });

    let after = backend().pin_state(&token_id(WRONG)).unwrap();
    assert!(after.count_low, "SoftHSM flags a wrong PIN: {after:?}");
    assert_shows(
        &h,
        &format!("PIN：曾输错，剩余次数不多 · {}", pin_range(after)),
    );
    assert!(!h.state().closed);
    assert!(h.state().notifier.recorded().is_empty());
    // The fields were wiped after the submit, and the cursor is back in the first one.
    assert_eq!(h.get_by_label("当前密码").value().as_deref(), Some(""));
    assert!(h.get_by_label("当前密码").is_focused());
    assert!(logs_in(WRONG, PIN), "the PIN is unchanged");
}

#[test]
fn mismatch_and_length_are_refused_before_anything_is_sent() {
    // A wrong current PIN each time: had anything reached the token, it would flag it.
    let mut h = pin_dialog(REFUSE, false);
    type_into(&mut h, "当前密码", "000000");
    type_into(&mut h, "新密码", "654321");
    type_into(&mut h, "确认新密码", "654329");
    click(&mut h, "确定");
    assert_shows(&h, Code::PinMismatch.message(Lang::ZhCn));
    assert!(
        h.get_by_label("确认新密码").is_focused(),
        "the cursor goes where the problem is"
    );

    let mut h = pin_dialog(REFUSE, false);
    type_into(&mut h, "当前密码", "000000");
    type_into(&mut h, "新密码", "12");
    type_into(&mut h, "确认新密码", "12");
    // Enter in the last field submits.
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    let state = backend().pin_state(&token_id(REFUSE)).unwrap();
    assert_shows(
        &h,
        &format!(
            "{}：{}",
            Code::PinLenRange.message(Lang::ZhCn),
            pin_range(state)
        ),
    );
    assert!(!shows(&h, "正在与密钥通信"), "nothing is under way");
    assert!(!state.count_low, "the token was never asked: {state:?}");
    assert!(!h.state().closed);
}

#[test]
fn the_right_pin_changes_it_notifies_and_closes() {
    let mut h = pin_dialog(CHANGE, false);
    type_into(&mut h, "当前密码", PIN);
    // Enter in a field whose next one is empty moves on.
    h.key_press(egui::Key::Enter);
    h.step();
    assert!(h.get_by_label("新密码").is_focused());
    h.get_by_label("新密码").type_text("Abc-2468");
    h.step();
    type_into(&mut h, "确认新密码", "Abc-2468");
    click(&mut h, "确定");
    step_until(&mut h, "the dialog to close", |h| h.state().closed);
    assert_eq!(
        h.state().notifier.recorded(),
        vec![Notice::PinChanged {
            label: CHANGE.into()
        }]
    );
    assert!(logs_in(CHANGE, "Abc-2468"), "the new PIN works");
    assert!(!logs_in(CHANGE, PIN), "the old one does not");

    // And back, through the dialog again with the new PIN as the current one.
    let mut h = pin_dialog(CHANGE, false);
    type_into(&mut h, "当前密码", "Abc-2468");
    type_into(&mut h, "新密码", PIN);
    type_into(&mut h, "确认新密码", PIN);
    click(&mut h, "确定");
    step_until(&mut h, "the dialog to close", |h| h.state().closed);
    assert!(logs_in(CHANGE, PIN));
}

#[test]
fn unlock_with_the_admin_pin_sets_a_new_pin() {
    let mut h = pin_dialog(UNLOCK, true);
    assert!(h.get_by_label("管理员密码/解锁授权码").is_focused());
    type_into(&mut h, "管理员密码/解锁授权码", SO_PIN);
    type_into(&mut h, "新密码", "unlocked-1");
    type_into(&mut h, "确认新密码", "unlocked-1");
    click(&mut h, "确定");
    step_until(&mut h, "the dialog to close", |h| h.state().closed);
    assert_eq!(
        h.state().notifier.recorded(),
        vec![Notice::PinUnlocked {
            label: UNLOCK.into()
        }]
    );
    assert!(logs_in(UNLOCK, "unlocked-1"), "the new PIN works");
}

#[test]
fn a_wrong_admin_pin_is_reported() {
    // On the card token, which no other test changes PINs on.
    let mut h = pin_dialog(CARD, true);
    type_into(&mut h, "管理员密码/解锁授权码", "99999999");
    type_into(&mut h, "新密码", "unused-1");
    type_into(&mut h, "确认新密码", "unused-1");
    click(&mut h, "确定");
    step_until(&mut h, "the token's answer", |h| {
        shows(h, Code::PinIncorrect.message(Lang::ZhCn))
    });
    assert!(!h.state().closed);
    assert!(logs_in(CARD, PIN), "the user PIN is unchanged");
}

#[test]
fn pin_dialog_says_when_the_key_is_gone() {
    let mut h = pin_dialog(WRONG, false);
    h.state_mut().backend = empty_backend();
    h.step();
    assert_shows(&h, Code::TokenRemoved.message(Lang::ZhCn));
    assert!(
        h.query_by_label("当前密码").is_none(),
        "no fields to type into"
    );
    click(&mut h, "关闭");
    assert!(h.state().closed);
}

// ---------------------------------------------------------------------------------------------
// The certificate card and details
// ---------------------------------------------------------------------------------------------

#[test]
fn the_card_shows_owner_uscc_and_days_left() {
    let s = shared();
    let b = backend();
    let entry = b.certificate(&s.rsa).unwrap();
    let c = entry.parsed.as_ref().unwrap();
    let d = dialogs::build(
        DialogRequest::Card {
            cert_id: s.rsa.clone(),
        },
        &b,
    )
    .unwrap();
    let mut h = window(d, b.clone());
    assert_eq!(h.state().dialog.title(Lang::ZhCn), "证书信息 - 证书助手");
    // A staff certificate: the holder is the person in the CN, the company their
    // organisation (the card used to name the company as the holder).
    assert_eq!(c.owner(), "张三");
    assert_shows(&h, "持有者");
    assert_shows(&h, "张三");
    assert_shows(&h, "单位");
    assert_shows(&h, "北京云杉测试科技有限公司");
    // The fixture CA that issued it is not on this token.
    assert_shows(&h, "颁发者验证");
    assert_shows(&h, "无法验证颁发者：未找到颁发者证书");
    let uscc = c.ids.uscc.as_ref().expect("the fixture has a USCC");
    assert_shows(&h, uscc);
    assert!(!shows(&h, "校验位错误"), "its check digit is right");
    let days = c.days_left(time::OffsetDateTime::now_utc());
    assert_shows(&h, &format!("有效 · 剩余 {days} 天"));
    assert_shows(&h, "数字签名、不可否认 · 客户端认证");
    assert_shows(&h, "SoftHSM");

    // The second certificate on the key, through its tab: 王五 at 深圳未来测试有限公司,
    // self-signed.
    h.get_by_label_contains("王五").click();
    h.step();
    h.step();
    assert_shows(&h, "即将过期 · 剩余");
    assert_shows(&h, "深圳未来测试有限公司");
    assert_shows(&h, "颁发者已验证（自签名）");

    // Buttons that open dialogs on top.
    click(&mut h, "查看证书");
    click(&mut h, "修改密码");
    let opened: Vec<String> = h.state().opened.iter().map(|r| format!("{r:?}")).collect();
    assert_eq!(
        opened,
        vec![
            format!(
                "{:?}",
                DialogRequest::Details {
                    cert_id: s.ec.clone()
                }
            ),
            format!(
                "{:?}",
                DialogRequest::ChangePin {
                    token_id: token_id(CARD)
                }
            ),
        ]
    );
    assert!(!h.state().closed);
    click(&mut h, "关闭");
    assert!(h.state().closed);
}

#[test]
fn export_writes_the_certificate_as_der_and_pem() {
    let s = shared();
    let b = backend();
    let dir = tempfile::tempdir().unwrap();
    let card = Card::new(&*b, &s.rsa).unwrap().with_export_dir(dir.path());
    let mut h = window(Box::new(card), b.clone());
    click(&mut h, "导出证书");
    click(&mut h, "保存为 .cer");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let cer = &files[0];
    let name = cer.file_name().unwrap().to_string_lossy().into_owned();
    // Named after the holder, 张三 (it used to be the company, subject O).
    assert!(
        name.starts_with("张三-") && name.ends_with(".cer"),
        "{name}"
    );
    assert_eq!(
        std::fs::read(cer).unwrap(),
        std::fs::read(fixture("rsa-utf8.der")).unwrap(),
        ".cer holds the DER"
    );
    assert_shows(&h, &cer.display().to_string());
    assert!(h.query_by_label("打开所在文件夹").is_some());

    click(&mut h, "导出证书");
    click(&mut h, "保存为 .pem");
    let pem = cer.with_extension("pem");
    let der = openssl(&[
        "x509".as_ref(),
        "-in".as_ref(),
        pem.as_os_str(),
        "-outform".as_ref(),
        "DER".as_ref(),
    ])
    .stdout;
    assert_eq!(
        der,
        std::fs::read(fixture("rsa-utf8.der")).unwrap(),
        "openssl reads the .pem"
    );
}

#[test]
fn the_card_says_when_the_key_is_pulled() {
    let s = shared();
    let b = backend();
    let mut h = window(Box::new(Card::new(&*b, &s.rsa).unwrap()), b);
    h.state_mut().backend = empty_backend();
    h.step();
    assert_shows(&h, Code::TokenRemoved.message(Lang::ZhCn));
    // The card still names whom the certificate was for: its holder.
    assert_shows(&h, "张三");
    assert!(h.query_by_label("导出证书").is_none());
    // Enter closes it.
    h.key_press(egui::Key::Enter);
    h.step();
    assert!(h.state().closed);
}

#[test]
fn details_show_every_field_and_copy_them() {
    let s = shared();
    let b = backend();
    let entry = b.certificate(&s.rsa).unwrap();
    let c = entry.parsed.as_ref().unwrap();
    let d = dialogs::build(
        DialogRequest::Details {
            cert_id: s.rsa.clone(),
        },
        &b,
    )
    .unwrap();
    // Tall enough that nothing is scrolled out of view.
    let mut h = window_sized(d, b.clone(), Some(egui::vec2(760.0, 2400.0)));
    let colons = |hex: &str| {
        hex.to_ascii_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":")
    };
    let sha256 = colons(&openssl_sha256(&fixture("rsa-utf8.der")));
    let sha1 = {
        let out = openssl(&[
            "x509".as_ref(),
            "-inform".as_ref(),
            "DER".as_ref(),
            "-in".as_ref(),
            fixture("rsa-utf8.der").as_os_str(),
            "-noout".as_ref(),
            "-fingerprint".as_ref(),
            "-sha1".as_ref(),
        ]);
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim().rsplit('=').next().unwrap().to_string()
    };
    assert_shows(&h, &sha256);
    assert_shows(&h, &sha1);
    assert_shows(&h, &c.subject.dn);
    assert_shows(&h, &c.issuer.dn);
    for v in [
        &c.ids.uscc,
        &c.ids.taxpayer_id,
        &c.ids.bjca_unique_id,
        &c.ids.org_code,
    ]
    .into_iter()
    .flatten()
    {
        assert_shows(&h, v);
    }
    assert_shows(&h, "sha256WithRSAEncryption");
    assert_shows(&h, "2048 位");
    assert_shows(&h, "客户端认证");
    // Holder and organisation apart, the issuer check, and the chain: the certificate
    // alone, its issuer (the fixture CA) not on the token.
    assert_shows(&h, "张三");
    assert_shows(&h, "北京云杉测试科技有限公司");
    assert_shows(&h, "无法验证颁发者：未找到颁发者证书");
    assert_shows(&h, "证书链");
    assert_shows(&h, "本证书");
    assert_shows(&h, "上级证书未找到");

    click(&mut h, "复制SHA-256");
    let copied: Vec<String> = h
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    // The click's frames: the copy comes out in one of them.
    assert!(
        copied.contains(&sha256) || shows(&h, "已复制：SHA-256"),
        "copied {copied:?}"
    );
    assert_shows(&h, "已复制：SHA-256");
}

// ---------------------------------------------------------------------------------------------
// The bridge's prompts
// ---------------------------------------------------------------------------------------------

fn consent(button: Option<&str>) -> (Harness<'static, Win>, oneshot::Receiver<ConsentAnswer>) {
    let (tx, rx) = oneshot::channel();
    let b: Arc<dyn Services> = empty_backend();
    let d = dialogs::build(
        DialogRequest::Consent {
            origin: "https://etax.example".into(),
            reply: tx.into(),
        },
        &b,
    )
    .unwrap();
    let mut h = window(d, b);
    assert!(h.state().dialog.urgent());
    assert_shows(&h, "https://etax.example");
    assert_shows(&h, "请求使用您的证书");
    if let Some(b) = button {
        arm(&mut h);
        click(&mut h, b);
    }
    (h, rx)
}

/// Let the consent dialog's first second pass.
fn arm(h: &mut Harness<'static, Win>) {
    std::thread::sleep(dialogs::consent::ARM_DELAY + Duration::from_millis(100));
    h.step();
    h.step();
}

#[test]
fn consent_buttons_give_their_answers() {
    for (button, answer) in [
        ("仅本次允许", ConsentAnswer::AllowOnce),
        ("始终允许", ConsentAnswer::AllowAlways),
        ("拒绝", ConsentAnswer::Deny),
    ] {
        let (h, rx) = consent(Some(button));
        assert!(h.state().closed, "{button} closes the dialog");
        assert_eq!(rx.try_recv().unwrap(), answer, "{button}");
    }
}

/// Issue 14, item 5: a page timed a request so that the dialog opened under the person's
/// Enter, which pressed the default button, 仅本次允许. Now nothing works in the dialog's first
/// second, and the default button (Enter) is 拒绝.
#[test]
fn consent_enter_denies_and_nothing_works_at_first() {
    let (mut h, rx) = consent(None);
    // Just appeared: Enter and clicks do nothing.
    h.key_press(egui::Key::Enter);
    h.step();
    h.get_by_role_and_label(Role::Button, "仅本次允许").click();
    h.step();
    h.get_by_role_and_label(Role::Button, "始终允许").click();
    h.step();
    assert!(!h.state().closed, "answered within the first second");
    assert!(rx.try_recv().is_err());
    arm(&mut h);
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert!(h.state().closed);
    assert_eq!(rx.try_recv().unwrap(), ConsentAnswer::Deny);

    // Esc or the window's ×: the host calls cancel().
    let (mut h, rx) = consent(None);
    h.state_mut().dialog.cancel();
    assert_eq!(rx.try_recv().unwrap(), ConsentAnswer::Deny);
    assert!(!h.state().dialog.alive(), "answered: nobody waits any more");
}

#[test]
fn page_pin_consent_says_the_site_collects_the_pin() {
    let (tx, rx) = oneshot::channel();
    let b: Arc<dyn Services> = empty_backend();
    let d = dialogs::build(
        DialogRequest::PagePinConsent {
            origin: "https://etax.example".into(),
            reply: tx.into(),
        },
        &b,
    )
    .unwrap();
    let mut h = window(d, b);
    assert_shows(&h, "https://etax.example");
    assert_shows(&h, "请求使用您的证书，并将在网页中收集证书密码");
    // Its buttons work only after the dialog has been up for a moment (issue 14).
    std::thread::sleep(dialogs::consent::ARM_DELAY + Duration::from_millis(100));
    click(&mut h, "始终允许");
    assert_eq!(rx.try_recv().unwrap(), ConsentAnswer::AllowAlways);
}

#[test]
fn consent_dies_with_its_request() {
    let (h, rx) = consent(None);
    assert!(h.state().dialog.alive());
    drop(rx);
    assert!(!h.state().dialog.alive(), "the page went away");
}

fn prompt(origin: Option<&str>) -> (Harness<'static, Win>, oneshot::Receiver<PinAnswer>) {
    let s = shared();
    let (tx, rx) = oneshot::channel();
    let request = PinRequest {
        origin: origin.map(str::to_string),
        certificate_id: s.rsa.clone(),
        // What the core names as rsa-utf8's holder.
        owner: "张三".into(),
        operation: "cms-detached, 1024 bytes".into(),
    };
    let d = Box::new(PinPrompt::new(request, tx));
    let h = window(d, backend());
    (h, rx)
}

#[test]
fn the_pin_prompt_answers_with_the_pin_and_remember_flag() {
    let (mut h, rx) = prompt(Some("https://etax.example"));
    assert!(h.state().dialog.urgent());
    assert_shows(&h, "https://etax.example");
    assert_shows(&h, "张三");
    assert_shows(&h, "CMS 签名（不含原文），1 KB 数据");
    assert!(h.get_by_label("密码（PIN）").is_focused());
    h.get_by_label("密码（PIN）").type_text(PIN);
    h.step();
    h.get_by_label("本次运行期间记住（此网站）").click();
    h.step();
    click(&mut h, "确定");
    assert!(h.state().closed);
    match rx.try_recv().unwrap() {
        PinAnswer::Pin { pin, remember } => {
            assert_eq!(pin.expose_secret(), PIN);
            assert!(remember);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_pin_prompt_for_a_local_program_submits_on_enter() {
    let (mut h, rx) = prompt(None);
    assert_shows(&h, "本机程序");
    assert!(h.query_by_label("本次运行期间记住（此程序）").is_some());
    // Empty: refused in the dialog.
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert_shows(&h, "请输入密码");
    assert!(!h.state().closed);
    type_into(&mut h, "密码（PIN）", "abcd12");
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert!(h.state().closed);
    match rx.try_recv().unwrap() {
        PinAnswer::Pin { pin, remember } => {
            assert_eq!(pin.expose_secret(), "abcd12");
            assert!(!remember);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_pin_prompt_cancels_and_dies_with_its_request() {
    let (mut h, rx) = prompt(Some("https://etax.example"));
    click(&mut h, "取消");
    assert!(h.state().closed);
    assert!(matches!(rx.try_recv().unwrap(), PinAnswer::Cancelled));

    let (mut h, rx) = prompt(Some("https://etax.example"));
    h.state_mut().dialog.cancel();
    assert!(matches!(rx.try_recv().unwrap(), PinAnswer::Cancelled));

    let (h, rx) = prompt(None);
    assert!(h.state().dialog.alive());
    drop(rx);
    assert!(!h.state().dialog.alive());
}

// ---------------------------------------------------------------------------------------------
// The others: pick, origins, doctor
// ---------------------------------------------------------------------------------------------

#[test]
fn pick_token_lists_the_keys_and_opens_the_chosen_one() {
    let b = backend();
    let d = dialogs::build(
        DialogRequest::PickToken {
            then: PickThen::Unlock,
        },
        &b,
    )
    .unwrap();
    let mut h = window(d, b);
    for label in [CARD, WRONG, REFUSE, CHANGE, UNLOCK] {
        assert!(
            h.query_by_label(&format!("选择 {label}")).is_some(),
            "{label} is listed"
        );
    }
    // The list scrolls (the store's slot order changes from run to run).
    h.get_by_label(&format!("选择 {CARD}")).scroll_to_me();
    // Until the scroll animation has settled.
    h.run();
    h.get_by_label(&format!("选择 {CARD}")).click();
    h.step();
    h.step();
    assert!(h.state().closed);
    assert_eq!(
        format!("{:?}", h.state().opened),
        format!(
            "{:?}",
            vec![DialogRequest::Unlock {
                token_id: token_id(CARD)
            }]
        )
    );

    // No key at all: a word, and nothing to pick.
    let empty: Arc<dyn Services> = empty_backend();
    let d = dialogs::build(
        DialogRequest::PickToken {
            then: PickThen::ChangePin,
        },
        &empty,
    )
    .unwrap();
    let h = window(d, empty);
    assert_shows(&h, "未检测到密钥");
}

#[test]
fn origins_lists_approvals_and_revokes_them() {
    let s = shared();
    let state = tempfile::tempdir().unwrap();
    let app = {
        let bridge_config = BridgeConfig::default();
        BridgeState::new(
            Signing::open(
                s.live.clone(),
                &bridge_config,
                Arc::new(Headless),
                (Some(state.path().to_path_buf())).as_deref(),
            ),
            BridgeOptions {
                config: bridge_config,
                port: 21088,
                warning_days: 30,
            },
        )
    };
    app.approvals()
        .consents()
        .approve("https://etax.example", true)
        .unwrap();
    app.approvals()
        .consents()
        .approve("https://gsxt.example", false)
        .unwrap();
    let b: Arc<dyn Services> = Backend::new(s.live.clone(), options(Some(app.approvals().clone())));
    let d = dialogs::build(DialogRequest::Origins, &b).unwrap();
    let mut h = window(d, b);
    assert_shows(&h, "https://etax.example");
    assert_shows(&h, "始终允许");
    assert_shows(&h, "https://gsxt.example");
    assert_shows(&h, "仅本次运行");

    h.get_by_label("撤销 https://etax.example").click();
    h.step();
    h.step();
    assert_shows(&h, "已撤销：https://etax.example");
    assert!(
        !app.approvals()
            .consents()
            .is_approved("https://etax.example")
    );
    assert!(
        certray::core::approvals::remembered_origins(state.path()).is_empty(),
        "gone from origins.json too"
    );
    assert!(
        app.approvals()
            .consents()
            .is_approved("https://gsxt.example")
    );

    h.get_by_label("撤销 https://gsxt.example").click();
    h.step();
    h.step();
    assert_shows(&h, "还没有网站获得授权");
}

#[test]
fn doctor_shows_the_report_and_runs_again() {
    let hsm = &shared().hsm;
    let config = hsm.config_file();
    let env: Vec<_> = hsm.env().into_iter().collect();
    let d = Doctor::with_command(Box::new(move || {
        let mut cmd = certray(&env);
        cmd.arg("--config").arg(&config).arg("doctor");
        cmd
    }));
    let mut h = window(Box::new(d), backend());
    step_until(&mut h, "the report", |h| shows(h, "共 14 项"));
    assert_shows(&h, "环境检测（certray doctor）");
    assert_shows(&h, "PKCS#11");
    click(&mut h, "重新检测");
    assert_shows(&h, "正在检测");
    step_until(&mut h, "the second report", |h| shows(h, "共 14 项"));
    click(&mut h, "关闭");
    assert!(h.state().closed);
}

#[test]
fn consent_in_english() {
    let (tx, _rx) = oneshot::channel();
    let b = empty_backend();
    b.set_lang(Lang::En);
    let mut h = window(Box::new(Consent::new("https://etax.example".into(), tx)), b);
    h.step();
    assert_shows(&h, "asks to use your certificates");
    assert!(h.query_by_label("Allow this time").is_some());
}

/// The tray's menu names the approved websites; the window it opens and the consent dialog's
/// hint (which sends people there) must name them with the same words, in either language.
#[test]
fn the_approved_websites_have_one_name_in_the_menu_its_window_and_the_consent_hint() {
    use certray::ui::view::{self, Action, Entry};
    for lang in [Lang::ZhCn, Lang::En] {
        let tray = view::tray(
            &Snapshot::default(),
            &view::Options {
                now: time::OffsetDateTime::now_utc(),
                warning_days: 30,
                lang,
                autostart: false,
                check_page: false,
                xtx: false,
            },
        );
        let item = tray.menu.iter().find_map(|e| match e {
            Entry::Item {
                label,
                action: Action::Origins,
                ..
            } => Some(label.clone()),
            _ => None,
        });
        let item = item.expect("the tray menu has the approved websites");
        let name = item.strip_suffix('…').unwrap_or(&item);

        let b = empty_backend();
        b.set_lang(lang);
        let (tx, _rx) = oneshot::channel();
        let consent: Box<dyn Dialog> = Box::new(Consent::new("https://etax.example".into(), tx));
        let h = window(consent, b.clone());
        assert_shows(&h, &format!("“{name}”"));

        let origins =
            dialogs::build(DialogRequest::Origins, &(b.clone() as Arc<dyn Services>)).unwrap();
        let title = origins.title(lang);
        assert_eq!(title.split(" - ").next(), Some(name), "{lang:?}: {title}");
        let h = window(origins, b);
        assert!(
            h.query_all_by_label(name).next().is_some(),
            "{lang:?}: the window's heading is not {name:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lockout, on opencryptoki's soft token (SoftHSM never locks a PIN)
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial_test::serial(opencryptoki)]
fn final_try_needs_a_confirmation_and_a_locked_pin_leads_to_unlock() {
    const OCK_PIN: &str = "1234";
    let ock = Opencryptoki::setup();
    ock.reset_token("ui-lock", OCK_PIN);
    let live = Arc::new(live_on(ock.module()));
    let b: Arc<dyn Services> = Backend::new(live.clone(), options(None));
    let token = live
        .snapshot()
        .tokens
        .iter()
        .find(|t| t.label == "ui-lock")
        .expect("the opencryptoki token")
        .id
        .clone();
    let change = || {
        let d = dialogs::build(
            DialogRequest::ChangePin {
                token_id: token.clone(),
            },
            &b,
        )
        .unwrap();
        let mut h = window(d, b.clone());
        for _ in 0..3 {
            h.step();
        }
        h
    };
    let wrong = |h: &mut Harness<'static, Win>| {
        type_into(h, "当前密码", "0000");
        type_into(h, "新密码", "5678");
        type_into(h, "确认新密码", "5678");
    };

    // Two wrong PINs: count low, then the final try.
    let mut h = change();
    wrong(&mut h);
    click(&mut h, "确定");
    step_until(&mut h, "the first refusal", |h| {
        shows(h, Code::PinIncorrect.message(Lang::ZhCn))
    });
    wrong(&mut h);
    click(&mut h, "确定");
    step_until(&mut h, "the final-try warning", |h| {
        shows(h, Code::PinFinalTry.message(Lang::ZhCn))
    });
    assert!(b.pin_state(&token).unwrap().final_try);

    // A fresh dialog shows it before anything is typed, and will not send without the
    // explicit confirmation (not even on Enter).
    let mut h = change();
    assert_shows(&h, Code::PinFinalTry.message(Lang::ZhCn));
    let confirm = "我已核对密码无误，使用最后一次机会";
    assert!(h.query_by_label(confirm).is_some());
    wrong(&mut h);
    h.key_press(egui::Key::Enter);
    h.step();
    h.step();
    assert_shows(&h, "请先勾选确认");
    let state = b.pin_state(&token).unwrap();
    assert!(
        state.final_try && !state.locked,
        "nothing was sent: {state:?}"
    );

    // Confirmed, and wrong once more: locked; the dialog offers 解锁 instead of fields.
    h.get_by_label(confirm).click();
    h.step();
    wrong(&mut h);
    click(&mut h, "确定");
    step_until(&mut h, "the lock", |h| {
        h.query_by_role_and_label(Role::Button, "解锁").is_some()
    });
    assert!(b.pin_state(&token).unwrap().locked);
    assert!(h.query_by_label("当前密码").is_none());
    click(&mut h, "解锁");
    assert!(h.state().closed);
    assert_eq!(
        format!("{:?}", h.state().opened),
        format!(
            "{:?}",
            vec![DialogRequest::Unlock {
                token_id: token.clone()
            }]
        )
    );

    // 解锁 with the admin PIN sets a new user PIN that logs in.
    let d = dialogs::build(
        DialogRequest::Unlock {
            token_id: token.clone(),
        },
        &b,
    )
    .unwrap();
    let mut h = window(d, b.clone());
    assert_shows(&h, "用户PIN：已锁定");
    type_into(&mut h, "管理员密码/解锁授权码", OPENCRYPTOKI_SO_PIN);
    type_into(&mut h, "新密码", "5678");
    type_into(&mut h, "确认新密码", "5678");
    click(&mut h, "确定");
    step_until(&mut h, "the dialog to close", |h| h.state().closed);
    assert_eq!(
        h.state().notifier.recorded(),
        vec![Notice::PinUnlocked {
            label: "ui-lock".into()
        }]
    );
    assert!(ock.try_login("5678").status.success(), "the new PIN works");
}

// ---------------------------------------------------------------------------------------------
// An SKF key's PIN state, from softskf (the test-only STAND-IN for GM/T 0016 USB keys)
// ---------------------------------------------------------------------------------------------

const SKF_DIALOG_TEST: &str = "an_skf_keys_pin_dialog_shows_the_tries_left_on_the_key";

/// The PIN dialog of an SKF key shows what `SKF_GetPINInfo` says: the tries left (9, then 8
/// after a wrong PIN, counted by the key) and that the PIN is still the factory one. softskf
/// reads `SOFTSKF_DIR` from the environment of the process that loads it (the `certray
/// skf-host` child of the backend), so the dialog runs in a child of this test started with
/// it; the counters are checked again here from softskf's own state.
#[test]
fn an_skf_keys_pin_dialog_shows_the_tries_left_on_the_key() {
    use common::skf::{self, AppSpec, ContainerSpec, DeviceSpec, SoftSkf};
    if skf::child_role().as_deref() == Some("skf-dialog") {
        skf_pin_dialog_child();
        return;
    }
    let mut app = AppSpec::new(skf::APP).container(ContainerSpec::sm2(skf::SM2_CONTAINER));
    app.user_retries = 9;
    app.user_pin_is_default = true;
    let key = SoftSkf::new(vec![DeviceSpec::new(skf::DEVICE).app(app)]);
    let mut env = key.env();
    env.push((
        "CERTRAY_SKF_HOST",
        std::ffi::OsString::from(env!("CARGO_BIN_EXE_certray")),
    ));
    let report = skf::run_child(SKF_DIALOG_TEST, "skf-dialog", &env);
    assert_eq!(report.get("before"), "9", "{}", report.output);
    assert_eq!(report.get("after"), "8", "{}", report.output);
    // The key itself counted the wrong PIN, and still holds the factory PIN.
    let user = key.pin_counters(skf::DEVICE, skf::APP).unwrap().user;
    assert_eq!((user.max_retries, user.remaining), (9, 8), "{user:?}");
    assert!(user.default_pin && !user.locked, "{user:?}");
}

/// The child: an inventory with softskf as its only library, and the 修改密码 dialog on it.
fn skf_pin_dialog_child() {
    use common::skf;
    let dir = std::path::PathBuf::from(std::env::var_os("SOFTSKF_DIR").expect("SOFTSKF_DIR"));
    let mut config = Config::default();
    config.pkcs11.modules.clear();
    config.pkcs11.use_defaults = false;
    config.skf.use_defaults = false;
    config.skf.libraries = vec![skf::library()];
    let live = Live::start(
        &config,
        LiveOptions {
            watch: true,
            pcsc: false,
        },
    )
    .expect("Live::start");
    let b: Arc<dyn Services> = Backend::new(Arc::new(live), options(None));
    let give_up = Instant::now() + Duration::from_secs(30);
    let token = loop {
        if let Some(t) = b.snapshot().tokens.first() {
            break t.id.clone();
        }
        assert!(
            Instant::now() < give_up,
            "softskf's key is not in the inventory"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let d = dialogs::build(DialogRequest::ChangePin { token_id: token }, &b).expect("the key");
    let mut h = window(d, b);
    let counters = || skf::pin_counters_in(&dir, skf::DEVICE, skf::APP).map(|c| c.user);
    step_until(&mut h, "the key's PIN state", |h| shows(h, "次机会"));
    let before = counters().expect("softskf's state after SKF_GetPINInfo");
    assert_shows(&h, &format!("剩余 {} 次机会", before.remaining));
    assert_shows(&h, "仍是出厂默认密码，请修改");
    skf::emit("before", before.remaining);

    type_into(&mut h, "当前密码", "000000");
    type_into(&mut h, "新密码", "654321");
    type_into(&mut h, "确认新密码", "654321");
    click(&mut h, "确定");
    step_until(&mut h, "the key's answer", |h| {
        shows(h, Code::PinIncorrect.message(Lang::ZhCn))
    });
    let after = counters().expect("softskf's state");
    assert_eq!(after.remaining + 1, before.remaining, "{after:?}");
    step_until(&mut h, "the new PIN state", |h| {
        shows(h, &format!("剩余 {} 次机会", after.remaining))
    });
    assert!(
        !shows(&h, &format!("剩余 {} 次机会", before.remaining)),
        "the old count is still shown"
    );
    assert_shows(&h, "仍是出厂默认密码，请修改");
    assert!(!h.state().closed);
    skf::emit("after", after.remaining);
}
