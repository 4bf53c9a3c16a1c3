//! The user's language: zh-CN unless the locale asks for something else we speak.

/// A language certray speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    #[default]
    ZhCn,
    En,
}

impl Lang {
    /// Pick a language from a locale string such as `zh_CN.UTF-8`, `en_US.UTF-8` or `C`.
    /// Chinese users come first: an empty, `C` or `POSIX` locale gives zh-CN.
    pub fn from_locale(locale: &str) -> Lang {
        let l = locale.trim().to_ascii_lowercase();
        if l.starts_with("en") {
            Lang::En
        } else {
            Lang::ZhCn
        }
    }

    /// From `CERTRAY_LANG`, then `LC_ALL`, `LC_MESSAGES`, `LANG` (the first one set and not empty).
    pub fn from_env() -> Lang {
        for var in ["CERTRAY_LANG", "LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return Lang::from_locale(&v);
            }
        }
        Lang::ZhCn
    }

    /// Choose between a Chinese and an English text.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::ZhCn => zh,
            Lang::En => en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_choice() {
        assert_eq!(Lang::from_locale("zh_CN.UTF-8"), Lang::ZhCn);
        assert_eq!(Lang::from_locale("en_US.UTF-8"), Lang::En);
        assert_eq!(Lang::from_locale("C"), Lang::ZhCn);
        assert_eq!(Lang::from_locale("en"), Lang::En);
    }
}
