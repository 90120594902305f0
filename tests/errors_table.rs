//! `specs/errors.md` and the tests agree: every row of its table of bad inputs and faults
//! names at least one test (`file::name`, in backticks, in the last column), and every test
//! it names exists: a `fn name` in that file. A renamed or deleted test, or a new row
//! without one, fails here.

use std::path::Path;

const SECTION: &str = "## Every bad input and fault";

/// The rows of the table: every line of the section that starts with `|`, less the header
/// and the separator.
fn rows(spec: &str) -> Vec<&str> {
    let section = spec
        .split_once(SECTION)
        .expect("specs/errors.md has the section")
        .1;
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .filter(|line| !line.starts_with("| input or fault") && !line.starts_with("|---"))
        .collect()
}

/// The `file::name` references of a row's last cell.
fn tests_named(row: &str) -> Vec<(&str, &str)> {
    let cell = row
        .trim_end()
        .trim_end_matches('|')
        .rsplit(" | ")
        .next()
        .unwrap_or("");
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| quoted.rsplit_once("::"))
        .filter(|(file, _)| file.ends_with(".rs"))
        .collect()
}

/// Whether `source` defines a function `name` (a test, or a `proptest!` case).
fn defines(source: &str, name: &str) -> bool {
    source
        .match_indices(&format!("fn {name}"))
        .any(|(at, found)| {
            let next = source[at + found.len()..].chars().next();
            matches!(next, Some('(' | '<'))
        })
}

#[test]
fn every_row_names_a_test_that_exists() {
    // Where the sources are: this checkout, or (for a binary carried to another machine,
    // as the GPU check does) the copy named by UNIMEM_SOURCE_DIR.
    let root = std::env::var_os("UNIMEM_SOURCE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
        Into::into,
    );
    let spec = std::fs::read_to_string(root.join("specs/errors.md")).unwrap();
    let rows = rows(&spec);
    assert!(rows.len() >= 95, "only {} rows found", rows.len());
    let mut problems = Vec::new();
    let mut named = 0;
    for row in &rows {
        let tests = tests_named(row);
        if tests.is_empty() {
            problems.push(format!("no test named: {row}"));
        }
        for (file, name) in tests {
            named += 1;
            match std::fs::read_to_string(root.join(file)) {
                Ok(source) if defines(&source, name) => {}
                Ok(_) => problems.push(format!("{file} has no fn {name}: {row}")),
                Err(err) => problems.push(format!("{file}: {err}: {row}")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "specs/errors.md and the tests disagree:\n{}",
        problems.join("\n")
    );
    eprintln!("specs/errors.md: {} rows, {named} tests named", rows.len());
}

#[test]
fn the_check_itself_catches_a_missing_or_renamed_test() {
    let spec = "# x\n\n## Every bad input and fault\n\n| input or fault | where | error | what | test |\n|---|---|---|---|---|\n| a | b | c | d |  |\n| a | b | c | d | `tests/errors_table.rs::no_such_test` |\n| a | b | c | d | GPU: `tests/errors_table.rs::defines`, `x` |\n\n## Next\n| not | a | row |\n";
    let rows = rows(spec);
    assert_eq!(rows.len(), 3);
    assert!(tests_named(rows[0]).is_empty());
    assert_eq!(
        tests_named(rows[1]),
        [("tests/errors_table.rs", "no_such_test")]
    );
    assert_eq!(tests_named(rows[2]), [("tests/errors_table.rs", "defines")]);
    let source = "fn defines(x) {}\nfn defines_more() {}\n";
    assert!(defines(source, "defines"));
    assert!(!defines(source, "define"));
    assert!(!defines(source, "no_such_test"));
}
