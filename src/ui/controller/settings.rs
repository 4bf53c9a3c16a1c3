//! The desktop's own settings, kept in `<state dir>/ui.json` beside whatever else is there:
//! for now the language chosen in the tray's 语言 menu.

use std::path::Path;

use crate::i18n::Lang;

/// The UI's own settings file in the state dir.
const SETTINGS_FILE: &str = "ui.json";

/// The language chosen in the tray, from `<dir>/ui.json`.
pub fn saved_lang(dir: Option<&Path>) -> Option<Lang> {
    let text = std::fs::read(dir?.join(SETTINGS_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    match v.get("lang")?.as_str()? {
        "zh-CN" => Some(Lang::ZhCn),
        "en" => Some(Lang::En),
        _ => None,
    }
}

/// Remember the language in `<dir>/ui.json` (other keys there are kept); atomically.
pub fn save_lang(dir: Option<&Path>, lang: Lang) -> std::io::Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    let path = dir.join(SETTINGS_FILE);
    let mut v = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    v["lang"] = match lang {
        Lang::ZhCn => "zh-CN",
        Lang::En => "en",
    }
    .into();
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&v).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_remembered_next_to_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(saved_lang(Some(dir.path())), None);
        std::fs::write(dir.path().join("ui.json"), r#"{"other": 1}"#).unwrap();
        save_lang(Some(dir.path()), Lang::En).unwrap();
        assert_eq!(saved_lang(Some(dir.path())), Some(Lang::En));
        save_lang(Some(dir.path()), Lang::ZhCn).unwrap();
        assert_eq!(saved_lang(Some(dir.path())), Some(Lang::ZhCn));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("ui.json")).unwrap()).unwrap();
        assert_eq!(v["other"], 1);
        save_lang(None, Lang::En).unwrap();
    }
}
