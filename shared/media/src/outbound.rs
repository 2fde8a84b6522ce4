//! The media objects of a Graph API send body that zapfn uploads itself before
//! sending (Meta fetches links late and fails silently): any with a `link`, and
//! any whose `id` names a zapfn message (`msg_…`) whose stored object is sent.
//! Objects with one of Meta's media ids are sent as they are.

use serde_json::Value;

use crate::MediaKind;

/// Prefix of zapfn message ids.
const MESSAGE_ID_PREFIX: &str = "msg_";

/// Where the bytes of a media object come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An http(s) link given by the client.
    Link(String),
    /// The stored object of a zapfn message (an inbound media message, e.g. to forward it).
    Stored(String),
}

/// A media object to upload: where it is in the body, its kind and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// JSON pointer to the media object, e.g. `/image` or `/interactive/header/video`.
    pub pointer: String,
    pub kind: MediaKind,
    pub source: Source,
}

impl Slot {
    /// The field name to report errors on, e.g. `image.link`.
    pub fn field(&self) -> String {
        let path = self.pointer.trim_start_matches('/').replace('/', ".");
        match self.source {
            Source::Link(_) => format!("{path}.link"),
            Source::Stored(_) => format!("{path}.id"),
        }
    }
}

/// The media objects of `body` zapfn must upload: the message's own media, an
/// interactive header's, and template parameters'.
pub fn slots(body: &Value) -> Vec<Slot> {
    let mut candidates = Vec::new();
    if let Some(kind) = body["type"].as_str().and_then(MediaKind::parse) {
        candidates.push((format!("/{}", kind.as_str()), kind));
    }
    if body["type"] == "interactive" {
        if let Some(kind) = header_kind(&body["interactive"]["header"]["type"]) {
            candidates.push((format!("/interactive/header/{kind}"), kind));
        }
    }
    let components = body["template"]["components"].as_array();
    for (i, component) in components.into_iter().flatten().enumerate() {
        let parameters = component["parameters"].as_array();
        for (j, parameter) in parameters.into_iter().flatten().enumerate() {
            if let Some(kind) = header_kind(&parameter["type"]) {
                candidates.push((
                    format!("/template/components/{i}/parameters/{j}/{kind}"),
                    kind,
                ));
            }
        }
    }
    candidates
        .into_iter()
        .filter_map(|(pointer, kind)| {
            let object = body.pointer(&pointer)?;
            let source = match (object["link"].as_str(), object["id"].as_str()) {
                (Some(link), _) => Source::Link(link.to_owned()),
                (None, Some(id)) if id.starts_with(MESSAGE_ID_PREFIX) => {
                    Source::Stored(id.to_owned())
                }
                _ => return None,
            };
            Some(Slot {
                pointer,
                kind,
                source,
            })
        })
        .collect()
}

/// The media kinds a header or template parameter can carry.
fn header_kind(kind: &Value) -> Option<MediaKind> {
    match kind.as_str()? {
        "image" => Some(MediaKind::Image),
        "video" => Some(MediaKind::Video),
        "document" => Some(MediaKind::Document),
        _ => None,
    }
}

/// Points the media object at `pointer` to Meta's `media_id` (dropping its link).
pub fn use_media_id(body: &mut Value, pointer: &str, media_id: &str) {
    if let Some(object) = body.pointer_mut(pointer).and_then(Value::as_object_mut) {
        object.remove("link");
        object.insert("id".to_owned(), Value::String(media_id.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_links_and_stored_objects_but_not_meta_ids() {
        let image = json!({"type": "image", "image": {"link": "https://cdn.example.com/a.jpg", "caption": "hi"}});
        assert_eq!(
            slots(&image),
            [Slot {
                pointer: "/image".into(),
                kind: MediaKind::Image,
                source: Source::Link("https://cdn.example.com/a.jpg".into())
            }]
        );
        assert_eq!(slots(&image)[0].field(), "image.link");
        let forward =
            json!({"type": "document", "document": {"id": "msg_0192abc", "filename": "a.pdf"}});
        assert_eq!(
            slots(&forward)[0].source,
            Source::Stored("msg_0192abc".into())
        );
        assert_eq!(slots(&forward)[0].field(), "document.id");
        assert!(slots(&json!({"type": "audio", "audio": {"id": "1480000000000004"}})).is_empty());
        assert!(slots(&json!({"type": "text", "text": {"body": "hi"}})).is_empty());
    }

    #[test]
    fn finds_interactive_headers_and_template_parameters() {
        let interactive = json!({"type": "interactive", "interactive": {"type": "button",
            "header": {"type": "video", "video": {"link": "https://a.b/v.mp4"}}}});
        assert_eq!(slots(&interactive)[0].pointer, "/interactive/header/video");
        let template = json!({"type": "template", "template": {"name": "t", "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "x"}]},
            {"type": "header", "parameters": [{"type": "document", "document": {"link": "https://a.b/r.pdf"}}]}]}});
        let found = slots(&template);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].pointer,
            "/template/components/1/parameters/0/document"
        );
        assert_eq!(found[0].kind, MediaKind::Document);
    }

    #[test]
    fn replaces_a_link_with_the_uploaded_id() {
        let mut body =
            json!({"type": "image", "image": {"link": "https://a.b/c.jpg", "caption": "hi"}});
        use_media_id(&mut body, "/image", "123");
        assert_eq!(body["image"], json!({"id": "123", "caption": "hi"}));
    }
}
