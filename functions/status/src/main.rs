#[tokio::main]
async fn main() -> anyhow::Result<()> {
    zapfn_runtime::run_function(zapfn_status::function).await
}
