//! The crate's layers, checked from its source: every top-level module of `src/` sits in
//! one layer of `LAYERS`, production code imports only from its own layer or lower ones,
//! and the import graph between modules has no cycle. Test code (a `#[cfg(test)]` module,
//! inline or in its own file) sits above everything it tests and is left out; production
//! code must never import the test kit.
//!
//! Pure Rust over the source text: it reads every `crate::` path (in `use` items and
//! inline), with comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import from its own layer and the ones before
/// it, never from a later one. A new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    // The ground floor: errors and their CNI codes. Imports nothing of the crate.
    &["error"],
    // The input and the state model: pure data.
    &["config", "model"],
    // The pure functions over them: config x prevResult -> desired state, and the planner.
    &["compile", "plan"],
    // Words and reports for people and programs: pure.
    &["render", "report"],
    // The world: files, netns threads, netlink, the kernel reads and writes, the probes.
    &[
        "atomic_write",
        "confined",
        "signals",
        "netns",
        "netlink",
        "logging",
        "install",
        "record",
        "cache",
        "snapshot",
        "execute",
        "conflict",
    ],
    // The test doubles of the world's traits (compiled for tests only).
    &["testkit"],
    // The one path every command shares.
    &["reconcile"],
    // The commands: the CNI protocol and the operator's work on a node.
    &["operator", "cni"],
    // Commands built on the operator's: rolling a config out to running attachments.
    &["rollout"],
    // The entry points: the live backends, the command line, the node agent.
    &["live", "cli", "agent"],
];

/// Files that are the crate's roots, not modules.
const ROOTS: &[&str] = &["lib.rs", "main.rs"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry of src").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src_dir()).expect("a file below src");
    let first = relative
        .components()
        .next()
        .expect("a path below src")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The directory that holds the files of the modules `file` declares.
fn child_dir(file: &Path) -> PathBuf {
    let parent = file.parent().expect("a file in a directory");
    match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") | Some("main.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().expect("a file name")),
    }
}

/// `text` without comments (line and block) and without the contents of string literals,
/// so that paths named in prose or in messages do not count.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(text.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(text.len(), |n| i + n + 2);
            i = end;
        } else if rest.starts_with('"') {
            // Skip to the closing quote, past escapes.
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if rest.starts_with("'\"'") {
            out.push_str("' '");
            i += 3;
        } else {
            let c = rest.chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The blocks of `#[cfg(test)] mod NAME { ... }` removed, and the names of the
/// `#[cfg(test)] mod NAME;` declarations (test code in files of their own).
fn without_test_modules(code: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut test_files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let Some(declared) = after.strip_prefix("mod ") else {
            // A test-only item that is not a module (a function, an impl): left out up
            // to the end of its item is more than this check needs; keep the code.
            kept.push_str("#[cfg(test)]");
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        };
        let name: String = declared
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let tail = declared[name.len()..].trim_start();
        if let Some(after_semicolon) = tail.strip_prefix(';') {
            test_files.push(name);
            rest = after_semicolon;
            continue;
        }
        let body = tail
            .strip_prefix('{')
            .expect("a module body after its name");
        let mut depth = 1;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i + 1;
                break;
            }
        }
        rest = &body[end..];
    }
    kept.push_str(rest);
    (kept, test_files)
}

/// The top-level modules named by the `crate::` paths of `code`.
fn imported_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let path = &code[from..];
        match path.strip_prefix('{') {
            Some(group) => found.extend(group_heads(group)),
            None => found.extend([ident_at(path)]),
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// The first segment of each path of a `{a::b, c, d::{e, f}}` group (`group` starts after
/// its opening brace).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = vec![ident_at(group.trim_start())];
    let mut depth = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(ident_at(group[i + 1..].trim_start())),
            _ => {}
        }
    }
    heads
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Production imports between top-level modules: module -> modules it imports, each with
/// a file that does.
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn import_graph() -> (Graph, BTreeSet<String>) {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    let mut productions = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (code, test_files) = without_test_modules(&code_only(&text));
        let dir = child_dir(file);
        for name in test_files {
            test_only.insert(dir.join(format!("{name}.rs")));
            test_only.insert(dir.join(&name));
        }
        productions.push((file.clone(), code));
    }
    let mut graph = Graph::new();
    let mut modules = BTreeSet::new();
    for (file, code) in productions {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file.parent() == Some(src_dir().as_path()) && ROOTS.contains(&name) {
            continue;
        }
        let module = module_of(&file);
        modules.insert(module.clone());
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let edges = graph.entry(module.clone()).or_default();
        for imported in imported_modules(&code) {
            if imported != module {
                edges.entry(imported).or_insert_with(|| file.clone());
            }
        }
    }
    (graph, modules)
}

fn shown(file: &Path) -> String {
    file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string()
}

#[test]
fn every_module_of_src_has_a_place_in_the_layers() {
    let (_, modules) = import_graph();
    let unplaced: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer: {unplaced:?}; place each in LAYERS in tests/layers.rs \
         (what it may import decides where)"
    );
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let (graph, _) = import_graph();
    let mut upward = Vec::new();
    for (module, edges) in &graph {
        let Some(own) = layer_of(module) else {
            continue;
        };
        for (imported, file) in edges {
            match layer_of(imported) {
                Some(layer) if layer > own => upward.push(format!(
                    "{module} (layer {own}) imports {imported} (layer {layer}) in {}",
                    shown(file)
                )),
                _ => {}
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn production_code_never_imports_the_test_kit() {
    let (graph, _) = import_graph();
    let users: Vec<String> = graph
        .iter()
        .filter(|(module, _)| module.as_str() != "testkit")
        .filter_map(|(module, edges)| {
            edges
                .get("testkit")
                .map(|f| format!("{module} in {}", shown(f)))
        })
        .collect();
    assert!(
        users.is_empty(),
        "production code using the test kit: {users:?}"
    );
}

#[test]
fn the_import_graph_has_no_cycle() {
    let (graph, _) = import_graph();
    // Depth-first search; a module met again while on the current path closes a cycle.
    fn visit(
        module: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for imported in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
            if let Some(cycle) = visit(imported, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_parser_reads_grouped_nested_and_inline_paths_and_skips_comments_and_tests() {
    let code = r#"
        use crate::{config::Config, error::{Error, Result}, self};
        use crate::model::Op; // use crate::cli;
        /* crate::report */
        fn f() { let _ = crate::plan::plan; let _ = "crate::render"; }
        pub(crate) fn g() {}
        #[cfg(test)]
        mod tests { use crate::testkit::ModelKernel; fn h() { {} } }
        #[cfg(test)]
        mod more;
        use crate::snapshot::SnapshotSource;
    "#;
    let (kept, test_files) = without_test_modules(&code_only(code));
    let found: Vec<String> = imported_modules(&kept).into_iter().collect();
    assert_eq!(found, ["config", "error", "model", "plan", "snapshot"]);
    assert_eq!(test_files, ["more"]);
}
