//! Desktop notifications (notify-rust): key inserted and removed, certificate expiring
//! (once per threshold per certificate, remembered across restarts), expired, PIN count
//! low or locked, PIN changed. A notification service that cannot be reached is logged
//! once and never stops anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cert::Status;
use crate::i18n::Lang;
use crate::model::CertEntry;

/// What to tell the user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Notice {
    /// A key went in: the owner of its (first valid) certificate and its days left.
    Inserted {
        owner: String,
        days_left: i64,
    },
    /// A key came out.
    Removed {
        label: String,
    },
    /// A certificate crossed an expiry threshold (90/30/7/1 days).
    Expiring {
        owner: String,
        days_left: i64,
    },
    Expired {
        owner: String,
    },
    PinCountLow {
        label: String,
    },
    PinLocked {
        label: String,
    },
    PinChanged {
        label: String,
    },
    PinUnlocked {
        label: String,
    },
}

impl Notice {
    /// The notification's title.
    pub fn summary(&self, lang: Lang) -> &'static str {
        match self {
            Notice::Inserted { .. } => lang.pick("已插入密钥", "Key inserted"),
            Notice::Removed { .. } => lang.pick("已拔出密钥", "Key removed"),
            Notice::Expiring { .. } => lang.pick("证书即将过期", "Certificate expiring soon"),
            Notice::Expired { .. } => lang.pick("证书已过期", "Certificate expired"),
            Notice::PinCountLow { .. } => lang.pick("密码输错次数过多", "Too many wrong PINs"),
            Notice::PinLocked { .. } => lang.pick("密钥已锁定", "Key locked"),
            Notice::PinChanged { .. } => lang.pick("密码已修改", "PIN changed"),
            Notice::PinUnlocked { .. } => lang.pick("密钥已解锁", "Key unlocked"),
        }
    }

    /// The notification's text.
    pub fn body(&self, lang: Lang) -> String {
        let zh = lang == Lang::ZhCn;
        match self {
            Notice::Inserted { owner, days_left } => match (*days_left, zh) {
                (d, true) if d < 0 => format!("{owner} · 证书已过期"),
                (0, true) => format!("{owner} · 证书今天到期"),
                (d, true) => format!("{owner} · 证书剩余 {d} 天"),
                (d, false) if d < 0 => format!("{owner} · certificate expired"),
                (0, false) => format!("{owner} · certificate expires today"),
                (1, false) => format!("{owner} · 1 day left on the certificate"),
                (d, false) => format!("{owner} · {d} days left on the certificate"),
            },
            Notice::Removed { label } => label.clone(),
            Notice::Expiring { owner, days_left } => match (*days_left, zh) {
                (d, true) if d <= 0 => format!("{owner} 的证书今天到期，请尽快更新"),
                (d, true) => format!("{owner} 的证书还剩 {d} 天，请尽快更新"),
                (d, false) if d <= 0 => {
                    format!("The certificate of {owner} expires today; renew it soon")
                }
                (1, false) => format!("The certificate of {owner} has 1 day left; renew it soon"),
                (d, false) => {
                    format!("The certificate of {owner} has {d} days left; renew it soon")
                }
            },
            Notice::Expired { owner } => {
                if zh {
                    format!("{owner} 的证书已过期，更新后才能继续使用")
                } else {
                    format!("The certificate of {owner} has expired; renew it to keep using it")
                }
            }
            Notice::PinCountLow { label } => {
                if zh {
                    format!("{label}：密码已多次输错，再输错可能锁定")
                } else {
                    format!(
                        "{label}: the PIN was entered wrong several times; more wrong tries may lock the key"
                    )
                }
            }
            Notice::PinLocked { label } => {
                if zh {
                    format!("{label} 的密码已锁定，请用管理员密码或解锁授权码解锁")
                } else {
                    format!(
                        "The PIN of {label} is locked; unlock it with the admin (SO) PIN or an unlock code"
                    )
                }
            }
            Notice::PinChanged { label } => {
                if zh {
                    format!("{label} 的密码已修改")
                } else {
                    format!("The PIN of {label} was changed")
                }
            }
            Notice::PinUnlocked { label } => {
                if zh {
                    format!("{label} 已解锁，请使用新密码")
                } else {
                    format!("{label} is unlocked; use the new PIN")
                }
            }
        }
    }

    /// Whether the notice needs action before the key can be used (expired, locked).
    pub fn is_critical(&self) -> bool {
        matches!(self, Notice::Expired { .. } | Notice::PinLocked { .. })
    }

    /// A short name for logs: notices carry names, which logs need not repeat.
    fn kind(&self) -> &'static str {
        match self {
            Notice::Inserted { .. } => "inserted",
            Notice::Removed { .. } => "removed",
            Notice::Expiring { .. } => "expiring",
            Notice::Expired { .. } => "expired",
            Notice::PinCountLow { .. } => "pin_count_low",
            Notice::PinLocked { .. } => "pin_locked",
            Notice::PinChanged { .. } => "pin_changed",
            Notice::PinUnlocked { .. } => "pin_unlocked",
        }
    }
}

/// Where notices go.
#[derive(Clone)]
pub struct Notifier {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Off,
    /// For tests: keep them.
    Record(std::sync::Arc<std::sync::Mutex<Vec<Notice>>>),
    /// To the notifier thread, which talks to the notification service.
    Desktop(mpsc::Sender<Notice>),
    /// Handed to someone else (the dialog process passes its notices to the daemon).
    Forward(std::sync::Arc<dyn Fn(Notice) + Send + Sync>),
}

impl Notifier {
    /// Drop every notice.
    pub fn off() -> Notifier {
        Notifier { inner: Inner::Off }
    }

    /// Keep notices in memory (tests read them back with [`Notifier::recorded`]).
    pub fn recording() -> Notifier {
        Notifier {
            inner: Inner::Record(Default::default()),
        }
    }

    /// Hand every notice to `f`.
    pub fn forward(f: impl Fn(Notice) + Send + Sync + 'static) -> Notifier {
        Notifier {
            inner: Inner::Forward(std::sync::Arc::new(f)),
        }
    }

    /// Show notices on the desktop from a `notifier` thread: a notification service can
    /// be slow or missing, and its callers (the controller, the dialogs) must not wait.
    /// `lang` is asked for each notice, so a language switch applies to the next one. The
    /// thread ends when the last clone of the notifier is dropped.
    pub fn desktop(lang: impl Fn() -> Lang + Send + Sync + 'static) -> Notifier {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || run(rx, lang));
        match spawned {
            Ok(_) => Notifier {
                inner: Inner::Desktop(tx),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the notifier thread; notifications are off");
                Notifier::off()
            }
        }
    }

    pub fn recorded(&self) -> Vec<Notice> {
        match &self.inner {
            Inner::Record(r) => r.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => Vec::new(),
        }
    }

    /// Send a notice; never blocks, never fails.
    pub fn send(&self, notice: Notice) {
        match &self.inner {
            Inner::Off => {}
            Inner::Record(r) => r.lock().unwrap_or_else(|e| e.into_inner()).push(notice),
            // The thread only ends when every sender is gone, so this cannot fail while
            // `self` lives; if it ever did, a lost notice is all it costs.
            Inner::Desktop(tx) => {
                let _ = tx.send(notice);
            }
            Inner::Forward(f) => f(notice),
        }
    }
}

/// How long a notification stays up, where the service lets the sender choose.
const SHOW_MS: u32 = 10_000;

/// The notifier thread: one notice at a time, in order.
fn run(rx: mpsc::Receiver<Notice>, lang: impl Fn() -> Lang) {
    // The first failure says why notifications are missing; repeating it for every
    // notice (a desktop without a notification service) would only fill the log.
    let mut warned = false;
    for notice in rx {
        match show(&notice, lang()) {
            Ok(()) => tracing::debug!(notice = notice.kind(), "notification shown"),
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(
                    notice = notice.kind(),
                    error = %e,
                    "cannot show desktop notifications (no session bus or no notification service); \
                     later failures are logged at debug level"
                );
            }
            Err(e) => tracing::debug!(notice = notice.kind(), error = %e, "notification not shown"),
        }
    }
}

/// Show one notice. notify-rust opens a D-Bus connection (on Linux, the session bus named
/// by `DBUS_SESSION_BUS_ADDRESS` at this moment) for each notification.
fn show(notice: &Notice, lang: Lang) -> Result<(), notify_rust::error::Error> {
    let mut n = notify_rust::Notification::new();
    n.appname(lang.pick("证书助手", "certray"))
        .summary(notice.summary(lang))
        .body(&plain_body(&notice.body(lang)))
        // The app icon the packages install in the hicolor theme.
        .icon("certray")
        .timeout(notify_rust::Timeout::Milliseconds(SHOW_MS));
    #[cfg(any(all(unix, not(target_os = "macos")), target_os = "windows"))]
    n.urgency(if notice.is_critical() {
        notify_rust::Urgency::Critical
    } else {
        notify_rust::Urgency::Normal
    });
    n.show().map(|_| ())
}

/// The body as plain text whatever the service does with it: names come from certificates
/// and tokens (a hostile token may name itself `<a href=…>` or `<img src=…>`), so where the
/// service reads markup (the `body-markup` capability) every markup character is an entity,
/// and control characters are escaped everywhere.
fn plain_body(body: &str) -> String {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        // Unknown capabilities: escape as if markup were read (an entity shown literally is
        // better than a link a token chose).
        let markup = notify_rust::get_capabilities()
            .map(|caps| caps.iter().any(|c| c == "body-markup"))
            .unwrap_or(true);
        if markup {
            return crate::text::escape_markup(body);
        }
    }
    crate::text::escape_control(body)
}

/// Days-left thresholds at which an expiring certificate is announced, largest first.
pub const EXPIRY_THRESHOLDS: [u32; 4] = [90, 30, 7, 1];

/// The file in the state dir that remembers which expiry notices were given.
const MEMORY_FILE: &str = "notified.json";

/// Which expiry notices each certificate has had, so a restart (or re-inserting the key)
/// does not repeat them. Kept in `<state dir>/notified.json`.
pub struct ExpiryMemory {
    path: Option<PathBuf>,
    marks: Marks,
}

/// By certificate SHA-256 (lowercase hex).
type Marks = BTreeMap<String, Mark>;

/// What one certificate has been told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    /// The smallest threshold announced: every larger one counts as done too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    expired: bool,
}

#[derive(Serialize, Deserialize)]
struct MemoryFile {
    certificates: Marks,
}

impl ExpiryMemory {
    /// Load `<dir>/notified.json`; `None` keeps the memory in this process only. A missing
    /// file is a first run; an unreadable one is logged and starts empty (at worst some
    /// notices come again).
    pub fn open(dir: Option<&Path>) -> ExpiryMemory {
        let path = dir.map(|d| d.join(MEMORY_FILE));
        let marks = match &path {
            None => Marks::new(),
            Some(p) => match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<MemoryFile>(&bytes) {
                    Ok(f) => f.certificates,
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "ignoring a corrupt notification memory");
                        Marks::new()
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Marks::new(),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot read the notification memory");
                    Marks::new()
                }
            },
        };
        ExpiryMemory { path, marks }
    }

    /// The expiry notices `certs` are due at `now`, each remembered (and the file
    /// rewritten) so it is not given again. Besides [`EXPIRY_THRESHOLDS`], the warning
    /// window's edge `warning_days` is a threshold, so the first notice comes when the
    /// certificate turns "expiring"; thresholds above it still count.
    pub fn due(
        &mut self,
        certs: &[CertEntry],
        now: OffsetDateTime,
        warning_days: u32,
    ) -> Vec<Notice> {
        let notices = due(&mut self.marks, certs, now, warning_days);
        if !notices.is_empty()
            && let Some(path) = &self.path
            && let Err(e) = save(path, &self.marks)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the notification memory");
        }
        notices
    }
}

/// The pure part of [`ExpiryMemory::due`].
fn due(
    marks: &mut Marks,
    certs: &[CertEntry],
    now: OffsetDateTime,
    warning_days: u32,
) -> Vec<Notice> {
    let mut thresholds: Vec<u32> = EXPIRY_THRESHOLDS.to_vec();
    if warning_days > 0 && !thresholds.contains(&warning_days) {
        thresholds.push(warning_days);
    }
    let mut notices = Vec::new();
    for entry in certs {
        let Ok(cert) = &entry.parsed else { continue };
        let mark = marks.entry(cert.sha256.clone()).or_default();
        match cert.status(now, warning_days) {
            Status::Expired => {
                if !mark.expired {
                    mark.expired = true;
                    mark.threshold = thresholds.iter().copied().min();
                    notices.push(Notice::Expired {
                        owner: cert.owner(),
                    });
                }
            }
            Status::NotYetValid | Status::Invalid => {}
            Status::Valid | Status::Expiring => {
                let days_left = cert.days_left(now);
                // The tightest threshold crossed: one notice however many were crossed
                // since the last look (a key last seen months ago).
                let crossed = thresholds
                    .iter()
                    .copied()
                    .filter(|t| days_left <= i64::from(*t))
                    .min();
                if let Some(t) = crossed
                    && mark.threshold.is_none_or(|done| t < done)
                {
                    mark.threshold = Some(t);
                    notices.push(Notice::Expiring {
                        owner: cert.owner(),
                        days_left,
                    });
                }
            }
        }
        if *mark == Mark::default() {
            // Nothing said about it: keep the file to certificates that were announced.
            marks.remove(&cert.sha256);
        }
    }
    notices
}

/// Write the memory atomically: a crash leaves the old file or the new one.
fn save(path: &Path, marks: &Marks) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = MemoryFile {
        certificates: marks.clone(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{Certificate, Name};
    use time::Duration;
    use time::macros::datetime;

    const NOT_AFTER: OffsetDateTime = datetime!(2027-01-01 00:00 UTC);

    fn entry(owner: &str, sha: char) -> CertEntry {
        let sha256: String = std::iter::repeat_n(sha, 64).collect();
        let cert = Certificate {
            subject: Name {
                o: Some(owner.into()),
                ..Name::default()
            },
            serial: "1".into(),
            sha256: sha256.clone(),
            ..Certificate::sample(datetime!(2025-01-01 00:00 UTC), NOT_AFTER)
        };
        CertEntry {
            id: crate::model::CertId::from_sha256(&sha256),
            sha256,
            token_id: "t".into(),
            label: "k".into(),
            key_id: vec![1],
            der: Vec::new(),
            has_private_key: true.into(),
            parsed: Ok(cert),
            issuer: None,
        }
    }

    /// `days` whole days (and an hour) before the certificate expires.
    fn at(days: i64) -> OffsetDateTime {
        NOT_AFTER - Duration::days(days) - Duration::hours(1)
    }

    fn expiring(owner: &str, days_left: i64) -> Notice {
        Notice::Expiring {
            owner: owner.into(),
            days_left,
        }
    }

    #[test]
    fn each_threshold_once() {
        let certs = [entry("云杉", 'a')];
        let mut m = ExpiryMemory::open(None);
        assert_eq!(m.due(&certs, at(120), 90), vec![]);
        assert_eq!(m.due(&certs, at(90), 90), vec![expiring("云杉", 90)]);
        assert_eq!(m.due(&certs, at(90), 90), vec![], "not twice");
        assert_eq!(m.due(&certs, at(45), 90), vec![]);
        assert_eq!(m.due(&certs, at(30), 90), vec![expiring("云杉", 30)]);
        assert_eq!(m.due(&certs, at(8), 90), vec![]);
        assert_eq!(m.due(&certs, at(7), 90), vec![expiring("云杉", 7)]);
        assert_eq!(m.due(&certs, at(1), 90), vec![expiring("云杉", 1)]);
        assert_eq!(m.due(&certs, at(0), 90), vec![], "1 is the last threshold");
        let after = NOT_AFTER + Duration::seconds(1);
        assert_eq!(
            m.due(&certs, after, 90),
            vec![Notice::Expired {
                owner: "云杉".into()
            }]
        );
        assert_eq!(
            m.due(&certs, after + Duration::days(3), 90),
            vec![],
            "expired once"
        );
    }

    #[test]
    fn crossing_several_thresholds_gives_one_notice() {
        let certs = [entry("云杉", 'a')];
        let mut m = ExpiryMemory::open(None);
        assert_eq!(m.due(&certs, at(5), 90), vec![expiring("云杉", 5)]);
        // 90, 30 and 7 are done with it; only 1 is left.
        assert_eq!(m.due(&certs, at(2), 90), vec![]);
        assert_eq!(m.due(&certs, at(1), 90), vec![expiring("云杉", 1)]);
    }

    #[test]
    fn first_seen_expired_gives_expired_only() {
        let certs = [entry("云杉", 'a')];
        let mut m = ExpiryMemory::open(None);
        let after = NOT_AFTER + Duration::days(10);
        assert_eq!(
            m.due(&certs, after, 90),
            vec![Notice::Expired {
                owner: "云杉".into()
            }]
        );
        assert_eq!(m.due(&certs, after, 90), vec![]);
    }

    #[test]
    fn warning_window_is_a_threshold_and_larger_ones_still_count() {
        let certs = [entry("云杉", 'a')];
        let mut m = ExpiryMemory::open(None);
        // A 14-day window: 90 and 30 still announce, and so does 14.
        assert_eq!(m.due(&certs, at(90), 14), vec![expiring("云杉", 90)]);
        assert_eq!(m.due(&certs, at(30), 14), vec![expiring("云杉", 30)]);
        assert_eq!(m.due(&certs, at(14), 14), vec![expiring("云杉", 14)]);
        assert_eq!(m.due(&certs, at(7), 14), vec![expiring("云杉", 7)]);
    }

    #[test]
    fn certificates_are_counted_apart_and_duplicates_once() {
        let a = entry("甲公司", 'a');
        let b = entry("乙公司", 'b');
        let mut m = ExpiryMemory::open(None);
        // The same certificate on two tokens is one certificate.
        let got = m.due(&[a.clone(), b, a], at(20), 90);
        assert_eq!(got, vec![expiring("甲公司", 20), expiring("乙公司", 20)]);
    }

    #[test]
    fn unparsed_and_not_yet_valid_are_skipped() {
        let mut bad = entry("坏", 'c');
        bad.parsed = Err(crate::model::Unreadable { reason: "x".into() });
        let mut m = ExpiryMemory::open(None);
        assert_eq!(m.due(&[bad], at(5), 90), vec![]);
        let early = entry("早", 'd');
        assert_eq!(m.due(&[early], datetime!(2024-01-01 00:00 UTC), 90), vec![]);
    }

    #[test]
    fn restart_remembers() {
        let dir = tempfile::tempdir().unwrap();
        let certs = [entry("云杉", 'a')];
        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(m.due(&certs, at(25), 90), vec![expiring("云杉", 25)]);
        drop(m);
        assert!(dir.path().join("notified.json").is_file());
        assert!(!dir.path().join("notified.json.tmp").exists());

        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(
            m.due(&certs, at(25), 90),
            vec![],
            "remembered across restarts"
        );
        assert_eq!(m.due(&certs, at(6), 90), vec![expiring("云杉", 6)]);
        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(m.due(&certs, at(6), 90), vec![]);
        let after = NOT_AFTER + Duration::hours(1);
        assert_eq!(m.due(&certs, after, 90).len(), 1);
        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(m.due(&certs, after, 90), vec![], "expired remembered");
    }

    #[test]
    fn state_dir_is_made_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state").join("certray");
        let mut m = ExpiryMemory::open(Some(&state));
        assert_eq!(m.due(&[entry("云杉", 'a')], at(3), 90).len(), 1);
        assert!(state.join("notified.json").is_file());
    }

    #[test]
    fn corrupt_file_starts_empty_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notified.json");
        std::fs::write(&file, b"{ not json").unwrap();
        let certs = [entry("云杉", 'a')];
        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(m.due(&certs, at(25), 90), vec![expiring("云杉", 25)]);
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed["certificates"]["a".repeat(64)]["threshold"],
            serde_json::json!(30)
        );
        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(m.due(&certs, at(25), 90), vec![]);
    }

    #[test]
    fn nothing_due_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ExpiryMemory::open(Some(dir.path()));
        assert_eq!(m.due(&[entry("云杉", 'a')], at(200), 90), vec![]);
        assert!(!dir.path().join("notified.json").exists());
    }

    #[test]
    fn texts() {
        let inserted = Notice::Inserted {
            owner: "北京云杉测试科技有限公司".into(),
            days_left: 45,
        };
        assert_eq!(inserted.summary(Lang::ZhCn), "已插入密钥");
        assert_eq!(
            inserted.body(Lang::ZhCn),
            "北京云杉测试科技有限公司 · 证书剩余 45 天"
        );
        assert_eq!(
            inserted.body(Lang::En),
            "北京云杉测试科技有限公司 · 45 days left on the certificate"
        );
        assert_eq!(
            expiring("张三", 7).body(Lang::ZhCn),
            "张三 的证书还剩 7 天，请尽快更新"
        );
        let locked = Notice::PinLocked {
            label: "云杉".into(),
        };
        assert!(locked.is_critical());
        assert!(locked.body(Lang::ZhCn).contains("管理员密码或解锁授权码"));
        assert!(!inserted.is_critical());
        assert!(Notice::Expired { owner: "x".into() }.is_critical());
    }
}
