//! `aerie serve`: loads and checks everything before it listens, then serves
//! the webhooks and the API (the server crate's router) and runs the workers
//! that execute queued runs, until SIGTERM or Ctrl-C.

mod workers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use aerie::wiring::RuntimePlugins;
use aerie_engine::{Playbook, Trigger};
use aerie_manifest::{Config, WebhookAuth};
use aerie_server::schedules::Scheduled;
use aerie_server::{Auth, Backlog, Server, Webhook};
use aerie_store::Store;
use anyhow::Context as _;
use tokio::sync::Notify;

use super::playbook::{playbook_files, resolve_in, site_catalog, validate_read};
use crate::context::{Context, open_registry};

pub async fn serve(ctx: &Context, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let config = &ctx.config;
    let listen = listen.unwrap_or(config.server.listen);
    let tls = match &config.server.tls {
        Some(tls) => Some(aerie_server::tls::acceptor(tls).map_err(anyhow::Error::msg)?),
        None => None,
    };
    // The registry, the store and the runner live as long as the process:
    // the workers are tasks of their own and hold them without a lifetime.
    let registry: &'static _ = Box::leak(Box::new(open_registry(config)?));
    let (playbooks, problems) = load_playbooks(ctx, registry).await;
    let (webhooks, more) = webhooks(config, &playbooks);
    let mut problems: Vec<String> = problems.into_iter().chain(more).collect();
    let mut scheduled = Vec::new();
    for playbook in &playbooks {
        match Scheduled::new(playbook.clone()) {
            Ok(Some(schedule)) => scheduled.push(schedule),
            Ok(None) => {}
            Err(why) => problems.push(format!("{}: trigger: {why}", playbook.path.display())),
        }
    }
    let mut by_name: BTreeMap<String, Arc<Playbook>> = BTreeMap::new();
    for playbook in &playbooks {
        if let Some(first) = by_name.insert(playbook.name.clone(), playbook.clone()) {
            problems.push(format!(
                "{}: name: `{}` is also the name of {}",
                playbook.path.display(),
                playbook.name,
                first.path.display()
            ));
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        anyhow::bail!(
            "refusing to start: {} problem{} in the playbooks or the config",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
    }
    let store: &'static Store = Box::leak(Box::new(crate::context::open_store(config).await?));
    let plugins: &'static RuntimePlugins<'static> =
        Box::leak(Box::new(RuntimePlugins { registry, store }));
    let dir = config.playbooks_dir.clone();
    let called: &'static (dyn Fn(&str) -> Result<Playbook, aerie_engine::PlaybookErrors> + Sync) =
        Box::leak(Box::new(move |name: &str| {
            Playbook::from_file(&resolve_in(&dir, name))
        }));
    let runner = Arc::new(super::playbook::runner(ctx, plugins, store).playbooks(called));

    let mut plugins = BTreeMap::new();
    for name in registry.names() {
        let view = match registry.load(name).await {
            Ok(plugin) => Ok(super::plugin::view(&plugin)),
            Err(e) => Err(e.to_string()),
        };
        plugins.insert(name.to_owned(), view);
    }
    let wake = Arc::new(Notify::new());
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .and_then(|builder| builder.install_recorder())
        .map_err(|e| anyhow::anyhow!("starting the metrics recorder: {e}"))?;
    let server = Arc::new(Server {
        store: store.clone(),
        webhooks,
        playbooks: by_name,
        users: config.users.clone(),
        trusted_proxies: config.server.trusted_proxies.clone(),
        backlog: Backlog::new(config.server.max_queued),
        wake: wake.clone(),
        metrics: Some(metrics),
        plugins,
        catalog: site_catalog(ctx, registry).await,
        checkpointing: config
            .audit
            .checkpointing()
            .map(|(key, checkpoints)| (key.to_owned(), checkpoints.to_owned())),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address: configure [server] tls, or put a TLS proxy in front");
    }
    let schedules = scheduled.len();
    let scheduler = tokio::spawn(aerie_server::schedules::run(
        store.clone(),
        scheduled,
        wake.clone(),
        aerie_engine::epoch_ms,
    ));
    let workers = workers::start(runner, store, wake, config.engine.workers());
    outln!(
        "aerie: serving {}://{addr} ({} webhook{}, {schedules} schedule{}, {} playbook{}, {} workers)",
        if tls.is_some() { "https" } else { "http" },
        server.webhooks.len(),
        if server.webhooks.len() == 1 { "" } else { "s" },
        if schedules == 1 { "" } else { "s" },
        playbooks.len(),
        if playbooks.len() == 1 { "" } else { "s" },
        workers.count()
    )?;
    let app = aerie_server::app(server);
    // One grace period for both the connections and the runs in flight.
    let stopping = Arc::new(std::sync::OnceLock::new());
    let signalled = {
        let stopping = stopping.clone();
        async move {
            stop_signal().await;
            let _ = stopping.set(std::time::Instant::now());
        }
    };
    match tls {
        Some(acceptor) => {
            aerie_server::tls::serve(
                listener,
                acceptor,
                app,
                signalled,
                config.server.shutdown_grace,
            )
            .await;
        }
        None => axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signalled)
        .await
        .context("serving")?,
    }
    // A tick after this is the next server's to fire (or to record as missed).
    scheduler.abort();
    tracing::info!("stopping: no new requests; draining the workers");
    let spent = stopping
        .get()
        .map_or(std::time::Duration::ZERO, std::time::Instant::elapsed);
    let grace = config.server.shutdown_grace.saturating_sub(spent);
    let released = workers.stop(grace, store).await?;
    outln!(
        "aerie: stopped ({released} unfinished run{} released to the queue)",
        if released == 1 { "" } else { "s" }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Histogram buckets in seconds, for steps, plugin calls and runs: from a
/// warm plugin call (tens of µs) to a step that waits on a slow upstream.
const BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// SIGTERM (a service manager) or SIGINT (Ctrl-C).
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Every playbook of the playbooks folder, validated; and every problem of
/// those that are not valid, `file:line:col: message`, each once.
async fn load_playbooks(
    ctx: &Context,
    registry: &aerie_runtime::Registry,
) -> (Vec<Arc<Playbook>>, Vec<String>) {
    let mut playbooks = Vec::new();
    let mut problems = Vec::new();
    'files: for path in playbook_files(&ctx.config.playbooks_dir) {
        // A shipped playbook whose plugin this site has not configured (a
        // classifier with no model yet) is not served, and said so; a
        // playbook that is wrong stops the start.
        let read = Playbook::read_file(&path);
        // Only a playbook that reads: a wrong one is reported, not skipped.
        let plugins = if read.errors.is_empty() {
            read.playbook.plugins()
        } else {
            Default::default()
        };
        for plugin in plugins {
            if let Err(e) = registry.load(plugin).await
                && e.is_unconfigured()
            {
                tracing::warn!(playbook = %path.display(), "not served until its plugin is configured: {e}");
                continue 'files;
            }
        }
        match validate_read(ctx, registry, &path, read).await {
            Ok(playbook) => playbooks.push(Arc::new(playbook)),
            Err(errors) => problems.extend(errors),
        }
    }
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    (playbooks, problems)
}

/// The webhooks to serve: each `[webhooks.NAME]` a playbook's trigger names,
/// with its secret read. A trigger naming no configured webhook, two
/// playbooks on one webhook, or a secret that cannot be read is a problem.
fn webhooks(
    config: &Config,
    playbooks: &[Arc<Playbook>],
) -> (BTreeMap<String, Webhook>, Vec<String>) {
    let mut served = BTreeMap::new();
    let mut problems = Vec::new();
    let mut owner: BTreeMap<&str, &Path> = BTreeMap::new();
    for playbook in playbooks {
        let file = playbook.path.display();
        match &playbook.trigger {
            Some(Trigger::Webhook { name, headers, .. }) => {
                let Some(hook) = config.webhooks.get(name) else {
                    tracing::warn!(playbook = %playbook.name, webhook = %name, "not served: no [webhooks.{name}] in the config says who may post to it");
                    continue;
                };
                if let Some(first) = owner.insert(name, &playbook.path) {
                    problems.push(format!(
                        "{file}: trigger: webhook `{name}` already starts {}; a webhook starts one playbook",
                        first.display()
                    ));
                    continue;
                }
                let auth = match &hook.auth {
                    WebhookAuth::Bearer(source) => source.read().map(|t| Auth::bearer(&t)),
                    WebhookAuth::Hmac(source) => source.read().map(|k| Auth::hmac(&k)),
                };
                let auth = match auth {
                    Ok(auth) => auth,
                    Err(why) => {
                        problems.push(format!(
                            "config: webhooks.{name}.auth: the secret cannot be read: {why}"
                        ));
                        continue;
                    }
                };
                match Webhook::new(name, hook, auth, playbook.clone(), headers.clone()) {
                    Ok(webhook) => {
                        served.insert(name.clone(), webhook);
                    }
                    Err(why) => problems.push(format!("{file}: {why}")),
                }
            }
            Some(Trigger::Mail { mailbox }) => {
                tracing::warn!(playbook = %playbook.name, %mailbox, "not started by mail: this version serves no mail trigger yet; it runs by hand or through the API");
            }
            Some(Trigger::Cron(_)) | Some(Trigger::Manual) | None => {}
        }
    }
    for name in config.webhooks.keys() {
        if !owner.contains_key(name.as_str()) {
            tracing::warn!(webhook = %name, "[webhooks.{name}] is configured but no playbook's trigger names it");
        }
    }
    (served, problems)
}
