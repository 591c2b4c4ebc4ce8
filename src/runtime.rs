//! Start-up and shutdown: checks the machine, starts the registry owner and one pinned executor per
//! shard, waits until every shard listens, then waits for SIGTERM/SIGINT and drains.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::registry::{self, owner, OwnerMsg, ShardLink, ShardMsg};
use crate::shard::{Process, ShardStart};

/// io_uring buffer memory per shard: switchyard does no file I/O, so glommio's default 10 MiB
/// would only eat the locked-memory budget.
const SHARD_IO_MEMORY: usize = 1 << 20;
/// Locked memory per shard beyond its I/O buffers: three io_uring rings of glommio's default depth.
const SHARD_RING_MEMORY: u64 = 512 << 10;
/// How long `--demo` waits for a cluster registry to catch up before registering its backend.
const DEMO_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often `--demo` checks for readiness meanwhile.
const DEMO_READY_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// Locked memory outside the shards (the demo backend's executor, slack for the kernel's rounding).
const PROCESS_MEMLOCK_SLACK: u64 = 2 << 20;

/// Locked memory `shards` shards need.
pub fn memlock_needed(shards: usize) -> u64 {
    shards as u64 * (SHARD_IO_MEMORY as u64 + SHARD_RING_MEMORY) + PROCESS_MEMLOCK_SLACK
}

/// Runs the gateway until SIGTERM or SIGINT. Errors are one line for the operator.
pub fn run(config: Config) -> Result<(), String> {
    // First, so that a signal sent while the gateway starts waits for it rather than killing it.
    crate::sys::block_handled_signals();
    crate::sys::check_io_uring()?;
    let shards = config.shard_cpus.len();
    crate::sys::ensure_memlock(memlock_needed(shards))?;
    crate::listener::check_available(config.listen)?;

    let config = Arc::new(config);
    let process = Arc::new(Process::new(shards));
    let mut links = Vec::with_capacity(shards);
    let mut mailboxes = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (link, mailbox) =
            registry::mailbox().map_err(|e| format!("cannot create a shard mailbox: {e}"))?;
        links.push(link);
        mailboxes.push(mailbox);
    }
    let links: Arc<[ShardLink]> = links.into();
    let (owner_tx, owner_thread) = match &config.kafka {
        Some(kafka) => {
            // Ready once the Kafka core has caught up with the cluster log.
            registry::kafka::spawn(
                kafka,
                config.node_id.clone(),
                links.clone(),
                process.clone(),
            )?
        }
        None => {
            let started = owner::spawn_standalone(
                config.node_id.clone(),
                links.clone(),
                process.registry_metrics.clone(),
            )
            .map_err(|e| format!("cannot start the registry thread: {e}"))?;
            // Standalone, the registry has no log to catch up with.
            process.ready.store(true, Ordering::Relaxed);
            started
        }
    };

    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let mut executors = Vec::with_capacity(shards);
    for (id, mailbox) in mailboxes.into_iter().enumerate() {
        let cpu = config.shard_cpus[id];
        let start = ShardStart {
            id,
            config: config.clone(),
            process: process.clone(),
            registry_client: registry::client::RegistryClient::new(id, owner_tx.clone()),
            mailbox,
            started: started_tx.clone(),
        };
        // A zero idle poll parks at once (the vendored glommio's run loop checks for it).
        let executor = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            .io_memory(SHARD_IO_MEMORY)
            .spin_before_park(config.idle_poll)
            .spawn(move || crate::shard::run(start))
            .map_err(|e| format!("cannot start shard {id} on CPU {cpu}: {e}"))?;
        executors.push(executor);
    }
    drop(started_tx);
    for _ in 0..shards {
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                // A shard thread ended before reporting: its executor could not be built.
                let reasons: Vec<String> = executors
                    .into_iter()
                    .filter_map(|e| e.join().err().map(|e| e.to_string()))
                    .collect();
                return Err(format!(
                    "a shard could not start its io_uring executor ({}); switchyard needs Linux 5.8+ \
                     with io_uring enabled and enough locked memory (`ulimit -l`)",
                    reasons.join("; ")
                ));
            }
        }
    }
    crate::listener::check_alone(config.listen, shards)?;
    println!(
        "switchyard listening on {} (shards: {})",
        config.listen, shards
    );
    let mut early_signal = None;
    if config.demo {
        // In a cluster, registrations are refused until the registry has caught up. A SIGTERM
        // meanwhile stops the wait (and the gateway) at once.
        let deadline = std::time::Instant::now() + DEMO_READY_WAIT;
        while !process.ready.load(Ordering::Relaxed) && early_signal.is_none() {
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "--demo: the registry did not catch up with the cluster log within {} s",
                    DEMO_READY_WAIT.as_secs()
                ));
            }
            early_signal = crate::sys::termination_within(DEMO_READY_POLL);
        }
        if early_signal.is_none() {
            start_demo(&config)?;
        }
    }
    let signal = early_signal.unwrap_or_else(crate::sys::wait_for_termination);
    tracing::info!(signal, "draining");
    for link in links.iter() {
        link.send(ShardMsg::Drain);
    }
    for executor in executors {
        let _ = executor.join();
    }
    let _ = owner_tx.send(OwnerMsg::Shutdown);
    let _ = owner_thread.join();
    Ok(())
}

/// `--demo`: the sample backend in-process, registered as `echo` and `users` through the gateway's
/// own admin API (so the lines printed afterwards work at once).
fn start_demo(config: &Config) -> Result<(), String> {
    let backend = crate::sample_backend::spawn(crate::sample_backend::BackendConfig {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        instance: "demo-1".into(),
    })
    .map_err(|e| format!("cannot start the demo backend: {e}"))?;
    let address = backend.local_addr().to_string();
    let mut gw = config.listen;
    if gw.ip().is_unspecified() {
        gw.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    for service in ["echo", "users"] {
        crate::sample_backend::register(
            &format!("http://{gw}"),
            service,
            "demo-1",
            &address,
            config.registry_token.as_deref(),
        )
        .map_err(|e| format!("cannot register the demo backend as `{service}`: {e}"))?;
    }
    // The backend serves until the process exits.
    std::mem::forget(backend);
    println!(
        "demo backend on {address}, registered as services `echo` and `users`. Try:\n\
         \n  curl -s http://{gw}/echo/hello?name=world\n\
         \n  curl -s --http2-prior-knowledge -X POST -d '{{\"hi\":1}}' http://{gw}/echo/json/echo\n\
         \n  curl -s http://{gw}/users/json/users/1\n\
         \n  curl -s http://{gw}/graphql -H 'content-type: application/json' \\\n     -d '{{\"query\":\"{{ users(path: \\\"/json/users\\\") {{ name address {{ city }} }} }}\"}}'\n\
         \n  curl -s http://{gw}/-/services\n"
    );
    Ok(())
}
