//! Auto-reply rules: keywords (whole words, case-insensitive) or interactive
//! reply ids mapped to a Graph API message body. The first matching rule wins.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};
use zapfn_whatsapp::send;

/// The rules file.
#[derive(Debug, Clone, Deserialize)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// Sent when nothing matches; none by default.
    #[serde(default)]
    pub fallback: Option<Value>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Ids of button or list replies (and template quick-reply payloads) that trigger it.
    #[serde(default)]
    pub reply_ids: Vec<String>,
    /// A Graph API message body without `messaging_product` and `to`.
    pub reply: Value,
}

/// What the customer sent, as far as rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Text(String),
    ReplyId(String),
}

/// A rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rules file is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("rule {index}: reply is not a valid message: {error}")]
    Reply {
        index: usize,
        error: send::ValidationError,
    },
}

impl Rules {
    /// The built-in demo menu.
    pub fn builtin() -> Rules {
        Rules::parse(include_str!("../default_rules.json")).expect("the built-in rules are valid")
    }

    /// Loads and checks a rules file.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Rules::parse(&text)
    }

    /// Parses rules and validates every reply as a send body.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let rules: Rules = serde_json::from_str(text)?;
        let replies = rules
            .rules
            .iter()
            .map(|rule| &rule.reply)
            .chain(rules.fallback.as_ref());
        for (index, reply) in replies.enumerate() {
            send::validate(&body_for(reply, "15550000000"))
                .map_err(|error| RulesError::Reply { index, error })?;
        }
        Ok(rules)
    }

    /// The reply body for `input`, addressed to `to`.
    pub fn reply(&self, input: &Input, to: &str) -> Option<Value> {
        let matched = self
            .rules
            .iter()
            .find(|rule| rule.matches(input))
            .map(|rule| &rule.reply);
        matched
            .or(self.fallback.as_ref())
            .map(|reply| body_for(reply, to))
    }
}

impl Rule {
    fn matches(&self, input: &Input) -> bool {
        match input {
            Input::ReplyId(id) => self.reply_ids.iter().any(|known| known == id),
            Input::Text(text) => {
                let text = text.to_lowercase();
                let words: Vec<&str> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                self.keywords.iter().any(|keyword| {
                    let keyword = keyword.to_lowercase();
                    let parts: Vec<&str> = keyword.split_whitespace().collect();
                    !parts.is_empty()
                        && words
                            .windows(parts.len())
                            .any(|window| window == parts.as_slice())
                })
            }
        }
    }
}

fn body_for(reply: &Value, to: &str) -> Value {
    let mut body = reply.clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("messaging_product".into(), json!("whatsapp"));
        object.insert("recipient_type".into(), json!("individual"));
        // A customer known only by a business-scoped user id has no number to send to.
        let key = if zapfn_whatsapp::is_user_id(to) {
            "recipient"
        } else {
            "to"
        };
        object.insert(key.into(), json!(to));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_match_words_and_reply_ids() {
        let rules = Rules::builtin();
        let menu = rules
            .reply(&Input::Text("Olá, bom dia!".into()), "5511")
            .unwrap();
        assert_eq!(menu["type"], "interactive");
        assert_eq!(menu["to"], "5511");
        let hours = rules
            .reply(&Input::ReplyId("menu_hours".into()), "5511")
            .unwrap();
        assert_eq!(
            hours["text"]["body"],
            "We are open Monday to Friday, 9:00–18:00."
        );
        assert!(
            rules
                .reply(&Input::Text("this is high".into()), "5511")
                .is_none(),
            "'hi' must be a whole word"
        );
        assert!(rules
            .reply(&Input::ReplyId("nope".into()), "5511")
            .is_none());
    }

    #[test]
    fn a_customer_known_by_user_id_is_answered_through_recipient() {
        let menu = Rules::builtin()
            .reply(&Input::Text("oi".into()), "US.13491208655302741918")
            .unwrap();
        assert_eq!(menu["recipient"], "US.13491208655302741918");
        assert!(menu.get("to").is_none());
        assert!(zapfn_whatsapp::send::validate(&menu).is_ok());
    }

    #[test]
    fn invalid_replies_are_refused_at_load() {
        let error =
            Rules::parse(r#"{"rules":[{"keywords":["x"],"reply":{"type":"text","text":{}}}]}"#)
                .unwrap_err();
        assert!(
            matches!(error, RulesError::Reply { index: 0, .. }),
            "{error}"
        );
        assert!(Rules::parse("{").is_err());
    }
}
