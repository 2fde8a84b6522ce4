//! Alert thresholds, the dashboard, and the log fields the metrics read.

use serde_json::Value;
use zapfn_infra_checks::*;

fn policy(name: &str) -> Value {
    tf("infra/modules/monitoring/main.tf")["resource"]["google_monitoring_alert_policy"][name]
        .clone()
}

fn thresholds(policy: &Value) -> Vec<f64> {
    let conditions = match &policy["conditions"] {
        Value::Array(all) => all.clone(),
        one => vec![one.clone()],
    };
    conditions
        .iter()
        .map(|c| {
            c["condition_threshold"]["threshold_value"]
                .as_f64()
                .expect("threshold")
        })
        .collect()
}

#[test]
fn alert_thresholds_are_the_seeds() {
    assert_eq!(thresholds(&policy("webhook_failures")), [0.01]);
    assert_eq!(thresholds(&policy("latency")), [2000.0]);
    assert_eq!(thresholds(&policy("error_rate")), [0.05]);
    assert_eq!(thresholds(&policy("backlog")), [1000.0, 1000.0]);
    let latency = &policy("latency")["conditions"]["condition_threshold"];
    assert_eq!(
        text(&latency["aggregations"]["cross_series_reducer"]),
        "REDUCE_PERCENTILE_99"
    );
    assert!(text(&latency["filter"]).contains("run.googleapis.com/request_latencies"));
    let webhook = &policy("webhook_failures")["conditions"]["condition_threshold"];
    assert!(text(&webhook["filter"]).contains("-webhook"));
    assert!(webhook["denominator_filter"].is_string(), "a ratio");
    let backlog = policy("backlog");
    let filters: Vec<&str> = backlog["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| text(&c["condition_threshold"]["filter"]))
        .collect();
    assert!(
        filters[0].contains("num_undelivered_messages")
            && filters[1].contains("cloudtasks.googleapis.com/queue/depth")
    );
}

/// The statuses alert fires at the dispatcher's reconcile window, on the
/// status function's subscription (`{function}-{topic}` in the pubsub module).
#[test]
fn status_delay_alert_is_the_reconcile_window_on_the_statuses_subscription() {
    let config = read("shared/runtime/src/config.rs");
    let default = config
        .split("number(\"ZAPFN_RECONCILE_SECONDS\", ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse::<f64>().ok())
        .expect("ZAPFN_RECONCILE_SECONDS default in config.rs");
    let policy = policy("status_delay");
    assert_eq!(thresholds(&policy), [default]);
    let filter = text(&policy["conditions"]["condition_threshold"]["filter"]);
    assert!(
        filter.contains("subscription/oldest_unacked_message_age"),
        "{filter}"
    );
    assert!(filter.contains("-status-statuses"), "{filter}");
}

#[test]
fn dashboard_parses_and_shows_the_seeds_charts() {
    let source = read("infra/modules/monitoring/dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&source.replace("${prefix}", "zapfn")).expect("dashboard.json");
    let titles: Vec<String> = dashboard["mosaicLayout"]["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tile| text(&tile["widget"]["title"]).to_lowercase())
        .collect();
    for wanted in [
        "message latency",
        "delivery rate",
        "graph api errors by code",
        "cpu",
        "memory",
        "instances",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no {wanted:?} chart in {titles:?}"
        );
    }
    // Charts read the log metrics Terraform defines.
    let metrics =
        tf("infra/modules/monitoring/main.tf")["resource"]["google_logging_metric"].clone();
    let user_metric =
        regex::Regex::new(r"logging.googleapis.com/user/\$\{prefix\}-([a-z-]+)").unwrap();
    let defined: Vec<String> = metrics
        .as_object()
        .unwrap()
        .values()
        .map(|m| text(&m["name"]).replace("${var.name_prefix}-", ""))
        .collect();
    for capture in user_metric.captures_iter(&source) {
        assert!(
            defined.contains(&capture[1].to_owned()),
            "dashboard reads undefined metric {}",
            &capture[1]
        );
    }
}

/// Each log metric's `jsonPayload.message = "…"` is a tracing message in the code,
/// and each `jsonPayload.someField` it reads is a field of that same call.
#[test]
fn log_metrics_read_fields_the_code_emits() {
    let sources: Vec<String> = ["functions", "shared"]
        .iter()
        .flat_map(|dir| rust_sources(dir))
        .collect();
    let metrics =
        tf("infra/modules/monitoring/main.tf")["resource"]["google_logging_metric"].clone();
    let message = regex::Regex::new(r#"jsonPayload\.message = \\?"([^"\\]+)\\?""#).unwrap();
    let field = regex::Regex::new(r"jsonPayload\.(\w+)").unwrap();
    for (name, metric) in metrics.as_object().unwrap() {
        let filter = text(&metric["filter"]);
        let wanted = &message
            .captures(filter)
            .unwrap_or_else(|| panic!("{name}: no message in {filter}"))[1];
        let calls: Vec<String> = sources
            .iter()
            .flat_map(|source| tracing_calls(source))
            .filter(|call| call.contains(&format!("\"{wanted}\"")))
            .collect();
        assert!(!calls.is_empty(), "{name}: no tracing call logs {wanted:?}");
        let read = [
            filter.to_owned(),
            text(&metric["value_extractor"]).to_owned(),
            metric["label_extractors"].to_string(),
        ]
        .join(" ");
        for capture in field.captures_iter(&read) {
            let json_field = &capture[1];
            if json_field == "message" {
                continue;
            }
            assert!(
                calls
                    .iter()
                    .any(|call| fields_of(call).iter().any(|f| camel_case(f) == json_field)),
                "{name}: jsonPayload.{json_field} is not a field of the {wanted:?} log call"
            );
        }
    }
}

/// The text of every `tracing::…!(…)` call.
fn tracing_calls(source: &str) -> Vec<String> {
    let start = regex::Regex::new(r"tracing::(trace|debug|info|warn|error)!\(").unwrap();
    start
        .find_iter(source)
        .map(|m| {
            let mut depth = 1;
            let rest = &source[m.end()..];
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect()
}

/// Field names of a tracing call: `name = …`, `%name`, `?name` or a bare `name,`.
fn fields_of(call: &str) -> Vec<String> {
    let field = regex::Regex::new(r"(?:^|,)\s*[%?]?([a-z_][a-z0-9_.]*)\s*(?:=|,|$)").unwrap();
    field.captures_iter(call).map(|c| c[1].to_owned()).collect()
}
