//! The `unimem --json` report has the schema `specs/tool.md` gives: this runs the tool
//! binary with small sizes and checks every field's presence and type, the verdicts, and
//! that no capability this machine has reports `failed` (as root, every Linux capability
//! must work; with `UNIMEM_REQUIRE_CUDA=1`, CUDA too).

use serde_json::Value;

/// Runs the tool with `--json` and small sizes; its exit status and the parsed report.
fn report() -> (std::process::ExitStatus, Value) {
    // The binary cargo built beside this test, or (where the test binary was carried to
    // another machine, as by the GPU check) the one UNIMEM_TOOL names.
    let tool =
        std::env::var_os("UNIMEM_TOOL").unwrap_or_else(|| env!("CARGO_BIN_EXE_unimem").into());
    let out = std::process::Command::new(tool)
        .args(["--json", "--block-mib", "8", "--share-mib", "4"])
        .output()
        .expect("run the unimem tool");
    let text = String::from_utf8(out.stdout).expect("UTF-8 report");
    let json = serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}):\n{text}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status, json)
}

/// A report row's value: a string, a number, a boolean, null, or an object of those (the
/// breakdowns: cell offsets, Stat rows).
fn is_row_value(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
        Value::Object(rows) => rows.values().all(is_row_value),
        Value::Array(_) => false,
    }
}

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

#[test]
fn json_report_follows_the_schema() {
    let (status, report) = report();
    let top = report.as_object().expect("an object");
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["sections", "verdicts", "version"]);
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));

    let mut expected = vec![
        "block", "grid", "layout", "machine", "pages", "share", "tape",
    ];
    if cfg!(feature = "cuda") {
        expected.push("cuda");
    }
    if cfg!(target_os = "macos") {
        expected.push("iosurface");
    }
    expected.sort_unstable();
    let sections = report["sections"].as_object().expect("sections object");
    let mut names: Vec<&str> = sections.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, expected);
    for (name, rows) in sections {
        let rows = rows
            .as_object()
            .unwrap_or_else(|| panic!("{name}: not an object"));
        assert!(!rows.is_empty(), "{name}: no rows");
        for (key, value) in rows {
            assert!(is_row_value(value), "{name}.{key}: {value}");
        }
    }
    // The machine section: the numbers Block::open checks, as numbers.
    let machine = &sections["machine"];
    for key in ["page size", "cpus", "MemAvailable"] {
        assert!(machine[key].is_u64(), "machine.{key}: {}", machine[key]);
    }
    assert!(machine["platform"].is_string());

    let verdicts = report["verdicts"].as_array().expect("verdicts array");
    let capabilities: Vec<&str> = verdicts
        .iter()
        .map(|v| v["capability"].as_str().expect("capability string"))
        .collect();
    let mut sorted = capabilities.clone();
    sorted.sort_unstable();
    let expected_verdicts: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|&s| s != "machine")
        .collect();
    assert_eq!(sorted, expected_verdicts);
    let require =
        |what: &str| std::env::var(format!("UNIMEM_REQUIRE_{what}")).is_ok_and(|v| v == "1");
    let require_cuda = require("CUDA");
    for verdict in verdicts {
        let object = verdict.as_object().unwrap();
        assert_eq!(object.len(), 3, "{verdict}");
        let capability = verdict["capability"].as_str().unwrap();
        let status = verdict["status"].as_str().expect("status string");
        let detail = verdict["detail"].as_str().expect("detail string");
        assert!(!detail.is_empty(), "{capability}: no detail");
        assert!(
            ["works", "refused", "failed"].contains(&status),
            "{capability}: status {status}"
        );
        assert_ne!(status, "failed", "{capability} FAILED: {detail}");
        let must_work = match capability {
            "cuda" => require_cuda,
            // Huge pages are the machine's to grant (`refused` where none are, specs/tool.md):
            // they must work where the run requires hugetlb pages (`.ci/run` reserves them).
            "pages" => cfg!(target_os = "linux") && root() && require("HUGETLB"),
            // Root may pin and share whatever it asks for here.
            _ => cfg!(target_os = "linux") && root(),
        };
        if must_work {
            assert_eq!(status, "works", "{capability}: {detail}");
        }
    }
    assert!(
        status.success(),
        "exit status {status} with no failed verdict"
    );
}
