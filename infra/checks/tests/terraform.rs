//! The Terraform in infra/: parses, and its cross-references hold.

use std::collections::BTreeSet;

use serde_json::Value;
use zapfn_infra_checks::*;

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| items.iter().map(|v| text(v).to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn every_tf_file_parses() {
    let files = tf_files();
    assert!(files.len() >= 30, "only {} .tf files found", files.len());
    for file in files {
        hcl::parse(&read(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn every_function_crate_is_a_service_with_an_identity_and_a_trigger() {
    let specs = function_specs();
    assert_eq!(
        specs.keys().cloned().collect::<BTreeSet<_>>(),
        function_crates(),
        "infra/functions.tf must list exactly the crates in functions/"
    );
    for (name, spec) in &specs {
        let triggered = spec["public"] == true
            || !keys(&spec["subscriptions"]).is_empty()
            || !strings(&spec["task_queues"]).is_empty()
            || spec["storage_events"] == true;
        assert!(
            triggered,
            "{name}: no trigger (public, subscription, task queue or storage events)"
        );
        assert!(
            ["slim", "media"].contains(&text(&spec["variant"])),
            "{name}: variant"
        );
    }
    // One service per catalog entry, created with its own service account.
    let module = &tf("infra/main.tf")["module"]["service"];
    assert_eq!(text(&module["source"]), "./modules/service");
    assert_eq!(text(&module["for_each"]), "${local.functions}");
    // Every entry's keys are settings the defaults declare (a typo would be ignored).
    let catalog = catalog();
    let settings = keys(&catalog["function_defaults"]);
    for (name, spec) in catalog["function_specs"].as_object().unwrap() {
        for key in keys(spec) {
            assert!(settings.contains(&key), "{name}: unknown setting {key}");
        }
    }
    let service = tf("infra/modules/service/main.tf");
    assert!(service["resource"]["google_service_account"]["fn"].is_object());
    let template = &service["resource"]["google_cloud_run_v2_service"]["fn"]["template"];
    assert_eq!(
        text(&template["service_account"]),
        "${google_service_account.fn.email}"
    );
}

#[test]
fn subscriptions_match_the_code() {
    let specs = function_specs();
    for (function, topics) in code_subscriptions() {
        let spec = &specs[&function];
        let declared = keys(&spec["subscriptions"]);
        let from_storage = spec["storage_events"] == true;
        let from_pubsub: BTreeSet<String> = topics
            .iter()
            .filter(|t| *t != "dispatch" && !(from_storage && *t == STORAGE_EVENTS_TOPIC))
            .cloned()
            .collect();
        assert_eq!(
            declared, from_pubsub,
            "{function}: push subscriptions in infra/functions.tf vs Subscription::new in the code"
        );
        assert_eq!(
            topics.contains("dispatch"),
            !strings(&spec["task_queues"]).is_empty(),
            "{function}: the dispatch topic is a Cloud Tasks queue target"
        );
    }
}

#[test]
fn every_topic_has_a_subscription_with_a_dead_letter_policy() {
    let catalog = catalog();
    let topics = strings(&catalog["topics"]);
    let code_topics: BTreeSet<String> = topic_constants()
        .into_values()
        .filter(|t| t != "dispatch" && !(storage_triggered() && t == STORAGE_EVENTS_TOPIC))
        .collect();
    assert_eq!(topics, code_topics, "Pub/Sub topics vs the store's topics");
    let subscribed: BTreeSet<String> = function_specs()
        .values()
        .flat_map(|spec| keys(&spec["subscriptions"]))
        .collect();
    for topic in &topics {
        assert!(subscribed.contains(topic), "nobody subscribes to {topic}");
    }
    let pubsub = tf("infra/modules/pubsub/main.tf");
    let push = &pubsub["resource"]["google_pubsub_subscription"]["push"];
    assert!(text(&push["dead_letter_policy"]["dead_letter_topic"]).contains("dead_letters"));
    assert!(push["retry_policy"]["minimum_backoff"].is_string());
    assert!(push["push_config"]["oidc_token"]["service_account_email"].is_string());
    assert_eq!(text(&push["filter"]), "${each.value.filter}");
    assert_eq!(push["enable_message_ordering"], true);
    // Dead-lettering needs the Pub/Sub agent's publisher and subscriber roles.
    let members = &pubsub["resource"];
    assert!(members["google_pubsub_topic_iam_member"]["agent_publishes_dead_letters"].is_object());
    assert!(
        members["google_pubsub_subscription_iam_member"]["agent_forwards_dead_letters"].is_object()
    );
}

#[test]
fn filters_use_attributes_the_publisher_sets() {
    let cloud = read("shared/cloud/src/pubsub.rs");
    let catalog = read("infra/functions.tf");
    let attribute = regex::Regex::new(r"attributes\.(\w+)").unwrap();
    for capture in attribute.captures_iter(&catalog) {
        assert!(
            cloud.contains(&format!("\"{}\"", &capture[1])),
            "filter on attributes.{} but shared/cloud/src/pubsub.rs does not set it",
            &capture[1]
        );
    }
}

#[test]
fn every_referenced_secret_exists_and_is_used() {
    let catalog = catalog();
    let secrets = keys(&catalog["secrets"]);
    let mut used = BTreeSet::new();
    for (name, spec) in &function_specs() {
        for secret in strings(&spec["secrets"]) {
            assert!(
                secrets.contains(&secret),
                "{name} mounts unknown secret {secret}"
            );
            used.insert(secret);
        }
    }
    assert_eq!(used, secrets, "declared secrets nobody mounts");
    for (key, env) in catalog["secrets"].as_object().unwrap() {
        assert!(
            read("README.md").contains(text(env)),
            "secret {key}: its variable {env} is not documented in the README"
        );
    }
}

/// Variables Terraform sets that no string literal of the code names, and why.
const READ_ELSEWHERE: [(&str, &str); 2] = [
    ("RUST_LOG", "tracing-subscriber's EnvFilter reads it"),
    (
        "ZAPFN_REDIS_URL",
        "the optional Memorystore's URL; no code uses Redis yet",
    ),
];

#[test]
fn every_variable_terraform_sets_is_one_the_code_reads() {
    let main = tf("infra/main.tf");
    let locals = &main["locals"];
    let mut set = keys(&locals["common_env"]);
    for spec in function_specs().values() {
        set.extend(keys(&spec["env"]));
    }
    set.extend(
        catalog()["secrets"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| text(v).to_owned()),
    );
    // Maps inside expressions: secret_env's optional mounts, the service's own variables.
    let assigned = regex::Regex::new(r"\{\s*([A-Z][A-Z0-9_]+)\s*=").unwrap();
    let service = tf("infra/modules/service/main.tf");
    for expression in [text(&locals["secret_env"]), text(&service["locals"]["env"])] {
        set.extend(assigned.captures_iter(expression).map(|c| c[1].to_owned()));
    }
    assert!(set.contains("ZAPFN_DATABASE_URL") && set.contains("ZAPFN_PUSH_SERVICE_ACCOUNTS"));
    let (read, renamed) = (code_variables(), renamed_variables());
    assert!(!renamed.is_empty());
    for name in &set {
        if let Some(new) = renamed.get(name) {
            panic!("infra sets {name}, which the runtime refuses: its name is {new}");
        }
        assert!(
            read.contains(name) || READ_ELSEWHERE.iter().any(|(known, _)| known == name),
            "infra sets {name}, but no code reads it"
        );
    }
}

#[test]
fn queues_have_the_seed_rates_and_retries() {
    let variables = tf_blocks("infra/variables.tf", "variable");
    let default = |name: &str| variables[name]["default"].clone();
    assert_eq!(default("sending_rate"), 80);
    assert_eq!(default("template_rate"), 1000);
    assert_eq!(default("media_upload_rate"), 50);
    assert_eq!(default("max_attempts"), 5);
    assert_eq!(default("max_retry_seconds"), 300);
    let queue = &tf("infra/modules/tasks/main.tf")["resource"]["google_cloud_tasks_queue"]["queue"];
    assert_eq!(
        text(&queue["retry_config"]["max_attempts"]),
        "${var.max_attempts}"
    );
    assert_eq!(
        text(&queue["retry_config"]["max_retry_duration"]),
        "${var.max_retry_seconds}s"
    );
    assert_eq!(
        text(&queue["rate_limits"]["max_dispatches_per_second"]),
        "${each.value.rate}"
    );
}

/// The Firestore store crate lists the composite indexes its queries need; Terraform
/// declares exactly those (the firestore module reads the file). Until that crate
/// is part of the repository there is nothing to compare.
#[test]
fn firestore_indexes_come_from_the_stores_list() {
    if !repo().join("shared/store-firestore/Cargo.toml").is_file() {
        eprintln!("shared/store-firestore is not in the repository yet: no indexes to check");
        return;
    }
    let indexes: Value = serde_json::from_str(&read("shared/store-firestore/indexes.json"))
        .expect("shared/store-firestore/indexes.json is JSON");
    let list = indexes["indexes"].as_array().expect("{\"indexes\": [...]}");
    assert!(!list.is_empty());
    for index in list {
        assert!(index["collectionGroup"].is_string(), "{index}");
        let fields = index["fields"].as_array().expect("fields");
        assert!(
            fields.len() >= 2,
            "a composite index has two fields or more: {index}"
        );
        for field in fields {
            assert!(field["fieldPath"].is_string(), "{field}");
            assert!(
                field["order"].is_string() || field["arrayConfig"].is_string(),
                "{field}"
            );
        }
    }
    let module = &tf("infra/main.tf")["module"]["firestore"];
    assert_eq!(
        text(&module["indexes_file"]),
        "${path.module}/../shared/store-firestore/indexes.json"
    );
    let firestore = tf("infra/modules/firestore/main.tf");
    assert!(text(&firestore["locals"]["declared"]).contains("var.indexes_file"));
    assert_eq!(
        text(&firestore["resource"]["google_firestore_index"]["index"]["for_each"]),
        "${local.indexes}"
    );
}

/// Every module call passes only variables the module declares, and all it requires;
/// every `var.X` is declared and every root variable is in terraform.tfvars.example.
#[test]
fn modules_and_variables_line_up() {
    let modules = tf_blocks("infra/main.tf", "module");
    let meta = ["source", "count", "for_each", "depends_on", "providers"];
    for (name, call) in &modules {
        let source = text(&call["source"]).trim_start_matches("./");
        let declared = tf_blocks(&format!("infra/{source}/variables.tf"), "variable");
        let passed: BTreeSet<String> = keys(call)
            .into_iter()
            .filter(|k| !meta.contains(&k.as_str()))
            .collect();
        for argument in &passed {
            assert!(
                declared.contains_key(argument),
                "module {name} passes undeclared {argument}"
            );
        }
        for (variable, body) in &declared {
            if body.get("default").is_none() {
                assert!(
                    passed.contains(variable),
                    "module {name} misses required {variable}"
                );
            }
        }
    }
    let var_use = regex::Regex::new(r"\bvar\.(\w+)").unwrap();
    for file in tf_files() {
        let dir = file.rsplit_once('/').unwrap().0;
        let declared = tf_blocks(&format!("{dir}/variables.tf"), "variable");
        for capture in var_use.captures_iter(&read(&file)) {
            assert!(
                declared.contains_key(&capture[1]),
                "{file}: var.{} is not declared",
                &capture[1]
            );
        }
    }
    let example = read("infra/terraform.tfvars.example");
    for variable in tf_blocks("infra/variables.tf", "variable").keys() {
        assert!(
            regex::Regex::new(&format!(r"(?m)^{variable}\s*="))
                .unwrap()
                .is_match(&example),
            "terraform.tfvars.example does not document {variable}"
        );
    }
}

#[test]
fn private_functions_are_not_public() {
    for (name, spec) in &function_specs() {
        let public = spec["public"] == true;
        assert_eq!(
            public,
            ["webhook", "send"].contains(&name.as_str()),
            "{name}: public"
        );
    }
    let call = &tf("infra/main.tf")["module"]["service"];
    let ingress = text(&call["ingress"]);
    assert!(
        ingress.contains("INGRESS_TRAFFIC_INTERNAL_ONLY"),
        "{ingress}"
    );
}

/// `publishes` and `enqueues` are what each function's code writes to the outbox:
/// Pub/Sub publisher on exactly those topics, and a Cloud Tasks enqueuer on the
/// queue the runtime creates tasks in (ZAPFN_TASKS_QUEUE) exactly when it sends.
#[test]
fn publishes_match_the_code() {
    let specs = function_specs();
    let queue = text(&tf("infra/main.tf")["locals"]["common_env"]["ZAPFN_TASKS_QUEUE"]).to_owned();
    assert_eq!(queue, "${module.tasks.queue_ids[\"sending\"]}");
    for (function, topics) in code_publishes() {
        let spec = &specs[&function];
        let storage_trigger = spec["env"]["ZAPFN_MEDIA_TRIGGER"] == "storage";
        let bus: BTreeSet<String> = topics
            .iter()
            .filter(|t| *t != "dispatch" && !(storage_trigger && *t == STORAGE_EVENTS_TOPIC))
            .cloned()
            .collect();
        assert_eq!(
            strings(&spec["publishes"]),
            bus,
            "{function}: `publishes` in infra/functions.tf vs the events its code writes"
        );
        let enqueues = strings(&spec["enqueues"]);
        if topics.contains("dispatch") {
            assert_eq!(
                enqueues,
                BTreeSet::from(["sending".to_owned()]),
                "{function} sends: it enqueues on ZAPFN_TASKS_QUEUE (sending) only"
            );
        } else {
            assert!(
                enqueues.is_empty(),
                "{function} sends nothing but may enqueue {enqueues:?}"
            );
        }
    }
    // Every store write with a fixed topic is known to code_publishes.
    let known: BTreeSet<&str> = PUBLISHING_STORE_WRITES.iter().map(|(_, m)| *m).collect();
    for entry in std::fs::read_dir(repo().join("shared/store/src/sqlite")).unwrap() {
        let path = entry.unwrap().path();
        let module = format!(
            "shared/store/src/sqlite/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        if path.extension().is_some_and(|e| e == "rs") && !store_module_topics(&module).is_empty() {
            assert!(
                known.contains(module.as_str()),
                "{module} publishes fixed topics: add its Store method to PUBLISHING_STORE_WRITES"
            );
        }
    }
}

/// Bucket access covers what each function's code does with media objects, and no
/// function may create or overwrite objects without writing any.
#[test]
fn bucket_access_matches_the_code() {
    let specs = function_specs();
    for (function, uses) in code_blob_use() {
        let spec = &specs[&function];
        let bucket = text(&spec["bucket"]);
        assert!(
            ["none", "read", "read-delete", "write"].contains(&bucket),
            "{function}: bucket = {bucket:?}"
        );
        let reads = bucket != "none";
        let deletes = bucket == "read-delete" || bucket == "write";
        assert_eq!(
            bucket == "write",
            uses.write,
            "{function}: bucket = {bucket:?} vs {uses:?}"
        );
        assert!(
            !uses.read || reads,
            "{function} reads objects: bucket = {bucket:?}"
        );
        assert!(
            !uses.delete || deletes,
            "{function} deletes objects: bucket = {bucket:?}"
        );
        assert_eq!(
            spec["signs_urls"] == true,
            uses.sign,
            "{function}: signs_urls vs signed_url() in its code"
        );
    }
    // Signing: IAM signBlob on the function's own account, nobody else's.
    let service = tf("infra/modules/service/main.tf");
    let sign = &service["resource"]["google_service_account_iam_member"]["sign_urls"];
    assert_eq!(text(&sign["role"]), "roles/iam.serviceAccountTokenCreator");
    assert_eq!(
        text(&sign["service_account_id"]),
        "${google_service_account.fn.name}"
    );
    assert_eq!(text(&sign["member"]), "${google_service_account.fn.member}");
    assert!(
        read("infra/main.tf").contains("\"iamcredentials.googleapis.com\","),
        "signBlob goes through the IAM credentials API"
    );
    // Deleting: a custom role with storage.objects.delete only, on the bucket.
    let storage = tf("infra/modules/storage/main.tf");
    let role = &storage["resource"]["google_project_iam_custom_role"]["media_deleter"];
    assert_eq!(
        role["permissions"],
        serde_json::json!(["storage.objects.delete"])
    );
    let deleter = &storage["resource"]["google_storage_bucket_iam_member"]["deleter"];
    assert_eq!(
        text(&deleter["bucket"]),
        "${google_storage_bucket.media.name}"
    );
    let storage_call = &tf("infra/main.tf")["module"]["storage"];
    for (argument, mode) in [
        ("readers", "read-delete"),
        ("deleters", "read-delete"),
        ("writers", "write"),
    ] {
        assert!(
            text(&storage_call[argument]).contains(mode),
            "module storage: {argument} from bucket = {mode:?}"
        );
    }
}

/// Cloud Scheduler: each job posts to its function with an OIDC token of its own
/// service account, which may invoke that function only; the function accepts
/// tokens of its invokers only; retention runs on send with ZAPFN_RETENTION_DAYS.
#[test]
fn scheduler_jobs_call_their_function_as_their_own_identity() {
    let catalog = catalog();
    let jobs = catalog["jobs"].as_object().unwrap();
    assert_eq!(text(&jobs["retention"]["function"]), "send");
    assert_eq!(text(&jobs["retention"]["path"]), "/_jobs/retention");
    assert_eq!(
        text(&jobs["retention"]["schedule"]),
        "${var.retention_schedule}"
    );
    assert_eq!(text(&jobs["relay"]["path"]), "/_relay");
    let specs = function_specs();
    assert_eq!(
        specs["send"]["env"]["ZAPFN_RETENTION_DAYS"],
        "${tostring(var.retention_days)}"
    );
    let main = tf("infra/main.tf");
    let common = &main["locals"]["common_env"];
    assert!(
        common.get("ZAPFN_RETENTION_DAYS").is_none(),
        "retention is send's job"
    );
    assert!(
        common.get("ZAPFN_PUSH_SERVICE_ACCOUNTS").is_none(),
        "set per function"
    );
    // Private services trust Cloud Run's check of the tokens it strips the signature of.
    assert_eq!(
        text(&main["module"]["service"]["env"]),
        "${merge(local.common_env, each.value.env, each.value.public ? {} : { ZAPFN_PUSH_VERIFIED_BY = \"cloud-run\" })}"
    );
    // A job's path is served by the function it targets (or by nobody yet), not by another.
    for (key, job) in jobs {
        let target = text(&job["function"]);
        let path = format!("\"{}\"", text(&job["path"]));
        let serves = |function: &str| {
            production_sources(&format!("functions/{function}/src"))
                .iter()
                .any(|source| source.contains(&path))
        };
        let runtime = production_sources("shared/runtime/src")
            .iter()
            .any(|source| source.contains(&path));
        for function in function_crates() {
            if function != target {
                assert!(
                    !serves(&function),
                    "job {key}: {path} is served by {function}, not {target}"
                );
            }
        }
        if !serves(target) && !runtime {
            eprintln!("job {key}: no code serves {path} yet");
        }
    }
    // One identity per job; its token carries that identity.
    let scheduler = tf("infra/modules/scheduler/main.tf");
    let accounts = &scheduler["resource"]["google_service_account"]["job"];
    assert_eq!(text(&accounts["for_each"]), "${var.jobs}");
    let job = &scheduler["resource"]["google_cloud_scheduler_job"]["job"];
    assert_eq!(
        text(&job["http_target"]["oidc_token"]["service_account_email"]),
        "${google_service_account.job[each.key].email}"
    );
    assert_eq!(
        text(&job["http_target"]["oidc_token"]["audience"]),
        "${var.audience}"
    );
    // run.invoker for a job's identity on its target only.
    let invokers = text(&main["locals"]["invokers"]);
    assert!(
        invokers.contains("module.scheduler.members[key] if job.function == name"),
        "{invokers}"
    );
    // The function accepts OIDC tokens of exactly its invokers, never of anyone.
    let service = tf("infra/modules/service/main.tf");
    let env = text(&service["locals"]["env"]);
    assert!(
        env.contains("ZAPFN_PUSH_SERVICE_ACCOUNTS") && env.contains("values(var.invokers)"),
        "{env}"
    );
    let containers =
        &service["resource"]["google_cloud_run_v2_service"]["fn"]["template"]["containers"];
    assert_eq!(
        text(&containers["dynamic"]["env"][0]["for_each"]),
        "${local.env}"
    );
    let invoker = &service["resource"]["google_cloud_run_v2_service_iam_member"]["invoker"];
    assert_eq!(text(&invoker["for_each"]), "${var.invokers}");
    assert_eq!(text(&invoker["role"]), "roles/run.invoker");
    let variables = tf_blocks("infra/modules/service/variables.tf", "variable");
    assert!(variables["invokers"].get("default").is_none());
    assert!(
        text(&variables["invokers"]["validation"]["condition"])
            .contains("length(var.invokers) > 0"),
        "an empty ZAPFN_PUSH_SERVICE_ACCOUNTS would accept any Google account"
    );
}

/// Deployed, the media processors are started by the stored original's Cloud
/// Storage `object.finalized` event (Eventarc) instead of a `media` event, never
/// by both: exactly the functions whose code handles `media` have storage events
/// and no `media` subscription; the function that publishes `media` events runs
/// with `ZAPFN_MEDIA_TRIGGER=storage` (which the runtime reads) and publishes none;
/// there is no `media` topic; the triggers post to the route the runtime serves,
/// as an identity each target accepts.
#[test]
fn storage_events_start_the_processors_instead_of_media_events() {
    assert_eq!(topic_constants()["MEDIA"], STORAGE_EVENTS_TOPIC);
    let specs = function_specs();
    let handles_media: BTreeSet<String> = code_subscriptions()
        .into_iter()
        .filter(|(_, topics)| topics.contains(STORAGE_EVENTS_TOPIC))
        .map(|(function, _)| function)
        .collect();
    let storage_events: BTreeSet<String> = specs
        .iter()
        .filter(|(_, spec)| spec["storage_events"] == true)
        .map(|(name, _)| name.clone())
        .collect();
    assert!(!handles_media.is_empty());
    assert_eq!(
        storage_events, handles_media,
        "storage_events vs the code's media handlers"
    );
    for (name, spec) in &specs {
        assert!(
            !keys(&spec["subscriptions"]).contains(STORAGE_EVENTS_TOPIC),
            "{name}: a `media` subscription would start the processors a second time"
        );
    }
    let media_publishers: Vec<String> = code_publishes()
        .into_iter()
        .filter(|(_, topics)| topics.contains(STORAGE_EVENTS_TOPIC))
        .map(|(function, _)| function)
        .collect();
    assert_eq!(media_publishers, ["media-fetch"]);
    assert_eq!(
        specs["media-fetch"]["env"]["ZAPFN_MEDIA_TRIGGER"],
        "storage"
    );
    assert!(read("shared/runtime/src/config.rs").contains("lookup(\"ZAPFN_MEDIA_TRIGGER\")"));
    assert!(production_sources("functions/media-fetch/src")
        .iter()
        .any(|source| source.contains("MediaTrigger::Storage => Vec::new()")));
    assert!(!strings(&catalog()["topics"]).contains(STORAGE_EVENTS_TOPIC));

    // The triggers: object.finalized of the media bucket, to /_eventarc/media.
    let route = "\"/_eventarc/{topic}\"";
    assert!(
        read("shared/runtime/src/push.rs").contains(route),
        "the runtime serves {route}"
    );
    let main = tf("infra/main.tf");
    let eventarc = &main["module"]["eventarc"];
    assert_eq!(text(&eventarc["bucket"]), "${module.storage.bucket}");
    let targets = text(&eventarc["targets"]);
    assert!(
        targets.contains("path = \"/_eventarc/media\"") && targets.contains("if f.storage_events"),
        "{targets}"
    );
    let module = tf("infra/modules/eventarc/main.tf");
    let trigger = &module["resource"]["google_eventarc_trigger"]["finalized"];
    let criteria = serde_json::to_string(&trigger["matching_criteria"]).unwrap();
    assert!(
        criteria.contains("google.cloud.storage.object.v1.finalized"),
        "{criteria}"
    );
    assert!(criteria.contains("${var.bucket}"), "{criteria}");
    assert_eq!(
        text(&trigger["destination"]["cloud_run_service"]["path"]),
        "${each.value.path}"
    );
    assert_eq!(
        text(&trigger["service_account"]),
        "${google_service_account.eventarc.email}"
    );
    // Run invoker, and an accepted token, for the Eventarc identity on exactly those.
    let invokers = text(&main["locals"]["invokers"]);
    assert!(
        invokers.contains("f.storage_events ? { events = module.eventarc.member }"),
        "{invokers}"
    );
    assert!(module["resource"]["google_project_iam_member"]["gcs_agent_publishes"].is_object());
}
