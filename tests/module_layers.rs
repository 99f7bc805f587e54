//! The crate's top-level modules form layers, and dependencies only point down:
//!
//! ```text
//! telemetry (a leaf any layer above protocol may use)
//! protocol ← client ← event · dlq ← dispatch ← bus ← testing
//! ```
//!
//! This test reads the source (every `crate::…` path outside comments and test modules) and fails on
//! an edge the table below does not allow, so a cycle or an upward import cannot creep back in.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Each top-level module and the modules it may use.
const LAYERS: &[(&str, &[&str])] = &[
    ("telemetry", &[]),
    ("protocol", &[]),
    ("client", &["protocol", "telemetry"]),
    ("event", &["protocol", "telemetry"]),
    ("dlq", &["protocol", "telemetry", "event", "client"]),
    ("dispatch", &["protocol", "telemetry", "event", "dlq", "client"]),
    (
        "bus",
        &["protocol", "telemetry", "event", "dlq", "client", "dispatch"],
    ),
    (
        "testing",
        &[
            "protocol",
            "telemetry",
            "event",
            "dlq",
            "client",
            "dispatch",
            "bus",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments and without its test module (tests may reach anywhere).
fn code_of(source: &str) -> String {
    let mut code = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            // A `mod tests;` declaration skips only itself; an inline test module ends the file's code.
            if lines.peek().is_some_and(|next| next.trim_end().ends_with(';')) {
                lines.next();
                continue;
            }
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The top-level modules a piece of code names through `crate::`: `crate::x::…` and `use crate::{x, …}`.
fn targets(code: &str, known: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the group's first-level names: `use crate::{a::b, c::{d, e}}` names a and c.
            let (mut depth, mut expecting, mut name) = (0usize, true, String::new());
            for c in group.chars() {
                if depth == 0 && expecting {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                        continue;
                    }
                    if name.is_empty() && c.is_whitespace() {
                        continue;
                    }
                    if known.contains(name.as_str()) {
                        found.insert(name.clone());
                    }
                    name.clear();
                    expecting = false;
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expecting = true,
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if known.contains(name.as_str()) {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn top_level_modules_only_depend_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(module, uses)| (*module, uses.iter().copied().collect()))
        .collect();
    let known: BTreeSet<&str> = allowed.keys().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        let Some(may_use) = allowed.get(module.as_str()) else {
            assert!(
                module == "lib" || relative.components().count() == 1,
                "{}: top-level module `{module}` is not in LAYERS",
                relative.display()
            );
            continue;
        };
        seen_modules.insert(module.clone());
        let path = relative.to_string_lossy();
        if path.contains("/tests/") || path.ends_with("/tests.rs") || path.ends_with("_tests.rs") {
            continue;
        }
        let code = code_of(&fs::read_to_string(file).unwrap());
        for target in targets(&code, &known) {
            if target != module && !may_use.contains(target.as_str()) {
                violations.push(format!("{path}: `{module}` uses `{target}`"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
    // The table names every top-level directory module, so a new one must be placed in it.
    for (module, _) in LAYERS {
        let dir = src.join(module);
        let file = src.join(format!("{module}.rs"));
        assert!(
            dir.is_dir() || file.is_file(),
            "LAYERS names `{module}`, which is gone"
        );
    }
}

#[test]
fn the_import_scanner_sees_paths_and_groups() {
    let known: BTreeSet<&str> = ["bus", "client", "dlq", "event"].into_iter().collect();
    let code = "use crate::{\n    client::{a, b},\n    dlq::X,\n};\nfn f() { crate::bus::g(); }\n";
    let found = targets(code, &known);
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["bus", "client", "dlq"]);
    let stripped = code_of("use a;\n// crate::bus\n#[cfg(test)]\nmod tests {\n use crate::event;\n}\n");
    assert!(targets(&stripped, &known).is_empty(), "{stripped}");
}
