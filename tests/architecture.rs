//! The module graph, read as an engineer who joins reads it: from each module's `crate::`
//! paths. Dependencies go one way, in `src/` and in `emulator/src/`: no module reaches back to
//! one that reaches it. A module is a top-level file or folder; inside a folder, each file is
//! one (`mod` for its `mod.rs`, reached through `super::`). Tests (`mod tests`, or a `tests.rs`
//! of the folder) and comments are left out.

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
        let code = code_of(&file);
        let mut deps: BTreeSet<String> = named.captures_iter(&code).map(|c| c[1].to_string()).collect();
        for group in grouped.captures_iter(&code) {
            deps.extend(group[1].split(',').filter_map(|p| p.split("::").next()).map(|p| p.trim().to_string()));
        }
        deps.remove(&top);
        modules.entry(top).or_default().extend(deps);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules.values_mut().for_each(|deps| deps.retain(|d| names.contains(d)));
    modules
}

/// A file's code: no test module, no comment line.
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The files of a module folder and the files of it each names: `mod.rs` names a child by its
/// path (`child::`); a child names `mod.rs` by an item of it (`super::Item`,
/// `crate::folder::Item`) and a sibling by its path (`super::sibling::`, `crate::folder::sibling::`).
fn folder_graph(folder: &Path) -> Graph {
    let files: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("tests.rs"))
        .collect();
    let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().to_string();
    let names: BTreeSet<String> = files.iter().map(|f| stem(f)).collect();
    let path = Regex::new(r"\b(\w+)::").unwrap();
    let folder_name = folder.file_name().unwrap().to_string_lossy().to_string();
    let from_super = Regex::new(&format!(r"\b(?:super|crate::{folder_name})::(\w+)")).unwrap();
    let grouped = Regex::new(r"use super::\{([^}]*)\}").unwrap();
    let mut graph = Graph::new();
    for file in &files {
        let (me, code) = (stem(file), code_of(file));
        let deps: BTreeSet<String> = if me == "mod" {
            path.captures_iter(&code).map(|c| c[1].to_string()).filter(|n| names.contains(n) && n != "mod").collect()
        } else {
            let named = from_super.captures_iter(&code).map(|c| c[1].to_string());
            let in_groups: Vec<String> = grouped
                .captures_iter(&code)
                .flat_map(|g| {
                    g[1].split(',').map(|p| p.split("::").next().unwrap().trim().to_string()).collect::<Vec<_>>()
                })
                .collect();
            named
                .chain(in_groups)
                .filter(|n| !n.is_empty() && n != "*")
                .map(|n| if names.contains(&n) { n } else { "mod".to_string() })
                .filter(|n| *n != me)
                .collect()
        };
        graph.insert(me, deps);
    }
    graph
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

/// Inside each module folder too: a child that reaches back to its `mod.rs` while `mod.rs`
/// names the child is a circle.
#[test]
fn no_module_folder_has_an_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for folder in std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        let graph = folder_graph(&folder);
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        found.extend(graph.keys().filter_map(|m| circle(&graph, m)).map(|c| format!("{name}/: {}", c.join(" -> "))));
    }
    assert_eq!(found, Vec::<String>::new());
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
