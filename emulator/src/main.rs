//! A Redshift Data API and Redshift Serverless emulator backed by a real PostgreSQL, for
//! redshift-registry's tests, benchmarks and demo. It speaks the AWS wire protocol (awsJson1_1,
//! `X-Amz-Target: RedshiftData.<Op>` / `RedshiftServerless.<Op>`) so the unmodified AWS SDK talks
//! to it through `AWS_ENDPOINT_URL_REDSHIFT_DATA` and `AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS`.
//!
//! (cluster or workgroup, database) is PostgreSQL database `"<target>/<database>"`, created from
//! a template holding the Redshift catalog objects of `sql/redshift_catalog.sql`. Statements run
//! asynchronously as the PostgreSQL role standing for the database user, so privileges hide
//! objects as Redshift does. `/_emulator/...` is the control API for fixtures, knobs and counters.

mod control;
mod data_api;
mod http;
mod pg;
mod serverless;
mod statements;

use std::sync::Arc;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(listen), Some(postgres)) = (arg("--listen"), arg("--postgres")) else {
        eprintln!(
            "usage: redshift-data-emulator --listen 127.0.0.1:PORT --postgres 'host=127.0.0.1 port=5432 user=postgres'"
        );
        std::process::exit(2);
    };
    let pg = match pg::Postgres::connect(&postgres).await {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("redshift-data-emulator: preparing PostgreSQL: {e}");
            std::process::exit(1);
        }
    };
    let state = Arc::new(control::Emulator::new(pg));
    if let Err(e) = http::serve(&listen, state).await {
        eprintln!("redshift-data-emulator: {e}");
        std::process::exit(1);
    }
}
