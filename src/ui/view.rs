//! What the tray shows, computed from an inventory snapshot (pure): the icon's state, the
//! tooltip and the menu. The controller makes a [`TrayView`] whenever the inventory, the
//! language, the autostart setting or the date changes; the tray thread only renders it,
//! so everything worth testing about the tray is tested here, without a screen.

use time::OffsetDateTime;

use crate::cert::{Certificate, Status};
use crate::i18n::Lang;
use crate::model::CertId;
use crate::model::{CertEntry, Snapshot};
use crate::model::{PinState, Token};
use crate::text;

use super::icons::IconState;

/// Everything besides the snapshot that the view depends on.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub now: OffsetDateTime,
    /// Days before expiry from which a certificate is `expiring`.
    pub warning_days: u32,
    pub lang: Lang,
    /// Whether certray starts at login (the 开机自动启动 check mark).
    pub autostart: bool,
    /// Whether the bridge serves a check page to open.
    pub check_page: bool,
    /// Whether the config turns on the BJCA-compatible endpoint (`[xtx] enabled`).
    pub xtx: bool,
}

/// The tray at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub state: IconState,
    /// One line. Also the menu's first (greyed) line: Linux trays show no tooltips.
    pub tooltip: String,
    pub menu: Vec<Entry>,
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Greyed text that does nothing.
    Note(String),
    Item {
        label: String,
        action: Action,
        enabled: bool,
    },
    /// A line with a check mark.
    Check {
        label: String,
        action: Action,
        checked: bool,
    },
    Submenu {
        label: String,
        entries: Vec<Entry>,
    },
    Separator,
}

/// What a menu line does when clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open the certificate card.
    Card {
        cert_id: CertId,
    },
    /// 修改密码…: pick the token, then change its PIN.
    ChangePin,
    /// 解锁…: pick the token, then unlock it.
    Unlock,
    /// 环境检测.
    Doctor,
    /// Open the bridge's check page in the browser.
    CheckPage,
    /// 已授权网站….
    Origins,
    /// Speak this language from now on.
    Lang(Lang),
    /// Flip 开机自动启动.
    Autostart,
    /// Flip `[xtx] enabled` (the BJCA-compatible endpoint; from the next start).
    Xtx,
    Quit,
}

impl Action {
    /// The menu item id: the tray hands it back on a click, [`Action::from_id`] reads it.
    pub fn id(&self) -> String {
        match self {
            Action::Card { cert_id } => format!("card:{cert_id}"),
            Action::ChangePin => "change-pin".into(),
            Action::Unlock => "unlock".into(),
            Action::Doctor => "doctor".into(),
            Action::CheckPage => "check-page".into(),
            Action::Origins => "origins".into(),
            Action::Lang(Lang::ZhCn) => "lang:zh-CN".into(),
            Action::Lang(Lang::En) => "lang:en".into(),
            Action::Autostart => "autostart".into(),
            Action::Xtx => "xtx".into(),
            Action::Quit => "quit".into(),
        }
    }

    pub fn from_id(id: &str) -> Option<Action> {
        if let Some(cert_id) = id.strip_prefix("card:") {
            return Some(Action::Card {
                cert_id: CertId::new(cert_id),
            });
        }
        Some(match id {
            "change-pin" => Action::ChangePin,
            "unlock" => Action::Unlock,
            "doctor" => Action::Doctor,
            "check-page" => Action::CheckPage,
            "origins" => Action::Origins,
            "lang:zh-CN" => Action::Lang(Lang::ZhCn),
            "lang:en" => Action::Lang(Lang::En),
            "autostart" => Action::Autostart,
            "xtx" => Action::Xtx,
            "quit" => Action::Quit,
            _ => return None,
        })
    }
}

/// The tray for `snapshot` as seen with `o`.
pub fn tray(snapshot: &Snapshot, o: &Options) -> TrayView {
    let tooltip = summary(snapshot, o);
    let lang = o.lang;
    let mut menu = vec![Entry::Note(tooltip.clone()), Entry::Separator];
    for token in &snapshot.tokens {
        menu.push(token_menu(token, &snapshot.certificates_of(&token.id), o));
    }
    if !snapshot.tokens.is_empty() {
        menu.push(Entry::Separator);
    }
    let any = !snapshot.tokens.is_empty();
    let item = |zh: &str, en: &str, action: Action, enabled: bool| Entry::Item {
        label: lang.pick(zh, en).to_string(),
        action,
        enabled,
    };
    menu.extend([
        item("修改密码…", "Change PIN…", Action::ChangePin, any),
        item("解锁…", "Unlock…", Action::Unlock, any),
        Entry::Separator,
        item("环境检测", "Check the environment", Action::Doctor, true),
        item(
            "打开证书检测页",
            "Open the check page",
            Action::CheckPage,
            o.check_page,
        ),
        Entry::Item {
            label: format!("{}…", text::APPROVED_WEBSITES.pick(lang)),
            action: Action::Origins,
            enabled: true,
        },
        Entry::Check {
            label: lang
                .pick(
                    "BJCA 兼容接口（证书应用环境，重启后生效）",
                    "BJCA-compatible endpoint (from the next start)",
                )
                .to_string(),
            action: Action::Xtx,
            checked: o.xtx,
        },
        Entry::Separator,
        Entry::Submenu {
            // Both names: someone stuck in a language they cannot read still finds it.
            label: lang.pick("语言 Language", "Language 语言").to_string(),
            entries: vec![
                Entry::Check {
                    label: "中文".into(),
                    action: Action::Lang(Lang::ZhCn),
                    checked: lang == Lang::ZhCn,
                },
                Entry::Check {
                    label: "English".into(),
                    action: Action::Lang(Lang::En),
                    checked: lang == Lang::En,
                },
            ],
        },
        Entry::Check {
            label: lang.pick("开机自动启动", "Start at login").to_string(),
            action: Action::Autostart,
            checked: o.autostart,
        },
        Entry::Separator,
        item("退出", "Quit", Action::Quit, true),
    ]);
    TrayView {
        state: state(snapshot, o),
        tooltip,
        menu,
    }
}

/// The icon: no key; expired or locked; expiring; else all is well.
pub fn state(snapshot: &Snapshot, o: &Options) -> IconState {
    if snapshot.tokens.is_empty() {
        return IconState::NoKey;
    }
    let statuses: Vec<Status> = snapshot
        .tokens
        .iter()
        .flat_map(|t| relevant(&snapshot.certificates_of(&t.id)))
        .map(|c| c.status(o.now, o.warning_days))
        .collect();
    if snapshot.tokens.iter().any(|t| t.pin.locked) || statuses.contains(&Status::Expired) {
        IconState::Alert
    } else if statuses.contains(&Status::Expiring) {
        IconState::Expiring
    } else {
        IconState::Ok
    }
}

/// The certificates that speak for a token: those with a private key (the user's own; a CA
/// certificate stored next to them must not turn the icon red), or all of them on a token
/// that pairs none with a key. Unparsable objects never count.
fn relevant(certs: &[CertEntry]) -> Vec<Certificate> {
    let keyed = certs
        .iter()
        .any(|c| c.has_private_key.may_sign() && c.parsed.is_ok());
    certs
        .iter()
        .filter(|c| c.has_private_key.may_sign() || !keyed)
        .filter_map(|c| c.parsed.as_ref().ok().cloned())
        .collect()
}

/// The one line: how many keys, and the most pressing thing about them, e.g.
/// `2 把密钥 · 北京云杉测试科技有限公司 · 剩余 45 天`.
pub fn summary(snapshot: &Snapshot, o: &Options) -> String {
    let lang = o.lang;
    let n = snapshot.tokens.len();
    let count = match (n, lang) {
        (0, _) => return lang.pick("未插入密钥", "No key inserted").to_string(),
        (n, Lang::ZhCn) => format!("{n} 把密钥"),
        (1, Lang::En) => "1 key".to_string(),
        (n, Lang::En) => format!("{n} keys"),
    };
    let certs: Vec<Certificate> = snapshot
        .tokens
        .iter()
        .flat_map(|t| relevant(&snapshot.certificates_of(&t.id)))
        .collect();
    let expired = certs
        .iter()
        .find(|c| c.status(o.now, o.warning_days) == Status::Expired);
    let locked = snapshot.tokens.iter().find(|t| t.pin.locked);
    // The certificate that runs out first, among those in force.
    let soonest = certs
        .iter()
        .filter(|c| c.status(o.now, o.warning_days) != Status::NotYetValid)
        .min_by_key(|c| c.days_left(o.now));
    let what = if let Some(t) = locked {
        format!("{} · {}", t.label, lang.pick("密码已锁定", "PIN locked"))
    } else if let Some(c) = expired {
        format!("{} · {}", c.owner(), status_name(Status::Expired, lang))
    } else if let Some(c) = soonest {
        format!("{} · {}", c.owner(), days_left(c.days_left(o.now), lang))
    } else if certs.is_empty() {
        lang.pick("没有证书", "no certificate").to_string()
    } else {
        lang.pick("证书尚未生效", "certificate not yet valid")
            .to_string()
    };
    format!("{count} · {what}")
}

/// `已过期`, `尚未生效`: the words every front end uses ([`text::status_name`]).
fn status_name(s: Status, lang: Lang) -> &'static str {
    text::status_name(s.as_str(), lang)
}

/// `剩余 45 天` / `45 days left`.
fn days_left(days: i64, lang: Lang) -> String {
    match (days, lang) {
        (0, _) => lang.pick("今天到期", "expires today").to_string(),
        (d, Lang::ZhCn) => format!("剩余 {d} 天"),
        (1, Lang::En) => "1 day left".to_string(),
        (d, Lang::En) => format!("{d} days left"),
    }
}

/// `测试密钥（SoftHSM v2）` with its certificates, and its PIN when something is wrong.
fn token_menu(token: &Token, certs: &[CertEntry], o: &Options) -> Entry {
    let lang = o.lang;
    let model = token.model.trim();
    let label = if model.is_empty() || model == token.label.trim() {
        token.label.clone()
    } else {
        match lang {
            Lang::ZhCn => format!("{}（{model}）", token.label),
            Lang::En => format!("{} ({model})", token.label),
        }
    };
    let mut entries: Vec<Entry> = certs.iter().map(|c| cert_entry(c, certs, o)).collect();
    if entries.is_empty() {
        entries.push(Entry::Note(
            lang.pick("没有证书", "No certificate").to_string(),
        ));
    }
    if let Some(pin) = pin_note(token.pin, lang) {
        entries.push(Entry::Separator);
        entries.push(Entry::Note(pin.to_string()));
    }
    Entry::Submenu { label, entries }
}

/// `北京云杉测试科技有限公司 · 剩余 45 天`; clicking opens the card.
fn cert_entry(entry: &CertEntry, all: &[CertEntry], o: &Options) -> Entry {
    let lang = o.lang;
    let Ok(c) = &entry.parsed else {
        let name = if entry.label.is_empty() {
            entry.id.as_str()
        } else {
            &entry.label
        };
        return Entry::Note(format!(
            "{name} · {}",
            lang.pick("无法解析", "cannot be read")
        ));
    };
    let owner = c.owner();
    // Keys usually hold a signing and an encryption certificate of the same owner.
    let twin = all.iter().any(|other| {
        other.id != entry.id
            && other
                .parsed
                .as_ref()
                .is_ok_and(|oc| oc.owner() == owner && oc.can_sign() != c.can_sign())
    });
    let owner = match (twin, c.can_sign()) {
        (false, _) => owner,
        (true, true) => format!("{owner}{}", lang.pick("（签名）", " (signing)")),
        (true, false) => format!("{owner}{}", lang.pick("（加密）", " (encryption)")),
    };
    let when = match c.status(o.now, o.warning_days) {
        s @ (Status::Expired | Status::NotYetValid) => status_name(s, lang).to_string(),
        _ => days_left(c.days_left(o.now), lang),
    };
    Entry::Item {
        label: format!("{owner} · {when}"),
        action: Action::Card {
            cert_id: entry.id.clone(),
        },
        enabled: true,
    }
}

/// What the token's submenu says about its PIN; nothing when all is well.
fn pin_note(pin: PinState, lang: Lang) -> Option<&'static str> {
    if pin.locked {
        Some(lang.pick("密码已锁定", "PIN locked"))
    } else if pin.final_try {
        Some(lang.pick("密码仅剩最后一次机会", "PIN: one try left"))
    } else if pin.count_low {
        Some(lang.pick("密码已多次输错", "PIN entered wrong several times"))
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cert::Name;
    use time::Duration;
    use time::macros::datetime;

    pub const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    /// A certificate of `owner` with `days` whole days left at [`NOW`] (negative: expired).
    pub fn cert(token: &str, owner: &str, days: i64, usage: &[&str], key: bool) -> CertEntry {
        let sha256 =
            crate::cert::sha256_hex(format!("{token}/{owner}/{days}/{usage:?}").as_bytes());
        let c = Certificate {
            subject: Name {
                o: Some(owner.into()),
                dn: format!("O={owner}"),
                ..Name::default()
            },
            serial: "1".into(),
            sha256: sha256.clone(),
            key_usage: usage.iter().map(|u| u.to_string()).collect(),
            ..Certificate::sample(
                NOW - Duration::days(365),
                NOW + Duration::days(days) + Duration::hours(1),
            )
        };
        CertEntry {
            id: c.id(),
            sha256,
            token_id: token.into(),
            label: "cert".into(),
            key_id: vec![1],
            der: Vec::new(),
            has_private_key: key.into(),
            parsed: Ok(c),
            issuer: None,
        }
    }

    pub fn token(id: &str, label: &str, model: &str) -> Token {
        Token {
            id: id.into(),
            label: label.into(),
            manufacturer: "Test".into(),
            model: model.into(),
            serial: id.into(),
            location: crate::model::Location {
                library: "/x.so".into(),
                slot: 0,
            },
            pin: PinState {
                min_len: 6,
                max_len: 16,
                initialized: true,
                ..PinState::default()
            },
            so_pin: PinState::default(),
            seal: None,
        }
    }

    pub fn snapshot(tokens: Vec<Token>, certificates: Vec<CertEntry>) -> Snapshot {
        Snapshot {
            readers: Vec::new(),
            tokens,
            certificates,
        }
    }

    fn opts(lang: Lang) -> Options {
        Options {
            now: NOW,
            warning_days: 30,
            lang,
            autostart: false,
            xtx: false,
            check_page: true,
        }
    }

    const YS: &str = "北京云杉测试科技有限公司";

    /// The labels of a menu level, submenus as `label ▸`.
    fn labels(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Note(t) => format!("({t})"),
                Entry::Item { label, enabled, .. } => {
                    if *enabled {
                        label.clone()
                    } else {
                        format!("({label})")
                    }
                }
                Entry::Check { label, checked, .. } => {
                    format!("{}{label}", if *checked { "✓" } else { "" })
                }
                Entry::Submenu { label, .. } => format!("{label} ▸"),
                Entry::Separator => "-".into(),
            })
            .collect()
    }

    fn submenu<'a>(v: &'a TrayView, label: &str) -> &'a [Entry] {
        v.menu
            .iter()
            .find_map(|e| match e {
                Entry::Submenu { label: l, entries } if l == label => Some(&entries[..]),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no submenu {label} in {:?}", labels(&v.menu)))
    }

    #[test]
    fn no_key() {
        let v = tray(&Snapshot::default(), &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::NoKey);
        assert_eq!(v.tooltip, "未插入密钥");
        assert_eq!(
            labels(&v.menu),
            [
                "(未插入密钥)",
                "-",
                "(修改密码…)",
                "(解锁…)",
                "-",
                "环境检测",
                "打开证书检测页",
                "已授权网站…",
                "BJCA 兼容接口（证书应用环境，重启后生效）",
                "-",
                "语言 Language ▸",
                "开机自动启动",
                "-",
                "退出"
            ]
        );
        assert_eq!(labels(submenu(&v, "语言 Language")), ["✓中文", "English"]);
    }

    #[test]
    fn two_keys_all_valid() {
        let s = snapshot(
            vec![
                token("t-1", "云杉密钥", "ePass3003"),
                token("t-2", "个人密钥", "SoftHSM v2"),
            ],
            vec![
                cert("t-1", YS, 45, &["digitalSignature"], true),
                cert("t-2", "张三", 200, &[], true),
            ],
        );
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Ok);
        assert_eq!(v.tooltip, format!("2 把密钥 · {YS} · 剩余 45 天"));
        assert_eq!(
            labels(&v.menu)[..6],
            [
                format!("(2 把密钥 · {YS} · 剩余 45 天)"),
                "-".into(),
                "云杉密钥（ePass3003） ▸".into(),
                "个人密钥（SoftHSM v2） ▸".into(),
                "-".into(),
                "修改密码…".into(),
            ]
        );
        let first = submenu(&v, "云杉密钥（ePass3003）");
        assert_eq!(labels(first), [format!("{YS} · 剩余 45 天")]);
        assert_eq!(
            first[0],
            Entry::Item {
                label: format!("{YS} · 剩余 45 天"),
                action: Action::Card {
                    cert_id: s.certificates[0].id.clone()
                },
                enabled: true
            }
        );
        assert_eq!(
            labels(submenu(&v, "个人密钥（SoftHSM v2）")),
            ["张三 · 剩余 200 天"]
        );
    }

    #[test]
    fn expiring_within_the_warning_window() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "ePass3003")],
            vec![cert("t-1", YS, 12, &[], true)],
        );
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Expiring);
        assert_eq!(v.tooltip, format!("1 把密钥 · {YS} · 剩余 12 天"));
        // Outside a shorter window it is just valid.
        let o = Options {
            warning_days: 7,
            ..opts(Lang::ZhCn)
        };
        assert_eq!(tray(&s, &o).state, IconState::Ok);
        // The last day.
        let s = snapshot(s.tokens.clone(), vec![cert("t-1", YS, 0, &[], true)]);
        assert_eq!(tray(&s, &o).tooltip, format!("1 把密钥 · {YS} · 今天到期"));
    }

    #[test]
    fn expired_beats_expiring_and_is_named() {
        let s = snapshot(
            vec![token("t-1", "甲", "M"), token("t-2", "乙", "M")],
            vec![
                cert("t-1", "快到期公司", 3, &[], true),
                cert("t-2", "已过期公司", -2, &[], true),
            ],
        );
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Alert);
        assert_eq!(v.tooltip, "2 把密钥 · 已过期公司 · 已过期");
        assert_eq!(labels(submenu(&v, "乙（M）")), ["已过期公司 · 已过期"]);
        assert_eq!(labels(submenu(&v, "甲（M）")), ["快到期公司 · 剩余 3 天"]);
    }

    #[test]
    fn a_locked_pin_is_an_alert_even_with_valid_certificates() {
        let mut t = token("t-1", "云杉密钥", "ePass3003");
        t.pin.locked = true;
        let s = snapshot(vec![t], vec![cert("t-1", YS, 300, &[], true)]);
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Alert);
        assert_eq!(v.tooltip, "1 把密钥 · 云杉密钥 · 密码已锁定");
        assert_eq!(
            labels(submenu(&v, "云杉密钥（ePass3003）")),
            [
                format!("{YS} · 剩余 300 天"),
                "-".into(),
                "(密码已锁定)".into()
            ]
        );
        // Locked is named before an expired certificate: it is what the user can fix now.
        let mut t = token("t-1", "云杉密钥", "ePass3003");
        t.pin.locked = true;
        let s = snapshot(vec![t], vec![cert("t-1", YS, -1, &[], true)]);
        assert_eq!(
            tray(&s, &opts(Lang::En)).tooltip,
            "1 key · 云杉密钥 · PIN locked"
        );
    }

    #[test]
    fn count_low_is_shown_but_not_an_alert() {
        let mut t = token("t-1", "云杉密钥", "ePass3003");
        t.pin.count_low = true;
        let s = snapshot(vec![t], vec![cert("t-1", YS, 300, &[], true)]);
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Ok);
        assert_eq!(
            labels(submenu(&v, "云杉密钥（ePass3003）"))[2],
            "(密码已多次输错)"
        );
    }

    #[test]
    fn a_ca_certificate_without_a_key_does_not_count() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "ePass3003")],
            vec![
                cert("t-1", YS, 400, &[], true),
                cert("t-1", "某某 CA", -30, &["keyCertSign"], false),
            ],
        );
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Ok);
        assert_eq!(v.tooltip, format!("1 把密钥 · {YS} · 剩余 400 天"));
        // Still listed, as it is.
        assert_eq!(
            labels(submenu(&v, "云杉密钥（ePass3003）")),
            [format!("{YS} · 剩余 400 天"), "某某 CA · 已过期".into()]
        );
        // A token with no keys at all: its certificates do count.
        let s = snapshot(
            vec![token("t-1", "证书卡", "")],
            vec![cert("t-1", YS, -3, &[], false)],
        );
        assert_eq!(tray(&s, &opts(Lang::ZhCn)).state, IconState::Alert);
    }

    #[test]
    fn signing_and_encryption_twins_are_told_apart() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "ePass3003")],
            vec![
                cert("t-1", YS, 45, &["digitalSignature", "nonRepudiation"], true),
                cert(
                    "t-1",
                    YS,
                    45,
                    &["keyEncipherment", "dataEncipherment"],
                    true,
                ),
            ],
        );
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(
            labels(submenu(&v, "云杉密钥（ePass3003）")),
            [
                format!("{YS}（签名） · 剩余 45 天"),
                format!("{YS}（加密） · 剩余 45 天")
            ]
        );
    }

    #[test]
    fn a_key_without_certificates_and_an_unreadable_object() {
        let mut bad = cert("t-2", "x", 10, &[], true);
        bad.parsed = Err(crate::model::Unreadable {
            reason: crate::cert::parse(b"not a certificate")
                .unwrap_err()
                .to_string(),
        });
        bad.label = "损坏的证书".into();
        let s = snapshot(
            vec![token("t-1", "空密钥", "M"), token("t-2", "坏密钥", "M")],
            vec![bad],
        );
        let v = tray(&s, &opts(Lang::ZhCn));
        assert_eq!(v.state, IconState::Ok);
        assert_eq!(v.tooltip, "2 把密钥 · 没有证书");
        assert_eq!(labels(submenu(&v, "空密钥（M）")), ["(没有证书)"]);
        assert_eq!(
            labels(submenu(&v, "坏密钥（M）")),
            ["(损坏的证书 · 无法解析)"]
        );
    }

    #[test]
    fn english() {
        let s = snapshot(
            vec![token("t-1", "Yunshan key", "ePass3003")],
            vec![cert("t-1", "Yunshan Test Ltd", 1, &[], true)],
        );
        let o = Options {
            autostart: true,
            xtx: true,
            check_page: false,
            ..opts(Lang::En)
        };
        let v = tray(&s, &o);
        assert_eq!(v.state, IconState::Expiring);
        assert_eq!(v.tooltip, "1 key · Yunshan Test Ltd · 1 day left");
        assert_eq!(
            labels(&v.menu),
            [
                "(1 key · Yunshan Test Ltd · 1 day left)",
                "-",
                "Yunshan key (ePass3003) ▸",
                "-",
                "Change PIN…",
                "Unlock…",
                "-",
                "Check the environment",
                "(Open the check page)",
                "Approved websites…",
                "✓BJCA-compatible endpoint (from the next start)",
                "-",
                "Language 语言 ▸",
                "✓Start at login",
                "-",
                "Quit"
            ]
        );
        assert_eq!(
            labels(submenu(&v, "Yunshan key (ePass3003)")),
            ["Yunshan Test Ltd · 1 day left"]
        );
        assert_eq!(labels(submenu(&v, "Language 语言")), ["中文", "✓English"]);
        let s = snapshot(
            vec![token("t-1", "a", "M"), token("t-2", "b", "M")],
            vec![cert("t-1", "Old Ltd", -5, &[], true)],
        );
        assert_eq!(tray(&s, &o).tooltip, "2 keys · Old Ltd · expired");
        assert_eq!(tray(&Snapshot::default(), &o).tooltip, "No key inserted");
    }

    #[test]
    fn action_ids_round_trip() {
        let all = [
            Action::Card {
                cert_id: "c-0123456789abcdef".into(),
            },
            Action::ChangePin,
            Action::Unlock,
            Action::Doctor,
            Action::CheckPage,
            Action::Origins,
            Action::Lang(Lang::ZhCn),
            Action::Lang(Lang::En),
            Action::Autostart,
            Action::Xtx,
            Action::Quit,
        ];
        for a in all {
            assert_eq!(Action::from_id(&a.id()), Some(a.clone()), "{}", a.id());
        }
        assert_eq!(
            Action::from_id("1001"),
            None,
            "muda's own ids are not actions"
        );
    }
}
