//! Append latency of `PostgresCheckpointStore` with 8 runs in flight.
//!
//! Starts a throwaway PostgreSQL server (`TempPostgres`: `initdb` and `pg_ctl` from the
//! system's installation, in a temporary directory, at the server's default durability:
//! `fsync` and `synchronous_commit` on), then lets 8 runs append checkpoint rows at once,
//! each waiting for its previous append like the engine does, and prints the latency
//! percentiles of a single append and the total rate.
//!
//! `cargo run -p cano --example pg_append_latency --features postgres`
//!
//! Options: `--in-flight N` (runs appending at once, default 8), `--appends N` (rows per
//! run, default 400), `--url URL` (measure on an existing database instead of a
//! throwaway server; the store creates its tables there). Build with `--release` for
//! numbers worth comparing.

use cano::prelude::*;
use cano::recovery::postgres::TempPostgres;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    in_flight: usize,
    appends: u64,
    url: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        in_flight: 8,
        appends: 400,
        url: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--in-flight" => options.in_flight = number()?,
            "--appends" => options.appends = number()? as u64,
            "--url" => options.url = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.in_flight == 0 || options.appends == 0 {
        return Err("--in-flight and --appends must be at least 1".into());
    }
    Ok(options)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options().map_err(|e| {
        format!("{e}; usage: pg_append_latency [--in-flight N] [--appends N] [--url URL]")
    })?;

    let mut server = None;
    let url = match &options.url {
        Some(url) => url.clone(),
        None => {
            let started = Instant::now();
            let pg = TempPostgres::start().await?;
            let url = pg.create_database("latency").await?;
            println!(
                "throwaway PostgreSQL on 127.0.0.1:{} ready in {:.1} s",
                pg.port(),
                started.elapsed().as_secs_f64()
            );
            server = Some(pg);
            url
        }
    };

    // What "durable" means on this server.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    let io = tokio::spawn(connection);
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
    ] {
        let value: String = client.query_one(&format!("SHOW {name}"), &[]).await?.get(0);
        settings.push(format!("{name}={value}"));
    }
    drop(client);
    io.await??;
    println!("server: {}", settings.join(" "));

    let store = Arc::new(
        PostgresCheckpointStore::builder(url)
            .with_max_connections(options.in_flight)
            .connect()
            .await?,
    );
    // Ids unique to this measurement, so an existing database is left as it was.
    let prefix = format!(
        "latency-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );

    // Warm up every connection of the pool.
    let warm: Vec<_> = (0..options.in_flight)
        .map(|r| {
            let (store, id) = (Arc::clone(&store), format!("{prefix}-warm-{r}"));
            tokio::spawn(async move {
                for seq in 0..20 {
                    store
                        .append(&id, CheckpointRow::new(seq, "Warm", "warm"))
                        .await?;
                }
                store.clear(&id).await
            })
        })
        .collect();
    for task in warm {
        task.await??;
    }

    let started = Instant::now();
    let runs: Vec<_> = (0..options.in_flight)
        .map(|r| {
            let (store, id) = (Arc::clone(&store), format!("{prefix}-run-{r}"));
            let appends = options.appends;
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(appends as usize);
                for seq in 0..appends {
                    let row = CheckpointRow::new(seq, format!("State{}", seq % 5), "task");
                    let t = Instant::now();
                    store.append(&id, row).await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, CanoError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for run in runs {
        latencies.extend(run.await??);
    }
    let elapsed = started.elapsed();
    for r in 0..options.in_flight {
        store.clear(&format!("{prefix}-run-{r}")).await?;
    }
    drop(store);

    latencies.sort();
    println!(
        "{} appends, {} runs in flight, {:.2} s: {:.0} appends/s",
        latencies.len(),
        options.in_flight,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "append latency: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );

    if let Some(pg) = server {
        pg.stop().await?;
    }
    Ok(())
}
