//! What the dialogs say about certificates, PINs and signing requests, as text (pure, so it
//! is tested without a window).

use time::OffsetDateTime;
use time::macros::format_description;

use crate::cert::{Certificate, Status};
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::{IssuerCheck, IssuerVerdict, PinState};
use crate::text::{self, status_name, usages};

use super::widgets::{Tone, human_bytes};

/// `2026-01-01`.
pub fn date(t: OffsetDateTime) -> String {
    t.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| t.to_string())
}

/// `2026-01-01 08:00:00 UTC`.
pub fn date_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_else(|_| t.to_string())
}

/// The tone of a certificate's status.
pub fn status_tone(s: Status) -> Tone {
    match s {
        Status::Valid => Tone::Ok,
        Status::Expiring => Tone::Warn,
        Status::Expired | Status::Invalid => Tone::Bad,
        Status::NotYetValid => Tone::Info,
    }
}

/// The status and days left in words: `有效 · 剩余 123 天`, `已过期（2021-01-01）`.
pub fn days_text(c: &Certificate, now: OffsetDateTime, warning_days: u32, lang: Lang) -> String {
    let status = c.status(now, warning_days);
    let name = status_name(status.as_str(), lang);
    let days = c.days_left(now);
    match status {
        Status::Valid | Status::Expiring => format!(
            "{name} · {}{days}{}",
            lang.pick("剩余 ", ""),
            lang.pick(" 天", if days == 1 { " day left" } else { " days left" })
        ),
        Status::Expired => format!(
            "{name}{}{}{}",
            lang.pick("（", " ("),
            date(c.validity.not_after),
            lang.pick("）", ")")
        ),
        Status::NotYetValid => format!(
            "{name}{}{}{}",
            lang.pick("（", " (from "),
            date(c.validity.not_before),
            lang.pick(" 起）", ")")
        ),
        Status::Invalid => name.to_string(),
    }
}

/// `2025-01-01 至 2026-01-01`.
pub fn validity_text(c: &Certificate, lang: Lang) -> String {
    format!(
        "{}{}{}",
        date(c.validity.not_before),
        lang.pick(" 至 ", " to "),
        date(c.validity.not_after)
    )
}

/// What the key may do, in words: key usage, then extended key usage.
pub fn usage_text(c: &Certificate, lang: Lang) -> String {
    let mut parts = Vec::new();
    if !c.key_usage.is_empty() {
        parts.push(usages(&c.key_usage, lang));
    }
    if !c.extended_key_usage.is_empty() {
        parts.push(usages(&c.extended_key_usage, lang));
    }
    if parts.is_empty() {
        return lang
            .pick("未限定（可用于任何用途）", "not restricted")
            .to_string();
    }
    parts.join(" · ")
}

/// 签名证书 / 加密证书, as CA helpers tell a key's two certificates apart.
pub fn kind(c: &Certificate, lang: Lang) -> &'static str {
    let encrypts = c.key_usage.iter().any(|u| {
        matches!(
            u.as_str(),
            "keyEncipherment" | "dataEncipherment" | "keyAgreement"
        )
    });
    match (c.can_sign() && !c.key_usage.is_empty(), encrypts) {
        (true, false) => lang.pick("签名证书", "signing certificate"),
        (false, true) => lang.pick("加密证书", "encryption certificate"),
        _ => lang.pick("证书", "certificate"),
    }
}

/// The USCC and, when its check digit is wrong, a flag.
pub fn uscc_text(c: &Certificate, lang: Lang) -> Option<(String, bool)> {
    let u = c.ids.uscc.as_ref()?;
    let valid = c.ids.uscc_valid != Some(false);
    Some(if valid {
        (u.clone(), true)
    } else {
        (
            format!("{u}  {}", lang.pick("⚠ 校验位错误", "⚠ bad check digit")),
            false,
        )
    })
}

/// The issuer check in one line, and its tone: verified is good news, an invalid signature
/// bad news; an issuer that could not be checked is said plainly, not as an alarm (Chinese
/// CA roots are in no system store).
pub fn issuer_text(check: Option<&IssuerCheck>, lang: Lang) -> (String, Tone) {
    let Some(c) = check else {
        return (
            text::issuer_status("unknown", lang).to_string(),
            Tone::Neutral,
        );
    };
    let tone = match c.verdict {
        IssuerVerdict::Verified => Tone::Ok,
        IssuerVerdict::SignatureInvalid => Tone::Bad,
        IssuerVerdict::IssuerNotFound | IssuerVerdict::Unsupported => Tone::Neutral,
    };
    let source = c.issuer.as_ref().map(|i| i.source.as_str());
    (text::issuer_line(c.verdict.as_str(), source, lang), tone)
}

/// Each value that failed the check of the identifier it claims to be, with what it
/// failed: shown as 未验证的标识, never as that identifier.
pub fn unverified_texts(c: &Certificate, lang: Lang) -> Vec<String> {
    c.ids
        .unverified
        .iter()
        .map(|u| text::unverified_id(&u.value, u.kind.as_str(), lang))
        .collect()
}

/// A serial number as CA helpers print it: upper-case hex in pairs.
pub fn serial_text(serial: &str) -> String {
    let s = serial.to_ascii_uppercase();
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s };
    s.as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fingerprint as `AB:CD:…`.
pub fn fingerprint(hex: &str) -> String {
    hex.to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// What the dialog says about a PIN before anything is typed: nothing when all is well.
pub fn pin_warning(p: PinState, lang: Lang) -> Option<(Tone, String)> {
    if p.locked {
        Some((Tone::Bad, Code::PinLocked.message(lang).to_string()))
    } else if p.final_try {
        Some((Tone::Bad, Code::PinFinalTry.message(lang).to_string()))
    } else if p.count_low {
        Some((
            Tone::Warn,
            lang.pick(
                "之前输错过密码，剩余尝试次数不多，请仔细核对后再输入",
                "A wrong PIN was entered before and few tries are left: check it carefully",
            )
            .to_string(),
        ))
    } else {
        None
    }
}

/// A token's answer, for the person: what went wrong, the PIN state now, what to do.
pub fn failure_text(code: Code, pin: Option<PinState>, lang: Lang) -> String {
    let mut s = code.message(lang).to_string();
    if let Some(p) = pin {
        s.push('\n');
        s.push_str(&p.describe(lang));
    }
    // Hints that name CLI commands or flags are for the terminal: the dialogs show their own
    // way out (the 解锁 button, the final-try checkbox).
    if !matches!(
        code,
        Code::PinLocked
            | Code::PinFinalTry
            | Code::PinRequired
            | Code::TokenNotFound
            | Code::CertNotFound
            | Code::ModuleLoadFailed
            | Code::ConfigInvalid
    ) {
        s.push('\n');
        s.push_str(code.hint(lang));
    }
    s
}

/// `新密码长度不符合该密钥的要求：6–16 个字符，区分大小写`.
pub fn length_problem(p: PinState, lang: Lang) -> String {
    format!(
        "{}{}{}",
        Code::PinLenRange.message(lang),
        lang.pick("：", ": "),
        p.range_text(lang)
    )
}

/// A signing request's `operation` (`cms-detached, 1024 bytes`, `authenticate ORIGIN`) in
/// words.
pub fn operation_text(op: &str, lang: Lang) -> String {
    if op.starts_with("authenticate") {
        return lang
            .pick("身份认证（登录网站）", "authentication (signing in)")
            .to_string();
    }
    let (format, rest) = op.split_once(',').unwrap_or((op, ""));
    let what = match format.trim() {
        "cms-detached" => lang.pick("CMS 签名（不含原文）", "CMS signature (detached)"),
        "cms" => lang.pick("CMS 签名（含原文）", "CMS signature (with the content)"),
        "raw" => lang.pick("数字签名", "digital signature"),
        _ => return op.to_string(),
    };
    let bytes = rest
        .trim()
        .strip_suffix("bytes")
        .and_then(|n| n.trim().parse::<u64>().ok());
    match bytes {
        Some(n) => format!(
            "{what}{}{}{}",
            lang.pick("，", ", "),
            human_bytes(n, lang),
            lang.pick(" 数据", " of data")
        ),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cert() -> Certificate {
        Certificate {
            serial: "8a3f01".into(),
            key_usage: vec!["digitalSignature".into(), "nonRepudiation".into()],
            extended_key_usage: vec!["clientAuth".into()],
            ..Certificate::sample(
                datetime!(2025-01-01 00:00 UTC),
                datetime!(2026-01-01 00:00 UTC),
            )
        }
    }

    #[test]
    fn days_and_status_in_words() {
        let c = cert();
        let zh = Lang::ZhCn;
        assert_eq!(
            days_text(&c, datetime!(2025-06-01 00:00 UTC), 30, zh),
            "有效 · 剩余 214 天"
        );
        assert_eq!(
            days_text(&c, datetime!(2025-12-20 00:00 UTC), 30, zh),
            "即将过期 · 剩余 12 天"
        );
        assert_eq!(
            days_text(&c, datetime!(2025-12-31 00:00 UTC), 30, Lang::En),
            "expiring · 1 day left"
        );
        assert_eq!(
            days_text(&c, datetime!(2026-02-01 00:00 UTC), 30, zh),
            "已过期（2026-01-01）"
        );
        assert_eq!(
            days_text(&c, datetime!(2024-02-01 00:00 UTC), 30, zh),
            "尚未生效（2025-01-01 起）"
        );
        assert_eq!(validity_text(&c, zh), "2025-01-01 至 2026-01-01");
        assert_eq!(
            date_time(datetime!(2025-01-01 08:00 +8)),
            "2025-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn usage_kind_serial_fingerprint() {
        let mut c = cert();
        assert_eq!(
            usage_text(&c, Lang::ZhCn),
            "数字签名、不可否认 · 客户端认证"
        );
        assert_eq!(kind(&c, Lang::ZhCn), "签名证书");
        c.key_usage = vec!["keyEncipherment".into(), "dataEncipherment".into()];
        assert_eq!(kind(&c, Lang::ZhCn), "加密证书");
        c.key_usage.clear();
        c.extended_key_usage.clear();
        assert_eq!(kind(&c, Lang::ZhCn), "证书");
        assert_eq!(usage_text(&c, Lang::ZhCn), "未限定（可用于任何用途）");
        assert_eq!(serial_text("8a3f01"), "8A 3F 01");
        assert_eq!(serial_text("0"), "00");
        assert_eq!(serial_text("abc"), "0A BC");
        assert_eq!(fingerprint("ab01ff"), "AB:01:FF");
    }

    #[test]
    fn uscc_flag() {
        let mut c = cert();
        assert_eq!(uscc_text(&c, Lang::ZhCn), None);
        c.ids.uscc = Some("91350100M000100Y43".into());
        c.ids.uscc_valid = Some(true);
        assert_eq!(
            uscc_text(&c, Lang::ZhCn),
            Some(("91350100M000100Y43".into(), true))
        );
        c.ids.uscc_valid = Some(false);
        let (text, ok) = uscc_text(&c, Lang::ZhCn).unwrap();
        assert!(!ok && text.contains("校验位错误"), "{text}");
    }

    #[test]
    fn issuer_and_unverified_words() {
        use crate::cert::{IdKind, UnverifiedId};
        use crate::model::{CertRef, ChainEnd, IssuerSource};
        assert_eq!(
            issuer_text(None, Lang::ZhCn),
            ("无法验证颁发者".to_string(), Tone::Neutral)
        );
        let mut check = IssuerCheck {
            verdict: IssuerVerdict::Verified,
            issuer: Some(CertRef {
                id: "c-00".into(),
                subject: "CN=CA".into(),
                source: IssuerSource::CaPaths,
            }),
            chain: Vec::new(),
            chain_end: ChainEnd::IssuerNotFound,
        };
        assert_eq!(
            issuer_text(Some(&check), Lang::ZhCn),
            ("颁发者已验证（配置的 CA 证书）".to_string(), Tone::Ok)
        );
        check.verdict = IssuerVerdict::SignatureInvalid;
        let (text, tone) = issuer_text(Some(&check), Lang::ZhCn);
        assert!(text.starts_with("签名无效") && tone == Tone::Bad, "{text}");

        let mut c = cert();
        c.ids.uscc_valid = Some(false);
        c.ids.unverified.push(UnverifiedId {
            value: "91350100M000100Y44".into(),
            kind: IdKind::Uscc,
            source: "extension 1.2.86.11.7.4".into(),
        });
        assert_eq!(uscc_text(&c, Lang::ZhCn), None, "never shown as a USCC");
        assert_eq!(
            unverified_texts(&c, Lang::ZhCn),
            ["91350100M000100Y44（不符合统一社会信用代码的校验规则）"]
        );
    }

    #[test]
    fn operations_read_in_chinese() {
        assert_eq!(
            operation_text("cms-detached, 1024 bytes", Lang::ZhCn),
            "CMS 签名（不含原文），1 KB 数据"
        );
        assert_eq!(
            operation_text("raw, 32 bytes", Lang::En),
            "digital signature, 32 bytes of data"
        );
        assert_eq!(
            operation_text("cms, 1536 bytes", Lang::ZhCn),
            "CMS 签名（含原文），1.5 KB 数据"
        );
        assert_eq!(
            operation_text("authenticate https://etax.example", Lang::ZhCn),
            "身份认证（登录网站）"
        );
        assert_eq!(operation_text("something new", Lang::ZhCn), "something new");
    }

    #[test]
    fn pin_words() {
        let p = PinState {
            min_len: 6,
            max_len: 16,
            initialized: true,
            ..Default::default()
        };
        assert_eq!(pin_warning(p, Lang::ZhCn), None);
        let low = PinState {
            count_low: true,
            ..p
        };
        assert_eq!(pin_warning(low, Lang::ZhCn).unwrap().0, Tone::Warn);
        let last = PinState {
            final_try: true,
            ..p
        };
        assert_eq!(
            pin_warning(last, Lang::ZhCn).unwrap().1,
            Code::PinFinalTry.message(Lang::ZhCn)
        );
        assert_eq!(
            length_problem(p, Lang::ZhCn),
            "新密码长度不符合该密钥的要求：6–16 个字符，区分大小写"
        );
        let f = failure_text(Code::PinIncorrect, Some(low), Lang::ZhCn);
        assert!(f.starts_with("密码（PIN）错误\nPIN：曾输错"), "{f}");
        assert!(f.ends_with(Code::PinIncorrect.hint(Lang::ZhCn)), "{f}");
        let f = failure_text(Code::PinLocked, None, Lang::ZhCn);
        assert!(!f.contains("certray"), "no CLI hint in a dialog: {f}");
    }
}
