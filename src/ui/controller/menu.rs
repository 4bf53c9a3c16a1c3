//! What a tray menu click does, besides re-rendering the tray.

use crate::platform::autostart;
use crate::ui::dialogs::{DialogRequest, PickThen};
use crate::ui::process::Dialogs;
use crate::ui::view::Action;

use super::Parts;
use super::settings::save_lang;

/// Flip start-at-login; the state it is in afterwards.
pub(super) fn toggle_autostart() -> bool {
    let want = !autostart::is_enabled();
    match autostart::set(want) {
        Ok(path) => tracing::info!(path = %path.display(), on = want, "autostart changed"),
        Err(e) => tracing::warn!(error = %e, "cannot change autostart"),
    }
    autostart::is_enabled()
}

/// Whether the config file turns on the BJCA-compatible endpoint.
pub(super) fn xtx_enabled(config_path: Option<&std::path::Path>) -> bool {
    crate::config::Config::load(config_path).is_ok_and(|(c, _)| c.xtx.enabled)
}

/// Flip `[xtx] enabled` in the config file (it takes effect when certray starts again); the
/// state it is in afterwards.
pub(super) fn toggle_xtx(config_path: Option<&std::path::Path>) -> bool {
    let want = !xtx_enabled(config_path);
    match config_path
        .map(std::path::Path::to_path_buf)
        .or_else(crate::config::default_path)
    {
        Some(path) => match crate::config::set_xtx_enabled(&path, want) {
            Ok(()) => {
                tracing::info!(path = %path.display(), on = want, "[xtx] enabled changed; effective at the next start")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot change [xtx] enabled")
            }
        },
        None => tracing::warn!("no config file location"),
    }
    xtx_enabled(config_path)
}

/// What a menu click does (besides re-rendering the tray).
pub(super) fn act(parts: &Parts, action: Action) {
    let backend = &parts.backend;
    match action {
        Action::Card { cert_id } => open(&parts.host, DialogRequest::Card { cert_id }),
        Action::ChangePin => open(
            &parts.host,
            DialogRequest::PickToken {
                then: PickThen::ChangePin,
            },
        ),
        Action::Unlock => open(
            &parts.host,
            DialogRequest::PickToken {
                then: PickThen::Unlock,
            },
        ),
        Action::Doctor => open(&parts.host, DialogRequest::Doctor),
        Action::Origins => open(&parts.host, DialogRequest::Origins),
        Action::CheckPage => match backend.check_page() {
            Some(url) => {
                if let Err(e) = crate::ui::open(url) {
                    tracing::warn!(error = %e, "cannot open the check page in a browser");
                }
            }
            None => tracing::info!("the bridge is not running: no check page"),
        },
        Action::Lang(lang) => {
            backend.set_lang(lang);
            if let Some(h) = &parts.host {
                h.refresh();
            }
            if let Err(e) = save_lang(backend.state_dir.as_deref(), lang) {
                tracing::warn!(error = %e, "cannot remember the language");
            }
        }
        // Done by the loop, which keeps the check marks' state.
        Action::Autostart | Action::Xtx => {}
        Action::Quit => {
            tracing::info!("quit from the tray");
            backend.request_quit();
        }
    }
}

pub(super) fn open(host: &Option<Dialogs>, request: DialogRequest) {
    match host {
        Some(h) if h.open(request) => {}
        _ => tracing::warn!("cannot show windows: the dialog was not opened"),
    }
}
