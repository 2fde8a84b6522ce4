//! Validation of send bodies for Meta's `POST /{phone-number-id}/messages`.
//!
//! [`validate`] checks a JSON body against the rules the Graph API enforces and
//! returns a [`SendRequest`] summary, or the first [`ValidationError`] found,
//! using Meta's error codes (131008 missing, 131009 invalid, 100 unsupported).
//! JSON `null` counts as absent everywhere. Unknown keys are accepted, like Meta does.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// A send request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// Recipient: a phone number's digits (its `wa_id`), a group id as given, None for mark-as-read.
    pub to: Option<String>,
    /// Message type: "text", "image", "video", "audio", "document", "sticker", "location",
    /// "contacts", "interactive", "template", "reaction", or "read" for mark-as-read.
    pub message_type: String,
    /// True for types that WhatsApp only delivers inside the 24-hour customer-service window
    /// (everything except "template" and "read").
    pub needs_service_window: bool,
    /// Human text to show in an inbox: text body, media caption, interactive body text,
    /// template name, reaction emoji; None if nothing applies.
    pub preview: Option<String>,
    /// `context.message_id` when replying, or the `message_id` being reacted to / marked read.
    pub context_message_id: Option<String>,
}

/// Why a body was refused; `field` is a dotted path like `interactive.action.buttons[3].reply.title`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Meta's error code: 131008 for a required parameter that is missing,
    /// 131009 for a parameter value that is not valid, 100 for an unknown/unsupported parameter or type.
    pub code: i64,
    pub field: String,
    pub message: String,
}

/// Meta's code for a required parameter that is missing.
const MISSING: i64 = 131_008;
/// Meta's code for a parameter value that is not valid.
const INVALID: i64 = 131_009;
/// Meta's code for an unknown or unsupported parameter or type.
const UNSUPPORTED: i64 = 100;
/// Meta's code for a template parameter it cannot use (v23.0 on).
const TEMPLATE_PARAMETER: i64 = 132_018;
/// Upper bound for strings whose length Meta does not limit.
const NO_LIMIT: usize = usize::MAX;

const INTERACTIVE_TYPES: &[&str] = &[
    "button",
    "list",
    "cta_url",
    "flow",
    "product",
    "product_list",
    "catalog_message",
    "location_request_message",
    "call_permission_request",
    "voice_call",
    "carousel",
];
const COMPONENT_TYPES: &[&str] = &[
    "header",
    "body",
    "footer",
    "button",
    "carousel",
    "limited_time_offer",
    "tap_target_configuration",
];
const PARAMETER_TYPES: &[&str] = &[
    "text",
    "currency",
    "date_time",
    "image",
    "document",
    "video",
    "location",
    "payload",
    "action",
    "coupon_code",
    "order_status",
    "product",
    "limited_time_offer",
    "tap_target_configuration",
];

type Checked<T> = Result<T, ValidationError>;

/// Validates a Graph API send body.
pub fn validate(body: &Value) -> Result<SendRequest, ValidationError> {
    let root = Node::new(body, String::new())
        .map_err(|_| invalid("body", "request body must be a JSON object"))?;
    root.choice("messaging_product", &["whatsapp"])?;
    root.opt_text("biz_opaque_callback_data", 512)?;
    if let Some(status) = root.get("status") {
        return validate_mark_read(&root, status);
    }
    let to = validate_recipient(&root)?;
    let mut context_message_id = validate_context(&root)?;
    let message_type = root.opt_str("type")?.unwrap_or("text");
    let preview = match message_type {
        "text" => validate_text(&root.object("text")?)?,
        "image" | "video" | "audio" | "document" | "sticker" => {
            validate_media(message_type, &root.object(message_type)?)?
        }
        "location" => validate_location(&root.object("location")?)?,
        "contacts" => validate_contacts(&root.array("contacts")?)?,
        "interactive" => validate_interactive(&root.object("interactive")?)?,
        "template" => validate_template(&root.object("template")?)?,
        "reaction" => {
            let (emoji, message_id) = validate_reaction(&root.object("reaction")?)?;
            context_message_id = Some(message_id);
            emoji
        }
        other => {
            return Err(unsupported(
                "type",
                format!("unsupported message type {other:?}"),
            ))
        }
    };
    Ok(SendRequest {
        to: Some(to),
        message_type: message_type.to_owned(),
        needs_service_window: message_type != "template",
        preview: preview.filter(|text| !text.is_empty()),
        context_message_id,
    })
}

/// Meta's `contacts` answer: the recipient as written (`to`, else `recipient`),
/// with its `wa_id`, or its `user_id` when it is a business-scoped user id.
pub fn contacts_answer(body: &Value, to: &str) -> Value {
    let written = ["to", "recipient"]
        .into_iter()
        .find_map(|key| body.get(key).and_then(Value::as_str))
        .unwrap_or(to);
    let id_key = if crate::is_user_id(to) {
        "user_id"
    } else {
        "wa_id"
    };
    serde_json::json!([{ "input": written, id_key: to }])
}

/// Mark-as-read (`status:"read"` + `message_id`), optionally with a text typing indicator.
fn validate_mark_read(root: &Node, status: &Value) -> Checked<SendRequest> {
    if status.as_str() != Some("read") {
        return Err(invalid("status", "must be \"read\""));
    }
    let message_id = root.text("message_id", 1, NO_LIMIT)?;
    if let Some(indicator) = root.opt_object("typing_indicator")? {
        indicator.choice("type", &["text"])?;
    }
    Ok(SendRequest {
        to: None,
        message_type: "read".to_owned(),
        needs_service_window: false,
        preview: None,
        context_message_id: Some(message_id.to_owned()),
    })
}

/// `recipient_type` and the recipient: for individuals a phone number in `to`
/// (returned as its digits) or, without `to`, a business-scoped user id in
/// `recipient` (returned as it is; `to` wins when both are given, as at Meta);
/// for groups any non-empty id in `to` (returned as given).
fn validate_recipient(root: &Node) -> Checked<String> {
    let group = root.opt_choice("recipient_type", &["individual", "group"])? == Some("group");
    let user_id = root.opt_str("recipient")?;
    if let Some(user_id) = user_id.filter(|id| !crate::is_user_id(id)) {
        let message = format!(
            "{user_id:?} is not a business-scoped user id (a country code, a dot, then \
             letters and digits, e.g. US.13491208655302741918)"
        );
        return Err(invalid("recipient", message));
    }
    let to = match (root.opt_str("to")?, user_id) {
        (Some(to), _) => to,
        (None, Some(user_id)) if !group => return Ok(user_id.to_owned()),
        (None, _) => return Err(missing("to")),
    };
    if group {
        if to.trim().is_empty() {
            return Err(invalid("to", "group id must not be empty"));
        }
        return Ok(to.to_owned());
    }
    if !is_phone_number(to) {
        let message = "must be an optional '+' then digits, spaces, hyphens or parentheses, \
                       with 5 to 20 digits";
        return Err(invalid("to", message));
    }
    Ok(crate::wa_id(to))
}

/// True for an optional '+' followed by digits, spaces, hyphens and parentheses,
/// with 5..=20 digits in all (Meta accepts these formats in send requests).
fn is_phone_number(to: &str) -> bool {
    let rest = to.strip_prefix('+').unwrap_or(to);
    let digits = rest.bytes().filter(u8::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'(' | b')'))
}

/// `context` of a reply: an object with a non-empty `message_id`.
fn validate_context(root: &Node) -> Checked<Option<String>> {
    let Some(context) = root.opt_object("context")? else {
        return Ok(None);
    };
    Ok(Some(context.text("message_id", 1, NO_LIMIT)?.to_owned()))
}

/// Longest text body Meta accepts, in characters.
const MAX_TEXT_BODY: usize = 4096;

/// `text`: a body of 1..=4096 characters and an optional boolean `preview_url`.
/// A longer body is code 100, as Meta answers it ("Param text['body'] must be at
/// most 4096 characters long").
fn validate_text(text: &Node) -> Checked<Option<String>> {
    let body = text.text("body", 1, NO_LIMIT)?;
    let count = body.chars().count();
    if count > MAX_TEXT_BODY {
        let message = format!("must be at most {MAX_TEXT_BODY} characters long (got {count})");
        return Err(unsupported(text.field("body"), message));
    }
    text.opt_bool("preview_url")?;
    Ok(Some(body.to_owned()))
}

/// `image`/`video`/`audio`/`document`/`sticker`: source, caption, filename and voice flag.
fn validate_media(kind: &str, media: &Node) -> Checked<Option<String>> {
    media_source(media)?;
    let caption = if matches!(kind, "audio" | "sticker") {
        media.reject("caption")?;
        None
    } else {
        media.opt_text("caption", 1024)?
    };
    if kind == "document" {
        media.opt_text("filename", 240)?;
    } else {
        media.reject("filename")?;
    }
    if kind == "audio" {
        media.opt_bool("voice")?;
    }
    Ok(caption.map(str::to_owned))
}

/// Exactly one of a non-empty media `id` or an http(s) `link`.
fn media_source(media: &Node) -> Checked<()> {
    match (media.get("id"), media.get("link")) {
        (Some(_), Some(_)) => Err(invalid(&media.path, "must have only one of `id` or `link`")),
        (None, None) => Err(error(MISSING, &media.path, "requires `id` or `link`")),
        (Some(_), None) => media.text("id", 1, NO_LIMIT).map(drop),
        (None, Some(_)) => media.url("link").map(drop),
    }
}

/// `location`: latitude/longitude in range (numbers or numeric strings), optional name/address.
fn validate_location(location: &Node) -> Checked<Option<String>> {
    coordinate(location, "latitude", 90.0)?;
    coordinate(location, "longitude", 180.0)?;
    location.opt_str("name")?;
    location.opt_str("address")?;
    Ok(None)
}

/// A required coordinate under `key` within `-limit..=limit`.
fn coordinate(location: &Node, key: &str, limit: f64) -> Checked<f64> {
    let value = match location.require(key)? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    let message = format!("must be a number from -{limit} to {limit}");
    let in_range = value.filter(|v| v.is_finite() && v.abs() <= limit);
    in_range.ok_or_else(|| invalid(location.field(key), message))
}

/// Most contact cards Meta accepts in one `contacts` message.
const MAX_CONTACTS: usize = 257;

/// `contacts`: 1..=257 cards, each with `name.formatted_name`.
fn validate_contacts(contacts: &List) -> Checked<Option<String>> {
    if !(1..=MAX_CONTACTS).contains(&contacts.items.len()) {
        let message = format!("must contain 1 to {MAX_CONTACTS} contacts");
        return Err(invalid(&contacts.path, message));
    }
    for contact in contacts.objects()? {
        let name = contact.object("name")?;
        name.text("formatted_name", 1, NO_LIMIT)?;
        for key in ["phones", "emails", "urls", "addresses"] {
            if let Some(list) = contact.opt_array(key)? {
                list.objects()?;
            }
        }
    }
    Ok(None)
}

/// `interactive`: type, body/footer/header, then the action rules of that type.
fn validate_interactive(interactive: &Node) -> Checked<Option<String>> {
    let kind = interactive.str("type")?;
    if !INTERACTIVE_TYPES.contains(&kind) {
        let message = format!("unsupported interactive type {kind:?}");
        return Err(unsupported(interactive.field("type"), message));
    }
    // A list's body may be as long as a text message's; other types stop at 1024.
    let body_limit = if kind == "list" { MAX_TEXT_BODY } else { 1024 };
    let body = match interactive.opt_object("body")? {
        Some(body) => Some(body.text("text", 1, body_limit)?),
        None if kind == "product" => None,
        None => return Err(missing(interactive.field("body"))),
    };
    if kind == "carousel" {
        interactive.reject("header")?;
        interactive.reject("footer")?;
    }
    if let Some(footer) = interactive.opt_object("footer")? {
        footer.text("text", 1, 60)?;
    }
    if let Some(header) = interactive.opt_object("header")? {
        validate_header(&header, kind == "list")?;
    }
    match kind {
        "button" => validate_buttons(&interactive.object("action")?)?,
        "list" => validate_list(&interactive.object("action")?)?,
        "cta_url" => validate_cta_url(&interactive.object("action")?)?,
        "flow" => validate_flow(&interactive.object("action")?)?,
        "carousel" => validate_carousel(&interactive.object("action")?)?,
        _ => {}
    }
    Ok(body.map(str::to_owned))
}

/// `interactive.header`: text of 1..=60 characters, or media unless `text_only` (lists).
fn validate_header(header: &Node, text_only: bool) -> Checked<()> {
    let allowed: &[&str] = if text_only {
        &["text"]
    } else {
        &["text", "image", "video", "document"]
    };
    match header.choice("type", allowed)? {
        "text" => header.text("text", 1, 60).map(drop),
        media => media_source(&header.object(media)?),
    }
}

/// Reply buttons: 1..=3 `reply` buttons with unique ids (≤256, no leading or trailing
/// spaces) and titles (≤20).
fn validate_buttons(action: &Node) -> Checked<()> {
    let buttons = action.array("buttons")?;
    if !(1..=3).contains(&buttons.items.len()) {
        return Err(invalid(&buttons.path, "must contain 1 to 3 buttons"));
    }
    let (mut ids, mut titles) = (HashSet::new(), HashSet::new());
    for button in buttons.objects()? {
        button.choice("type", &["reply"])?;
        let reply = button.object("reply")?;
        let (id, title) = (reply.text("id", 1, 256)?, reply.text("title", 1, 20)?);
        if id.trim() != id {
            let message = "must not have leading or trailing spaces";
            return Err(invalid(reply.field("id"), message));
        }
        unique(&mut ids, id, reply.field("id"))?;
        unique(&mut titles, title, reply.field("title"))?;
    }
    Ok(())
}

/// List: a button label, 1..=10 sections and 1..=10 rows in total, with unique row ids.
fn validate_list(action: &Node) -> Checked<()> {
    action.text("button", 1, 20)?;
    let sections = action.array("sections")?;
    let count = sections.items.len();
    if !(1..=10).contains(&count) {
        return Err(invalid(&sections.path, "must contain 1 to 10 sections"));
    }
    let mut ids = HashSet::new();
    let mut total_rows = 0;
    for section in sections.objects()? {
        if count > 1 {
            section.text("title", 1, 24)?;
        } else {
            section.opt_text("title", 24)?;
        }
        let rows = section.array("rows")?;
        if rows.items.is_empty() {
            return Err(invalid(&rows.path, "must contain at least one row"));
        }
        for row in rows.objects()? {
            total_rows += 1;
            if total_rows > 10 {
                let message = "a list has at most 10 rows across all sections";
                return Err(invalid(&row.path, message));
            }
            unique(&mut ids, row.text("id", 1, 200)?, row.field("id"))?;
            row.text("title", 1, 24)?;
            row.opt_text("description", 72)?;
        }
    }
    Ok(())
}

/// CTA URL button: `name:"cta_url"`, `display_text` (1..=20) and an http(s) `url`.
fn validate_cta_url(action: &Node) -> Checked<()> {
    action.choice("name", &["cta_url"])?;
    let parameters = action.object("parameters")?;
    parameters.text("display_text", 1, 20)?;
    parameters.url("url").map(drop)
}

/// Media carousel: 2..=10 cards whose buttons are of one kind and count on every card.
fn validate_carousel(action: &Node) -> Checked<()> {
    let cards = action.array("cards")?;
    if !(2..=10).contains(&cards.items.len()) {
        return Err(invalid(&cards.path, "must contain 2 to 10 cards"));
    }
    let mut first_buttons = None;
    for card in cards.objects()? {
        let buttons = validate_card(&card)?;
        let first = *first_buttons.get_or_insert(buttons);
        if buttons != first {
            let (kind, count) = first;
            let message = format!("must have the first card's buttons: {count} {kind}");
            return Err(invalid(card.field("action"), message));
        }
    }
    Ok(())
}

/// One carousel card: `card_index`, optional `type`, an image or video header, optional
/// body text (≤160) and its action; returns the action's button kind and count.
fn validate_card(card: &Node) -> Checked<(&'static str, usize)> {
    position(card, "card_index")?;
    card.opt_choice("type", &["cta_url", "quick_reply"])?;
    let header = card.object("header")?;
    let media = header.choice("type", &["image", "video"])?;
    media_source(&header.object(media)?)?;
    if let Some(body) = card.opt_object("body")? {
        body.text("text", 1, 160)?;
    }
    let action = card.object("action")?;
    match (action.get("name"), action.get("buttons")) {
        (Some(_), Some(_)) => {
            let message = "must have only one of `name` (cta_url) or `buttons`";
            Err(invalid(&action.path, message))
        }
        (None, None) => Err(error(MISSING, &action.path, "requires `name` or `buttons`")),
        (Some(_), None) => validate_cta_url(&action).map(|()| ("cta_url", 1)),
        (None, Some(_)) => validate_quick_replies(&action.array("buttons")?),
    }
}

/// Card quick replies: at least one `quick_reply` button with an id (≤256, unique in
/// the card) and a title (≤20); returns the kind and count.
fn validate_quick_replies(buttons: &List) -> Checked<(&'static str, usize)> {
    if buttons.items.is_empty() {
        return Err(invalid(&buttons.path, "must contain at least one button"));
    }
    let mut ids = HashSet::new();
    for button in buttons.objects()? {
        button.choice("type", &["quick_reply"])?;
        let reply = button.object("quick_reply")?;
        unique(&mut ids, reply.text("id", 1, 256)?, reply.field("id"))?;
        reply.text("title", 1, 20)?;
    }
    Ok(("quick_reply", buttons.items.len()))
}

/// Flow: `name:"flow"`, version "3", a CTA, one of flow_id/flow_name, mode and action.
fn validate_flow(action: &Node) -> Checked<()> {
    action.choice("name", &["flow"])?;
    let params = action.object("parameters")?;
    params.choice("flow_message_version", &["3"])?;
    params.text("flow_cta", 1, 30)?;
    let both = "must have only one of `flow_id` or `flow_name`";
    let neither = "requires `flow_id` or `flow_name`";
    match (params.get("flow_id"), params.get("flow_name")) {
        (Some(_), Some(_)) => return Err(invalid(&params.path, both)),
        (None, None) => return Err(error(MISSING, &params.path, neither)),
        (Some(Value::Number(id)), None) if id.is_u64() => {}
        (Some(_), None) => drop(params.text("flow_id", 1, NO_LIMIT)?),
        (None, Some(_)) => drop(params.text("flow_name", 1, NO_LIMIT)?),
    }
    params.opt_str("flow_token")?;
    params.opt_choice("mode", &["draft", "published"])?;
    let flow_action = params.opt_choice("flow_action", &["navigate", "data_exchange"])?;
    if let Some(payload) = params.opt_object("flow_action_payload")? {
        if flow_action.unwrap_or("navigate") == "navigate" {
            payload.text("screen", 1, NO_LIMIT)?;
        }
        payload.opt_object("data")?;
    }
    Ok(())
}

/// `template`: a lowercase `name`, `language.code` and optional components.
fn validate_template(template: &Node) -> Checked<Option<String>> {
    let name = template.text("name", 1, 512)?;
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
    {
        let message = "may contain only lowercase letters, digits and underscores";
        return Err(invalid(template.field("name"), message));
    }
    template.object("language")?.text("code", 1, NO_LIMIT)?;
    validate_components(template)?;
    Ok(Some(name.to_owned()))
}

/// The optional `components` of a template or carousel card: type, position, parameters.
fn validate_components(owner: &Node) -> Checked<()> {
    let Some(components) = owner.opt_array("components")? else {
        return Ok(());
    };
    for component in components.objects()? {
        let kind = component.str("type")?.to_ascii_lowercase();
        check_one_of(&kind, COMPONENT_TYPES, || component.field("type"))?;
        if kind == "button" {
            component.text("sub_type", 1, NO_LIMIT)?;
            position(&component, "index")?;
        }
        if kind == "carousel" {
            for card in component.array("cards")?.objects()? {
                position(&card, "card_index")?;
                validate_components(&card)?;
            }
        }
        if let Some(parameters) = component.opt_array("parameters")? {
            for parameter in parameters.objects()? {
                validate_parameter(&parameter)?;
                if kind == "header" || kind == "body" {
                    check_parameter_text(&parameter)?;
                }
            }
        }
    }
    Ok(())
}

/// A button or card position under `key`: an integer 0..=9, as a number or numeric string.
fn position(owner: &Node, key: &str) -> Checked<u64> {
    let index = match owner.require(key)? {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    index
        .filter(|i| *i <= 9)
        .ok_or_else(|| invalid(owner.field(key), "must be an integer from 0 to 9"))
}

/// One template parameter: a known type whose value sits under the key of the same name.
fn validate_parameter(parameter: &Node) -> Checked<()> {
    let kind = parameter.str("type")?.to_ascii_lowercase();
    check_one_of(&kind, PARAMETER_TYPES, || parameter.field("type"))?;
    match kind.as_str() {
        "text" => parameter.text("text", 1, NO_LIMIT).map(drop),
        "image" | "document" | "video" => media_source(&parameter.object(&kind)?),
        "tap_target_configuration" => validate_tap_targets(&parameter.array(&kind)?),
        _ => parameter.require(&kind).map(drop),
    }
}

/// A header or body text parameter as Meta takes it: no line break or tab, and
/// no more than 4 spaces in a row (the template's own text holds the layout).
fn check_parameter_text(parameter: &Node) -> Checked<()> {
    let Some(text) = parameter.obj.get("text").and_then(Value::as_str) else {
        return Ok(());
    };
    if text.contains(['\n', '\r', '\t']) || text.contains("     ") {
        return Err(error(
            TEMPLATE_PARAMETER,
            parameter.field("text"),
            "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
        ));
    }
    Ok(())
}

/// Tap target overrides: a non-empty array of objects with an http(s) `url` and a `title`.
fn validate_tap_targets(targets: &List) -> Checked<()> {
    if targets.items.is_empty() {
        let message = "must contain at least one tap target";
        return Err(invalid(&targets.path, message));
    }
    for target in targets.objects()? {
        target.url("url")?;
        target.text("title", 1, NO_LIMIT)?;
    }
    Ok(())
}

/// `reaction`: the target `message_id` and an emoji, where "" removes the reaction.
fn validate_reaction(reaction: &Node) -> Checked<(Option<String>, String)> {
    let message_id = reaction.text("message_id", 1, NO_LIMIT)?;
    let emoji = reaction.str("emoji")?;
    if !emoji.is_empty() && !is_emoji_like(emoji) {
        let message = "must be a single emoji, or \"\" to remove the reaction";
        return Err(invalid(reaction.field("emoji"), message));
    }
    let preview = (!emoji.is_empty()).then(|| emoji.to_owned());
    Ok((preview, message_id.to_owned()))
}

/// A short string (≤10 chars, enough for ZWJ sequences) with no spaces, controls or ASCII letters.
fn is_emoji_like(text: &str) -> bool {
    text.chars().count() <= 10
        && !text.is_ascii()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c.is_ascii_alphabetic())
}

/// True for `http(s)://host…` with a non-empty host and no whitespace or control characters.
fn is_http_url(url: &str) -> bool {
    let Some(rest) = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `text` without an ASCII-case-insensitive `prefix`, if it starts with one.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// 131009 unless `text` has `min..=max` characters (Unicode scalar values, not bytes).
fn check_len(text: &str, min: usize, max: usize, field: impl FnOnce() -> String) -> Checked<()> {
    let count = text.chars().count();
    if count < min {
        Err(invalid(field(), "must not be empty"))
    } else if count > max {
        let message = format!("must be at most {max} characters (got {count})");
        Err(invalid(field(), message))
    } else {
        Ok(())
    }
}

/// 131009 unless `value` is one of `allowed`.
fn check_one_of(value: &str, allowed: &[&str], field: impl FnOnce() -> String) -> Checked<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        let message = format!("{value:?} is not one of: {}", allowed.join(", "));
        Err(invalid(field(), message))
    }
}

/// 131009 when `value` was already seen in its scope (the message, or a carousel card).
fn unique<'a>(seen: &mut HashSet<&'a str>, value: &'a str, field: String) -> Checked<()> {
    if seen.insert(value) {
        Ok(())
    } else {
        let message = format!("{value:?} must be unique within its message or card");
        Err(invalid(field, message))
    }
}

fn error(code: i64, field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        code,
        field: field.into(),
        message: message.into(),
    }
}

/// 131008 with Meta's generic wording.
fn missing(field: impl Into<String>) -> ValidationError {
    error(MISSING, field, "required parameter is missing")
}

/// 131009 with a specific reason.
fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    error(INVALID, field, message)
}

/// 100 with a specific reason.
fn unsupported(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    error(UNSUPPORTED, field, message)
}

/// A JSON object under validation, with its dotted path for error fields ("" at the root).
struct Node<'a> {
    obj: &'a Map<String, Value>,
    path: String,
}

/// A JSON array under validation, with its dotted path.
struct List<'a> {
    items: &'a [Value],
    path: String,
}

impl<'a> List<'a> {
    /// Every element as an object (`path[i]`), or 131009 at the first one that is not.
    fn objects(&self) -> Checked<Vec<Node<'a>>> {
        let items = self.items.iter().enumerate();
        items
            .map(|(i, item)| Node::new(item, format!("{}[{i}]", self.path)))
            .collect()
    }
}

impl<'a> Node<'a> {
    /// `value` as an object at `path`, or 131009.
    fn new(value: &'a Value, path: String) -> Checked<Self> {
        match value.as_object() {
            Some(obj) => Ok(Self { obj, path }),
            None => Err(invalid(path, "must be an object")),
        }
    }

    /// The dotted path of `key` inside this object.
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value under `key`; JSON `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|value| !value.is_null())
    }

    /// The value under `key`, or 131008.
    fn require(&self, key: &str) -> Checked<&'a Value> {
        self.get(key).ok_or_else(|| missing(self.field(key)))
    }

    /// 100 when `key` is present although this object does not support it.
    fn reject(&self, key: &str) -> Checked<()> {
        match self.get(key) {
            Some(_) => Err(unsupported(
                self.field(key),
                format!("not supported on {}", self.path),
            )),
            None => Ok(()),
        }
    }

    /// An optional object under `key`.
    fn opt_object(&self, key: &str) -> Checked<Option<Node<'a>>> {
        self.get(key)
            .map(|value| Node::new(value, self.field(key)))
            .transpose()
    }

    /// A required object under `key`.
    fn object(&self, key: &str) -> Checked<Node<'a>> {
        Node::new(self.require(key)?, self.field(key))
    }

    /// An optional array under `key`.
    fn opt_array(&self, key: &str) -> Checked<Option<List<'a>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.as_array() {
            Some(items) => Ok(Some(List {
                items,
                path: self.field(key),
            })),
            None => Err(invalid(self.field(key), "must be an array")),
        }
    }

    /// A required array under `key`.
    fn array(&self, key: &str) -> Checked<List<'a>> {
        self.opt_array(key)?.ok_or_else(|| missing(self.field(key)))
    }

    /// An optional string under `key`.
    fn opt_str(&self, key: &str) -> Checked<Option<&'a str>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .as_str()
            .map(Some)
            .ok_or_else(|| invalid(self.field(key), "must be a string"))
    }

    /// A required string under `key`.
    fn str(&self, key: &str) -> Checked<&'a str> {
        self.opt_str(key)?.ok_or_else(|| missing(self.field(key)))
    }

    /// A required string under `key` of `min..=max` characters.
    fn text(&self, key: &str, min: usize, max: usize) -> Checked<&'a str> {
        let text = self.str(key)?;
        check_len(text, min, max, || self.field(key))?;
        Ok(text)
    }

    /// An optional string under `key` of at most `max` characters.
    fn opt_text(&self, key: &str, max: usize) -> Checked<Option<&'a str>> {
        let text = self.opt_str(key)?;
        if let Some(text) = text {
            check_len(text, 0, max, || self.field(key))?;
        }
        Ok(text)
    }

    /// An optional string under `key` that must be one of `allowed`.
    fn opt_choice(&self, key: &str, allowed: &[&str]) -> Checked<Option<&'a str>> {
        let value = self.opt_str(key)?;
        if let Some(value) = value {
            check_one_of(value, allowed, || self.field(key))?;
        }
        Ok(value)
    }

    /// A required string under `key` that must be one of `allowed`.
    fn choice(&self, key: &str, allowed: &[&str]) -> Checked<&'a str> {
        self.opt_choice(key, allowed)?
            .ok_or_else(|| missing(self.field(key)))
    }

    /// An optional boolean under `key`.
    fn opt_bool(&self, key: &str) -> Checked<()> {
        match self.get(key) {
            Some(value) if !value.is_boolean() => {
                Err(invalid(self.field(key), "must be a boolean"))
            }
            _ => Ok(()),
        }
    }

    /// A required http(s) URL under `key`.
    fn url(&self, key: &str) -> Checked<&'a str> {
        let url = self.str(key)?;
        if is_http_url(url) {
            Ok(url)
        } else {
            Err(invalid(
                self.field(key),
                "must be an http:// or https:// URL",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A body to the test number with the keys of `extra` added.
    fn msg(extra: Value) -> Value {
        let mut body = json!({"messaging_product": "whatsapp", "to": "+15551234567"});
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            body[key.as_str()] = value;
        }
        body
    }

    /// `body` with the node at JSON pointer `pointer` set (or added) to `value`.
    fn set(mut body: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a '/'");
        let slot = body.pointer_mut(parent).expect("parent exists");
        match key.parse::<usize>() {
            Ok(i) if slot.is_array() => slot[i] = value,
            _ => slot[key] = value,
        }
        body
    }

    /// Edits a fresh `base()` body: `value` goes at JSON pointer `prefix` + the given suffix.
    fn edit(base: fn() -> Value, prefix: &'static str) -> impl Fn(&str, Value) -> Value {
        move |suffix, value| set(base(), &format!("{prefix}{suffix}"), value)
    }

    fn ok(body: Value) -> SendRequest {
        validate(&body).unwrap_or_else(|err| panic!("expected ok for {body}, got {err}"))
    }

    /// Asserts each `(body, field suffix, code)` is refused with `prefix` + suffix and that code.
    fn refused(prefix: &str, cases: Vec<(Value, &str, i64)>) {
        for (body, suffix, code) in cases {
            let err = validate(&body).expect_err(&format!("expected refusal for {body}"));
            let field = format!("{prefix}{suffix}");
            assert_eq!(
                (err.field.as_str(), err.code),
                (field.as_str(), code),
                "{err} | {body}"
            );
        }
    }

    fn x(n: usize) -> String {
        "x".repeat(n)
    }

    fn text() -> Value {
        msg(json!({"type": "text", "text": {"body": "Olá!", "preview_url": true}}))
    }

    fn location() -> Value {
        msg(json!({"type": "location", "location": {"latitude": -23.5, "longitude": "-46.6"}}))
    }

    fn contacts() -> Value {
        let card =
            json!({"name": {"formatted_name": "Ana Lima"}, "phones": [{"phone": "+551199"}]});
        msg(json!({"type": "contacts", "contacts": [card]}))
    }

    fn interactive(kind: &str, action: Value) -> Value {
        let object = json!({"type": kind, "body": {"text": "Pick one"}, "action": action});
        msg(json!({"type": "interactive", "interactive": object}))
    }

    fn reply(id: &str, title: &str) -> Value {
        json!({"type": "reply", "reply": {"id": id, "title": title}})
    }

    fn button() -> Value {
        interactive(
            "button",
            json!({"buttons": [reply("a", "A"), reply("b", "B")]}),
        )
    }

    fn section(title: &str, rows: usize) -> Value {
        let rows: Vec<Value> = (0..rows)
            .map(|i| json!({"id": format!("{title}{i}"), "title": "Row", "description": "More"}))
            .collect();
        json!({"title": title, "rows": rows})
    }

    fn list() -> Value {
        let sections = json!([section("A", 4), section("B", 6)]);
        interactive("list", json!({"button": "Options", "sections": sections}))
    }

    fn cta() -> Value {
        let parameters = json!({"display_text": "See dates", "url": "https://example.com/x?y=1"});
        interactive(
            "cta_url",
            json!({"name": "cta_url", "parameters": parameters}),
        )
    }

    fn flow() -> Value {
        let parameters = json!({"flow_message_version": "3", "flow_cta": "Book", "flow_id": "123",
            "flow_token": "t", "mode": "published", "flow_action": "navigate",
            "flow_action_payload": {"screen": "WELCOME", "data": {"a": 1}}});
        interactive("flow", json!({"name": "flow", "parameters": parameters}))
    }

    fn template() -> Value {
        let components = json!([
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://a.b/c.jpg"}}]},
            {"type": "BODY", "parameters": [{"type": "text", "text": "Ana"},
                {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
                "parameters": [{"type": "payload", "payload": "STOP"}]},
            {"type": "carousel", "cards": [{"card_index": 0, "components": [
                {"type": "header", "parameters": [{"type": "video", "video": {"id": "9"}}]}]}]}
        ]);
        let template = json!({"name": "order_update", "language": {"code": "en_US"}, "components": components});
        msg(json!({"type": "template", "template": template}))
    }

    fn reaction(emoji: &str) -> Value {
        msg(json!({"type": "reaction", "reaction": {"message_id": "wamid.A", "emoji": emoji}}))
    }

    fn quick_reply(id: &str, title: &str) -> Value {
        json!({"type": "quick_reply", "quick_reply": {"id": id, "title": title}})
    }

    fn card(index: usize, action: Value) -> Value {
        json!({"card_index": index, "type": "quick_reply", "body": {"text": "Fern"},
            "header": {"type": "image", "image": {"link": "https://a.b/fern.png"}}, "action": action})
    }

    /// A media carousel of `cards` cards, each with the same two quick replies.
    fn carousel_of(cards: usize) -> Value {
        let action = json!({"buttons": [quick_reply("a", "Learn more"), quick_reply("b", "Save")]});
        let cards: Vec<Value> = (0..cards).map(|i| card(i, action.clone())).collect();
        interactive("carousel", json!({"cards": cards}))
    }

    fn carousel() -> Value {
        carousel_of(2)
    }

    /// A template whose only component overrides its tap target with `targets`.
    fn tap_target(targets: Value) -> Value {
        let parameter =
            json!({"type": "tap_target_configuration", "tap_target_configuration": targets});
        let component = json!({"type": "tap_target_configuration", "parameters": [parameter]});
        set(template(), "/template/components", json!([component]))
    }

    fn read() -> Value {
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.R",
            "typing_indicator": {"type": "text"}})
    }

    #[test]
    fn accepts_valid_bodies_and_summarises_them() {
        let text_request = SendRequest {
            to: Some("15551234567".into()),
            message_type: "text".into(),
            needs_service_window: true,
            preview: Some("Olá!".into()),
            context_message_id: None,
        };
        assert_eq!(ok(text()), text_request);
        assert_eq!(
            ok(set(text(), "/type", Value::Null)),
            text_request,
            "type defaults to text"
        );
        let read_request = SendRequest {
            to: None,
            message_type: "read".into(),
            needs_service_window: false,
            preview: None,
            context_message_id: Some("wamid.R".into()),
        };
        assert_eq!(ok(read()), read_request);
        assert_eq!(
            ok(set(read(), "/typing_indicator", Value::Null)),
            read_request
        );
        let reply = ok(set(text(), "/context", json!({"message_id": "wamid.Q"})));
        assert_eq!(reply.context_message_id.as_deref(), Some("wamid.Q"));
        let reaction_request = ok(reaction("👍🏽"));
        assert_eq!(
            reaction_request.context_message_id.as_deref(),
            Some("wamid.A")
        );
        assert!(reaction_request.needs_service_window);
        assert!(!ok(template()).needs_service_window);
        let group = set(
            set(text(), "/recipient_type", json!("group")),
            "/to",
            json!("Y2FwaV9n"),
        );
        assert_eq!(ok(group).to.as_deref(), Some("Y2FwaV9n"));
    }

    #[test]
    fn accepts_every_message_type() {
        let media = |kind: &str, object: Value| msg(json!({"type": kind, kind: object}));
        let document =
            json!({"link": "http://a.b/r.pdf", "caption": "Receipt", "filename": "r.pdf"});
        let flow_by_name = json!({"flow_message_version": "3", "flow_cta": "Go", "flow_name": "signup",
            "flow_action": "data_exchange", "flow_action_payload": {}});
        let product = interactive(
            "product",
            json!({"catalog_id": "1", "product_retailer_id": "s"}),
        );
        #[rustfmt::skip]
        let mut cases = vec![
            (set(text(), "/text/body", json!("é".repeat(4096))), "text", Some("é")),
            (set(text(), "/to", json!("55119")), "text", Some("O")),
            (set(text(), "/to", json!(format!("+{}", "1".repeat(20)))), "text", Some("O")),
            (set(text(), "/biz_opaque_callback_data", json!(x(512))), "text", Some("O")),
            (set(text(), "/unknown_key", json!({"anything": 1})), "text", Some("O")),
            (media("document", document), "document", Some("Receipt")),
            (media("audio", json!({"id": "1", "voice": true})), "audio", None),
            (location(), "location", None),
            (set(location(), "/location/latitude", json!(90)), "location", None),
            (set(location(), "/location/longitude", json!("-180")), "location", None),
            (contacts(), "contacts", None),
            (set(contacts(), "/contacts", json!(vec![contacts()["contacts"][0].clone(); 257])), "contacts", None),
            (set(button(), "/interactive/header", json!({"type": "image", "image": {"id": "1"}})), "interactive", Some("Pick")),
            (set(button(), "/interactive/footer", json!({"text": "Bye"})), "interactive", Some("Pick")),
            (set(button(), "/interactive/action/buttons/0/reply/id", json!("a b")), "interactive", Some("Pick")),
            (list(), "interactive", Some("Pick")),
            (set(list(), "/interactive/header", json!({"type": "text", "text": "Menu"})), "interactive", Some("Pick")),
            (set(list(), "/interactive/action/sections", json!([section("A", 1)])), "interactive", Some("Pick")),
            (set(list(), "/interactive/body/text", json!(x(4096))), "interactive", Some("x")),
            (cta(), "interactive", Some("Pick")),
            (carousel(), "interactive", Some("Pick")),
            (carousel_of(10), "interactive", Some("Pick")),
            (flow(), "interactive", Some("Pick")),
            (set(flow(), "/interactive/action/parameters", flow_by_name), "interactive", Some("Pick")),
            (set(flow(), "/interactive/action/parameters/flow_id", json!(123)), "interactive", Some("Pick")),
            (set(product, "/interactive/body", Value::Null), "interactive", None),
            (interactive("location_request_message", json!({"name": "send_location"})), "interactive", Some("Pick")),
            (interactive("call_permission_request", json!({})), "interactive", Some("Pick")),
            (template(), "template", Some("order_update")),
            (tap_target(json!([{"url": "https://a.b/offer", "title": "Offer Details"}])), "template", Some("order_update")),
            (reaction("👍🏽"), "reaction", Some("👍")),
            (reaction("👨‍👩‍👧‍👦"), "reaction", Some("👨")),
            (reaction("1️⃣"), "reaction", Some("1")),
            (reaction(""), "reaction", None),
        ];
        for kind in ["image", "video", "audio", "document", "sticker"] {
            cases.push((media(kind, json!({"id": "1234"})), kind, None));
            cases.push((
                media(kind, json!({"link": "HTTPS://cdn.example.com/a"})),
                kind,
                None,
            ));
        }
        for (body, message_type, preview_start) in cases {
            let request = ok(body);
            assert_eq!(request.message_type, message_type);
            let preview = request.preview.as_deref();
            match preview_start {
                Some(start) => {
                    assert!(preview.is_some_and(|p| p.starts_with(start)), "{preview:?}")
                }
                None => assert_eq!(preview, None),
            }
        }
    }

    #[test]
    fn accepts_formatted_phone_numbers_as_their_digits() {
        for to in [
            "+1 555 123 4567",
            "+1 (555) 123-4567",
            "1-555-123-4567",
            "+ 1 555 123 4567 ",
            "15551234567",
        ] {
            assert_eq!(
                ok(set(text(), "/to", json!(to))).to.as_deref(),
                Some("15551234567"),
                "{to}"
            );
        }
        let twenty = format!("+{}", "12-".repeat(10));
        assert_eq!(
            ok(set(text(), "/to", json!(twenty))).to,
            Some("12".repeat(10))
        );
        let group = set(text(), "/recipient_type", json!("group"));
        let group_id = "+1 (555) group";
        assert_eq!(
            ok(set(group, "/to", json!(group_id))).to.as_deref(),
            Some(group_id)
        );
    }

    #[test]
    fn a_business_scoped_user_id_is_a_recipient_without_a_number() {
        let user_id = "US.13491208655302741918";
        let without_to = set(text(), "/to", Value::Null);
        let by_user_id = ok(set(without_to.clone(), "/recipient", json!(user_id)));
        assert_eq!(by_user_id.to.as_deref(), Some(user_id));
        let parent = set(
            without_to.clone(),
            "/recipient",
            json!("US.ENT.11815799212886844830"),
        );
        assert_eq!(
            ok(parent).to.as_deref(),
            Some("US.ENT.11815799212886844830")
        );
        let both = set(text(), "/recipient", json!(user_id));
        assert_eq!(ok(both).to.as_deref(), Some("15551234567"), "`to` wins");
        for bad in ["15551234567", "us.1", "US.", "US.1 2"] {
            let refused = validate(&set(without_to.clone(), "/recipient", json!(bad))).unwrap_err();
            assert_eq!(
                (refused.field.as_str(), refused.code),
                ("recipient", INVALID),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_bad_envelopes() {
        let t = text;
        #[rustfmt::skip]
        let cases = vec![
            (json!([1]), "body", INVALID),
            (set(t(), "/messaging_product", Value::Null), "messaging_product", MISSING),
            (set(t(), "/messaging_product", json!("sms")), "messaging_product", INVALID),
            (set(t(), "/to", Value::Null), "to", MISSING),
            (set(t(), "/to", json!(15551234567_u64)), "to", INVALID),
            (set(t(), "/to", json!("abc")), "to", INVALID),
            (set(t(), "/to", json!("+1234")), "to", INVALID),
            (set(t(), "/to", json!(format!("+{}", "1".repeat(21)))), "to", INVALID),
            (set(t(), "/to", json!("++15551234567")), "to", INVALID),
            (set(t(), "/to", json!("+1.555.123.4567")), "to", INVALID),
            (set(t(), "/to", json!("+1 555 123 4567 ext 2")), "to", INVALID),
            (set(t(), "/to", json!("1 555+123 4567")), "to", INVALID),
            (set(t(), "/to", json!(" +15551234567")), "to", INVALID),
            (set(t(), "/to", json!("+1\t5551234567")), "to", INVALID),
            (set(t(), "/to", json!("+(12) 3-4")), "to", INVALID),
            (set(t(), "/to", json!("+".to_owned() + &"1-".repeat(21))), "to", INVALID),
            (set(t(), "/to", json!("()- -")), "to", INVALID),
            (set(t(), "/to", json!("１５５５１２３４５６７")), "to", INVALID),
            (set(t(), "/recipient_type", json!("broadcast")), "recipient_type", INVALID),
            (set(set(t(), "/recipient_type", json!("group")), "/to", json!(" ")), "to", INVALID),
            (set(t(), "/type", json!("poll")), "type", UNSUPPORTED),
            (set(t(), "/type", json!(5)), "type", INVALID),
            (set(t(), "/type", json!("image")), "image", MISSING),
            (set(t(), "/text", json!("hi")), "text", INVALID),
            (set(t(), "/context", json!("wamid.Q")), "context", INVALID),
            (set(t(), "/context", json!({})), "context.message_id", MISSING),
            (set(t(), "/context", json!({"message_id": ""})), "context.message_id", INVALID),
            (set(t(), "/biz_opaque_callback_data", json!(x(513))), "biz_opaque_callback_data", INVALID),
            (set(t(), "/biz_opaque_callback_data", json!(7)), "biz_opaque_callback_data", INVALID),
        ];
        refused("", cases);
        #[rustfmt::skip]
        let cases = vec![
            (set(read(), "/status", json!("delivered")), "status", INVALID),
            (set(read(), "/message_id", Value::Null), "message_id", MISSING),
            (set(read(), "/typing_indicator", json!(true)), "typing_indicator", INVALID),
            (set(read(), "/typing_indicator/type", json!("audio")), "typing_indicator.type", INVALID),
            (set(read(), "/typing_indicator/type", Value::Null), "typing_indicator.type", MISSING),
        ];
        refused("", cases);
    }

    #[test]
    fn refuses_bad_text_and_media() {
        let body = |value: Value| set(text(), "/text/body", value);
        #[rustfmt::skip]
        let cases = vec![
            (body(Value::Null), "body", MISSING),
            (body(json!("")), "body", INVALID),
            (body(json!(x(4097))), "body", UNSUPPORTED),
            (body(json!(42)), "body", INVALID),
            (set(text(), "/text/preview_url", json!("yes")), "preview_url", INVALID),
        ];
        refused("text.", cases);
        let media = |kind: &str, object: Value| msg(json!({"type": kind, kind: object}));
        #[rustfmt::skip]
        let cases = vec![
            (media("image", json!({"id": "1", "link": "https://a.b"})), "image", INVALID),
            (media("video", json!({"caption": "hi"})), "video", MISSING),
            (media("image", json!({"id": ""})), "image.id", INVALID),
            (media("image", json!({"link": "ftp://a.b/c.png"})), "image.link", INVALID),
            (media("image", json!({"link": "https:///c.png"})), "image.link", INVALID),
            (media("image", json!({"link": "https://a.b/c d.png"})), "image.link", INVALID),
            (media("image", json!({"id": "1", "caption": x(1025)})), "image.caption", INVALID),
            (media("audio", json!({"id": "1", "caption": "hi"})), "audio.caption", UNSUPPORTED),
            (media("sticker", json!({"id": "1", "caption": "hi"})), "sticker.caption", UNSUPPORTED),
            (media("video", json!({"id": "1", "filename": "a.mp4"})), "video.filename", UNSUPPORTED),
            (media("document", json!({"id": "1", "filename": x(241)})), "document.filename", INVALID),
            (media("audio", json!({"id": "1", "voice": "yes"})), "audio.voice", INVALID),
        ];
        refused("", cases);
    }

    #[test]
    fn refuses_bad_location_and_contacts() {
        let loc = edit(location, "/location/");
        #[rustfmt::skip]
        let cases = vec![
            (loc("latitude", json!(90.5)), "latitude", INVALID),
            (loc("longitude", json!(-181)), "longitude", INVALID),
            (loc("latitude", json!("north")), "latitude", INVALID),
            (loc("latitude", json!("NaN")), "latitude", INVALID),
            (loc("longitude", json!(true)), "longitude", INVALID),
            (loc("latitude", Value::Null), "latitude", MISSING),
            (loc("name", json!(3)), "name", INVALID),
        ];
        refused("location.", cases);
        let card = edit(contacts, "/contacts/0");
        #[rustfmt::skip]
        let cases = vec![
            (set(contacts(), "/contacts", Value::Null), "", MISSING),
            (set(contacts(), "/contacts", json!([])), "", INVALID),
            (set(contacts(), "/contacts", json!({"name": "Ana"})), "", INVALID),
            (card("", json!("Ana")), "[0]", INVALID),
            (card("/name", Value::Null), "[0].name", MISSING),
            (card("/name/formatted_name", Value::Null), "[0].name.formatted_name", MISSING),
            (card("/name/formatted_name", json!("")), "[0].name.formatted_name", INVALID),
            (card("/phones", json!({"phone": "1"})), "[0].phones", INVALID),
            (card("/emails", json!(["a@b.c"])), "[0].emails[0]", INVALID),
            (set(contacts(), "/contacts", json!(vec![contacts()["contacts"][0].clone(); 258])), "", INVALID),
        ];
        refused("contacts", cases);
    }

    #[test]
    fn refuses_bad_interactive_parts() {
        let part = edit(button, "/interactive/");
        let list_header = set(
            list(),
            "/interactive/header",
            json!({"type": "image", "image": {"id": "1"}}),
        );
        let product_list = interactive("product_list", json!({}));
        #[rustfmt::skip]
        let cases = vec![
            (part("type", json!("poll")), "type", UNSUPPORTED),
            (part("type", Value::Null), "type", MISSING),
            (part("body", Value::Null), "body", MISSING),
            (part("body", json!({})), "body.text", MISSING),
            (part("body", json!({"text": x(1025)})), "body.text", INVALID),
            (set(cta(), "/interactive/body/text", json!(x(1025))), "body.text", INVALID),
            (set(list(), "/interactive/body/text", json!(x(4097))), "body.text", INVALID),
            (part("footer", json!({"text": x(61)})), "footer.text", INVALID),
            (part("header", json!({"type": "text", "text": x(61)})), "header.text", INVALID),
            (part("header", json!({"type": "gif"})), "header.type", INVALID),
            (part("header", json!({"type": "video"})), "header.video", MISSING),
            (part("header", json!({"type": "video", "video": {}})), "header.video", MISSING),
            (part("action", Value::Null), "action", MISSING),
            (list_header, "header.type", INVALID),
            (set(product_list, "/interactive/body", Value::Null), "body", MISSING),
        ];
        refused("interactive.", cases);
    }

    #[test]
    fn refuses_bad_reply_buttons() {
        let at = edit(button, "/interactive/action/buttons");
        #[rustfmt::skip]
        let cases = vec![
            (at("", Value::Null), "", MISSING),
            (at("", json!([])), "", INVALID),
            (at("", json!([reply("a", "A"), reply("b", "B"), reply("c", "C"), reply("d", "D")])), "", INVALID),
            (at("/1/reply/id", json!("a")), "[1].reply.id", INVALID),
            (at("/1/reply/title", json!("A")), "[1].reply.title", INVALID),
            (at("/0/reply/title", json!(x(21))), "[0].reply.title", INVALID),
            (at("/0/reply/title", json!("")), "[0].reply.title", INVALID),
            (at("/0/reply/id", json!(x(257))), "[0].reply.id", INVALID),
            (at("/0/reply/id", json!(" a")), "[0].reply.id", INVALID),
            (at("/1/reply/id", json!("b ")), "[1].reply.id", INVALID),
            (at("/0/type", json!("url")), "[0].type", INVALID),
            (at("/0/reply", Value::Null), "[0].reply", MISSING),
        ];
        refused("interactive.action.buttons", cases);
    }

    #[test]
    fn refuses_bad_lists() {
        let at = edit(list, "/interactive/action");
        let eleven: Vec<Value> = (0..11).map(|i| section(&format!("S{i}"), 1)).collect();
        let row = |id: &str| json!({"id": id, "title": "Row"});
        #[rustfmt::skip]
        let cases = vec![
            (at("/button", json!(x(21))), "button", INVALID),
            (at("/button", Value::Null), "button", MISSING),
            (at("/sections", json!([])), "sections", INVALID),
            (at("/sections", json!(eleven)), "sections", INVALID),
            (at("/sections/0", section("A", 5)), "sections[1].rows[5]", INVALID),
            (at("/sections/1", section("A", 1)), "sections[1].rows[0].id", INVALID),
            (at("/sections/0/rows/1", row("A0")), "sections[0].rows[1].id", INVALID),
            (at("/sections/0/rows/0/id", json!(x(201))), "sections[0].rows[0].id", INVALID),
            (at("/sections/0/rows/0/title", json!(x(25))), "sections[0].rows[0].title", INVALID),
            (at("/sections/0/rows/0/description", json!(x(73))), "sections[0].rows[0].description", INVALID),
            (at("/sections/0/title", Value::Null), "sections[0].title", MISSING),
            (at("/sections/0/title", json!(x(25))), "sections[0].title", INVALID),
            (at("/sections/0/rows", json!([])), "sections[0].rows", INVALID),
            (at("/sections/0/rows", Value::Null), "sections[0].rows", MISSING),
        ];
        refused("interactive.action.", cases);
    }

    #[test]
    fn refuses_bad_cta_url_and_flow() {
        let cta_at = edit(cta, "/interactive/action");
        let at = edit(flow, "/interactive/action");
        let param = edit(flow, "/interactive/action/parameters/");
        #[rustfmt::skip]
        let cases = vec![
            (cta_at("/name", json!("url")), "name", INVALID),
            (cta_at("/parameters", Value::Null), "parameters", MISSING),
            (cta_at("/parameters/display_text", json!(x(21))), "parameters.display_text", INVALID),
            (cta_at("/parameters/url", json!("javascript:alert(1)")), "parameters.url", INVALID),
            (cta_at("/parameters/url", Value::Null), "parameters.url", MISSING),
            (at("/name", Value::Null), "name", MISSING),
            (param("flow_message_version", json!("2")), "parameters.flow_message_version", INVALID),
            (param("flow_cta", json!(x(31))), "parameters.flow_cta", INVALID),
            (param("flow_name", json!("signup")), "parameters", INVALID),
            (param("flow_id", Value::Null), "parameters", MISSING),
            (param("flow_id", json!("")), "parameters.flow_id", INVALID),
            (param("mode", json!("test")), "parameters.mode", INVALID),
            (param("flow_action", json!("open")), "parameters.flow_action", INVALID),
            (param("flow_action_payload", json!([])), "parameters.flow_action_payload", INVALID),
            (param("flow_action_payload", json!({})), "parameters.flow_action_payload.screen", MISSING),
        ];
        refused("interactive.action.", cases);
    }

    #[test]
    fn refuses_bad_carousels() {
        let part = edit(carousel, "/interactive/");
        let at = edit(carousel, "/interactive/action/cards");
        let cta = json!({"name": "cta_url", "parameters": {"display_text": "Buy", "url": "https://a.b/x"}});
        let one_reply = json!({"buttons": [quick_reply("a", "A")]});
        let both = json!({"name": "cta_url", "buttons": [quick_reply("a", "A")]});
        #[rustfmt::skip]
        let cases = vec![
            (part("header", json!({"type": "text", "text": "Hi"})), "header", UNSUPPORTED),
            (part("footer", json!({"text": "Bye"})), "footer", UNSUPPORTED),
            (part("body", Value::Null), "body", MISSING),
            (part("body", json!({"text": x(1025)})), "body.text", INVALID),
            (at("", Value::Null), "action.cards", MISSING),
            (at("", json!([card(0, one_reply.clone())])), "action.cards", INVALID),
            (carousel_of(11), "action.cards", INVALID),
            (at("/0/card_index", Value::Null), "action.cards[0].card_index", MISSING),
            (at("/0/card_index", json!("first")), "action.cards[0].card_index", INVALID),
            (at("/0/type", json!("url")), "action.cards[0].type", INVALID),
            (at("/0/header", Value::Null), "action.cards[0].header", MISSING),
            (at("/0/header", json!({"type": "text", "text": "Hi"})), "action.cards[0].header.type", INVALID),
            (at("/0/header", json!({"type": "video"})), "action.cards[0].header.video", MISSING),
            (at("/0/header/image", json!({"link": "ftp://a.b/c.png"})), "action.cards[0].header.image.link", INVALID),
            (at("/0/body/text", json!(x(161))), "action.cards[0].body.text", INVALID),
            (at("/0/action", Value::Null), "action.cards[0].action", MISSING),
            (at("/0/action", json!({})), "action.cards[0].action", MISSING),
            (at("/0/action", both), "action.cards[0].action", INVALID),
            (at("/0/action/buttons", json!([])), "action.cards[0].action.buttons", INVALID),
            (at("/0/action/buttons/0/type", json!("reply")), "action.cards[0].action.buttons[0].type", INVALID),
            (at("/0/action/buttons/0/quick_reply", Value::Null), "action.cards[0].action.buttons[0].quick_reply", MISSING),
            (at("/0/action/buttons/1/quick_reply/id", json!("a")), "action.cards[0].action.buttons[1].quick_reply.id", INVALID),
            (at("/0/action/buttons/0/quick_reply/id", json!(x(257))), "action.cards[0].action.buttons[0].quick_reply.id", INVALID),
            (at("/0/action/buttons/0/quick_reply/title", json!(x(21))), "action.cards[0].action.buttons[0].quick_reply.title", INVALID),
            (at("/1/action", one_reply), "action.cards[1].action", INVALID),
            (at("/1/action", cta.clone()), "action.cards[1].action", INVALID),
            (at("/0/action", cta), "action.cards[1].action", INVALID),
        ];
        refused("interactive.", cases);
        let cta_card = |index: usize, url: &str, text: &str| {
            let parameters = json!({"display_text": text, "url": url});
            card(index, json!({"name": "cta_url", "parameters": parameters}))
        };
        #[rustfmt::skip]
        let cases = vec![
            (at("/0", cta_card(0, "javascript:alert(1)", "Buy")), "[0].action.parameters.url", INVALID),
            (at("/0", cta_card(0, "https://a.b", &x(21))), "[0].action.parameters.display_text", INVALID),
            (at("/0/action", json!({"name": "url"})), "[0].action.name", INVALID),
        ];
        refused("interactive.action.cards", cases);
        let cta_cards = json!([
            cta_card(0, "https://a.b/0", "Buy"),
            cta_card(1, "https://a.b/1", "Buy")
        ]);
        let cta_carousel = at("", cta_cards);
        let video = json!({"type": "video", "video": {"id": "42"}});
        ok(set(
            set(cta_carousel, "/interactive/action/cards/1/header", video),
            "/interactive/action/cards/1/body",
            Value::Null,
        ));
    }

    #[test]
    fn refuses_bad_tap_targets() {
        let target = |url: &str, title: Value| json!([{"url": url, "title": title}]);
        #[rustfmt::skip]
        let cases = vec![
            (tap_target(Value::Null), "", MISSING),
            (tap_target(json!({"url": "https://a.b", "title": "Go"})), "", INVALID),
            (tap_target(json!([])), "", INVALID),
            (tap_target(json!(["https://a.b"])), "[0]", INVALID),
            (tap_target(target("ftp://a.b/c", json!("Go"))), "[0].url", INVALID),
            (tap_target(json!([{"title": "Go"}])), "[0].url", MISSING),
            (tap_target(target("https://a.b", Value::Null)), "[0].title", MISSING),
            (tap_target(target("https://a.b", json!(""))), "[0].title", INVALID),
        ];
        let prefix = "template.components[0].parameters[0].tap_target_configuration";
        refused(prefix, cases);
    }

    #[test]
    fn refuses_bad_templates() {
        let at = edit(template, "/template");
        let param = |value: Value| at("/components/1/parameters/0", value);
        #[rustfmt::skip]
        let cases = vec![
            (at("/name", Value::Null), "name", MISSING),
            (at("/name", json!("Order_Update")), "name", INVALID),
            (at("/name", json!("order update")), "name", INVALID),
            (at("/name", json!("a".repeat(513))), "name", INVALID),
            (at("/language", Value::Null), "language", MISSING),
            (at("/language", json!({"policy": "deterministic"})), "language.code", MISSING),
            (at("/components", json!({})), "components", INVALID),
            (at("/components/0/type", json!("sidebar")), "components[0].type", INVALID),
            (at("/components/0/type", Value::Null), "components[0].type", MISSING),
            (at("/components/2/sub_type", Value::Null), "components[2].sub_type", MISSING),
            (at("/components/2/index", Value::Null), "components[2].index", MISSING),
            (at("/components/2/index", json!("x")), "components[2].index", INVALID),
            (at("/components/3/cards/0/card_index", Value::Null), "components[3].cards[0].card_index", MISSING),
            (at("/components/3/cards/0/components/0/type", json!("x")), "components[3].cards[0].components[0].type", INVALID),
            (param(json!({"type": "emoji"})), "components[1].parameters[0].type", INVALID),
            (param(json!({"text": "hi"})), "components[1].parameters[0].type", MISSING),
            (param(json!({"type": "text"})), "components[1].parameters[0].text", MISSING),
            (param(json!({"type": "currency"})), "components[1].parameters[0].currency", MISSING),
            (param(json!({"type": "image", "image": {}})), "components[1].parameters[0].image", MISSING),
            (param(json!("Ana")), "components[1].parameters[0]", INVALID),
            (param(json!({"type": "text", "text": "Ana\nMaria"})), "components[1].parameters[0].text", TEMPLATE_PARAMETER),
            (param(json!({"type": "text", "text": "Ana\tMaria"})), "components[1].parameters[0].text", TEMPLATE_PARAMETER),
            (param(json!({"type": "text", "text": "Ana     Maria"})), "components[1].parameters[0].text", TEMPLATE_PARAMETER),
        ];
        refused("template.", cases);
    }

    #[test]
    fn template_text_parameters_may_have_four_spaces_in_a_row() {
        let body = set(
            template(),
            "/template/components/1/parameters/0/text",
            json!("Ana    Maria, pedido nº 12"),
        );
        assert!(validate(&body).is_ok());
    }

    #[test]
    fn refuses_bad_reactions() {
        #[rustfmt::skip]
        let cases = vec![
            (set(reaction("👍"), "/reaction/message_id", Value::Null), "message_id", MISSING),
            (set(reaction("👍"), "/reaction/emoji", Value::Null), "emoji", MISSING),
            (set(reaction("👍"), "/reaction/emoji", json!(1)), "emoji", INVALID),
            (reaction("thumbs up"), "emoji", INVALID),
            (reaction(":)"), "emoji", INVALID),
            (reaction(&"👍".repeat(11)), "emoji", INVALID),
        ];
        refused("reaction.", cases);
    }

    /// Validates `root` with every node below `path` replaced, one at a time, by odd values.
    fn mutate_everywhere(root: &Value, node: &Value, path: &str) {
        let children: Vec<(String, &Value)> = match node {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (format!("{path}/{k}"), v))
                .collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}/{i}"), v))
                .collect(),
            _ => Vec::new(),
        };
        for (child_path, child) in children {
            let odd_values = json!([null, -1.5, 1e300, "é😀", "", [], {}, true]);
            for odd in odd_values.as_array().into_iter().flatten() {
                let _ = validate(&set(root.clone(), &child_path, odd.clone()));
            }
            mutate_everywhere(root, child, &child_path);
        }
    }

    #[test]
    fn never_panics_on_odd_values() {
        let bases: [fn() -> Value; 10] = [
            text, location, contacts, button, list, cta, flow, carousel, template, read,
        ];
        let document = json!({"link": "https://a.b", "caption": "c", "filename": "f"});
        let others = [
            reaction("👍"),
            msg(json!({"type": "document", "document": document})),
        ];
        for body in bases.iter().map(|base| base()).chain(others) {
            mutate_everywhere(&body, &body, "");
        }
    }
}
