//! The tracing chapter of the guide (`guide::observers_and_tracing`, "What the engine
//! emits") names exactly the spans and events the engine's code emits, at their levels.
//!
//! The code is read as text: every `tracing::<level>!(…)` and `tracing::<level>_span!(…)`
//! call in `src/` (outside the guide and `TracingObserver`, whose events the chapter lists
//! separately) is reduced to its level and its last string literal (the message or span
//! name), and the set must equal the rows of the chapter's table.

use std::collections::BTreeSet;
use std::path::Path;

const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "guide") {
                continue;
            }
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((path.display().to_string(), text));
        }
    }
}

/// The last string literal in `call` (the text of one macro call).
fn last_literal(call: &str) -> Option<String> {
    let end = call.rfind('"')?;
    let start = call[..end].rfind('"')?;
    Some(call[start + 1..end].to_string())
}

/// The index of the `)` that closes a call whose arguments start `call` (string literals
/// skipped).
fn closing_paren(call: &str) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in call.char_indices() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '(') => depth += 1,
            (false, ')') if depth == 0 => return i,
            (false, ')') => depth -= 1,
            _ => {}
        }
    }
    call.len()
}

/// `(kind, LEVEL, message)` for every tracing call in `text`.
fn emitted(file: &str, text: &str, found: &mut BTreeSet<(String, String, String)>) {
    // `TracingObserver`'s events are listed in their own paragraph of the chapter.
    let text = match text.find("impl WorkflowObserver for TracingObserver") {
        Some(at) if file.ends_with("observer.rs") => &text[..at],
        _ => text,
    };
    for level in LEVELS {
        for (kind, needle) in [
            ("event", format!("tracing::{level}!(")),
            ("span", format!("tracing::{level}_span!(")),
        ] {
            let mut rest = text;
            while let Some(at) = rest.find(&needle) {
                let call = &rest[at + needle.len()..];
                let end = closing_paren(call);
                let message = last_literal(&call[..end])
                    .unwrap_or_else(|| panic!("{file}: a {kind} without a literal message"));
                found.insert((kind.to_string(), level.to_uppercase(), message));
                rest = &call[end..];
            }
        }
    }
}

/// The rows of the chapter's table: `| kind | LEVEL | `message` | fields |`.
fn documented(chapter: &str) -> BTreeSet<(String, String, String)> {
    let section = chapter
        .split("## What the engine emits")
        .nth(1)
        .expect("the chapter has a \"What the engine emits\" section");
    section
        .lines()
        .map(|l| l.trim_start_matches("//!").trim())
        .filter(|l| l.starts_with("| span |") || l.starts_with("| event |"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].to_string(),
                cells[2].to_string(),
                cells[3].trim_matches('`').to_string(),
            )
        })
        .collect()
}

#[test]
fn the_tracing_chapter_names_every_span_and_event_the_code_emits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut found = BTreeSet::new();
    for (file, text) in &files {
        emitted(file, text, &mut found);
    }
    let chapter = std::fs::read_to_string(root.join("src/guide/observers_and_tracing.rs"))
        .expect("read the chapter");
    let documented = documented(&chapter);
    assert!(found.len() >= 15, "the scan found too little: {found:?}");
    let undocumented: Vec<_> = found.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&found).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "emitted but not in the chapter: {undocumented:?}\nin the chapter but not emitted: {stale:?}"
    );
}
