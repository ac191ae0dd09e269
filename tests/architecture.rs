//! The module graph, read as an engineer who joins reads it: from each module's `crate::`
//! paths. Dependencies go one way, in `src/` and in `emulator/src/`: no module reaches back to
//! one that reaches it. A module is a top-level file or folder; its tests (`mod tests`, or a
//! `tests.rs` of its folder) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regex::Regex;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Each top-level module of `root` and the other top-level modules it names.
fn graph(root: &Path) -> Graph {
    let named = Regex::new(r"\bcrate::(\w+)").unwrap();
    let grouped = Regex::new(r"use crate::\{([^}]*)\}").unwrap();
    let mut modules: Graph = BTreeMap::new();
    for file in rust_files(root) {
        let relative = file.strip_prefix(root).unwrap();
        let top =
            relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" || file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let mut deps: BTreeSet<String> = named.captures_iter(code).map(|c| c[1].to_string()).collect();
        for group in grouped.captures_iter(code) {
            deps.extend(group[1].split(',').filter_map(|p| p.split("::").next()).map(|p| p.trim().to_string()));
        }
        deps.remove(&top);
        modules.entry(top).or_default().extend(deps);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules.values_mut().for_each(|deps| deps.retain(|d| names.contains(d)));
    modules
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A path that leaves `from` and comes back to it, if any.
fn circle(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        for next in &graph[path.last().unwrap()] {
            if next == from {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

fn circles(root: &str) -> Vec<String> {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join(root));
    assert!(graph.len() > 5, "{root}: {graph:?}");
    graph.keys().filter_map(|m| circle(&graph, m)).map(|c| c.join(" -> ")).collect()
}

#[test]
fn the_function_has_no_import_circle() {
    assert_eq!(circles("src"), Vec::<String>::new());
}

#[test]
fn the_emulator_has_no_import_circle() {
    assert_eq!(circles("emulator/src"), Vec::<String>::new());
}

/// The check itself: a circle is found.
#[test]
fn a_circle_is_found() {
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(m, deps)| (m.to_string(), deps.into_iter().map(str::to_string).collect()))
        .collect();
    assert_eq!(circle(&graph, "a"), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(circle(&graph, "d"), None);
}
