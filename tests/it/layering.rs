//! The layers of docs/ARCHITECTURE.md, checked on the source: `api/` (JSON) and `web/` (pages)
//! never import each other, and nothing but `lib.rs` and `main.rs` reaches into `server.rs`.
//! A change that breaks a rule fails here, naming the file and the line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<room>` (or `tidings::<room>`) a file names, with its line number. A `use
/// super::…` cannot leave its room, so paths from the crate root are the ones that can.
fn rooms_used(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in ["crate::", "tidings::"] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let after = &rest[i + prefix.len()..];
                let room: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push((n + 1, room));
                rest = after;
            }
        }
    }
    out
}

fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel.split('/').next().unwrap_or_default().to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, room) in rooms_used(&text) {
            let wrong = match room.as_str() {
                "web" => top == "api",
                "api" => top == "web",
                "server" => !matches!(rel.as_str(), "lib.rs" | "main.rs" | "server.rs"),
                _ => false,
            };
            if wrong {
                found.push(format!("src/{rel}:{line} uses crate::{room}"));
            }
        }
    }
    found
}

#[test]
fn api_and_web_never_import_each_other_and_only_the_entry_points_reach_the_server() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "layering broken (see docs/ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_import() {
    let dir = crate::support::app::temp_dir("layering");
    for (path, text) in [
        ("api/rules.rs", "use crate::web::rules::form;\n"),
        ("web/pages.rs", "fn f() { crate::api::blocking(); }\n"),
        (
            "delivery/x.rs",
            "use crate::server::AppState; // and crate::web in a comment\n",
        ),
        ("app/ok.rs", "use crate::store::Store;\n"),
    ] {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let mut found = violations(&dir);
    found.sort();
    assert_eq!(
        found,
        [
            "src/api/rules.rs:1 uses crate::web",
            "src/delivery/x.rs:1 uses crate::server",
            "src/web/pages.rs:1 uses crate::api",
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}
