//! 修改密码 and 解锁: the current PIN (or the admin PIN / unlock code) and the new PIN twice.
//!
//! A USB key locks after a few wrong PINs, so the dialog shows where the PIN stands before
//! anything is typed, checks everything it can before the token is asked (lengths,
//! mismatch), asks for an explicit confirmation before the final try, and offers 解锁
//! instead of fields when the PIN is locked. The token is asked on a worker thread; the
//! dialog shows a spinner until the answer comes.

use eframe::egui::{self, Ui, Vec2};

use crate::error::Code;
use crate::i18n::Lang;
use crate::model::PinState;
use crate::model::TokenId;
use crate::ui::backend::{Refusal, Services};
use crate::ui::notify::Notice;

use super::facts::{failure_text, length_problem, pin_warning};
use super::widgets::{
    Job, PinField, Poll, Tone, body, busy, footer, header, note, primary, secondary,
};
use super::{Cx, Dialog, DialogRequest, Outcome, window_title};

/// Which PIN command the dialog runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAction {
    /// 修改密码: current PIN, new PIN.
    Change,
    /// 解锁: admin PIN or unlock code, new PIN.
    Unlock,
}

/// A field of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Old,
    New,
    Confirm,
}

/// What is wrong with the input, found before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    OldEmpty,
    NewEmpty,
    Length,
    Mismatch,
    /// The final try is not confirmed.
    FinalTry,
}

impl Problem {
    /// The field to put the cursor in.
    pub fn field(self) -> Field {
        match self {
            Problem::OldEmpty | Problem::FinalTry => Field::Old,
            Problem::NewEmpty | Problem::Length => Field::New,
            Problem::Mismatch => Field::Confirm,
        }
    }

    pub fn text(self, action: PinAction, range: PinState, lang: Lang) -> String {
        match self {
            Problem::OldEmpty => match action {
                PinAction::Change => lang.pick("请输入当前密码", "Enter the current PIN"),
                PinAction::Unlock => lang.pick(
                    "请输入管理员密码或解锁授权码",
                    "Enter the admin PIN or unlock code",
                ),
            }
            .to_string(),
            Problem::NewEmpty => lang.pick("请输入新密码", "Enter the new PIN").to_string(),
            Problem::Length => length_problem(range, lang),
            Problem::Mismatch => Code::PinMismatch.message(lang).to_string(),
            Problem::FinalTry => lang
                .pick(
                    "请先勾选确认：只剩最后一次机会",
                    "Confirm first that you want to use the final try",
                )
                .to_string(),
        }
    }
}

/// Check the input before the token is asked. `range` is the user PIN's (the new PIN's)
/// length range; lengths are in bytes, as the token counts them.
pub fn check(
    old_len: usize,
    new: &str,
    confirm: &str,
    range: PinState,
    final_try_confirmed: Option<bool>,
) -> Result<(), Problem> {
    if old_len == 0 {
        Err(Problem::OldEmpty)
    } else if new.is_empty() {
        Err(Problem::NewEmpty)
    } else if !range.accepts_len(new.len()) {
        Err(Problem::Length)
    } else if new != confirm {
        Err(Problem::Mismatch)
    } else if final_try_confirmed == Some(false) {
        Err(Problem::FinalTry)
    } else {
        Ok(())
    }
}

type Answer = Result<PinState, Refusal>;

/// The 修改密码 / 解锁 dialog.
pub struct PinDialog {
    action: PinAction,
    token_id: TokenId,
    /// The token's label, model and serial (kept for when the key is pulled).
    label: String,
    description: String,
    /// The user PIN: the new PIN's length range, and what 修改密码 risks.
    user: PinState,
    /// The admin PIN: what 解锁 risks.
    so: PinState,
    refresh: Option<Job<Answer>>,
    old: PinField,
    new: PinField,
    confirm: PinField,
    use_final_try: bool,
    problem: Option<Problem>,
    /// The token's refusal: code and the PIN state it reported.
    failure: Option<(Code, Option<PinState>)>,
    running: Option<Job<Answer>>,
    focus: Option<Field>,
    started: bool,
}

impl PinDialog {
    /// The dialog for a token; `None` when the token is not there.
    pub fn new(backend: &dyn Services, token_id: &TokenId, action: PinAction) -> Option<PinDialog> {
        let t = backend.token(token_id)?;
        Some(PinDialog {
            action,
            token_id: t.id.clone(),
            description: format!(
                "{} · {} {} · {}",
                t.label, t.manufacturer, t.model, t.serial
            ),
            label: t.label.clone(),
            user: t.pin,
            so: t.so_pin,
            refresh: None,
            old: PinField::default(),
            new: PinField::default(),
            confirm: PinField::default(),
            use_final_try: false,
            problem: None,
            failure: None,
            running: None,
            focus: Some(Field::Old),
            started: false,
        })
    }

    /// The PIN whose tries the command spends.
    fn at_stake(&self) -> PinState {
        match self.action {
            PinAction::Change => self.user,
            PinAction::Unlock => self.so,
        }
    }

    fn clear(&mut self) {
        self.old.clear();
        self.new.clear();
        self.confirm.clear();
    }

    fn submit(&mut self, ctx: &egui::Context, cx: &Cx<'_>) {
        let stake = self.at_stake();
        let confirmed = stake.final_try.then_some(self.use_final_try);
        if let Err(p) = check(
            self.old.len(),
            self.new.as_str(),
            self.confirm.as_str(),
            self.user,
            confirmed,
        ) {
            self.problem = Some(p);
            self.focus = Some(p.field());
            return;
        }
        self.problem = None;
        self.failure = None;
        // A fresher answer comes with the command's own.
        self.refresh = None;
        let (old, new) = (self.old.pin(), self.new.pin());
        self.clear();
        let force = stake.final_try && self.use_final_try;
        let backend = cx.backend.clone();
        let token = self.token_id.clone();
        let action = self.action;
        self.running = Some(Job::spawn(ctx, "pin-command", move || match action {
            PinAction::Change => backend.change_pin(&token, old, new, force),
            PinAction::Unlock => backend.unlock(&token, old, new, force),
        }));
    }

    /// Take in the worker's answers; `Close` on success.
    fn poll(&mut self, ctx: &egui::Context, cx: &Cx<'_>) -> Outcome {
        if let Some(job) = &self.refresh {
            match job.poll(ctx) {
                Poll::Pending => {}
                Poll::Done(r) => {
                    if let Ok(p) = r {
                        self.user = p;
                    }
                    self.refresh = None;
                }
                Poll::Lost => self.refresh = None,
            }
        }
        let Some(job) = &self.running else {
            return Outcome::Open;
        };
        let answer = match job.poll(ctx) {
            Poll::Pending => return Outcome::Open,
            Poll::Done(a) => a,
            Poll::Lost => {
                self.running = None;
                self.failure = Some((Code::Internal, None));
                return Outcome::Open;
            }
        };
        self.running = None;
        self.use_final_try = false;
        match answer {
            Ok(user) => {
                self.user = user;
                let label = self.label.clone();
                cx.notifier.send(match self.action {
                    PinAction::Change => Notice::PinChanged { label },
                    PinAction::Unlock => Notice::PinUnlocked { label },
                });
                Outcome::Close
            }
            Err(e) => {
                let code = e.code();
                let state = e.pin_state();
                if let Some(p) = state {
                    // Login failures report the PIN that was tried: the admin PIN for 解锁.
                    match (self.action, code) {
                        (
                            PinAction::Unlock,
                            Code::PinIncorrect | Code::PinLocked | Code::PinFinalTry,
                        ) => self.so = p,
                        _ => self.user = p,
                    }
                }
                tracing::info!(code = %code, "PIN command refused");
                self.failure = Some((code, state));
                self.focus = Some(Field::Old);
                Outcome::Open
            }
        }
    }

    /// The state line and the warning before the fields.
    fn state_notes(&self, ui: &mut Ui, lang: Lang) {
        match self.action {
            PinAction::Change => {
                if let Some((tone, text)) = pin_warning(self.user, lang) {
                    note(ui, tone, &text);
                } else {
                    ui.label(
                        egui::RichText::new(self.user.describe(lang))
                            .color(ui.visuals().weak_text_color()),
                    );
                }
            }
            PinAction::Unlock => {
                ui.label(
                    egui::RichText::new(format!(
                        "{}{}",
                        lang.pick("用户", "User "),
                        self.user.describe(lang)
                    ))
                    .color(ui.visuals().weak_text_color()),
                );
                if let Some((tone, text)) = pin_warning(self.so, lang) {
                    let who = lang.pick("管理员密码：", "Admin PIN: ");
                    note(ui, tone, &format!("{who}{text}"));
                }
            }
        }
    }
}

impl Dialog for PinDialog {
    fn title(&self, lang: Lang) -> String {
        window_title(
            match self.action {
                PinAction::Change => lang.pick("修改密码", "Change PIN"),
                PinAction::Unlock => lang.pick("解锁", "Unlock PIN"),
            },
            lang,
        )
    }

    fn size(&self) -> Vec2 {
        Vec2::new(460.0, 450.0)
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        let ctx = ui.ctx().clone();
        if !self.started {
            // The snapshot's flags may be old: read them again (off the frame).
            self.started = true;
            let backend = cx.backend.clone();
            let token = self.token_id.clone();
            self.refresh = Some(Job::spawn(&ctx, "pin-state", move || {
                backend.pin_state(&token)
            }));
        }
        if self.poll(&ctx, cx) == Outcome::Close {
            return Outcome::Close;
        }
        // The admin PIN's flags come from the scan and from the token's refusals only (the
        // inventory re-reads the user PIN's alone), so `self.so` is not refreshed from here.
        let present = cx.backend.token(&self.token_id);
        let running = self.running.is_some();
        let stake = self.at_stake();
        // Nothing to type when the PIN at stake is locked (or the key has gone).
        let blocked = present.is_none() || stake.locked;

        let (icon, title) = match self.action {
            PinAction::Change => ("密", lang.pick("修改密码", "Change PIN")),
            PinAction::Unlock => ("解", lang.pick("解锁密码", "Unlock PIN")),
        };
        header(ui, icon, title, Some(&self.description), Tone::Info);

        let mut outcome = Outcome::Open;
        let mut submit = false;
        footer(ui, "pin-footer", |ui| {
            if blocked {
                let unlock_offered = present.is_some() && self.action == PinAction::Change;
                if unlock_offered {
                    if ui.add(primary(lang.pick("解锁", "Unlock"))).clicked() {
                        cx.open.push(DialogRequest::Unlock {
                            token_id: self.token_id.clone(),
                        });
                        outcome = Outcome::Close;
                    }
                    if ui.add(secondary(lang.pick("关闭", "Close"))).clicked() {
                        outcome = Outcome::Close;
                    }
                } else if ui.add(primary(lang.pick("关闭", "Close"))).clicked() {
                    outcome = Outcome::Close;
                }
                return;
            }
            let can_submit = !running && (!stake.final_try || self.use_final_try);
            if ui
                .add_enabled(can_submit, primary(lang.pick("确定", "OK")))
                .clicked()
            {
                submit = true;
            }
            if ui
                .add_enabled(!running, secondary(lang.pick("取消", "Cancel")))
                .clicked()
            {
                outcome = Outcome::Close;
            }
        });

        body(ui, "pin-body", |ui| {
            if present.is_none() {
                note(
                    ui,
                    Tone::Warn,
                    &format!(
                        "{}\n{}",
                        Code::TokenRemoved.message(lang),
                        Code::TokenRemoved.hint(lang)
                    ),
                );
                return;
            }
            self.state_notes(ui, lang);
            if stake.locked {
                ui.add_space(6.0);
                let text = match self.action {
                    PinAction::Change => lang.pick(
                        "密码已锁定，无法修改。请使用管理员密码或发证机构（CA）提供的解锁授权码解锁。",
                        "The PIN is locked and cannot be changed. Unlock it with the admin PIN or the unlock code from your CA.",
                    ),
                    PinAction::Unlock => lang.pick(
                        "管理员密码已锁定，无法在本机解锁。请联系发证机构（CA）。",
                        "The admin PIN is locked; the key cannot be unlocked here. Contact your CA.",
                    ),
                };
                note(ui, Tone::Bad, text);
                return;
            }
            ui.add_space(8.0);
            let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
            ui.add_enabled_ui(!running, |ui| {
                let (old_label, old_hint) = match self.action {
                    PinAction::Change => (
                        lang.pick("当前密码", "Current PIN"),
                        lang.pick("USB Key 的用户密码", "the key's user PIN"),
                    ),
                    PinAction::Unlock => (
                        lang.pick("管理员密码/解锁授权码", "Admin PIN / unlock code"),
                        lang.pick(
                            "管理员密码（SO PIN）或 CA 提供的解锁码",
                            "the SO PIN or the code from your CA",
                        ),
                    ),
                };
                let range = self.user.range_text(lang);
                let r_old = self.old.show(ui, old_label, old_hint);
                ui.add_space(4.0);
                let r_new = self.new.show(
                    ui,
                    lang.pick("新密码", "New PIN"),
                    lang.pick("输入新密码", "the new PIN"),
                );
                ui.label(
                    egui::RichText::new(format!(
                        "{}{range}",
                        lang.pick("新密码要求：", "New PIN: ")
                    ))
                    .color(ui.visuals().weak_text_color()),
                );
                ui.add_space(4.0);
                let r_confirm = self.confirm.show(
                    ui,
                    lang.pick("确认新密码", "Confirm new PIN"),
                    lang.pick("再输入一次新密码", "the new PIN again"),
                );
                if stake.final_try {
                    ui.add_space(6.0);
                    ui.checkbox(
                        &mut self.use_final_try,
                        lang.pick(
                            "我已核对密码无误，使用最后一次机会",
                            "I have checked the PIN: use the final try",
                        ),
                    );
                }
                // Enter moves on to an empty next field, else submits.
                if enter {
                    if r_old.lost_focus() {
                        if self.new.is_empty() {
                            self.focus = Some(Field::New);
                        } else {
                            submit = true;
                        }
                    } else if r_new.lost_focus() {
                        if self.confirm.is_empty() {
                            self.focus = Some(Field::Confirm);
                        } else {
                            submit = true;
                        }
                    } else if r_confirm.lost_focus() {
                        submit = true;
                    }
                }
                if !running && let Some(f) = self.focus.take() {
                    match f {
                        Field::Old => r_old.request_focus(),
                        Field::New => r_new.request_focus(),
                        Field::Confirm => r_confirm.request_focus(),
                    }
                }
            });
            ui.add_space(8.0);
            if let Some(p) = self.problem {
                note(ui, Tone::Bad, &p.text(self.action, self.user, lang));
            }
            if let Some((code, state)) = self.failure {
                note(ui, Tone::Bad, &failure_text(code, state, lang));
            }
            if running {
                busy(
                    ui,
                    lang.pick(
                        "正在与密钥通信，请勿拔出密钥…",
                        "Talking to the key; do not pull it out…",
                    ),
                );
            }
        });

        if submit && !blocked && !running {
            self.submit(&ctx, cx);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: PinState = PinState {
        min_len: 6,
        max_len: 16,
        initialized: true,
        count_low: false,
        final_try: false,
        locked: false,
        to_be_changed: false,
        default_pin: false,
        tries_left: None,
    };

    #[test]
    fn input_is_checked_before_the_token_is_asked() {
        assert_eq!(
            check(0, "654321", "654321", RANGE, None),
            Err(Problem::OldEmpty)
        );
        assert_eq!(check(6, "", "", RANGE, None), Err(Problem::NewEmpty));
        assert_eq!(
            check(6, "12345", "12345", RANGE, None),
            Err(Problem::Length)
        );
        assert_eq!(
            check(6, &"1".repeat(17), &"1".repeat(17), RANGE, None),
            Err(Problem::Length)
        );
        assert_eq!(
            check(6, "654321", "654320", RANGE, None),
            Err(Problem::Mismatch)
        );
        assert_eq!(
            check(6, "654321", "654321", RANGE, Some(false)),
            Err(Problem::FinalTry)
        );
        assert_eq!(check(6, "654321", "654321", RANGE, Some(true)), Ok(()));
        assert_eq!(check(6, "654321", "654321", RANGE, None), Ok(()));
        assert_eq!(Problem::Mismatch.field(), Field::Confirm);
        assert_eq!(
            Problem::Length.text(PinAction::Change, RANGE, Lang::ZhCn),
            "新密码长度不符合该密钥的要求：6–16 个字符，区分大小写"
        );
    }
}
