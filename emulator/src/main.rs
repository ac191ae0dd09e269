//! A Redshift Data API and Redshift Serverless emulator backed by a real PostgreSQL, for
//! redshift-registry's tests, benchmarks and demo. It speaks the AWS wire protocol (awsJson1_1,
//! `X-Amz-Target: RedshiftData.<Op>` / `RedshiftServerless.<Op>`) so the unmodified AWS SDK talks
//! to it through `AWS_ENDPOINT_URL_REDSHIFT_DATA` and `AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS`.
//!
//! Each (account, cluster or workgroup, database) is a PostgreSQL database created from a
//! template holding the Redshift catalog objects of `sql/redshift_catalog.sql`; a request acts
//! in the AWS account its access key belongs to, which moto's STS (`--sts-endpoint`) tells.
//! Statements run asynchronously as the PostgreSQL role standing for the database user, so
//! privileges hide objects as Redshift does. `/_emulator/...` is the control API for fixtures, knobs and counters.

mod accounts;
mod control;
mod csv;
mod data_api;
mod http;
mod knobs;
mod pg;
mod serverless;
mod state;
mod statements;
mod wire;
mod workgroup;

use std::sync::Arc;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(listen), Some(postgres), Some(sts)) = (arg("--listen"), arg("--postgres"), arg("--sts-endpoint")) else {
        eprintln!(
            "usage: redshift-data-emulator --listen 127.0.0.1:PORT --postgres 'host=127.0.0.1 port=5432 user=postgres' \
             --sts-endpoint http://127.0.0.1:MOTO_PORT"
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
    let state = Arc::new(state::Emulator::new(pg, accounts::Accounts::new(&sts)));
    if let Err(e) = http::serve(&listen, state).await {
        eprintln!("redshift-data-emulator: {e}");
        std::process::exit(1);
    }
}
