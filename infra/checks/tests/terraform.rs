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
    let catalog = catalog();
    let specs = &catalog["function_specs"];
    assert_eq!(
        keys(specs),
        function_crates(),
        "infra/functions.tf must list exactly the crates in functions/"
    );
    for (name, spec) in specs.as_object().unwrap() {
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
    assert!(text(&module["for_each"]).contains("local.functions"));
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
    let catalog = catalog();
    let specs = &catalog["function_specs"];
    for (function, topics) in code_subscriptions() {
        let spec = &specs[&function];
        let declared = keys(&spec["subscriptions"]);
        let from_pubsub: BTreeSet<String> = topics
            .iter()
            .filter(|t| *t != "dispatch")
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
        .filter(|t| t != "dispatch")
        .collect();
    assert_eq!(topics, code_topics, "Pub/Sub topics vs the store's topics");
    let subscribed: BTreeSet<String> = catalog["function_specs"]
        .as_object()
        .unwrap()
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
    for (name, spec) in catalog["function_specs"].as_object().unwrap() {
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
    let catalog = catalog();
    for (name, spec) in catalog["function_specs"].as_object().unwrap() {
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
