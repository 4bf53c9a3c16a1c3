//! The bridge asks for the PIN to sign: who asks, with which certificate, what is signed.

use eframe::egui::{RichText, Ui, Vec2};

use crate::core::{PinAnswer, PinRequest};
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::{PinState, Token};

use super::facts::{operation_text, pin_warning};
use super::widgets::{PinField, Tone, body, footer, header, note, primary, rows, secondary};
use super::{Cx, Dialog, DialogRequest, Outcome, Reply, window_title};

/// The PIN prompt. The answer is sent once; closed any other way it cancels.
pub struct PinPrompt {
    request: PinRequest,
    reply: Reply<PinAnswer>,
    pin: PinField,
    remember: bool,
    problem: Option<String>,
    focused: bool,
}

impl PinPrompt {
    pub fn new(request: PinRequest, reply: impl Into<Reply<PinAnswer>>) -> PinPrompt {
        PinPrompt {
            request,
            reply: reply.into(),
            pin: PinField::default(),
            remember: false,
            problem: None,
            focused: false,
        }
    }

    /// The PIN if it can be sent: not empty, within the token's length range.
    fn take_pin(&mut self, pin: Option<PinState>, lang: Lang) -> Option<PinAnswer> {
        if self.pin.is_empty() {
            self.problem = Some(lang.pick("请输入密码", "Enter the PIN").to_string());
            return None;
        }
        if let Some(p) = pin
            && !p.accepts_len(self.pin.len())
        {
            // Certainly wrong: do not spend a try on it.
            self.problem = Some(format!(
                "{}{}",
                lang.pick("密码长度应为 ", "The PIN has "),
                p.range_text(lang)
            ));
            self.pin.clear();
            return None;
        }
        let answer = PinAnswer::Pin {
            pin: self.pin.pin(),
            remember: self.remember,
        };
        self.pin.clear();
        Some(answer)
    }
}

impl Dialog for PinPrompt {
    fn title(&self, lang: Lang) -> String {
        window_title(lang.pick("输入密码", "Enter PIN"), lang)
    }

    fn size(&self) -> Vec2 {
        Vec2::new(480.0, 420.0)
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        let token: Option<Token> = cx
            .backend
            .certificate(&self.request.certificate_id)
            .and_then(|c| cx.backend.token(&c.token_id));
        let pin = token.as_ref().map(|t| t.pin);
        // The bridge never uses the final try (it cannot ask for the confirmation), and a
        // locked PIN is refused: then only 修改密码 / 解锁 help.
        let stuck = pin.is_some_and(|p| p.locked || p.final_try);
        let asker = match &self.request.origin {
            Some(o) => o.clone(),
            None => lang
                .pick("本机程序", "a program on this computer")
                .to_string(),
        };
        header(
            ui,
            "签",
            lang.pick("请输入密码以签名", "Enter your PIN to sign"),
            Some(&asker),
            Tone::Info,
        );

        let mut answer = None;
        let mut submit = false;
        footer(ui, "prompt-footer", |ui| {
            if stuck {
                let (text, request) = match pin {
                    Some(p) if p.locked => (
                        lang.pick("解锁", "Unlock"),
                        DialogRequest::Unlock {
                            token_id: token.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
                        },
                    ),
                    _ => (
                        lang.pick("修改密码", "Change PIN"),
                        DialogRequest::ChangePin {
                            token_id: token.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
                        },
                    ),
                };
                if ui.add(secondary(lang.pick("取消", "Cancel"))).clicked() {
                    answer = Some(PinAnswer::Cancelled);
                }
                if ui.add(secondary(text)).clicked() {
                    cx.open.push(request);
                    answer = Some(PinAnswer::Cancelled);
                }
                return;
            }
            if ui.add(primary(lang.pick("确定", "OK"))).clicked() {
                submit = true;
            }
            if ui.add(secondary(lang.pick("取消", "Cancel"))).clicked() {
                answer = Some(PinAnswer::Cancelled);
            }
        });

        body(ui, "prompt-body", |ui| {
            rows(ui, 90.0, |r| {
                r.row(
                    lang.pick("请求方", "Asked by"),
                    RichText::new(&asker).strong(),
                );
                r.row(lang.pick("证书", "Certificate"), self.request.owner.clone());
                r.row(
                    lang.pick("操作", "Operation"),
                    operation_text(&self.request.operation, lang),
                );
                if let Some(t) = &token {
                    r.row(
                        lang.pick("密钥", "Key"),
                        format!("{} · {}", t.label, t.serial),
                    );
                }
            });
            ui.add_space(6.0);
            if let Some((tone, text)) = pin.and_then(|p| pin_warning(p, lang)) {
                let extra = if stuck {
                    lang.pick(
                        "\n为防止密钥被锁定，网页签名已暂停。请先在“修改密码”中核对密码（或解锁），之后即可继续签名。",
                        "\nTo keep the key from locking, web signing is paused. Check the PIN under Change PIN (or unlock the key) first.",
                    )
                } else {
                    ""
                };
                note(ui, tone, &format!("{text}{extra}"));
                ui.add_space(6.0);
            }
            if stuck {
                return;
            }
            let r = self.pin.show(
                ui,
                lang.pick("密码（PIN）", "PIN"),
                lang.pick("USB Key 的用户密码", "the key's user PIN"),
            );
            if !self.focused {
                r.request_focus();
                self.focused = true;
            }
            if r.lost_focus() && ui.input(|i| i.key_pressed(eframe::egui::Key::Enter)) {
                submit = true;
            }
            ui.add_space(4.0);
            let remember = match self.request.origin {
                Some(_) => lang.pick(
                    "本次运行期间记住（此网站）",
                    "Remember while certray runs (this website)",
                ),
                None => lang.pick(
                    "本次运行期间记住（此程序）",
                    "Remember while certray runs (this program)",
                ),
            };
            ui.checkbox(&mut self.remember, remember);
            ui.label(
                RichText::new(lang.pick(
                    "勾选后，证书助手退出前再次用此证书签名时不再询问密码。",
                    "When ticked, signing again with this certificate does not ask until certray quits.",
                ))
                .color(ui.visuals().weak_text_color()),
            );
            if token.is_none() {
                ui.add_space(6.0);
                note(ui, Tone::Warn, Code::TokenRemoved.message(lang));
            }
            if let Some(p) = &self.problem {
                ui.add_space(6.0);
                note(ui, Tone::Bad, p);
            }
        });

        if submit && answer.is_none() {
            answer = self.take_pin(pin, lang);
            if answer.is_none() {
                self.focused = false;
            }
        }
        match answer {
            Some(a) => {
                self.reply.send(a);
                Outcome::Close
            }
            None => Outcome::Open,
        }
    }

    fn cancel(&mut self) {
        self.reply.send(PinAnswer::Cancelled);
    }

    fn never_shown(&mut self) {
        self.reply.send(PinAnswer::Unavailable);
    }

    fn alive(&self) -> bool {
        self.reply.waiting()
    }

    fn urgent(&self) -> bool {
        true
    }
}
