//! What an inventory update means for the desktop: [`Core`] follows the inventory's
//! snapshot and says which notices and windows each event calls for. Pure but for the expiry
//! memory's file, so it is tested with real events and no desktop.

use time::OffsetDateTime;

use crate::config::OnInsert;
use crate::core::Update;
use crate::model::{CertEntry, Event, Snapshot};
use crate::ui::dialogs::DialogRequest;
use crate::ui::notify::{ExpiryMemory, Notice};
use crate::ui::view::{self, TrayView};

/// What an update calls for, besides a new tray view.
#[derive(Debug)]
pub enum Effect {
    Notice(Notice),
    Open(DialogRequest),
}

/// What the controller knows, and what each update means (pure but for the expiry
/// memory's file).
pub struct Core {
    /// The inventory's snapshot, followed through its events with [`Snapshot::apply`].
    snapshot: Snapshot,
    on_insert: OnInsert,
    warning_days: u32,
    memory: ExpiryMemory,
}

impl Core {
    pub fn new(
        snapshot: Snapshot,
        on_insert: OnInsert,
        warning_days: u32,
        memory: ExpiryMemory,
    ) -> Core {
        Core {
            snapshot,
            on_insert,
            warning_days,
            memory,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn view(&self, o: &view::Options) -> TrayView {
        view::tray(&self.snapshot, o)
    }

    /// The expiry notices due now for every certificate in.
    pub fn tick(&mut self, now: OffsetDateTime) -> Vec<Effect> {
        let certs = self.snapshot.certificates.clone();
        self.expiry(&certs, now)
    }

    fn expiry(&mut self, certs: &[CertEntry], now: OffsetDateTime) -> Vec<Effect> {
        self.memory
            .due(certs, now, self.warning_days)
            .into_iter()
            .map(Effect::Notice)
            .collect()
    }

    /// Take in one update.
    pub fn apply(&mut self, update: Update, now: OffsetDateTime) -> Vec<Effect> {
        match update {
            Update::Event(e) => self.event(e, now),
            Update::Lagged { missed, snapshot } => {
                tracing::info!(missed, "the UI fell behind the inventory; resyncing");
                self.snapshot = Snapshot::clone(&snapshot);
                self.tick(now)
            }
            Update::Closed => Vec::new(),
        }
    }

    /// What an event calls for, judged against the snapshot before it; then the snapshot
    /// takes it in, as every holder of one does ([`Snapshot::apply`]).
    fn event(&mut self, e: Event, now: OffsetDateTime) -> Vec<Effect> {
        let out = self.effects(&e, now);
        self.snapshot.apply(&e);
        out
    }

    fn effects(&mut self, e: &Event, now: OffsetDateTime) -> Vec<Effect> {
        let mut out = Vec::new();
        match e {
            Event::TokenAdded {
                token,
                certificates,
            } => {
                let first = first_certificate(certificates, now, self.warning_days);
                if self.on_insert != OnInsert::None
                    && let Some(Ok(c)) = first.map(|e| &e.parsed)
                {
                    out.push(Effect::Notice(Notice::Inserted {
                        owner: c.owner(),
                        days_left: c.days_left(now),
                    }));
                }
                if token.pin.locked {
                    out.push(Effect::Notice(Notice::PinLocked {
                        label: token.label.clone(),
                    }));
                }
                if self.on_insert == OnInsert::Popup
                    && let Some(c) = first
                {
                    out.push(Effect::Open(DialogRequest::Card {
                        cert_id: c.id.clone(),
                    }));
                }
                out.extend(self.expiry(certificates, now));
            }
            Event::TokenRemoved { token_id } => {
                if let Some(t) = self.snapshot.token(token_id)
                    && self.on_insert != OnInsert::None
                {
                    out.push(Effect::Notice(Notice::Removed {
                        label: t.label.clone(),
                    }));
                }
            }
            Event::CertificatesChanged { certificates, .. } => {
                out.extend(self.expiry(certificates, now));
            }
            Event::PinStateChanged { token_id, pin } => {
                if let Some(t) = self.snapshot.token(token_id) {
                    let was = t.pin;
                    let label = t.label.clone();
                    if pin.locked && !was.locked {
                        out.push(Effect::Notice(Notice::PinLocked { label }));
                    } else if !pin.locked
                        && (pin.count_low || pin.final_try)
                        && !(was.count_low || was.final_try || was.locked)
                    {
                        out.push(Effect::Notice(Notice::PinCountLow { label }));
                    }
                }
            }
            Event::ReaderAdded { .. }
            | Event::ReaderRemoved { .. }
            | Event::CardInserted { .. }
            | Event::CardRemoved { .. } => {}
        }
        out
    }
}

/// The certificate that stands for a key: a signing certificate with its private key in
/// force now, else the closest to that; the token's order breaks ties.
fn first_certificate(
    certs: &[CertEntry],
    now: OffsetDateTime,
    warning_days: u32,
) -> Option<&CertEntry> {
    use crate::cert::Status;
    certs.iter().min_by_key(|e| match &e.parsed {
        Ok(c) => (
            false,
            !e.has_private_key.may_sign(),
            !c.can_sign(),
            !matches!(
                c.status(now, warning_days),
                Status::Valid | Status::Expiring
            ),
        ),
        Err(_) => (true, true, true, true),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::i18n::Lang;
    use crate::model::CertId;
    use crate::ui::icons::IconState;
    use crate::ui::view::tests::{NOW, cert, snapshot, token};

    const WD: u32 = 30;

    fn core(s: Snapshot, on_insert: OnInsert) -> Core {
        Core::new(s, on_insert, WD, ExpiryMemory::open(None))
    }

    fn notices(effects: &[Effect]) -> Vec<Notice> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn opened(effects: &[Effect]) -> Vec<CertId> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Open(DialogRequest::Card { cert_id }) => Some(cert_id.clone()),
                Effect::Open(other) => panic!("unexpected dialog {other:?}"),
                _ => None,
            })
            .collect()
    }

    fn added(id: &str, label: &str, certs: Vec<CertEntry>) -> Update {
        Update::Event(Event::TokenAdded {
            token: token(id, label, "ePass3003"),
            certificates: certs,
        })
    }

    fn state(c: &Core) -> IconState {
        view::state(
            c.snapshot(),
            &view::Options {
                now: NOW,
                warning_days: WD,
                lang: Lang::ZhCn,
                autostart: false,
                xtx: false,
                check_page: false,
            },
        )
    }

    #[test]
    fn insertion_notifies_and_pops_up_the_signing_certificate() {
        let mut c = core(Snapshot::default(), OnInsert::Popup);
        let enc = cert("t-1", "云杉", 200, &["keyEncipherment"], true);
        let ca = cert("t-1", "某某 CA", 900, &["keyCertSign"], false);
        let sign = cert("t-1", "云杉", 200, &["digitalSignature"], true);
        let fx = c.apply(added("t-1", "云杉密钥", vec![ca, enc, sign.clone()]), NOW);
        assert_eq!(
            notices(&fx),
            [Notice::Inserted {
                owner: "云杉".into(),
                days_left: 200
            }]
        );
        assert_eq!(opened(&fx), [sign.id]);
        assert_eq!(c.snapshot().tokens.len(), 1);
        assert_eq!(c.snapshot().certificates.len(), 3);
        assert_eq!(state(&c), IconState::Ok);
    }

    #[test]
    fn on_insert_notify_and_none() {
        let certs = vec![cert("t-1", "云杉", 200, &[], true)];
        let mut c = core(Snapshot::default(), OnInsert::Notify);
        let fx = c.apply(added("t-1", "云杉密钥", certs.clone()), NOW);
        assert_eq!(notices(&fx).len(), 1);
        assert!(opened(&fx).is_empty());
        let fx = c.apply(
            Update::Event(Event::TokenRemoved {
                token_id: "t-1".into(),
            }),
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::Removed {
                label: "云杉密钥".into()
            }]
        );
        assert!(c.snapshot().tokens.is_empty() && c.snapshot().certificates.is_empty());
        assert_eq!(state(&c), IconState::NoKey);

        let mut c = core(Snapshot::default(), OnInsert::None);
        let fx = c.apply(added("t-1", "云杉密钥", certs), NOW);
        assert!(fx.is_empty(), "{fx:?}");
        let fx = c.apply(
            Update::Event(Event::TokenRemoved {
                token_id: "t-1".into(),
            }),
            NOW,
        );
        assert!(fx.is_empty(), "{fx:?}");
    }

    #[test]
    fn an_expiring_key_is_announced_once() {
        let mut c = core(Snapshot::default(), OnInsert::Notify);
        let certs = vec![cert("t-1", "云杉", 20, &[], true)];
        let fx = c.apply(added("t-1", "云杉密钥", certs.clone()), NOW);
        assert_eq!(
            notices(&fx),
            [
                Notice::Inserted {
                    owner: "云杉".into(),
                    days_left: 20
                },
                Notice::Expiring {
                    owner: "云杉".into(),
                    days_left: 20
                }
            ]
        );
        assert_eq!(state(&c), IconState::Expiring);
        // Out and in again: inserted, but the expiry was told already.
        c.apply(
            Update::Event(Event::TokenRemoved {
                token_id: "t-1".into(),
            }),
            NOW,
        );
        let fx = c.apply(added("t-1", "云杉密钥", certs), NOW);
        assert_eq!(notices(&fx).len(), 1, "{fx:?}");
        // The hourly look finds the next threshold when the day comes.
        assert!(notices(&c.tick(NOW)).is_empty());
        assert_eq!(
            notices(&c.tick(NOW + time::Duration::days(14))),
            [Notice::Expiring {
                owner: "云杉".into(),
                days_left: 6
            }]
        );
    }

    #[test]
    fn the_first_look_at_start_announces_what_is_due() {
        let s = snapshot(
            vec![token("t-1", "旧密钥", "M")],
            vec![cert("t-1", "旧公司", -3, &[], true)],
        );
        let mut c = core(s, OnInsert::Popup);
        assert_eq!(
            notices(&c.tick(NOW)),
            [Notice::Expired {
                owner: "旧公司".into()
            }]
        );
        assert!(c.tick(NOW).is_empty());
    }

    #[test]
    fn pin_notices_come_when_the_state_newly_appears() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "M")],
            vec![cert("t-1", "云杉", 200, &[], true)],
        );
        let mut c = core(s, OnInsert::Popup);
        let pin = |f: &dyn Fn(&mut crate::model::PinState)| {
            let mut p = c_pin();
            f(&mut p);
            Update::Event(Event::PinStateChanged {
                token_id: "t-1".into(),
                pin: p,
            })
        };
        let low = notices(&c.apply(pin(&|p| p.count_low = true), NOW));
        assert_eq!(
            low,
            [Notice::PinCountLow {
                label: "云杉密钥".into()
            }]
        );
        // Still low, then final try: nothing new to say.
        assert!(c.apply(pin(&|p| p.count_low = true), NOW).is_empty());
        assert!(
            c.apply(
                pin(&|p| {
                    p.count_low = true;
                    p.final_try = true
                }),
                NOW
            )
            .is_empty()
        );
        let locked = notices(&c.apply(pin(&|p| p.locked = true), NOW));
        assert_eq!(
            locked,
            [Notice::PinLocked {
                label: "云杉密钥".into()
            }]
        );
        assert_eq!(state(&c), IconState::Alert);
        assert!(c.apply(pin(&|p| p.locked = true), NOW).is_empty());
        // Unlocked: quiet, and the icon is back to normal.
        assert!(c.apply(pin(&|_| {}), NOW).is_empty());
        assert_eq!(state(&c), IconState::Ok);
        // A key that is locked when it goes in.
        let mut t = token("t-2", "锁住的密钥", "M");
        t.pin.locked = true;
        let fx = c.apply(
            Update::Event(Event::TokenAdded {
                token: t,
                certificates: vec![],
            }),
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::PinLocked {
                label: "锁住的密钥".into()
            }]
        );
        assert!(opened(&fx).is_empty(), "no certificate, no card");
    }

    fn c_pin() -> crate::model::PinState {
        token("x", "x", "x").pin
    }

    #[test]
    fn certificates_changed_and_lagged_resync() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "M")],
            vec![cert("t-1", "云杉", 200, &[], true)],
        );
        let mut c = core(s, OnInsert::Popup);
        let renewed = vec![
            cert("t-1", "云杉", 200, &[], true),
            cert("t-1", "云杉新", 10, &[], true),
        ];
        let fx = c.apply(
            Update::Event(Event::CertificatesChanged {
                token_id: "t-1".into(),
                certificates: renewed,
            }),
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::Expiring {
                owner: "云杉新".into(),
                days_left: 10
            }]
        );
        assert_eq!(c.snapshot().certificates.len(), 2);
        // Lagged: the given snapshot replaces what was mirrored.
        let fresh = snapshot(
            vec![token("t-9", "别的密钥", "M")],
            vec![cert("t-9", "别的", -1, &[], true)],
        );
        let fx = c.apply(
            Update::Lagged {
                missed: 3,
                snapshot: Arc::new(fresh),
            },
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::Expired {
                owner: "别的".into()
            }]
        );
        assert_eq!(c.snapshot().tokens[0].id, "t-9");
        assert_eq!(state(&c), IconState::Alert);
    }
}
