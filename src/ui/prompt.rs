//! The bridge's [`Prompt`] answered by the desktop's dialogs.

use futures_util::future::BoxFuture;

use crate::core::{ConsentAnswer, ConsentKind, PinAnswer, PinRequest, Prompt};

use super::dialogs::{DialogRequest, Reply};
use super::process::Dialogs;

/// Consent and PIN questions become dialogs. A question whose web
/// request goes away drops its receiver; the dialog sees that and closes.
pub struct UiPrompt {
    host: Dialogs,
}

impl UiPrompt {
    pub fn new(host: Dialogs) -> UiPrompt {
        UiPrompt { host }
    }
}

impl Prompt for UiPrompt {
    fn consent<'a>(&'a self, origin: &'a str) -> BoxFuture<'a, ConsentAnswer> {
        self.consent_kind(origin, ConsentKind::Certificates)
    }

    fn consent_kind<'a>(
        &'a self,
        origin: &'a str,
        kind: ConsentKind,
    ) -> BoxFuture<'a, ConsentAnswer> {
        let (reply, answer) = oneshot::async_channel();
        let (origin, reply) = (origin.to_string(), Reply::new(reply));
        let open = self.host.open(match kind {
            ConsentKind::Certificates => DialogRequest::Consent { origin, reply },
            ConsentKind::PagePin => DialogRequest::PagePinConsent { origin, reply },
        });
        Box::pin(async move {
            if !open {
                return ConsentAnswer::Unavailable;
            }
            // A dialog dropped without an answer (certray stopping) is a refusal.
            answer.await.unwrap_or(ConsentAnswer::Deny)
        })
    }

    fn pin(&self, request: PinRequest) -> BoxFuture<'_, PinAnswer> {
        let (reply, answer) = oneshot::async_channel();
        let open = self.host.open(DialogRequest::Pin {
            request,
            reply: Reply::new(reply),
        });
        Box::pin(async move {
            if !open {
                return PinAnswer::Unavailable;
            }
            answer.await.unwrap_or(PinAnswer::Cancelled)
        })
    }

    fn available(&self) -> bool {
        self.host.is_running()
    }
}
