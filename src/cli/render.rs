//! Human output of the CLI, in the user's language.

use super::Failure;
use super::table::Table;
use crate::bridge::wire::{
    CertificateDto, EventDto, IssuerStatusDto, IssuerVerifiedDto, ListDto, NameDto, TokenDto,
};
use crate::i18n::Lang;
use crate::model::{KeyPresence, PinState};
use crate::text::{self, status_name, usages};

/// `错误 [CODE]: message` / `提示: hint` / `详情: detail`.
pub fn failure(f: &Failure, lang: Lang) -> String {
    let mut s = format!(
        "{} [{}]: {}",
        lang.pick("错误", "error"),
        f.code,
        f.code.message(lang)
    );
    if let Some(pin) = f.pin {
        s.push_str(&format!("\n{}", pin.describe(lang)));
    }
    s.push_str(&format!(
        "\n{}: {}",
        lang.pick("提示", "hint"),
        f.code.hint(lang)
    ));
    if let Some(d) = &f.detail {
        s.push_str(&format!("\n{}: {d}", lang.pick("详情", "detail")));
    }
    s
}

fn date(rfc3339: &Option<String>) -> String {
    rfc3339
        .as_deref()
        .map(|s| s.get(..10).unwrap_or(s).to_string())
        .unwrap_or_default()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// The JSON name of a wire enum (`verified`, `ca_paths`, …).
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The issuer check in words; `None` when the certificate was not checked.
fn issuer_line(v: &Option<IssuerVerifiedDto>, lang: Lang) -> Option<String> {
    let v = v.as_ref()?;
    let source = v.issuer_source.as_ref().map(wire_name);
    Some(text::issuer_line(
        &wire_name(&v.status),
        source.as_deref(),
        lang,
    ))
}

fn issuer_name(n: &Option<NameDto>) -> String {
    n.as_ref()
        .and_then(|n| n.cn.clone().or_else(|| n.o.clone()))
        .unwrap_or_else(|| "-".into())
}

/// The `certray list` tables: tokens, then certificates.
pub fn list(list: &ListDto, lang: Lang) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} ({})\n",
        lang.pick("密钥", "Tokens"),
        list.tokens.len()
    ));
    if list.tokens.is_empty() {
        out.push_str(lang.pick(
            "未发现密钥：请插入 USB Key，或运行 certray demo 体验演示密钥。\n",
            "No token found: insert a USB key, or run `certray demo` to try the demo token.\n",
        ));
    } else {
        let mut t = Table::new(&[
            lang.pick("密钥编号", "Token ID"),
            lang.pick("名称", "Label"),
            lang.pick("厂商", "Manufacturer"),
            lang.pick("介质类型", "Model"),
            lang.pick("介质序列号", "Serial"),
            lang.pick("证书数", "Certs"),
            "PIN",
            lang.pick("驱动模块", "Module"),
        ]);
        for tok in &list.tokens {
            let n = list
                .certificates
                .iter()
                .filter(|c| c.token_id == tok.id)
                .count();
            t.row(vec![
                tok.id.clone(),
                tok.label.clone(),
                tok.manufacturer.clone(),
                tok.model.clone(),
                tok.serial.clone(),
                n.to_string(),
                PinState::from(&tok.pin).flags_text(lang),
                tok.module.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push('\n');
    out.push_str(&format!(
        "{} ({})\n",
        lang.pick("证书", "Certificates"),
        list.certificates.len()
    ));
    if list.certificates.is_empty() {
        return out;
    }
    let mut t = Table::new(&[
        lang.pick("证书编号", "Certificate ID"),
        text::HOLDER.pick(lang),
        text::ORGANIZATION.pick(lang),
        lang.pick("统一社会信用代码", "USCC"),
        lang.pick("序列号", "Serial"),
        lang.pick("颁发者", "Issuer"),
        lang.pick("有效期", "Validity"),
        lang.pick("剩余天数", "Days left"),
        lang.pick("状态", "Status"),
        lang.pick("用途", "Usage"),
        lang.pick("私钥", "Key"),
        lang.pick("密钥编号", "Token ID"),
    ]);
    for c in &list.certificates {
        // A USCC is named only when its check character is right; a claimed one that is
        // not is an unverified identifier, never shown as a USCC.
        let uscc = match (&c.ids.uscc, c.ids.uscc_valid) {
            (Some(u), _) => u.clone(),
            (None, Some(false)) => format!("- ({})", text::UNVERIFIED_ID.pick(lang)),
            (None, _) => "-".into(),
        };
        t.row(vec![
            c.id.clone(),
            c.owner.clone().unwrap_or_else(|| c.label.clone()),
            opt(&c.organization),
            uscc,
            opt(&c.serial),
            issuer_name(&c.issuer),
            if c.not_before.is_some() {
                format!("{} ~ {}", date(&c.not_before), date(&c.not_after))
            } else {
                "-".into()
            },
            c.days_left
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            status_name(&c.status, lang).to_string(),
            usages(&c.key_usage, lang),
            KeyPresence::from(c.has_private_key).text(lang).to_string(),
            c.token_id.clone(),
        ]);
    }
    out.push_str(&t.render());
    // Flagged, not hidden: a certificate whose issuer's key did not make its signature.
    let invalid = |c: &&CertificateDto| {
        c.issuer_verified
            .as_ref()
            .is_some_and(|v| v.status == IssuerStatusDto::SignatureInvalid)
    };
    for c in list.certificates.iter().filter(invalid) {
        out.push_str(&format!(
            "{}{} {}\n",
            lang.pick("注：", "Note: "),
            c.id,
            issuer_line(&c.issuer_verified, lang).unwrap_or_default()
        ));
    }
    for c in list.certificates.iter().filter(|c| c.error.is_some()) {
        out.push_str(&format!(
            "{}{} {}: {}\n",
            lang.pick("注：", "Note: "),
            c.id,
            lang.pick("无法解析", "cannot be read"),
            c.error.as_deref().unwrap_or_default()
        ));
    }
    out
}

/// `certray show`: every field, label and value, like the CA helper's certificate card.
pub fn certificate(c: &CertificateDto, token: Option<&TokenDto>, lang: Lang) -> String {
    let mut rows: Vec<(&str, String)> =
        vec![(lang.pick("证书编号", "Certificate ID"), c.id.clone())];
    let name = |n: &Option<NameDto>| {
        n.as_ref()
            .map(|n| n.dn.clone())
            .unwrap_or_else(|| "-".into())
    };
    let subject = c.subject.clone().unwrap_or_default();
    rows.push((text::HOLDER.pick(lang), opt(&c.owner)));
    if let Some(k) = &c.holder_kind {
        rows.push((
            lang.pick("持有者类型", "Holder kind"),
            text::holder_kind(k, lang).into(),
        ));
    }
    rows.extend([
        (text::ORGANIZATION.pick(lang), opt(&c.organization)),
        (lang.pick("通用名", "Common name"), opt(&subject.cn)),
        (lang.pick("部门", "Unit"), opt(&subject.ou)),
        (lang.pick("统一社会信用代码", "USCC"), opt(&c.ids.uscc)),
    ]);
    for (zh, en, v) in [
        ("纳税人识别号", "Taxpayer ID", &c.ids.taxpayer_id),
        ("组织机构代码", "Organisation code", &c.ids.org_code),
        ("工商注册号", "Business reg. no.", &c.ids.business_reg_no),
        ("身份证号", "Personal ID", &c.ids.personal_id),
        ("BJCA 用户唯一标识", "BJCA unique ID", &c.ids.bjca_unique_id),
        ("CA 用户编号", "CA user number", &c.ids.ca_user_id),
    ] {
        if v.is_some() {
            rows.push((lang.pick(zh, en), opt(v)));
        }
    }
    for u in &c.ids.unverified {
        rows.push((
            text::UNVERIFIED_ID.pick(lang),
            format!(
                "{} [{}]",
                text::unverified_id(&u.value, &u.kind, lang),
                u.source
            ),
        ));
    }
    rows.extend([
        (lang.pick("主题", "Subject"), name(&c.subject)),
        (lang.pick("颁发者", "Issuer"), name(&c.issuer)),
        (lang.pick("序列号", "Serial"), opt(&c.serial)),
        (lang.pick("生效时间", "Not before"), opt(&c.not_before)),
        (lang.pick("失效时间", "Not after"), opt(&c.not_after)),
        (
            lang.pick("剩余天数", "Days left"),
            c.days_left
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            lang.pick("状态", "Status"),
            status_name(&c.status, lang).into(),
        ),
    ]);
    if let Some(line) = issuer_line(&c.issuer_verified, lang) {
        let not_found = c
            .issuer_verified
            .as_ref()
            .is_some_and(|v| v.status == IssuerStatusDto::IssuerNotFound);
        let hint = if not_found {
            lang.pick(
                "（可在配置文件 [trust] ca_paths 中加入 CA 的证书链）",
                " (add the CA's chain to [trust] ca_paths in the config)",
            )
        } else {
            ""
        };
        rows.push((text::ISSUER_CHECK.pick(lang), format!("{line}{hint}")));
    }
    if let Some(chain) = &c.chain {
        for (i, link) in chain.certificates.iter().enumerate() {
            let value = if i == 0 {
                link.subject.clone()
            } else {
                format!(
                    "← {}{}{}{}",
                    link.subject,
                    lang.pick("（", " ("),
                    text::found_in(&wire_name(&link.source), lang),
                    lang.pick("）", ")")
                )
            };
            rows.push((if i == 0 { text::CHAIN.pick(lang) } else { "" }, value));
        }
        rows.push(("", text::chain_end(&wire_name(&chain.end), lang).into()));
    }
    if let Some(k) = &c.key {
        let mut s = k.algorithm.to_uppercase();
        if let Some(b) = k.bits {
            s.push_str(&format!(" {b}"));
        }
        if let Some(cv) = &k.curve {
            s.push_str(&format!(" ({cv})"));
        }
        rows.push((lang.pick("公钥", "Public key"), s));
    }
    rows.push((
        lang.pick("签名算法", "Signature algorithm"),
        opt(&c.signature_algorithm),
    ));
    rows.push((
        lang.pick("密钥用法", "Key usage"),
        usages(&c.key_usage, lang),
    ));
    rows.push((
        lang.pick("扩展密钥用法", "Extended key usage"),
        usages(&c.extended_key_usage, lang),
    ));
    rows.push((
        lang.pick("私钥", "Private key"),
        KeyPresence::from(c.has_private_key).text(lang).into(),
    ));
    rows.push(("SHA-256", c.sha256.clone()));
    rows.push((lang.pick("对象标签", "Object label"), c.label.clone()));
    if let Some(t) = token {
        rows.push((
            lang.pick("所在密钥", "Token"),
            format!("{} ({})", t.label, t.id),
        ));
        rows.push((
            lang.pick("介质类型", "Model"),
            format!("{} {}", t.manufacturer, t.model),
        ));
        rows.push((lang.pick("介质序列号", "Token serial"), t.serial.clone()));
        rows.push((
            lang.pick("签章图片", "Seal image"),
            lang.pick(
                if t.has_seal { "有" } else { "无" },
                if t.has_seal { "yes" } else { "no" },
            )
            .into(),
        ));
    }
    if let Some(e) = &c.error {
        rows.push((lang.pick("错误", "Error"), e.clone()));
    }
    let mut t = Table::new(&[lang.pick("项目", "Field"), lang.pick("内容", "Value")]);
    for (k, v) in rows {
        t.row(vec![k.to_string(), v]);
    }
    t.render()
}

/// One line per event for `certray watch`, time first.
pub fn event(e: &EventDto, lang: Lang) -> String {
    let now = time::OffsetDateTime::now_utc();
    let t = format!("{:02}:{:02}:{:02}Z", now.hour(), now.minute(), now.second());
    let body = match e {
        EventDto::ReaderAdded { reader } => {
            format!("{} {reader}", lang.pick("读卡器已连接", "reader added"))
        }
        EventDto::ReaderRemoved { reader } => {
            format!("{} {reader}", lang.pick("读卡器已断开", "reader removed"))
        }
        EventDto::CardInserted {
            reader,
            atr,
            card,
            hint,
        } => {
            let mut s = format!(
                "{} {reader} (ATR {atr})",
                lang.pick("卡片插入", "card inserted")
            );
            if let Some(c) = card {
                s.push_str(&format!(" {c}"));
            }
            if let Some(h) = hint {
                s.push_str(&format!(" — {h}"));
            }
            s
        }
        EventDto::CardRemoved { reader } => {
            format!("{} {reader}", lang.pick("卡片拔出", "card removed"))
        }
        EventDto::TokenAdded {
            token,
            certificates,
        } => {
            let mut s = format!(
                "{} {} {} ({} {}) · {} {}",
                lang.pick("密钥插入", "token added"),
                token.id,
                token.label,
                token.manufacturer,
                token.model,
                certificates.len(),
                lang.pick("张证书", "certificates")
            );
            for c in certificates {
                s.push_str(&format!(
                    "\n    {} {} · {} · {}",
                    c.id,
                    c.owner.clone().unwrap_or_else(|| c.label.clone()),
                    status_name(&c.status, lang),
                    c.days_left
                        .map(|d| format!(
                            "{}{d}{}",
                            lang.pick("剩余 ", ""),
                            lang.pick(" 天", " days left")
                        ))
                        .unwrap_or_else(|| "-".into()),
                ));
            }
            s
        }
        EventDto::TokenRemoved { token_id } => {
            format!("{} {token_id}", lang.pick("密钥拔出", "token removed"))
        }
        EventDto::CertificatesChanged {
            token_id,
            certificates,
        } => format!(
            "{} {token_id} · {} {}",
            lang.pick("证书变化", "certificates changed"),
            certificates.len(),
            lang.pick("张证书", "certificates")
        ),
        EventDto::PinStateChanged { token_id, pin } => {
            format!(
                "{} {token_id} · {}",
                lang.pick("PIN 状态变化", "PIN state changed"),
                PinState::from(pin).describe(lang)
            )
        }
        EventDto::Resync { missed } => format!(
            "{} ({missed})",
            lang.pick("事件积压，重新同步", "fell behind, resynchronising")
        ),
    };
    format!("[{t}] {body}")
}
