//! `redshift-registry --check-config FILE` and `schema/config.v1.json`, as a user meets them:
//! the binary run on files, offline, and the committed schema through a JSON Schema validator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_redshift-registry");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with no AWS setting at all, as on a laptop before any setup.
fn bare(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn check(path: &Path) -> Output {
    bare(&["--check-config", path.to_str().unwrap()]).output().expect("the binary runs")
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schema/config.v1.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("the schema compiles")
}

fn examples() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    found.sort();
    found
}

fn written(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_example_is_valid_for_the_schema_and_for_check_config() {
    let examples = examples();
    assert!(examples.len() >= 5, "{examples:?}");
    let schema = schema();
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["$schema"], "../schema/config.v1.json", "{path:?} points editors at the schema");
        let errors: Vec<String> = schema.iter_errors(&value).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{path:?}: {errors:?}");
        let output = check(&path);
        assert_eq!(output.status.code(), Some(0), "{path:?}: {}", stderr(&output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("valid"), "{path:?}");
    }
}

/// Broken configs the schema can tell: both refuse each, and check-config names every problem
/// of a file at once, each with its JSON path.
#[test]
fn the_schema_and_check_config_refuse_the_same_broken_configs() {
    let dir = tempdir("schema_agree");
    let base = || {
        json!({"$schema": "../schema/config.v1.json", "output": {"bucket": "my-registry-bucket"},
                         "roleName": "Reader", "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]})
    };
    let broken: Vec<(&str, Value, Vec<&str>)> = vec![
        ("typo", set(base(), "/sources/0/regoins", json!(["us-east-1"])), vec!["$.sources[0].regoins: unknown key"]),
        (
            "type",
            set(base(), "/pullRedshiftComments", json!("yes")),
            vec!["$.pullRedshiftComments: \"yes\" is not of type"],
        ),
        (
            "account",
            set(base(), "/sources/0/accountId", json!("1234")),
            vec!["$.sources[0].accountId: \"1234\" is not a 12-digit"],
        ),
        (
            "many",
            set(
                set(set(base(), "/limits", json!({"statementTimeout": 5})), "/execution", json!({"mode": "sharded"})),
                "/sources/1",
                json!({"organization": {"roleArn": "arn:aws:iam::999999999999:role/Org"}}),
            ),
            vec![
                "$.limits.statementTimeout: unknown key",
                "$.execution.mode:",
                "$.sources[1].organization: missing key \"regions\"",
            ],
        ),
        (
            "cluster",
            set(
                base(),
                "/sources/0",
                json!({"accountId": "111111111111", "clusters": [{"region": "us-east-1", "clusterIdentifier": "Sales_DW"}]}),
            ),
            vec!["$.sources[0].clusters[0].clusterIdentifier: \"Sales_DW\" is not a Redshift cluster identifier"],
        ),
    ];
    let schema = schema();
    for (name, config, problems) in broken {
        assert!(!schema.is_valid(&config), "{name}: the schema accepts it");
        let output = check(&written(&dir, &format!("{name}.json"), &config.to_string()));
        assert_eq!(output.status.code(), Some(2), "{name}");
        let said = stderr(&output);
        for problem in problems {
            assert!(said.contains(problem), "{name}: {problem:?} not in {said}");
        }
    }
}

/// What only the rules can tell (a region listed twice, a secret in another account) the
/// schema accepts, and check-config refuses: it is the stricter of the two.
#[test]
fn check_config_also_refuses_what_the_schema_cannot_express() {
    let dir = tempdir("rules_only");
    let config = json!({"output": {"bucket": "my-registry-bucket"}, "roleName": "Reader",
                        "sources": [{"accountId": "111111111111", "regions": ["us-east-1", "us-east-1"]}]});
    assert!(schema().is_valid(&config));
    let output = check(&written(&dir, "twice.json", &config.to_string()));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("$.sources[0].regions[1]: region us-east-1 is listed twice"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_syntax_error_is_named_by_line_and_column() {
    let dir = tempdir("syntax");
    let output = check(&written(&dir, "cut.json", "{\"output\": {\"bucket\": \"b\"},\n  \"sources\": [\n"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("line 3 column 0"), "{}", stderr(&output));
    let missing = check(&dir.join("absent.json"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("absent.json"), "{}", stderr(&missing));
}

/// Run with a bad inline config and no AWS setting: the config's problems are the only thing
/// printed, before the SDK would look for a region.
#[test]
fn a_bad_config_is_the_first_and_only_thing_a_run_prints() {
    let config = json!({"output": {"bucket": "b"}, "sources": [{"accountId": "12", "regions": ["us-east-1"]}]});
    let output = bare(&["--event", root().join("events/manual.json").to_str().unwrap()])
        .env("REGISTRY_CONFIG", config.to_string())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(lines[0].contains("$.sources[0].accountId: \"12\" is not a 12-digit AWS account id"), "{said}");
}

fn set(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match base.pointer_mut(parent).unwrap() {
        Value::Object(map) => drop(map.insert(key.to_string(), value)),
        Value::Array(items) => {
            let index: usize = key.parse().unwrap();
            if index == items.len() {
                items.push(value);
            } else {
                items[index] = value;
            }
        }
        other => panic!("{other} is no container"),
    }
    base
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redshift-registry-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every "(README: Heading)" a hint or error names is a heading of the README.
#[test]
fn every_readme_reference_in_the_code_is_a_heading() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let headings: Vec<&str> =
        readme.lines().filter(|l| l.starts_with('#')).map(|l| l.trim_start_matches('#').trim()).collect();
    let mut sources = vec![root().join("src")];
    let mut references = Vec::new();
    while let Some(path) = sources.pop() {
        if path.is_dir() {
            sources.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (_, rest) in text.match_indices("README: ").map(|(i, _)| ((), &text[i + 8..])) {
                let name = &rest[..rest.find(')').expect("a reference ends with )")];
                references.push((path.clone(), name.to_string()));
            }
        }
    }
    assert!(references.len() >= 8, "{references:?}");
    for (path, name) in references {
        assert!(headings.contains(&name.as_str()), "{path:?} names README heading {name:?}, which is not there");
    }
}

/// Away from the stack, what its environment fills (bucket, reader role name, queue URL) may be
/// left out: the config a user uploads next to a deployed stack is valid offline.
#[test]
fn what_the_stack_fills_may_be_left_out_offline() {
    let dir = tempdir("stack_fills");
    let config = json!({"execution": {"mode": "fanout"},
                        "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]});
    let output = check(&written(&dir, "lean.json", &config.to_string()));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
