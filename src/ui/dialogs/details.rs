//! 查看证书: every field of a certificate, its Chinese identifiers and fingerprints, each
//! selectable with a copy button, for the times a CA's support line asks for one.

use eframe::egui::{RichText, Ui, Vec2};
use time::OffsetDateTime;

use crate::cert::{Certificate, KeyAlgorithm, Name};
use crate::i18n::Lang;
use crate::model::CertId;
use crate::model::Token;
use crate::model::{CertEntry, KeyPresence};
use crate::ui::backend::Services;

use super::facts::{
    date_time, days_text, fingerprint, issuer_text, serial_text, status_tone, unverified_texts,
    usage_text, uscc_text,
};
use super::widgets::{Tone, body, enter_unfocused, footer, header, note, primary, rows, secondary};
use super::{Cx, Dialog, Outcome, window_title};
use crate::model::{ChainEnd, IssuerCheck};
use crate::text;

/// The details window.
pub struct Details {
    cert_id: CertId,
    /// Computed once: hashing is cheap but not free every frame.
    sha1: String,
    copied: Option<String>,
}

impl Details {
    /// The details of a certificate; `None` when it is not there.
    pub fn new(backend: &dyn Services, cert_id: &CertId) -> Option<Details> {
        let entry = backend.certificate(cert_id)?;
        Some(Details {
            cert_id: entry.id.clone(),
            sha1: sha1_hex(&entry.der),
            copied: None,
        })
    }
}

fn sha1_hex(der: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(der))
}

/// One section of rows.
struct Section {
    title: String,
    rows: Vec<(String, String)>,
}

/// Every row the window shows, in order (also what 复制全部 copies).
fn sections(
    e: &CertEntry,
    token: Option<&Token>,
    sha1: &str,
    now: OffsetDateTime,
    warning_days: u32,
    lang: Lang,
) -> Vec<Section> {
    let mut out = Vec::new();
    let mut add = |title: &str, rows: Vec<(&str, Option<String>)>| {
        let rows: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
        if !rows.is_empty() {
            out.push(Section {
                title: title.to_string(),
                rows,
            });
        }
    };
    match &e.parsed {
        Ok(c) => {
            let holder = c.holder();
            add(
                lang.pick("基本信息", "General"),
                vec![
                    (text::HOLDER.pick(lang), Some(holder.name)),
                    (
                        lang.pick("持有者类型", "Holder kind"),
                        holder
                            .kind
                            .map(|k| text::holder_kind(k.as_str(), lang).to_string()),
                    ),
                    (text::ORGANIZATION.pick(lang), holder.organization),
                    (
                        lang.pick("证书编号", "Certificate ID"),
                        Some(e.id.to_string()),
                    ),
                    (
                        lang.pick("序列号", "Serial number"),
                        Some(serial_text(&c.serial)),
                    ),
                    (
                        lang.pick("签名算法", "Signature algorithm"),
                        Some(c.signature_algorithm.clone()),
                    ),
                    (
                        lang.pick("生效时间", "Not before"),
                        Some(date_time(c.validity.not_before)),
                    ),
                    (
                        lang.pick("失效时间", "Not after"),
                        Some(date_time(c.validity.not_after)),
                    ),
                    (
                        lang.pick("状态", "Status"),
                        Some(days_text(c, now, warning_days, lang)),
                    ),
                    (
                        text::ISSUER_CHECK.pick(lang),
                        Some(issuer_text(e.issuer.as_ref(), lang).0),
                    ),
                ],
            );
            add(
                lang.pick("主题（持有者）", "Subject"),
                name_rows(&c.subject, lang),
            );
            add(lang.pick("颁发者", "Issuer"), name_rows(&c.issuer, lang));
            if let Some(check) = &e.issuer {
                add(text::CHAIN.pick(lang), chain_rows(check, lang));
            }
            let unverified = unverified_texts(c, lang)
                .into_iter()
                .map(|u| (text::UNVERIFIED_ID.pick(lang), Some(u)));
            add(
                lang.pick("身份标识", "Identifiers"),
                vec![
                    (
                        lang.pick("统一社会信用代码", "USCC"),
                        uscc_text(c, lang).map(|(t, _)| t),
                    ),
                    (
                        lang.pick("纳税人识别号", "Taxpayer ID"),
                        c.ids.taxpayer_id.clone(),
                    ),
                    (
                        lang.pick("组织机构代码", "Organisation code"),
                        c.ids.org_code.clone(),
                    ),
                    (
                        lang.pick("工商注册号", "Business reg. no."),
                        c.ids.business_reg_no.clone(),
                    ),
                    (
                        lang.pick("身份证号", "Personal ID"),
                        c.ids.personal_id.clone(),
                    ),
                    (
                        lang.pick("BJCA 用户唯一标识", "BJCA unique ID"),
                        c.ids.bjca_unique_id.clone(),
                    ),
                    (text::CA_USER_ID.pick(lang), c.ids.ca_user_id.clone()),
                ]
                .into_iter()
                .chain(unverified)
                .collect(),
            );
            add(
                lang.pick("公钥与用途", "Key and usage"),
                key_rows(c, e, lang),
            );
        }
        Err(err) => add(
            lang.pick("基本信息", "General"),
            vec![
                (
                    lang.pick("证书编号", "Certificate ID"),
                    Some(e.id.to_string()),
                ),
                (lang.pick("错误", "Error"), Some(err.to_string())),
            ],
        ),
    }
    add(
        lang.pick("指纹", "Fingerprints"),
        vec![
            ("SHA-256", Some(fingerprint(&e.sha256))),
            ("SHA-1", Some(fingerprint(sha1))),
        ],
    );
    add(
        lang.pick("存储位置", "Stored on"),
        vec![
            (
                lang.pick("所在密钥", "Key"),
                token.map(|t| format!("{} ({})", t.label, t.id)),
            ),
            (
                lang.pick("介质类型", "Key model"),
                token.map(|t| format!("{} {}", t.manufacturer, t.model)),
            ),
            (
                lang.pick("介质序列号", "Key serial"),
                token.map(|t| t.serial.clone()),
            ),
            (lang.pick("对象标签", "Object label"), Some(e.label.clone())),
        ],
    );
    out
}

/// The chain, the certificate first: each certificate's subject and where it was found,
/// then why the chain ends where it does.
fn chain_rows(check: &IssuerCheck, lang: Lang) -> Vec<(&'static str, Option<String>)> {
    let n = check.chain.len();
    let mut rows: Vec<(&'static str, Option<String>)> = check
        .chain
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let label = if i == 0 {
                lang.pick("本证书", "This certificate")
            } else if i + 1 == n && check.chain_end == ChainEnd::Root {
                lang.pick("根证书", "Root")
            } else {
                lang.pick("上级 CA", "Issuing CA")
            };
            let value = if i == 0 {
                l.cert.subject.clone()
            } else {
                format!(
                    "{}{}{}{}",
                    l.cert.subject,
                    lang.pick("（", " ("),
                    text::found_in(l.cert.source.as_str(), lang),
                    lang.pick("）", ")")
                )
            };
            (label, Some(value))
        })
        .collect();
    rows.push((
        lang.pick("验证结果", "Result"),
        Some(text::chain_end(check.chain_end.as_str(), lang).to_string()),
    ));
    rows
}

fn name_rows(n: &Name, lang: Lang) -> Vec<(&'static str, Option<String>)> {
    vec![
        (lang.pick("通用名 (CN)", "Common name (CN)"), n.cn.clone()),
        (lang.pick("单位 (O)", "Organisation (O)"), n.o.clone()),
        (lang.pick("部门 (OU)", "Unit (OU)"), n.ou.clone()),
        (lang.pick("城市 (L)", "Locality (L)"), n.l.clone()),
        (lang.pick("省份 (ST)", "State (ST)"), n.st.clone()),
        (lang.pick("国家 (C)", "Country (C)"), n.c.clone()),
        ("serialNumber", n.serial_number.clone()),
        ("organizationIdentifier", n.organization_identifier.clone()),
        (lang.pick("完整名称 (DN)", "Full DN"), Some(n.dn.clone())),
    ]
}

fn key_rows(c: &Certificate, e: &CertEntry, lang: Lang) -> Vec<(&'static str, Option<String>)> {
    let algorithm = match c.key.algorithm {
        KeyAlgorithm::Rsa => "RSA".to_string(),
        KeyAlgorithm::Ec => "ECC".to_string(),
        KeyAlgorithm::Sm2 => lang.pick("SM2（国密）", "SM2").to_string(),
        KeyAlgorithm::Other => c.key.oid.clone().unwrap_or_else(|| "?".into()),
    };
    vec![
        (lang.pick("公钥算法", "Key algorithm"), Some(algorithm)),
        (
            lang.pick("密钥长度", "Key size"),
            c.key
                .bits
                .map(|b| format!("{b} {}", lang.pick("位", "bits"))),
        ),
        (lang.pick("曲线", "Curve"), c.key.curve.clone()),
        (lang.pick("用途", "Usage"), Some(usage_text(c, lang))),
        (
            lang.pick("私钥", "Private key"),
            Some(match e.has_private_key {
                KeyPresence::Yes => lang.pick("有（可用于签名）", "yes").to_string(),
                KeyPresence::UnknownUntilLogin => lang
                    .pick(
                        "登录后确认（输入密码签名时查找）",
                        "confirmed after login (looked up when you sign with the PIN)",
                    )
                    .to_string(),
                k => k.text(lang).to_string(),
            }),
        ),
    ]
}

fn as_text(sections: &[Section]) -> String {
    let mut s = String::new();
    for sec in sections {
        s.push_str(&format!("[{}]\n", sec.title));
        for (k, v) in &sec.rows {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s.push('\n');
    }
    s
}

impl Dialog for Details {
    fn title(&self, lang: Lang) -> String {
        window_title(lang.pick("查看证书", "Certificate details"), lang)
    }

    fn size(&self) -> Vec2 {
        Vec2::new(660.0, 620.0)
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        let snap = cx.backend.snapshot();
        let Some(e) = snap.certificate(&self.cert_id) else {
            header(
                ui,
                "详",
                lang.pick("证书已不在", "Certificate gone"),
                None,
                Tone::Neutral,
            );
            let close = footer(ui, "details-footer", |ui| {
                ui.add(primary(lang.pick("关闭", "Close"))).clicked()
            });
            body(ui, "details-body", |ui| {
                note(
                    ui,
                    Tone::Warn,
                    lang.pick(
                        "这张证书已不在密钥中（密钥可能已拔出）。请重新插入密钥。",
                        "This certificate is no longer on the key (it may have been pulled out). Insert the key again.",
                    ),
                );
            });
            return if close || enter_unfocused(ui) {
                Outcome::Close
            } else {
                Outcome::Open
            };
        };
        let token = snap.token(&e.token_id);
        let now = OffsetDateTime::now_utc();
        let warning_days = cx.backend.warning_days();
        let all = sections(e, token, &self.sha1, now, warning_days, lang);

        let (title, tone) = match &e.parsed {
            Ok(c) => (c.owner(), status_tone(c.status(now, warning_days))),
            Err(_) => (e.label.clone(), Tone::Bad),
        };
        header(
            ui,
            "详",
            &title,
            Some(lang.pick("证书详细信息", "Certificate details")),
            tone,
        );

        let mut outcome = Outcome::Open;
        footer(ui, "details-footer", |ui| {
            if ui.add(primary(lang.pick("关闭", "Close"))).clicked() {
                outcome = Outcome::Close;
            }
            if ui
                .add(secondary(lang.pick("复制全部", "Copy all")))
                .clicked()
            {
                ui.ctx().copy_text(as_text(&all));
                self.copied = Some(lang.pick("全部内容", "everything").to_string());
            }
            if let Some(what) = &self.copied {
                ui.label(
                    RichText::new(format!("{}{what}", lang.pick("已复制：", "Copied: ")))
                        .color(Tone::Ok.color(ui)),
                );
            }
        });

        body(ui, "details-body", |ui| {
            for (i, sec) in all.iter().enumerate() {
                ui.add_space(if i == 0 { 0.0 } else { 10.0 });
                ui.label(RichText::new(&sec.title).strong().size(15.0));
                ui.add_space(2.0);
                rows(ui, 150.0, |r| {
                    for (k, v) in &sec.rows {
                        let mono = v.len() > 24 && v.is_ascii();
                        let text = if mono {
                            RichText::new(v).monospace()
                        } else {
                            RichText::new(v)
                        };
                        let copy = r.row_with(k, text, 48.0, |ui| {
                            ui.small_button(lang.pick("复制", "Copy"))
                                .accessible_name(format!("{}{k}", lang.pick("复制", "Copy ")))
                                .clicked()
                        });
                        if copy {
                            r.ui.ctx().copy_text(v.clone());
                            self.copied = Some(k.clone());
                        }
                    }
                });
            }
        });
        if enter_unfocused(ui) {
            outcome = Outcome::Close;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_nothing() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
