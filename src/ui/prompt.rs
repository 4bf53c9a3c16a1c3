//! The bridge's [`Prompt`] answered by the desktop's dialogs.

use futures_util::future::BoxFuture;

use crate::bridge::{ConsentAnswer, PinAnswer, PinRequest, Prompt};

use super::dialogs::DialogRequest;
use super::host::HostHandle;

/// Consent and PIN questions become dialogs on the dialog host. A question whose web
/// request goes away drops its receiver; the dialog sees that and closes.
pub struct UiPrompt {
    host: HostHandle,
}

impl UiPrompt {
    pub fn new(host: HostHandle) -> UiPrompt {
        UiPrompt { host }
    }
}

impl Prompt for UiPrompt {
    fn consent<'a>(&'a self, origin: &'a str) -> BoxFuture<'a, ConsentAnswer> {
        let (reply, answer) = oneshot::async_channel();
        let open = self.host.open(DialogRequest::Consent {
            origin: origin.to_string(),
            reply,
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
        let open = self.host.open(DialogRequest::Pin { request, reply });
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
