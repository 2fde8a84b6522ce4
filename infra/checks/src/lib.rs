//! Static checks of zapfn's deploy artefacts against the code: the Terraform in
//! `infra/` (parsed with `hcl-rs`), `cloudbuild.yaml`, the `Dockerfile` and the
//! monitoring files. No Google Cloud access is needed; the tests in `tests/`
//! assert cross-references (every function crate deployed, identified and
//! triggered; topics, secrets, indexes, thresholds).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads a file of the repository.
pub fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The function crates (directories of `functions/` with a Cargo.toml).
pub fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(repo().join("functions"))
        .expect("functions/")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every `.tf` file under `infra/` (relative paths).
pub fn tf_files() -> Vec<String> {
    let infra = repo().join("infra");
    walkdir::WalkDir::new(&infra)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.path().extension().is_some_and(|ext| ext == "tf")
                && !entry
                    .path()
                    .components()
                    .any(|c| c.as_os_str() == ".terraform")
        })
        .map(|entry| {
            format!(
                "infra/{}",
                entry.path().strip_prefix(&infra).unwrap().display()
            )
        })
        .collect()
}

/// A Terraform file as JSON-like data: literals as they are, any other expression
/// as its `${…}` text (hcl-rs's `Value` conversion).
pub fn tf(relative: &str) -> Value {
    let value: hcl::Value =
        hcl::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_json::to_value(value).expect("HCL values are JSON values")
}

/// All blocks of one kind in a file, e.g. `tf_blocks(file, "variable")` → name => body.
pub fn tf_blocks(relative: &str, kind: &str) -> BTreeMap<String, Value> {
    match tf(relative).get(kind) {
        Some(Value::Object(blocks)) => blocks.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// The `locals` of `infra/functions.tf`: the deployed topology.
pub fn catalog() -> Value {
    tf("infra/functions.tf")["locals"].clone()
}

/// Every function's full settings: `function_defaults` merged with its entry of
/// `function_specs` (what `local.function_catalog` computes in Terraform).
pub fn function_specs() -> BTreeMap<String, Value> {
    let catalog = catalog();
    let defaults = catalog["function_defaults"]
        .as_object()
        .expect("infra/functions.tf: locals.function_defaults")
        .clone();
    catalog["function_specs"]
        .as_object()
        .expect("infra/functions.tf: locals.function_specs")
        .iter()
        .map(|(name, spec)| {
            let mut merged = defaults.clone();
            merged.extend(spec.as_object().cloned().unwrap_or_default());
            (name.clone(), Value::Object(merged))
        })
        .collect()
}

/// Topic constants of the store (`pub const MESSAGES: &str = "messages"`): NAME => value.
pub fn topic_constants() -> BTreeMap<String, String> {
    let model = read("shared/store/src/model.rs");
    let module = model
        .split("pub mod topics")
        .nth(1)
        .expect("shared/store/src/model.rs has `pub mod topics`");
    let module = &module[..module.find('}').unwrap_or(module.len())];
    Regex::new(r#"pub const (\w+): &str = "([^"]+)""#)
        .unwrap()
        .captures_iter(module)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect()
}

/// Topics each function's code subscribes to: `Subscription::new(topics::X, …)`, or a
/// local helper named `subscription(topics::X, …)`.
pub fn code_subscriptions() -> BTreeMap<String, BTreeSet<String>> {
    let constants = topic_constants();
    let pattern = Regex::new(r"[sS]ubscription(?:::new)?\(\s*topics::(\w+)").unwrap();
    function_crates()
        .into_iter()
        .map(|function| {
            let topics = rust_sources(&format!("functions/{function}/src"))
                .iter()
                .flat_map(|source| {
                    pattern
                        .captures_iter(source)
                        .map(|c| constants[&c[1]].clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            (function, topics)
        })
        .collect()
}

/// The topic whose handlers Eventarc's Cloud Storage events are posted to
/// (`/_eventarc/media`): deployed, a function with `storage_events` gets the
/// stored originals' object-finalized events there instead of `media` events.
pub const STORAGE_EVENTS_TOPIC: &str = "media";

/// Whether any function is triggered by storage events (then nobody needs the
/// [`STORAGE_EVENTS_TOPIC`] Pub/Sub topic).
pub fn storage_triggered() -> bool {
    function_specs()
        .values()
        .any(|spec| spec["storage_events"] == true)
}

/// The store writes that publish events to fixed topics: Store method => the module
/// of the SQLite store that implements it (the other stores publish the same).
/// `accept_webhook` stores what it accepts through the same ingest (directly, or
/// by the journal's indexer).
pub const PUBLISHING_STORE_WRITES: [(&str, &str); 3] = [
    ("ingest", "shared/store/src/sqlite/ingest.rs"),
    ("enqueue_send", "shared/store/src/sqlite/messages.rs"),
    ("accept_webhook", "shared/store/src/sqlite/ingest.rs"),
];

/// Topics a module of the SQLite store writes to the outbox with a fixed topic
/// (`outbox::publish(conn, topics::X, …)`).
pub fn store_module_topics(relative: &str) -> BTreeSet<String> {
    let constants = topic_constants();
    Regex::new(r"outbox::publish\(\s*\w+,\s*topics::(\w+)")
        .unwrap()
        .captures_iter(&read(relative))
        .map(|c| constants[&c[1]].clone())
        .collect()
}

/// Topics each function's code writes events to (the outbox, which its relay then
/// forwards: `dispatch` to Cloud Tasks, the rest to Pub/Sub): the store writes it
/// calls from [`PUBLISHING_STORE_WRITES`], and the `NewEvent { topic: topics::X, … }`
/// it builds (handed to `annotate_media`). Test modules are left out.
pub fn code_publishes() -> BTreeMap<String, BTreeSet<String>> {
    let constants = topic_constants();
    let event = Regex::new(r"topic:\s*topics::(\w+)").unwrap();
    let call = Regex::new(r"\.(\w+)\(").unwrap();
    let writes: BTreeMap<&str, BTreeSet<String>> = PUBLISHING_STORE_WRITES
        .iter()
        .map(|(method, module)| (*method, store_module_topics(module)))
        .collect();
    function_crates()
        .into_iter()
        .map(|function| {
            let mut topics = BTreeSet::new();
            for source in production_sources(&format!("functions/{function}/src")) {
                topics.extend(
                    event
                        .captures_iter(&source)
                        .map(|c| constants[&c[1]].clone()),
                );
                for c in call.captures_iter(&source) {
                    if let Some(published) = writes.get(&c[1]) {
                        topics.extend(published.iter().cloned());
                    }
                }
            }
            (function, topics)
        })
        .collect()
}

/// What a function's code does with media objects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlobUse {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub sign: bool,
}

/// Each function's use of the blob store, from its code: `blobs.get`, the shared
/// media `Processor` (which reads the stored object) → read; `blobs.put`,
/// `put_derived` → write; `blobs.delete` → delete; `signed_url` → sign (and read:
/// a signed URL is authorised as its signer).
pub fn code_blob_use() -> BTreeMap<String, BlobUse> {
    let pattern = |p: &str| Regex::new(p).unwrap();
    let (get, put, delete, sign) = (
        pattern(r"blobs\s*\.get\(|Processor::new\("),
        pattern(r"blobs\s*\.put\(|\.put_derived\("),
        pattern(r"blobs\s*\.delete\("),
        pattern(r"\.signed_url\("),
    );
    function_crates()
        .into_iter()
        .map(|function| {
            let mut uses = BlobUse::default();
            for source in production_sources(&format!("functions/{function}/src")) {
                uses.sign |= sign.is_match(&source);
                uses.read |= get.is_match(&source) || uses.sign;
                uses.write |= put.is_match(&source);
                uses.delete |= delete.is_match(&source);
            }
            (function, uses)
        })
        .collect()
}

/// [`rust_sources`] without their `#[cfg(test)]` modules (which seed data through
/// the store like the functions they test do not).
pub fn production_sources(relative: &str) -> Vec<String> {
    rust_sources(relative)
        .into_iter()
        .map(|source| match source.find("#[cfg(test)]") {
            Some(tests) => source[..tests].to_owned(),
            None => source,
        })
        .collect()
}

/// The text of every `.rs` file under a directory.
pub fn rust_sources(relative: &str) -> Vec<String> {
    walkdir::WalkDir::new(repo().join(relative))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "rs"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .collect()
}

/// Environment variable names the code reads: the `"UPPER_CASE"` string
/// literals of the non-test sources of every crate's `src/` (`shared/*`,
/// `functions/*`, `cli`).
pub fn code_variables() -> BTreeSet<String> {
    let literal = Regex::new(r#""([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)""#).unwrap();
    let crates = ["shared", "functions"].into_iter().flat_map(|group| {
        std::fs::read_dir(repo().join(group))
            .unwrap_or_else(|e| panic!("{group}/: {e}"))
            .filter_map(Result::ok)
            .map(move |entry| format!("{group}/{}/src", entry.file_name().to_string_lossy()))
    });
    crates
        .chain(["cli/src".to_owned()])
        .flat_map(|src| production_sources(&src))
        .flat_map(|source| {
            literal
                .captures_iter(&source)
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The names the runtime no longer reads (`RENAMED` in
/// `shared/runtime/src/backends.rs`): old name => the one that replaced it.
pub fn renamed_variables() -> BTreeMap<String, String> {
    let source = read("shared/runtime/src/backends.rs");
    let list = source
        .split("pub const RENAMED")
        .nth(1)
        .expect("shared/runtime/src/backends.rs has `pub const RENAMED`");
    let list = &list[..list.find("];").unwrap_or(list.len())];
    Regex::new(r#"\(\s*"(\w+)",\s*"(\w+)"\s*\)"#)
        .unwrap()
        .captures_iter(list)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect()
}

/// `cloudbuild.yaml`, parsed.
pub fn cloudbuild() -> Value {
    serde_yaml_ng::from_str(&read("cloudbuild.yaml")).expect("cloudbuild.yaml is YAML")
}

/// A string field as a `&str` (empty when absent).
pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// `snake_case` → `camelCase` (how tracing-stackdriver names log fields).
pub fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_writes_publish_their_topics() {
        let ingest = store_module_topics(PUBLISHING_STORE_WRITES[0].1);
        assert_eq!(
            ingest,
            BTreeSet::from(["messages".into(), "statuses".into()])
        );
        let send = store_module_topics(PUBLISHING_STORE_WRITES[1].1);
        assert_eq!(send, BTreeSet::from(["dispatch".into()]));
        let webhook = store_module_topics(PUBLISHING_STORE_WRITES[2].1);
        assert_eq!(webhook, ingest);
    }

    #[test]
    fn camel_case_matches_tracing_stackdriver() {
        assert_eq!(camel_case("latency_ms"), "latencyMs");
        assert_eq!(camel_case("message_id"), "messageId");
        assert_eq!(camel_case("code"), "code");
    }
}
