//! The Data API emulator itself, through the real AWS SDK: account scoping, batch semantics,
//! the Data API's size limits, char padding, external schemas, ResultRows, metadata security,
//! long polls (WaitTimeSeconds), CSV results (GetStatementResultV2) and response-bytes counters.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::types::{ExecutionMode, Field, ResultFormatString, StatementStatusString, StatusString};
use aws_sdk_redshiftdata::Client;
use serde_json::json;
use support::*;

/// PostgreSQL's superuser, as a Data API DbUser: it may create what the batch tests write.
const SUPERUSER: &str = "postgres";

async fn client_of(config: &aws_config::SdkConfig) -> Client {
    Client::from_conf(aws_sdk_redshiftdata::config::Builder::from(config).endpoint_url(emulator_url()).build())
}

/// A client with the function's own credentials, account [`FUNCTION_ACCOUNT`].
async fn function_client() -> Client {
    client_of(&function_config(&moto_url()).await).await
}

async fn account_client(account: &str) -> Client {
    client_of(&account_config(&moto_url(), account, "us-east-1").await).await
}

/// A cluster of the function's account with one database `dev` set up by `sql`.
async fn cluster(name: &str, sql: &str) -> String {
    let cluster = unique(name);
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", sql)]).await;
    cluster
}

async fn wait(client: &Client, id: &str) -> DescribeStatementOutput {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client.describe_statement().id(id).send().await.expect("DescribeStatement");
        let done = matches!(out.status(), Some(StatusString::Finished | StatusString::Failed | StatusString::Aborted));
        if done || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_as(client: &Client, cluster: &str, user: Option<&str>, sql: &str) -> DescribeStatementOutput {
    let out = client
        .execute_statement()
        .cluster_identifier(cluster)
        .database("dev")
        .set_db_user(user.map(str::to_string))
        .sql(sql)
        .send()
        .await
        .expect("ExecuteStatement");
    wait(client, out.id().unwrap()).await
}

async fn batch(client: &Client, cluster: &str, sqls: &[&str], mode: Option<ExecutionMode>) -> DescribeStatementOutput {
    let out = client
        .batch_execute_statement()
        .cluster_identifier(cluster)
        .database("dev")
        .db_user(SUPERUSER)
        .set_sqls(Some(sqls.iter().map(|s| s.to_string()).collect()))
        .set_execution_mode(mode)
        .send()
        .await
        .expect("BatchExecuteStatement");
    wait(client, out.id().unwrap()).await
}

/// Every row of a finished statement, each field as text.
async fn rows(client: &Client, id: &str) -> Vec<Vec<String>> {
    let out = client.get_statement_result().id(id).send().await.expect("GetStatementResult");
    let text = |f: &Field| match f {
        Field::StringValue(s) => s.clone(),
        Field::LongValue(n) => n.to_string(),
        Field::BooleanValue(b) => b.to_string(),
        Field::IsNull(_) => "NULL".into(),
        other => format!("{other:?}"),
    };
    out.records().iter().map(|r| r.iter().map(text).collect()).collect()
}

async fn query(client: &Client, cluster: &str, user: Option<&str>, sql: &str) -> Vec<Vec<String>> {
    let out = run_as(client, cluster, user, sql).await;
    assert_eq!(out.status(), Some(&StatusString::Finished), "{sql}: {:?}", out.error());
    rows(client, out.id()).await
}

fn statuses(out: &DescribeStatementOutput) -> Vec<StatementStatusString> {
    out.sub_statements().iter().map(|s| s.status().unwrap().clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_account_sees_only_its_own_cluster_of_a_name() {
    let (a, b, c) =
        (account_id("emulator_accounts", 1), account_id("emulator_accounts", 2), account_id("emulator_accounts", 3));
    let name = "sales";
    for (account, table) in [(&a, "a_only"), (&b, "b_only")] {
        create_warehouse(account, name, &[("dev", &format!("CREATE TABLE public.{table} (id int);"))]).await;
    }
    let tables = "SELECT tablename::varchar FROM pg_tables WHERE schemaname = 'public' ORDER BY 1";
    for (account, table) in [(&a, "a_only"), (&b, "b_only")] {
        let client = account_client(account).await;
        assert_eq!(query(&client, name, None, tables).await, vec![vec![table.to_string()]], "account {account}");
        let target = query(&client, name, None, "SELECT current_database(), pg_internal.current_target()").await;
        assert_eq!(target, vec![vec!["dev".to_string(), name.to_string()]]);
    }

    let third = account_client(&c).await;
    let err = third.execute_statement().cluster_identifier(name).database("dev").sql("SELECT 1").send().await;
    let err = err.expect_err("a cluster only other accounts have").into_service_error();
    assert!(err.is_validation_exception() && err.to_string().contains("not found"), "{err:?}");

    // Nor does another account see a statement's id.
    let id = account_client(&a).await.execute_statement().cluster_identifier(name).database("dev").sql("SELECT 1");
    let id = id.send().await.unwrap().id().unwrap().to_string();
    let before = counters(&a, name).await;
    let err = account_client(&b).await.describe_statement().id(&id).send().await.expect_err("another account's id");
    assert!(err.into_service_error().is_resource_not_found_exception());
    assert_eq!(counters(&a, name).await, before, "b's call is not counted against a");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_batch_runs_serially_and_rolls_back_at_the_first_failure() {
    let cluster = cluster("tx", "").await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 300})).await;
    let client = function_client().await;
    let started = Instant::now();
    let sqls = ["CREATE TABLE public.t (x int)", "INSERT INTO public.t VALUES (1)", "SELECT 1 / 0", "SELECT 2"];
    let out = batch(&client, &cluster, &sqls, None).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "three SQLs ran one after another");
    assert_eq!(out.status(), Some(&StatusString::Failed));
    assert_eq!(out.execution_mode(), Some(&ExecutionMode::Transaction));
    use StatementStatusString::*;
    assert_eq!(statuses(&out), vec![Finished, Finished, Failed, Aborted]);
    assert!(out.error().unwrap().contains("division by zero"), "{:?}", out.error());
    let left = query(&client, &cluster, None, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").await;
    assert_eq!(left, vec![vec!["0".to_string()]], "all work rolled back");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_commit_batch_commits_each_and_goes_on_after_a_failure() {
    let cluster = cluster("autocommit", "").await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 300})).await;
    let client = function_client().await;
    let started = Instant::now();
    let sqls = ["CREATE TABLE public.t (x int)", "INSERT INTO public.t VALUES (1)", "SELECT 1 / 0", "SELECT 2"];
    let out = batch(&client, &cluster, &sqls, Some(ExecutionMode::AutoCommit)).await;
    assert!(started.elapsed() >= Duration::from_millis(1200), "four SQLs ran one after another");
    assert_eq!(out.status(), Some(&StatusString::Failed), "one failed");
    assert_eq!(out.execution_mode(), Some(&ExecutionMode::AutoCommit));
    use StatementStatusString::*;
    assert_eq!(statuses(&out), vec![Finished, Finished, Failed, Finished]);
    let id = out.id();
    assert_eq!(rows(&client, &format!("{id}:4")).await, vec![vec!["2".to_string()]]);
    assert_eq!(query(&client, &cluster, Some(SUPERUSER), "SELECT x FROM public.t").await, vec![vec!["1".to_string()]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_over_64_kb_or_a_result_over_the_limit_fails() {
    let cluster = cluster("limits", "").await;
    let client = function_client().await;
    assert_eq!(query(&client, &cluster, None, "SELECT repeat('x', 60000)").await[0][0].len(), 60000);
    let wide = run_as(&client, &cluster, None, "SELECT repeat('x', 40000) AS a, repeat('y', 40000) AS b").await;
    assert_eq!(wide.status(), Some(&StatusString::Failed));
    assert!(wide.error().unwrap().contains("Packet for query is too large"), "{:?}", wide.error());

    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"maxResultBytes": 10000})).await;
    let big = "SELECT repeat('x', 1000) FROM generate_series(1, 20)";
    let out = run_as(&client, &cluster, None, big).await;
    assert_eq!(out.status(), Some(&StatusString::Failed));
    assert!(out.error().unwrap().contains("Database response exceeded size limit"), "{:?}", out.error());
    let small = run_as(&client, &cluster, None, "SELECT repeat('x', 1000) FROM generate_series(1, 5)").await;
    assert_eq!((small.status(), small.result_size()), (Some(&StatusString::Finished), 5000));
}

#[tokio::test(flavor = "multi_thread")]
async fn svv_mv_info_names_come_back_padded_to_128() {
    let cluster = cluster("padded", "CREATE MATERIALIZED VIEW public.daily AS SELECT 1 AS one;").await;
    let client = function_client().await;
    let sql = "SELECT database_name, schema_name, user_name, name, is_stale, autorefresh, state FROM svv_mv_info";
    let row = &query(&client, &cluster, Some(SUPERUSER), sql).await[0];
    let pad = |s: &str| format!("{s:<128}");
    assert_eq!(
        row,
        &vec![pad("dev"), pad("public"), pad("postgres"), pad("daily"), "f".into(), "f".into(), "1".into()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_external_schema_fails_queries_that_reach_it_only() {
    let cluster = cluster(
        "external",
        "CREATE SCHEMA lake; CREATE SCHEMA broken; CREATE SCHEMA stream;
         INSERT INTO pg_internal.fixture_external_schemas (schema_name, eskind, failure) VALUES
           ('lake', 1, NULL), ('stream', 10, NULL),
           ('broken', 1, 'AccessDeniedException: not authorized to perform: glue:GetTables');
         INSERT INTO pg_internal.fixture_external_tables (schema_name, table_name) VALUES
           ('lake', 'clicks'), ('broken', 'orders');
         INSERT INTO pg_internal.fixture_external_columns (schema_name, table_name, column_name, columnnum) VALUES
           ('lake', 'clicks', 'url', 1), ('broken', 'orders', 'id', 1);",
    )
    .await;
    let client = function_client().await;
    let kinds = "SELECT schemaname, eskind FROM svv_external_schemas ORDER BY 1";
    let expected = [["broken", "1"], ["lake", "1"], ["stream", "10"]];
    assert_eq!(query(&client, &cluster, Some(SUPERUSER), kinds).await, expected);
    let lake = "SELECT tablename, tabletype FROM svv_external_tables WHERE schemaname = 'lake'";
    assert_eq!(query(&client, &cluster, Some(SUPERUSER), lake).await, vec![vec!["clicks", "TABLE"]]);
    let lake_columns = "SELECT columnname, is_nullable FROM svv_external_columns WHERE schemaname = 'lake'";
    assert_eq!(query(&client, &cluster, Some(SUPERUSER), lake_columns).await, vec![vec!["url", "true"]]);
    for view in ["svv_external_tables", "svv_external_columns"] {
        let out = run_as(&client, &cluster, Some(SUPERUSER), &format!("SELECT * FROM {view}")).await;
        assert_eq!(out.status(), Some(&StatusString::Failed), "{view}");
        assert!(out.error().unwrap().contains("glue:GetTables"), "{view}: {:?}", out.error());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn result_rows_zero_keeps_the_rows_fetchable() {
    let cluster = cluster("rowszero", "").await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"resultRowsZero": true})).await;
    let client = function_client().await;
    let out = run_as(&client, &cluster, None, "SELECT generate_series(1, 3)").await;
    assert_eq!((out.has_result_set(), out.result_rows()), (Some(true), 0));
    assert_eq!(rows(&client, out.id()).await.len(), 3);
    let out = batch(&client, &cluster, &["SELECT 1", "SELECT 2"], None).await;
    assert!(out.sub_statements().iter().all(|s| s.has_result_set() == Some(true) && s.result_rows() == 0));
    assert_eq!(rows(&client, &format!("{}:2", out.id())).await, vec![vec!["2"]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_security_hides_what_a_user_cannot_access_from_pg_class() {
    let fixture = |on: bool| {
        format!(
            "DO $$ BEGIN CREATE ROLE ms_analyst; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             CREATE SCHEMA secret; CREATE TABLE secret.hidden (id int);
             CREATE SCHEMA open; CREATE TABLE open.shown (id int);
             GRANT USAGE ON SCHEMA open TO ms_analyst; GRANT SELECT ON open.shown TO ms_analyst;
             {}",
            if on { "INSERT INTO pg_internal.fixture_settings VALUES ('metadata_security', 'true');" } else { "" }
        )
    };
    let client = function_client().await;
    let relations = "SELECT relname::varchar FROM pg_class WHERE relname IN ('hidden', 'shown') ORDER BY 1";
    let setting = "SELECT name::varchar, setting::varchar FROM pg_settings WHERE name = 'metadata_security'";
    for (on, visible, value) in [(true, vec!["shown"], "on"), (false, vec!["hidden", "shown"], "off")] {
        let cluster = cluster("metasec", &fixture(on)).await;
        let seen: Vec<String> =
            query(&client, &cluster, Some("ms_analyst"), relations).await.into_iter().map(|r| r[0].clone()).collect();
        assert_eq!(seen, visible, "metadata_security {value}");
        assert_eq!(query(&client, &cluster, Some("ms_analyst"), setting).await, vec![vec!["metadata_security", value]]);
        let all = query(&client, &cluster, Some(SUPERUSER), relations).await;
        assert_eq!(all.len(), 2, "a superuser sees all");
    }
}

/// Calls a cluster's counters show, by name (0 when absent).
async fn counter(cluster: &str, name: &str) -> u64 {
    counters(FUNCTION_ACCOUNT, cluster).await.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_returns_as_soon_as_the_statement_ends() {
    let cluster = cluster("longpoll", "").await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 500})).await;
    let client = function_client().await;
    let started = Instant::now();
    let out = client.execute_statement().cluster_identifier(&cluster).database("dev").sql("SELECT 1").send().await;
    let id = out.expect("ExecuteStatement").id().unwrap().to_string();
    let out = client.describe_statement().id(&id).wait_time_seconds(20).send().await.expect("DescribeStatement");
    let took = started.elapsed();
    assert_eq!(out.status(), Some(&StatusString::Finished), "finished in one call");
    assert!(took >= Duration::from_millis(500), "it waited for the 500 ms statement: {took:?}");
    assert!(took < Duration::from_secs(5), "and answered when it ended, not after 20 s: {took:?}");
    assert_eq!(counter(&cluster, "DescribeStatement").await, 1);
    assert_eq!(counter(&cluster, "ExecuteStatement").await, 1);

    // Still running when the wait is over: the current status, and GetStatementResult's usual
    // refusal of an unfinished statement; a longer wait then gets the rows.
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 3000})).await;
    let started = Instant::now();
    let out = client.execute_statement().cluster_identifier(&cluster).database("dev").sql("SELECT 2");
    let out = out.wait_time_seconds(1).send().await.expect("ExecuteStatement");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited the second: {:?}", started.elapsed());
    use StatementStatusString::*;
    assert!(matches!(out.status(), Some(Submitted | Picked | Started)), "{:?}", out.status());
    assert_eq!(out.has_result_set(), None, "not known before the statement ends");
    let id = out.id().unwrap();
    let err = client.get_statement_result().id(id).wait_time_seconds(1).send().await.expect_err("still running");
    let err = err.into_service_error();
    assert!(err.is_validation_exception() && err.to_string().contains("Query does not have result"), "{err:?}");
    let rows = client.get_statement_result().id(id).wait_time_seconds(10).send().await.expect("GetStatementResult");
    assert_eq!(rows.records(), [vec![Field::LongValue(2)]]);
    assert!(started.elapsed() < Duration::from_secs(8), "answered when it ended: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_long_poll_per_statement_at_a_time() {
    let cluster = cluster("waiting", "").await;
    // Long enough that the refused calls below come while the first long poll still waits, on a
    // loaded machine too.
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 5000})).await;
    let client = function_client().await;
    let out = client.execute_statement().cluster_identifier(&cluster).database("dev").sql("SELECT 1").send().await;
    let id = out.expect("ExecuteStatement").id().unwrap().to_string();
    let first = tokio::spawn({
        let (client, id) = (client.clone(), id.clone());
        async move { client.describe_statement().id(id).wait_time_seconds(20).send().await }
    });
    // The emulator counts a call as it arrives, just before the call takes its place.
    while counter(&cluster, "DescribeStatement").await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
    let second = client.describe_statement().id(&id).wait_time_seconds(20).send().await.expect_err("refused");
    assert_eq!(second.code(), Some("ActiveWaitingRequestsExceededException"), "{second:?}");
    let result = client.get_statement_result().id(&id).wait_time_seconds(20).send().await.expect_err("refused");
    assert_eq!(result.code(), Some("ActiveWaitingRequestsExceededException"), "{result:?}");
    // A short poll is not a waiting request; and once the first ends, its place is free.
    client.describe_statement().id(&id).send().await.expect("a short poll");
    let first = first.await.unwrap().expect("the first long poll");
    assert_eq!(first.status(), Some(&StatusString::Finished));
    let rows = client.get_statement_result().id(&id).wait_time_seconds(20).send().await.expect("GetStatementResult");
    assert_eq!(rows.records(), [vec![Field::LongValue(1)]]);
    assert_eq!(counter(&cluster, "ActiveWaitingRequestsExceededException").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_statement_with_wait_time_answers_with_status_and_has_result_set() {
    let cluster = cluster("execwait", "").await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 200})).await;
    let client = function_client().await;
    let execute = |sql: &str| client.execute_statement().cluster_identifier(&cluster).database("dev").sql(sql);
    let out = execute("SELECT 1").wait_time_seconds(10).send().await.expect("ExecuteStatement");
    assert_eq!((out.status(), out.has_result_set()), (Some(&StatementStatusString::Finished), Some(true)));
    let out = execute("SET search_path = public").wait_time_seconds(10).send().await.expect("ExecuteStatement");
    assert_eq!((out.status(), out.has_result_set()), (Some(&StatementStatusString::Finished), Some(false)));
    let out = execute("SELECT 1 / 0").wait_time_seconds(10).send().await.expect("ExecuteStatement");
    assert_eq!(out.status(), Some(&StatementStatusString::Failed));

    // A batch waits for all its SQLs.
    let started = Instant::now();
    let out = client.batch_execute_statement().cluster_identifier(&cluster).database("dev");
    let out = out.sqls("SELECT 1").sqls("SELECT 2").wait_time_seconds(10).send().await.expect("BatchExecuteStatement");
    assert!(started.elapsed() >= Duration::from_millis(400), "both SQLs ran: {:?}", started.elapsed());
    assert_eq!((out.status(), out.has_result_set()), (Some(&StatementStatusString::Finished), Some(true)));
    let described = client.describe_statement().id(out.id().unwrap()).send().await.expect("DescribeStatement");
    use StatementStatusString::*;
    assert_eq!(statuses(&described), vec![Finished, Finished]);

    // Without WaitTimeSeconds, the answer of old.
    let out = execute("SELECT 1").send().await.expect("ExecuteStatement");
    assert_eq!((out.status(), out.has_result_set(), out.redshift_pid()), (None, None, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_time_seconds_outside_1_to_30_is_refused() {
    let cluster = cluster("waitlimit", "").await;
    let client = function_client().await;
    let id = run_as(&client, &cluster, None, "SELECT 1").await.id().to_string();
    let started = Instant::now();
    for seconds in [31, 0] {
        let execute = client.execute_statement().cluster_identifier(&cluster).database("dev").sql("SELECT 1");
        let batch = client.batch_execute_statement().cluster_identifier(&cluster).database("dev").sqls("SELECT 1");
        let (describe, result) = (client.describe_statement().id(&id), client.get_statement_result().id(&id));
        let result_v2 = client.get_statement_result_v2().id(&id);
        let errors = [
            execute.wait_time_seconds(seconds).send().await.unwrap_err().into_service_error().to_string(),
            batch.wait_time_seconds(seconds).send().await.unwrap_err().into_service_error().to_string(),
            describe.wait_time_seconds(seconds).send().await.unwrap_err().into_service_error().to_string(),
            result.wait_time_seconds(seconds).send().await.unwrap_err().into_service_error().to_string(),
            result_v2.wait_time_seconds(seconds).send().await.unwrap_err().into_service_error().to_string(),
        ];
        for e in errors {
            assert!(e.starts_with("ValidationException") && e.contains("waitTimeSeconds"), "{seconds}: {e}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once");
    let err = client.describe_statement().id(&id).wait_time_seconds(31).send().await.unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_validation_exception() && err.to_string().contains("less than or equal to 30"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_csv_result_is_read_with_get_statement_result_v2_only() {
    let cluster = cluster("csv", "").await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"pageSize": 1})).await;
    let client = function_client().await;
    let sql = r#"SELECT n, e, s, i, b FROM (VALUES
                   (1, NULL::varchar, ''::varchar, 'a,b "c"' || chr(10) || 'd', 42, true),
                   (2, 'x', 'y', 'z', -7, false)) AS v (o, n, e, s, i, b) ORDER BY o"#;
    let run_csv = |sql: &'static str| {
        client
            .execute_statement()
            .cluster_identifier(&cluster)
            .database("dev")
            .sql(sql)
            .result_format(ResultFormatString::Csv)
            .wait_time_seconds(10)
            .send()
    };
    let out = run_csv(sql).await.expect("ExecuteStatement");
    assert_eq!(out.status(), Some(&StatementStatusString::Finished));
    let id = out.id().unwrap().to_string();
    let first = ",\"\",\"a,b \"\"c\"\"\nd\",42,true";
    let second = "x,y,z,-7,false";

    // One row a page under pageSize 1, NextToken between.
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = client.get_statement_result_v2().id(&id).set_next_token(token).send().await.expect("V2");
        assert_eq!((page.total_num_rows(), page.result_format()), (2, Some(&ResultFormatString::Csv)));
        let names: Vec<_> = page.column_metadata().iter().filter_map(|c| c.name()).collect();
        assert_eq!(names, ["n", "e", "s", "i", "b"]);
        pages.extend(page.records().iter().map(|r| r.as_csv_records().unwrap().clone()));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, [first, second]);
    let described = client.describe_statement().id(&id).send().await.expect("DescribeStatement");
    assert_eq!(described.result_format(), Some(&ResultFormatString::Csv));

    // Records separated by "\n" in one page.
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({})).await;
    let id = run_csv(sql).await.expect("ExecuteStatement").id().unwrap().to_string();
    let page = client.get_statement_result_v2().id(&id).send().await.expect("V2");
    assert_eq!(page.records().len(), 1);
    assert_eq!(page.records()[0].as_csv_records().unwrap(), &format!("{first}\n{second}"));
    assert_eq!(page.next_token(), None);

    // Each reader refuses the other format.
    let err = client.get_statement_result().id(&id).send().await.expect_err("a CSV statement").into_service_error();
    assert!(err.is_validation_exception() && err.to_string().contains("GetStatementResultV2"), "{err:?}");
    let json_id = run_as(&client, &cluster, None, "SELECT 1").await.id().to_string();
    let err = client.get_statement_result_v2().id(&json_id).send().await.expect_err("a JSON statement");
    assert!(err.into_service_error().is_validation_exception());
    let described = client.describe_statement().id(&json_id).send().await.expect("DescribeStatement");
    assert_eq!(described.result_format(), None, "no ResultFormat asked, none reported");

    // A CSV batch: each SQL's result by its id.
    let out = client.batch_execute_statement().cluster_identifier(&cluster).database("dev");
    let out = out.sqls("SELECT 1").sqls("SELECT 'a,b' AS t").result_format(ResultFormatString::Csv);
    let out = out.wait_time_seconds(10).send().await.expect("BatchExecuteStatement");
    let page = client.get_statement_result_v2().id(format!("{}:2", out.id().unwrap())).send().await.expect("V2");
    assert_eq!(page.records()[0].as_csv_records().unwrap(), "\"a,b\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_counters_count_response_bytes_per_operation() {
    let cluster = cluster("bytes", "").await;
    let client = function_client().await;
    let sql = "SELECT repeat('x', 1000) AS t FROM generate_series(1, 10)";
    let id = run_as(&client, &cluster, None, sql).await.id().to_string();
    assert!(counter(&cluster, "ExecuteStatementBytes").await > 0);
    assert!(counter(&cluster, "DescribeStatementBytes").await > 0);

    let before = counter(&cluster, "GetStatementResultBytes").await;
    assert_eq!(before, 0);
    client.get_statement_result().id(&id).send().await.expect("GetStatementResult");
    let once = counter(&cluster, "GetStatementResultBytes").await;
    assert!(once > 10_000, "ten rows of 1,000 bytes: {once}");
    client.get_statement_result().id(&id).send().await.expect("GetStatementResult");
    assert_eq!(counter(&cluster, "GetStatementResultBytes").await, 2 * once, "the same page, the same bytes");
    assert_eq!(counter(&cluster, "GetStatementResult").await, 2, "calls are still counted as calls");

    // Errors are bytes sent too.
    let err = client.get_statement_result_v2().id(&id).send().await.expect_err("a JSON statement");
    assert!(err.into_service_error().is_validation_exception());
    let refused = counter(&cluster, "GetStatementResultV2Bytes").await;
    assert!(refused > 0);

    // The same rows as CSV.
    let out = client.execute_statement().cluster_identifier(&cluster).database("dev").sql(sql);
    let out = out.result_format(ResultFormatString::Csv).wait_time_seconds(10).send().await.expect("ExecuteStatement");
    client.get_statement_result_v2().id(out.id().unwrap()).send().await.expect("GetStatementResultV2");
    let csv = counter(&cluster, "GetStatementResultV2Bytes").await - refused;
    assert!(csv > 10_000 && csv < once, "CSV {csv} bytes, JSON {once}");
}
