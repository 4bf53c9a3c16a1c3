//! The wire format (PORTAL-PROTOCOLS.md §1.1): one JSON object a call, over a WebSocket text
//! frame (`call_cmd_id`, `xtx_func_name`/`func`, `param` and/or `param_1…param_N`, `token`)
//! or as the body of `POST /synctl` (`func`, `param`, `token`); replies carry string values
//! only.
//!
//! Arguments come as JSON strings or numbers; both become text. A PIN argument becomes a
//! [`Pin`] here, while the frame is taken apart, and every other copy of it in the frame
//! (the async client sends each argument twice, in `param` and `param_N`) is wiped. The
//! page's `URL`, `url` and `cookie` are read by no one: the browser-set `Origin` is the
//! page's identity.

use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::model::Pin;

/// One call as a page sent it.
#[derive(Debug)]
pub struct Call {
    /// `call_cmd_id` (WebSocket); the reply echoes it.
    pub id: Option<String>,
    /// The function's wire name (`SOF_GetUserList`) or a client's alias (`GetUserList`).
    pub func: String,
    pub params: Vec<Param>,
    /// `token` when the page sends one back after a login.
    pub token: Option<String>,
}

/// One argument.
#[derive(Debug)]
pub enum Param {
    Text(String),
    /// A PIN (or any argument of a function certray refuses): never shown, never logged.
    Secret(Pin),
}

impl Param {
    /// The text of a plain argument; `None` for a secret.
    pub fn text(&self) -> Option<&str> {
        match self {
            Param::Text(t) => Some(t),
            Param::Secret(_) => None,
        }
    }
}

impl Call {
    /// Argument `i` (0-based) as text; `None` when absent or secret.
    pub fn text(&self, i: usize) -> Option<&str> {
        self.params.get(i).and_then(Param::text)
    }

    /// Argument `i` as a PIN, taken out of the call.
    pub fn take_pin(&mut self, i: usize) -> Option<Pin> {
        let slot = self.params.get_mut(i)?;
        match std::mem::replace(slot, Param::Text(String::new())) {
            Param::Secret(p) => Some(p),
            Param::Text(t) => {
                // Not a known PIN position: keep the argument as it was.
                *slot = Param::Text(t);
                None
            }
        }
    }
}

/// Why a frame is not a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("no function name (xtx_func_name or func)")]
    NoFunction,
}

/// The argument positions (0-based) that carry a PIN, by canonical function name; `None`:
/// every argument is secret (functions certray refuses or does not know, whose arguments it
/// never reads).
pub fn secret_positions(canonical: &str) -> Option<&'static [usize]> {
    Some(match canonical {
        "SOF_Login" | "SOF_LoginEx" => &[1],
        "SOF_ChangePassWd" => &[1, 2],
        _ if super::names::is_offered(canonical) => &[],
        _ => return None,
    })
}

/// Parse a WebSocket frame's or a `/synctl` body's JSON. `bytes` is wiped afterwards when
/// the caller owns it.
pub fn parse(bytes: &mut [u8]) -> Result<Call, FrameError> {
    let result = parse_inner(bytes);
    bytes.zeroize();
    result
}

fn parse_inner(bytes: &[u8]) -> Result<Call, FrameError> {
    let mut map: Map<String, Value> = match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(FrameError::NotJson("not an object".into())),
        Err(e) => return Err(FrameError::NotJson(e.to_string())),
    };
    let func = ["xtx_func_name", "func"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .map(str::to_string)
        .filter(|f| !f.is_empty())
        .ok_or(FrameError::NoFunction)?;
    let canonical = super::names::canonical(&func);
    let secret = secret_positions(canonical);
    let is_secret = |i: usize| secret.is_none_or(|s| s.contains(&i));
    let id = map.get("call_cmd_id").map(value_text);
    let token = map.get("token").map(value_text).filter(|t| !t.is_empty());

    // `param` (an array, or one value), else `param_1…param_N`.
    let mut raw: Vec<Value> = match map.remove("param") {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => Vec::new(),
        Some(v) => vec![v],
    };
    if raw.is_empty() {
        let mut i = 1;
        while let Some(v) = map.remove(&format!("param_{i}")) {
            raw.push(v);
            i += 1;
        }
    }
    let params = raw
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if is_secret(i) {
                let pin = match &mut v {
                    Value::String(s) => Pin::from(std::mem::take(s)),
                    other => Pin::from(value_text(other)),
                };
                wipe(&mut v);
                Param::Secret(pin)
            } else {
                Param::Text(value_text(&v))
            }
        })
        .collect();
    // The other copies of secret arguments.
    for (key, v) in map.iter_mut() {
        if let Some(n) = key
            .strip_prefix("param_")
            .and_then(|n| n.parse::<usize>().ok())
            && n >= 1
            && is_secret(n - 1)
        {
            wipe(v);
        }
    }
    Ok(Call {
        id,
        func,
        params,
        token,
    })
}

/// A JSON value as the text the vendor helper would have received: strings as they are,
/// numbers in decimal, booleans as `true`/`false`, null as empty.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(o) => o.values_mut().for_each(wipe),
        _ => {}
    }
}

/// A WebSocket reply: `{"call_cmd_id": id, "retVal": value}` plus `token` after a login.
pub fn reply(id: Option<&str>, value: &str, token: Option<&str>) -> String {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("call_cmd_id".into(), Value::String(id.to_string()));
    }
    m.insert("retVal".into(), Value::String(value.to_string()));
    if let Some(t) = token {
        m.insert("token".into(), Value::String(t.to_string()));
    }
    Value::Object(m).to_string()
}

/// The event every open socket gets when a key goes in or out.
pub fn usbkey_change() -> String {
    reply(Some("onUsbkeyChange"), "", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse_str(s: &str) -> Result<Call, FrameError> {
        parse(&mut s.as_bytes().to_vec())
    }

    #[test]
    fn async_client_frame_with_numbers_and_both_param_forms() {
        let c = parse_str(
            r#"{"call_cmd_id":"i_3","CLSID":"3F367B74-92D9-4C5E-AB93-234F8A91D5E6","xtx_func_name":"GetDeviceInfo","func":"GetDeviceInfo","URL":"http://portal.example/login","param_1":"806000119631708/5303201610000567","param_2":7,"param":["806000119631708/5303201610000567",7],"token":"abc"}"#,
        )
        .unwrap();
        assert_eq!(c.id.as_deref(), Some("i_3"));
        assert_eq!(c.func, "GetDeviceInfo");
        assert_eq!(c.text(0), Some("806000119631708/5303201610000567"));
        assert_eq!(c.text(1), Some("7"));
        assert_eq!(c.token.as_deref(), Some("abc"));
    }

    #[test]
    fn param_n_alone_and_synctl_bodies() {
        let c = parse_str(r#"{"call_cmd_id":"i_1","xtx_func_name":"SOF_GetCertInfo","param_1":"MII","param_2":11,"cookie":""}"#).unwrap();
        assert_eq!((c.text(0), c.text(1)), (Some("MII"), Some("11")));
        let c = parse_str(r#"{"url":"x","clsid":"y","func":"SOF_GetVersion"}"#).unwrap();
        assert!(c.id.is_none() && c.params.is_empty());
        let c = parse_str(r#"{"func":"SOF_GenRandom","param":16}"#).unwrap();
        assert_eq!(c.text(0), Some("16"));
        assert_eq!(
            parse_str("[]").unwrap_err(),
            FrameError::NotJson("not an object".into())
        );
        assert_eq!(
            parse_str(r#"{"param":[]}"#).unwrap_err(),
            FrameError::NoFunction
        );
        assert!(matches!(parse_str("{"), Err(FrameError::NotJson(_))));
    }

    #[test]
    fn pins_become_secrets_and_their_copies_are_wiped() {
        let mut bytes = br#"{"call_cmd_id":"i_9","xtx_func_name":"SOF_Login","param_1":"c/s","param_2":"93847561","param":["c/s","93847561"]}"#.to_vec();
        let mut c = parse(&mut bytes).unwrap();
        assert!(bytes.iter().all(|b| *b == 0), "the frame buffer is wiped");
        assert_eq!(c.text(0), Some("c/s"));
        assert!(c.text(1).is_none());
        let pin = c.take_pin(1).unwrap();
        assert_eq!(pin.expose_secret(), "93847561");
        assert!(!format!("{c:?}").contains("93847561"));
        // A number PIN too; and every argument of a refused function is secret.
        let mut c = parse_str(r#"{"func":"VerifyUserPIN","param":["c/s",123456]}"#).unwrap();
        assert_eq!(c.take_pin(1).unwrap().expose_secret(), "123456");
        let c = parse_str(r#"{"func":"UnlockUserPass","param":["SN","admin","new"]}"#).unwrap();
        assert!(c.params.iter().all(|p| p.text().is_none()));
        assert!(!format!("{c:?}").contains("admin"));
    }

    #[test]
    fn replies_are_strings() {
        assert_eq!(
            reply(Some("i_3"), "HARD", None),
            r#"{"call_cmd_id":"i_3","retVal":"HARD"}"#
        );
        assert_eq!(
            reply(None, "true", Some("t")),
            r#"{"retVal":"true","token":"t"}"#
        );
        assert_eq!(
            usbkey_change(),
            r#"{"call_cmd_id":"onUsbkeyChange","retVal":""}"#
        );
    }
}
