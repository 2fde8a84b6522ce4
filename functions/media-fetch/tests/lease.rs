//! The fetcher's delivery lease outlasts its longest run, so a slow fetch is
//! not handed to a second run that could overwrite its record.

use std::time::Duration;

use zapfn_runtime::{Config, Context};

fn context(dir: &std::path::Path, graph_timeout_ms: &str) -> Context {
    let data_dir = dir.to_str().unwrap().to_owned();
    let config = Config::from_lookup(|name| match name {
        "ZAPFN_DATA_DIR" => Some(data_dir.clone()),
        "ZAPFN_GRAPH_TIMEOUT_MS" => Some(graph_timeout_ms.to_owned()),
        _ => None,
    })
    .unwrap();
    Context::open(config).unwrap()
}

#[test]
fn the_lease_outlasts_every_download_try_and_the_store() {
    for graph_timeout_ms in ["10000", "30000"] {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path(), graph_timeout_ms);
        let graph_timeout = context.config.graph_timeout;
        // 2 checksum tries × 3 URLs, each a Graph call and a 45 s download.
        let downloads = (graph_timeout + Duration::from_secs(45)) * 6;
        let budget = zapfn_media_fetch::run_budget(graph_timeout);
        assert!(budget > downloads, "{budget:?} vs {downloads:?}");
        let function = zapfn_media_fetch::function(&context);
        assert_eq!(function.subscriptions.len(), 1);
        let lease = function.subscriptions[0].lease;
        assert!(lease > budget, "lease {lease:?}, run budget {budget:?}");
    }
}
