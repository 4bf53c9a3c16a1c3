//! The floors of ARCHITECTURE.md, checked the way rust-analyzer checks its invariants: by
//! reading the source. Every `crate::…` path in `src/` (in `use` lines and inline) is an
//! import of a top-level module; this test fails when
//! - an import points up a floor,
//! - a front door (`bridge`, `ui`) imports another front door or `token`,
//! - `ui` imports `cli` (they imported each other once),
//! - a module (top-level, or sibling files inside one) is part of an import cycle.
//!
//! It reads text only, so it needs nothing but the source tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The floors, lowest first. A module may import modules on lower floors, and modules on
/// its own floor as long as no cycle forms (the ground floor's helpers use each other).
const FLOORS: &[&[&str]] = &[
    &["i18n", "error", "text", "config", "platform"],
    &["model"],
    &["token", "cert", "cms"],
    &["core"],
    &["bridge", "ui"],
    &["daemon", "doctor"],
    &["cli"],
];

/// Front doors: side by side, never importing each other, and never reaching the hardware.
/// (The bridge hosts every HTTP protocol: its own `/v1` and BJCA's XTX, behind one guard.)
const FRONT_DOORS: &[&str] = &["bridge", "ui"];

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and string literals (a doc comment may name
/// `crate::token` without importing it).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' must not open a string; lifetimes pass through.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The names that follow `prefix` in `code`: `crate::token::pkcs11` gives `token`, and a
/// `use crate::{a, b::c}` list gives `a` and `b`.
fn paths_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        // Not the tail of a longer path (`super::crate::` does not exist; `xcrate::` might).
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let r = rest.trim_start();
        if let Some(list) = r.strip_prefix('{') {
            // Top-level names of a brace list, nested braces skipped.
            let mut depth = 0;
            let mut item = String::new();
            for c in list.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(item.trim()));
                        item.clear();
                    }
                    c if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            found.insert(ident(item.trim()));
        } else {
            found.insert(ident(r));
        }
    }
    found.remove("");
    found
}

/// The top-level module a file belongs to (`src/bridge/guard.rs` → `bridge`).
fn top_module(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

struct Tree {
    /// module → modules it imports, with one file that does, for the message.
    imports: BTreeMap<String, BTreeMap<String, PathBuf>>,
    /// Sibling files inside a module directory: (dir, file stem) → sibling stems imported.
    siblings: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>>,
}

fn read_tree() -> Tree {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut tree = Tree {
        imports: BTreeMap::new(),
        siblings: BTreeMap::new(),
    };
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        // The crate's root and the executables' `main`s (src/main.rs, src/bin/) stand above
        // every floor.
        if name == "lib.rs" || name == "main.rs" || file.starts_with(src().join("bin")) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let module = top_module(&file);
        let entry = tree.imports.entry(module.clone()).or_default();
        for target in paths_after(&code, "crate::") {
            if target != module {
                entry.entry(target).or_insert_with(|| file.clone());
            }
        }
        // Sibling edges: `super::x` from dir/a.rs, where dir/x.rs exists.
        let dir = file.parent().unwrap().to_path_buf();
        if dir == src() {
            continue;
        }
        let stem = name.trim_end_matches(".rs").to_string();
        let edges: BTreeSet<String> = paths_after(&code, "super::")
            .into_iter()
            .filter(|s| *s != stem && dir.join(format!("{s}.rs")).exists())
            .collect();
        tree.siblings.entry(dir).or_default().insert(stem, edges);
    }
    tree
}

/// The cycles of a directed graph, each as its members (Tarjan's strongly connected
/// components of more than one node).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges {
                let w = w.as_str();
                if !s.graph.contains_key(w) {
                    continue;
                }
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn every_import_points_down_a_floor() {
    let tree = read_tree();
    let mut problems = Vec::new();
    for (module, targets) in &tree.imports {
        let Some(from) = floor_of(module) else {
            problems.push(format!(
                "src/{module}: not on any floor; add it to FLOORS (and ARCHITECTURE.md)"
            ));
            continue;
        };
        for (target, file) in targets {
            let Some(to) = floor_of(target) else {
                problems.push(format!(
                    "{}: imports crate::{target}, which is on no floor",
                    file.display()
                ));
                continue;
            };
            if to > from {
                problems.push(format!(
                    "{}: {module} (floor {from}) imports {target} (floor {to}), up a floor",
                    file.display()
                ));
            }
            if FRONT_DOORS.contains(&module.as_str())
                && (target == "token" || FRONT_DOORS.contains(&target.as_str()))
            {
                problems.push(format!(
                    "{}: front door {module} imports {target}; front doors reach the core only",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn ui_does_not_import_cli() {
    // The cycle the issue found (dialogs took their words from the CLI's renderer). cli may
    // reach ui (it runs the dialog process); ui never reaches cli: both take words from text.
    let tree = read_tree();
    if let Some(file) = tree.imports.get("ui").and_then(|t| t.get("cli")) {
        panic!("{}: ui imports cli", file.display());
    }
}

#[test]
fn no_module_is_part_of_an_import_cycle() {
    let tree = read_tree();
    let graph: BTreeMap<String, BTreeSet<String>> = tree
        .imports
        .iter()
        .map(|(m, t)| (m.clone(), t.keys().cloned().collect()))
        .collect();
    let mut problems: Vec<String> = cycles(&graph)
        .into_iter()
        .map(|c| format!("top-level modules import each other: {}", c.join(" ↔ ")))
        .collect();
    for (dir, files) in &tree.siblings {
        let graph: BTreeMap<String, BTreeSet<String>> = files.clone();
        for c in cycles(&graph) {
            problems.push(format!(
                "{}: files import each other: {}",
                dir.strip_prefix(src()).unwrap_or(dir).display(),
                c.join(" ↔ ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_what_it_must() {
    // The parser on the shapes the code uses, so a rule cannot pass by seeing nothing.
    let code = code_only(
        "use crate::{core::{self, Live}, model::Pin};\n\
         // use crate::token;\n\
         let s = \"crate::bridge\";\n\
         fn f() -> crate::error::Code { todo!() }\n\
         use super::{guard::Caller, state};\n\
         let c = '\"'; let l: &'static str = x;",
    );
    assert_eq!(
        paths_after(&code, "crate::"),
        BTreeSet::from(["core".into(), "model".into(), "error".into()])
    );
    assert_eq!(
        paths_after(&code, "super::"),
        BTreeSet::from(["guard".into(), "state".into()])
    );
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
        ("d".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    // And the real tree has every floor's modules in it.
    let tree = read_tree();
    for module in ["model", "core", "token", "bridge", "ui", "cli"] {
        assert!(tree.imports.contains_key(module), "{module} not read");
    }
}
