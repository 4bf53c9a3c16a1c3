//! `certray watch`: key and card events as they happen, starting with the tokens present.

use time::OffsetDateTime;

use super::{Ctx, Failure, render};
use crate::bridge::wire::EventDto;
use crate::core::{Live, LiveOptions, Update};
use crate::model::{Event, Snapshot};

pub fn watch(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let config = ctx.config()?;
    let live = Live::start(&config, LiveOptions::watching())?;
    ctx.warn_failures(live.failures());
    let days = config.alerts.expiry_warning_days;
    let print = |e: &EventDto| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", render::event(e, ctx.lang));
        }
    };
    let print_state = |snap: &Snapshot| {
        for token in &snap.tokens {
            let e = Event::TokenAdded {
                token: token.clone(),
                certificates: snap.certificates_of(&token.id),
            };
            print(&EventDto::new(
                &e,
                OffsetDateTime::now_utc(),
                days,
                ctx.lang,
            ));
        }
    };
    let (snapshot, mut sub) = live.subscribe();
    print_state(&snapshot);
    loop {
        match sub.blocking_recv() {
            Update::Event(e) => print(&EventDto::new(
                &e,
                OffsetDateTime::now_utc(),
                days,
                ctx.lang,
            )),
            Update::Lagged { missed, snapshot } => {
                print(&EventDto::Resync { missed });
                print_state(&snapshot);
            }
            Update::Closed => return Ok(()),
        }
    }
}
