//! `zapfn-bench hello`: a bare axum hello-world, the ceiling for HTTP on this
//! machine; same runtime flavour as `zapfn dev` (tokio multi-thread, one worker per core).

use axum::routing::get;
use axum::Router;

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 18081)]
    port: u16,
}

/// Serves `GET /` → `Hello, World!` until killed.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
        let app = Router::new().route("/", get(|| async { "Hello, World!" }));
        axum::serve(listener, app).await?;
        Ok(())
    })
}
