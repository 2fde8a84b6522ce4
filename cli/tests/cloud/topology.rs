//! The push subscriptions and the relay sweep of the deployed topology, as
//! `infra/functions.tf` declares them (`subscriptions = { topic = filter }` per
//! function, and `jobs.relay`); the test `topology_matches_infra` keeps the
//! two in step.

/// A push subscription of one function to one topic.
pub struct Route {
    pub function: &'static str,
    pub topic: &'static str,
    /// Pub/Sub attribute filter; empty = every message.
    pub filter: &'static str,
}

const MEDIA_TYPES: &str = "attributes.message_type = \"image\" OR attributes.message_type = \"sticker\" OR attributes.message_type = \"audio\" OR attributes.message_type = \"video\" OR attributes.message_type = \"document\"";

/// The media processors have none: deployed, the media bucket's object-finalized
/// events (Eventarc) start them, which the emulators cannot raise.
pub const SUBSCRIPTIONS: [Route; 4] = [
    Route { function: "status", topic: "statuses", filter: "" },
    Route {
        function: "text",
        topic: "messages",
        filter: "attributes.message_type = \"text\" OR attributes.message_type = \"interactive\" OR attributes.message_type = \"button\"",
    },
    Route { function: "text", topic: "transcripts", filter: "" },
    Route { function: "media-fetch", topic: "messages", filter: MEDIA_TYPES },
];

/// A Cloud Scheduler job: a `POST` to one function's path.
#[derive(Debug, PartialEq, Eq)]
pub struct Job {
    pub function: &'static str,
    pub path: &'static str,
}

/// The relay sweep (`POST /_relay`) of events no instance forwarded.
pub const RELAY_JOB: Job = Job {
    function: "webhook",
    path: "/_relay",
};

/// The (function, path) of `jobs.relay` in `infra/functions.tf`.
pub fn relay_job_in_infra(tf: &str) -> Option<(String, String)> {
    let block: Vec<&str> = tf
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "jobs = {")
        .skip_while(|line| *line != "relay = {")
        .take_while(|line| *line != "}")
        .collect();
    let field = |name: &str| {
        block.iter().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
        })
    };
    Some((field("function")?, field("path")?))
}

/// The subscriptions `infra/functions.tf` declares: (function, topic, filter).
/// Reads the `function_specs` blocks' `subscriptions` maps; a filter is a quoted
/// HCL string or the `join(" OR ", …local.media_types…)` expression.
pub fn declared_in_infra(tf: &str) -> Vec<(String, String, String)> {
    let media_types: Vec<String> = tf
        .lines()
        .find_map(|line| line.trim().strip_prefix("media_types = ["))
        .map(|list| {
            list.trim_end_matches(']')
                .split(',')
                .map(|item| item.trim().trim_matches('"').to_owned())
                .collect()
        })
        .unwrap_or_default();
    let value = |text: &str| -> String {
        let text = text.trim();
        if text.starts_with("join(\" OR \", [for t in local.media_types") {
            return media_types
                .iter()
                .map(|t| format!("attributes.message_type = \"{t}\""))
                .collect::<Vec<_>>()
                .join(" OR ");
        }
        let unquoted = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        unquoted.replace("\\\"", "\"")
    };
    let mut routes = Vec::new();
    let mut function: Option<String> = None;
    let mut in_map = false;
    for line in tf.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 4 && trimmed.ends_with("= {") {
            function = Some(trimmed.trim_end_matches("= {").trim().to_owned());
            continue;
        }
        let Some(name) = &function else { continue };
        let entry = |text: &str, routes: &mut Vec<(String, String, String)>| {
            if let Some((topic, filter)) = text.split_once('=') {
                routes.push((name.clone(), topic.trim().to_owned(), value(filter)));
            }
        };
        if in_map {
            if trimmed == "}" {
                in_map = false;
            } else {
                entry(trimmed, &mut routes);
            }
        } else if let Some(map) = trimmed.strip_prefix("subscriptions") {
            let map = map.trim().trim_start_matches('=').trim();
            if map == "{" {
                in_map = true;
            } else if let Some(inner) = map.strip_prefix('{').and_then(|m| m.strip_suffix('}')) {
                if !inner.trim().is_empty() {
                    entry(inner, &mut routes);
                }
            }
        }
    }
    routes
}
