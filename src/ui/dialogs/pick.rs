//! 选择密钥: which key 修改密码 or 解锁 is for, when more than one is in.

use eframe::egui::{Frame, RichText, Ui, Vec2};

use crate::i18n::Lang;

use super::facts::pin_warning;
use super::widgets::{Tone, body, footer, header, primary, secondary};
use super::{Cx, Dialog, Outcome, PickThen, window_title};

/// The picker. It follows the inventory: keys pulled or put in while it is open show at once.
pub struct Pick {
    then: PickThen,
}

impl Pick {
    pub fn new(then: PickThen) -> Pick {
        Pick { then }
    }
}

impl Dialog for Pick {
    fn title(&self, lang: Lang) -> String {
        window_title(lang.pick("选择密钥", "Choose a key"), lang)
    }

    fn size(&self) -> Vec2 {
        Vec2::new(480.0, 420.0)
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        let subtitle = match self.then {
            PickThen::ChangePin => {
                lang.pick("要修改哪个密钥的密码？", "Change the PIN of which key?")
            }
            PickThen::Unlock => lang.pick("要解锁哪个密钥？", "Unlock which key?"),
        };
        header(
            ui,
            "钥",
            lang.pick("选择密钥", "Choose a key"),
            Some(subtitle),
            Tone::Info,
        );
        let mut outcome = Outcome::Open;
        footer(ui, "pick-footer", |ui| {
            if ui.add(secondary(lang.pick("取消", "Cancel"))).clicked() {
                outcome = Outcome::Close;
            }
        });
        let snap = cx.backend.snapshot();
        let mut picked = None;
        body(ui, "pick-body", |ui| {
            if snap.tokens.is_empty() {
                ui.add_space(12.0);
                ui.label(
                    RichText::new(lang.pick(
                        "未检测到密钥。请插入 USB Key 后重试。",
                        "No key found. Insert your USB key and try again.",
                    ))
                    .color(ui.visuals().weak_text_color()),
                );
                return;
            }
            for t in &snap.tokens {
                Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.horizontal(|ui| {
                        ui.vertical(|ui| {
                            ui.label(RichText::new(&t.label).strong());
                            let owner = snap
                                .certificates
                                .iter()
                                .filter(|c| c.token_id == t.id)
                                .find_map(|c| c.parsed.as_ref().ok().map(|c| c.owner()));
                            if let Some(o) = owner {
                                ui.label(o);
                            }
                            ui.label(
                                RichText::new(format!(
                                    "{} {} · {}{}",
                                    t.manufacturer,
                                    t.model,
                                    lang.pick("序列号 ", "serial "),
                                    t.serial
                                ))
                                .color(ui.visuals().weak_text_color()),
                            );
                            let line = t.pin.describe(lang);
                            let color = match pin_warning(t.pin, lang) {
                                Some((tone, _)) => tone.color(ui),
                                None => ui.visuals().weak_text_color(),
                            };
                            ui.label(RichText::new(line).color(color));
                        });
                        ui.with_layout(
                            eframe::egui::Layout::right_to_left(eframe::egui::Align::Center),
                            |ui| {
                                if ui
                                    .add(primary(lang.pick("选择", "Choose")))
                                    .accessible_name(format!(
                                        "{}{}",
                                        lang.pick("选择 ", "Choose "),
                                        t.label
                                    ))
                                    .clicked()
                                {
                                    picked = Some(t.id.clone());
                                }
                            },
                        );
                    });
                });
                ui.add_space(4.0);
            }
        });
        if let Some(id) = picked {
            cx.open.push(self.then.request(id.clone()));
            outcome = Outcome::Close;
        }
        outcome
    }
}
