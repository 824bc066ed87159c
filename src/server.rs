//! `kefu serve`: the one place the service is wired together.
//!
//! [`run`] opens the store, re-queues unanswered messages, starts the
//! pipeline, the outbox, the team notices (SLA watcher and notifier) and
//! the pollers, and serves HTTP on the given listener until `shutdown`
//! resolves. Then, in order: stop intake (HTTP and pollers), let every
//! conversation worker answer what it has, let deliveries and notices in
//! flight finish, close the store. Tests call `run` with a
//! listener on 127.0.0.1:0 and their own shutdown future.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::agents::Agents;
use crate::channel::{Channels, marketplace, telegram};
use crate::config::{ChannelKind, Config};
use crate::engine::Engine;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::notify::{Clock, Notifier, SlaWatcher};
use crate::outbox::Outbox;
use crate::pipeline::{self, Context};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
    #[error("agents: {0}")]
    Agents(String),
}

pub async fn run(
    config: Config,
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let store = Store::open(&config.database_url()).await?;
    let metrics = Arc::new(Metrics::new());
    let channels = Arc::new(Channels::new(&config));
    let outbox_wake = Arc::new(Notify::new());
    // Signalled when a ticket opens, so its escalation notice goes out at once.
    let ticket_opened = Arc::new(Notify::new());
    // Turns true once intake has stopped: workers answer without waiting
    // out the coalescing window, pollers stop.
    let (stopping_tx, stopping) = watch::channel(false);

    let agents = Arc::new(
        Agents::load(&config, store.clone())
            .await
            .map_err(|e| ServeError::Agents(e.to_string()))?,
    );
    let engine_for_http = engine.clone();
    let ctx = Arc::new(Context {
        engine,
        store: store.clone(),
        channels: channels.clone(),
        metrics: metrics.clone(),
        config: config.pipeline.clone(),
        handover: config.handover.clone(),
        outbox_wake: outbox_wake.clone(),
        tickets_wake: ticket_opened.clone(),
    });
    let (intake, dispatcher) = pipeline::start(ctx, stopping.clone());
    let requeued = pipeline::requeue_unprocessed(&intake, &store)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if requeued > 0 {
        tracing::info!(
            messages = requeued,
            "re-queued messages accepted before a restart"
        );
    }

    let (outbox_stop_tx, outbox_stop) = watch::channel(false);
    let outbox = Arc::new(Outbox {
        store: store.clone(),
        channels: channels.clone(),
        metrics: metrics.clone(),
        config: config.outbox.clone(),
        wake: outbox_wake.clone(),
    });
    let outbox_task = tokio::spawn(outbox.run(outbox_stop.clone()));

    // Notices about tickets: the SLA watcher stores them as timers come
    // due (woken by `ticket_opened`), the notifier delivers them.
    let notifier = Notifier::new(
        store.clone(),
        channels.http().clone(),
        &config,
        metrics.clone(),
        Clock::Wall,
    );
    let sla_watcher = SlaWatcher::new(store.clone(), &config, Clock::Wall, notifier.waker());
    let notifier_task = tokio::spawn(notifier.run(outbox_stop.clone()));
    let sla_task = tokio::spawn(sla_watcher.run(ticket_opened.clone(), outbox_stop.clone()));

    let mut pollers = Vec::new();
    for (name, channel) in channels.iter() {
        let task = match channel.kind {
            ChannelKind::Telegram => tokio::spawn(telegram::poll(
                name.clone(),
                channel.clone(),
                channels.http().clone(),
                intake.clone(),
                store.clone(),
                stopping.clone(),
            )),
            ChannelKind::Marketplace => tokio::spawn(marketplace::poll(
                name.clone(),
                channel.clone(),
                channels.http().clone(),
                intake.clone(),
                store.clone(),
                stopping.clone(),
            )),
            ChannelKind::Webhook | ChannelKind::Whatsapp => continue,
        };
        pollers.push(task);
    }

    let app = router(
        AppState {
            intake,
            store: store.clone(),
            channels: channels.clone(),
            metrics,
            engine: engine_for_http,
            agents,
            outbox_wake: outbox_wake.clone(),
        },
        config.server.body_limit_bytes,
    );
    let address = listener.local_addr()?;
    tracing::info!(%address, database = ?store.backend(), "kefu is serving");
    let stop_intake = stopping_tx.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new messages accepted");
            let _ = stop_intake.send(true);
        })
        .await?;
    let _ = stopping_tx.send(true);
    for poller in pollers {
        let _ = poller.await;
    }
    // Every Intake clone is gone now (router and pollers), so the
    // dispatcher ends once its workers have answered what they hold.
    let _ = dispatcher.await;
    let _ = outbox_stop_tx.send(true);
    let _ = outbox_task.await;
    let _ = sla_task.await;
    let _ = notifier_task.await;
    store.close().await;
    tracing::info!("kefu stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
