//! The words both front ends (the CLI and the desktop) use for what certray shows, in one
//! style and one place, so a phrase cannot drift between them.
//!
//! Ground floor: plain values in, text out. The model's types use these (e.g.
//! [`crate::model::PinState::describe`]); the front ends call either.

use std::borrow::Cow;

use crate::i18n::Lang;

/// A phrase in both languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phrase {
    pub zh: &'static str,
    pub en: &'static str,
}

impl Phrase {
    pub const fn new(zh: &'static str, en: &'static str) -> Phrase {
        Phrase { zh, en }
    }

    pub fn pick(self, lang: Lang) -> &'static str {
        lang.pick(self.zh, self.en)
    }
}

/// The websites the user let use the certificates: the tray's menu item, its window, and
/// every text that points there.
pub const APPROVED_WEBSITES: Phrase = Phrase::new("已授权网站", "Approved websites");

/// Who a certificate belongs to (证书持有者), as CA helpers label it.
pub const HOLDER: Phrase = Phrase::new("持有者", "Holder");
/// The holder's organisation.
pub const ORGANIZATION: Phrase = Phrase::new("单位", "Organisation");
/// The row that says whether the issuer verified the certificate.
pub const ISSUER_CHECK: Phrase = Phrase::new("颁发者验证", "Issuer check");
/// A value that claims to be an identifier but fails its check: never shown as one.
pub const UNVERIFIED_ID: Phrase = Phrase::new("未验证的标识", "Unverified identifier");
/// The CA's own number for the holder (CFCA, MCSCA).
pub const CA_USER_ID: Phrase = Phrase::new("CA 用户编号", "CA user number");
/// The certificate and its issuers up to a root.
pub const CHAIN: Phrase = Phrase::new("证书链", "Certificate chain");

/// An issuer check's status (`verified`, `signature_invalid`, `issuer_not_found`,
/// `unsupported`) in two or three words: 颁发者已验证, 签名无效, 无法验证颁发者.
pub fn issuer_status(status: &str, lang: Lang) -> &'static str {
    match status {
        "verified" => lang.pick("颁发者已验证", "issuer verified"),
        "signature_invalid" => lang.pick("签名无效", "signature invalid"),
        _ => lang.pick("无法验证颁发者", "issuer not verified"),
    }
}

/// Where an issuer's certificate was found (`self`, `token`, `system`, `ca_paths`, `files`).
pub fn issuer_source(source: &str, lang: Lang) -> &'static str {
    match source {
        "self" => lang.pick("自签名", "self-signed"),
        "token" => lang.pick("颁发者证书在密钥中", "issuer certificate on a key"),
        "system" => lang.pick("系统 CA 证书库", "system CA store"),
        "ca_paths" => lang.pick("配置的 CA 证书", "configured CA certificates"),
        "files" => lang.pick("同时给出的证书文件", "a certificate file given with it"),
        _ => lang.pick("未知来源", "unknown source"),
    }
}

/// Where a certificate of a chain was found (`token`, `system`, `ca_paths`, `self`).
pub fn found_in(source: &str, lang: Lang) -> &'static str {
    match source {
        "token" => lang.pick("在密钥中", "on a key"),
        "system" => lang.pick("系统 CA 证书库", "system CA store"),
        "ca_paths" => lang.pick("配置的 CA 证书", "configured CA certificates"),
        "files" => lang.pick("同时给出的证书文件", "a certificate file given with it"),
        "self" => lang.pick("自签名", "self-signed"),
        _ => lang.pick("未知来源", "unknown source"),
    }
}

/// An issuer check in one line, e.g. `颁发者已验证（系统 CA 证书库）`,
/// `无法验证颁发者：未找到颁发者证书`, `签名无效：与颁发者证书不符，证书可能被篡改`.
pub fn issuer_line(status: &str, source: Option<&str>, lang: Lang) -> String {
    let name = issuer_status(status, lang);
    match status {
        "verified" => match source {
            Some(s) => format!(
                "{name}{}{}{}",
                lang.pick("（", " ("),
                issuer_source(s, lang),
                lang.pick("）", ")")
            ),
            None => name.to_string(),
        },
        "signature_invalid" => format!(
            "{name}{}",
            lang.pick(
                "：与颁发者证书不符，证书可能被篡改",
                ": it does not match the issuer's certificate; the certificate may have been altered"
            )
        ),
        "unsupported" => format!(
            "{name}{}",
            lang.pick("：不支持该签名算法", ": unsupported signature algorithm")
        ),
        _ => format!(
            "{name}{}",
            lang.pick(
                "：未找到颁发者证书",
                ": issuer certificate not found"
            )
        ),
    }
}

/// Why a chain ends where it does (`root`, `issuer_not_found`, …).
pub fn chain_end(end: &str, lang: Lang) -> &'static str {
    match end {
        "root" => lang.pick(
            "到根证书，全部验证通过",
            "up to a root, every link verified",
        ),
        "issuer_not_found" => lang.pick("上级证书未找到", "the next issuer was not found"),
        "signature_invalid" => lang.pick("签名无效", "a signature is invalid"),
        "unsupported" => lang.pick("不支持的签名算法", "unsupported signature algorithm"),
        "loop" => lang.pick("证书相互签发（循环）", "the issuers form a loop"),
        _ => lang.pick("证书链过长", "the chain is too long"),
    }
}

/// An identifier kind (`uscc`, `personal_id`, `org_code`, `taxpayer_id`, `business_reg_no`).
pub fn id_kind(kind: &str, lang: Lang) -> &'static str {
    match kind {
        "uscc" => lang.pick("统一社会信用代码", "USCC"),
        "personal_id" => lang.pick("身份证号", "personal ID"),
        "org_code" => lang.pick("组织机构代码", "organisation code"),
        "taxpayer_id" => lang.pick("纳税人识别号", "taxpayer ID"),
        "business_reg_no" => lang.pick("工商注册号", "business registration number"),
        _ => lang.pick("标识", "identifier"),
    }
}

/// An unverified identifier's value and what it failed, e.g.
/// `91350100M000100Y44（不符合统一社会信用代码的校验规则）`.
pub fn unverified_id(value: &str, kind: &str, lang: Lang) -> String {
    format!(
        "{value}{}{}{}",
        lang.pick("（不符合", " (fails the "),
        id_kind(kind, lang),
        lang.pick("的校验规则）", " check)")
    )
}

/// `person` / `organization` in words.
pub fn holder_kind(kind: &str, lang: Lang) -> &'static str {
    match kind {
        "person" => lang.pick("个人", "person"),
        "organization" => lang.pick("单位", "organisation"),
        _ => "-",
    }
}

/// The allowed PIN length, as CA helpers phrase it (`max_len` 0: no maximum).
pub fn pin_range(min_len: usize, max_len: usize, lang: Lang) -> String {
    if max_len == 0 {
        format!(
            "{min_len}{}",
            lang.pick(" 个字符以上，区分大小写", "+ characters, case sensitive")
        )
    } else {
        format!(
            "{min_len}–{max_len}{}",
            lang.pick(" 个字符，区分大小写", " characters, case sensitive")
        )
    }
}

/// What a PIN's flags mean to a person, most urgent first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinFlags {
    pub locked: bool,
    pub final_try: bool,
    pub count_low: bool,
    pub initialized: bool,
    pub to_be_changed: bool,
    /// Still the factory PIN.
    pub default_pin: bool,
    /// Tries left, when the token says.
    pub tries_left: Option<u32>,
}

/// The PIN's state in words, e.g. `正常` or `仅剩最后一次机会，需修改`.
pub fn pin_flags(p: PinFlags, lang: Lang) -> String {
    let tries = p.tries_left.filter(|_| !p.locked).map(|n| match lang {
        Lang::ZhCn => format!("剩余 {n} 次机会"),
        Lang::En => format!("{n} tries left"),
    });
    let mut flags = Vec::new();
    if p.locked {
        flags.push(lang.pick("已锁定", "locked"));
    } else if p.final_try {
        flags.push(lang.pick("仅剩最后一次机会", "final try"));
    } else if p.count_low {
        flags.push(lang.pick("曾输错，剩余次数不多", "count low"));
    }
    if !p.initialized {
        flags.push(lang.pick("未设置", "not initialized"));
    }
    if p.to_be_changed {
        flags.push(lang.pick("需修改", "must be changed"));
    }
    if p.default_pin {
        flags.push(lang.pick(
            "仍是出厂默认密码，请修改",
            "still the factory PIN, change it",
        ));
    }
    if let Some(t) = &tries {
        flags.push(t);
    }
    if flags.is_empty() {
        flags.push(lang.pick("正常", "ok"));
    }
    flags.join(lang.pick("，", ", "))
}

/// One line: state and length range, e.g. `PIN：正常 · 6–16 个字符，区分大小写`.
pub fn pin_line(flags: PinFlags, min_len: usize, max_len: usize, lang: Lang) -> String {
    format!(
        "PIN{}{} · {}",
        lang.pick("：", ": "),
        pin_flags(flags, lang),
        pin_range(min_len, max_len, lang)
    )
}

/// A certificate's status (`valid`, `expiring`, `expired`, `not_yet_valid`, else invalid).
pub fn status_name(status: &str, lang: Lang) -> &'static str {
    match status {
        "valid" => lang.pick("有效", "valid"),
        "expiring" => lang.pick("即将过期", "expiring"),
        "expired" => lang.pick("已过期", "expired"),
        "not_yet_valid" => lang.pick("尚未生效", "not yet valid"),
        _ => lang.pick("无法解析", "invalid"),
    }
}

/// Usage names in the user's language, joined; `-` for none.
pub fn usages(names: &[String], lang: Lang) -> String {
    if names.is_empty() {
        return "-".into();
    }
    let names: Vec<String> = names.iter().map(|u| usage_name(u, lang)).collect();
    names.join(lang.pick("、", ", "))
}

/// A key usage or extended key usage (RFC 5280 name) in the user's language.
pub fn usage_name(u: &str, lang: Lang) -> String {
    let zh = match u {
        "digitalSignature" => "数字签名",
        "nonRepudiation" => "不可否认",
        "keyEncipherment" => "密钥加密",
        "dataEncipherment" => "数据加密",
        "keyAgreement" => "密钥协商",
        "keyCertSign" => "签发证书",
        "cRLSign" => "签发CRL",
        "encipherOnly" => "仅加密",
        "decipherOnly" => "仅解密",
        "serverAuth" => "服务器认证",
        "clientAuth" => "客户端认证",
        "codeSigning" => "代码签名",
        "emailProtection" => "安全邮件",
        "timeStamping" => "时间戳",
        "OCSPSigning" => "OCSP签名",
        other => other,
    };
    lang.pick(zh, u).to_string()
}

/// `s` with every control character (C0, DEL, C1) and the Unicode bidirectional controls
/// written as `\u{…}`, and `\` doubled: text from a certificate, a token or a web page
/// shown on a terminal or in a table can then neither move the cursor, change colours, start
/// a new row, nor reorder what follows it.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || bidi {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` as plain text inside notification markup (the Desktop Notifications body-markup
/// subset of XML): `&`, `<`, `>`, `"` and `'` as entities, control characters escaped as
/// [`escape_control`] does.
pub fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Text a vendor library or a token wrote (an SKF device, application or container name,
/// a DEVINFO field, a PKCS#11 label): UTF-8 when it is valid UTF-8, else GB18030 (GBK's
/// superset, which Chinese vendor tools write), else UTF-8 with replacement characters.
/// For showing only: the bytes themselves are what goes back to the library.
pub fn vendor_text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(s) => s,
        None => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_text_is_utf8_or_gbk() {
        // The GBK bytes as Python's codec writes them ("签名容器".encode("gbk")).
        assert_eq!(vendor_text(b"\xc7\xa9\xc3\xfb\xc8\xdd\xc6\xf7"), "签名容器");
        assert_eq!(vendor_text(b"\xc1\xfa\xc2\xf6 GM3000"), "龙脉 GM3000");
        // Valid UTF-8 is UTF-8, Chinese included.
        assert_eq!(vendor_text("签名容器".as_bytes()), "签名容器");
        assert_eq!(vendor_text(b"SM2-SIGN"), "SM2-SIGN");
        // Neither: a lead byte with no trail byte after it shows as a replacement.
        assert_eq!(vendor_text(b"ab\xc7"), "ab\u{FFFD}");
    }

    #[test]
    fn control_characters_and_markup_are_escaped() {
        // A forged second row and terminal escapes stay on one line, visible.
        assert_eq!(
            escape_control("c-1\n2026-01-01\t\u{1b}[2Jok\\"),
            "c-1\\u{a}2026-01-01\\u{9}\\u{1b}[2Jok\\\\"
        );
        assert_eq!(escape_control("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(escape_control("北京 Key"), "北京 Key");
        assert_eq!(
            escape_markup("<b>A&B</b> \"x\" 'y'\u{7}"),
            "&lt;b&gt;A&amp;B&lt;/b&gt; &quot;x&quot; &#39;y&#39;\\u{7}"
        );
    }

    #[test]
    fn pin_words() {
        let ok = PinFlags {
            initialized: true,
            ..Default::default()
        };
        assert_eq!(
            pin_line(ok, 6, 16, Lang::ZhCn),
            "PIN：正常 · 6–16 个字符，区分大小写"
        );
        let last = PinFlags {
            final_try: true,
            count_low: true,
            initialized: true,
            to_be_changed: true,
            ..Default::default()
        };
        assert_eq!(pin_flags(last, Lang::En), "final try, must be changed");
        assert_eq!(pin_range(4, 0, Lang::En), "4+ characters, case sensitive");
    }

    #[test]
    fn issuer_words() {
        let zh = Lang::ZhCn;
        assert_eq!(
            issuer_line("verified", Some("system"), zh),
            "颁发者已验证（系统 CA 证书库）"
        );
        assert_eq!(
            issuer_line("verified", Some("self"), Lang::En),
            "issuer verified (self-signed)"
        );
        assert_eq!(
            issuer_line("issuer_not_found", None, zh),
            "无法验证颁发者：未找到颁发者证书"
        );
        assert!(issuer_line("signature_invalid", Some("token"), zh).starts_with("签名无效："));
        assert_eq!(
            issuer_status("unsupported", Lang::En),
            "issuer not verified"
        );
        assert_eq!(
            unverified_id("91350100M000100Y44", "uscc", zh),
            "91350100M000100Y44（不符合统一社会信用代码的校验规则）"
        );
        assert_eq!(
            unverified_id("123", "personal_id", Lang::En),
            "123 (fails the personal ID check)"
        );
    }
}
