//! Each media function's Cloud Run request timeout covers its longest run, as
//! its delivery lease states it, with the settings Terraform gives it: a run
//! cut short by the timeout would be retried from the start, and one that
//! always takes longer would never finish.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use zapfn_infra_checks::*;
use zapfn_mediatools::MediaConfig;
use zapfn_runtime::Config;

/// The function's own environment in `infra/functions.tf` (literal values
/// only), on Cloud Run.
fn deployed_env(spec: &Value) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = spec["env"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), text(value).to_owned()))
        .filter(|(_, value)| !value.contains("${"))
        .collect();
    env.insert("K_SERVICE".into(), "zapfn".into());
    env
}

fn timeout(function: &str, spec: &Value) -> Duration {
    let seconds = spec["timeout"]
        .as_u64()
        .or_else(|| text(&spec["timeout"]).parse().ok())
        .unwrap_or_else(|| panic!("{function}: timeout is not a number of seconds"));
    Duration::from_secs(seconds)
}

#[test]
fn media_functions_time_out_after_their_longest_run() {
    let specs = function_specs();
    let mut checked = 0;
    for (function, spec) in &specs {
        let env = deployed_env(spec);
        let lookup = |name: &str| env.get(name).cloned();
        let media = || MediaConfig::from_lookup(lookup).unwrap();
        let longest_run = match function.as_str() {
            "media-fetch" => {
                let graph = |name: &str| lookup(name).filter(|_| name == "ZAPFN_GRAPH_TIMEOUT_MS");
                zapfn_media_fetch::lease(Config::from_lookup(graph).unwrap().graph_timeout)
            }
            "media-image" => zapfn_media_image::lease(&media()),
            "media-audio" => zapfn_media_audio::lease(&media()),
            "media-video" => zapfn_media_video::lease(&media()),
            "media-document" => zapfn_media_document::lease(&media()),
            _ => continue,
        };
        let timeout = timeout(function, spec);
        assert!(
            timeout >= longest_run,
            "{function}: timeout {timeout:?} in infra/functions.tf, longest run {longest_run:?}"
        );
        assert!(
            timeout <= Duration::from_secs(3600),
            "{function}: Cloud Run allows an hour at most"
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "the five media functions");
}
