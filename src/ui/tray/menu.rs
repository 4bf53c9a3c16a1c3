//! A [`TrayView`]'s menu as muda items.
//!
//! [`TrayView`]: crate::ui::view::TrayView

use tray_icon::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};

use crate::ui::view::{Entry, TrayView};

pub fn build(view: &TrayView) -> Result<Menu, String> {
    let menu = Menu::new();
    for item in items(&view.menu)? {
        menu.append(item.as_ref()).map_err(|e| e.to_string())?;
    }
    Ok(menu)
}

fn items(entries: &[Entry]) -> Result<Vec<Box<dyn IsMenuItem>>, String> {
    let mut out: Vec<Box<dyn IsMenuItem>> = Vec::new();
    for e in entries {
        match e {
            Entry::Note(t) => out.push(Box::new(MenuItem::new(text(t), false, None))),
            Entry::Item {
                label,
                action,
                enabled,
            } => out.push(Box::new(MenuItem::with_id(
                action.id(),
                text(label),
                *enabled,
                None,
            ))),
            Entry::Check {
                label,
                action,
                checked,
            } => out.push(Box::new(CheckMenuItem::with_id(
                action.id(),
                text(label),
                true,
                *checked,
                None,
            ))),
            Entry::Submenu { label, entries } => {
                let sub = Submenu::new(text(label), true);
                for item in items(entries)? {
                    sub.append(item.as_ref()).map_err(|e| e.to_string())?;
                }
                out.push(Box::new(sub));
            }
            Entry::Separator => out.push(Box::new(PredefinedMenuItem::separator())),
        }
    }
    Ok(out)
}

/// muda reads `&` as a mnemonic marker; names may contain one.
fn text(s: &str) -> String {
    s.replace('&', "&&")
}
