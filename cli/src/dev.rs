//! `zapfn dev`: all functions in one process on one port.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use zapfn_runtime::{auth, consumer, health, server, Config, Context, Function};
use zapfn_sandbox::{Sandbox, SandboxConfig};

/// Every deployable function, in one list.
pub const FUNCTIONS: &[fn(&Context) -> Function] = &[
    zapfn_webhook::function,
    zapfn_status::function,
    zapfn_send::function,
    zapfn_dispatch::function,
    zapfn_text::function,
    zapfn_media_fetch::function,
    zapfn_media_image::function,
    zapfn_media_audio::function,
    zapfn_media_video::function,
    zapfn_media_document::function,
];

/// A running embedded system (used by `zapfn dev` and the tests).
pub struct Running {
    pub addr: SocketAddr,
    pub context: Context,
    pub sandbox: Option<Sandbox>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Opens the backends (the store and blob store `ZAPFN_STORE` and `ZAPFN_BLOBS`
/// name, embedded by default; events always go through the store's outbox),
/// mounts every function (and the sandbox) on `listener` and serves until
/// stopped. `config.port` must be the listener's port.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let context = Context::connect(config).await?;
    auth::store_bootstrap_key(&context).await?;
    let mut router = Router::new().merge(health::router(context.clone()));
    let mut subscriptions = Vec::new();
    for build in FUNCTIONS {
        let function = build(&context);
        router = router.merge(function.router);
        subscriptions.extend(function.subscriptions);
    }
    let sandbox = context.config.sandbox().then(|| {
        Sandbox::new(SandboxConfig::new(
            context.config.app_secret.clone(),
            format!("http://127.0.0.1:{}/webhook", addr.port()),
        ))
    });
    if let Some(sandbox) = &sandbox {
        router = router.merge(sandbox.router());
    }
    let consumers = consumer::start(&context, subscriptions).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = stopped => {}
            _ = server::shutdown_signal() => {}
        }
    };
    let task = tokio::spawn(server::serve_on(listener, router, consumers, shutdown));
    Ok(Running {
        addr,
        context,
        sandbox,
        stop,
        task,
    })
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr();
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} (set PORT to use another port)")
    })?;
    let sandbox = config.sandbox();
    let running = start(config, listener).await?;
    if sandbox {
        tracing::info!(url = %running.url(), "zapfn dev: sandbox mode (no WA_ACCESS_TOKEN); try `zapfn simulate --text hi`");
    }
    running.task.await?
}
