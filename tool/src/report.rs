//! The report: sections of measured facts, then one verdict per capability, printed as text
//! or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// Everything the tool found, in the order it found it.
#[derive(Debug, Default)]
pub(crate) struct Report {
    sections: Vec<Section>,
    verdicts: Vec<Verdict>,
}

/// One capability's or one subject's facts.
#[derive(Debug)]
pub(crate) struct Section {
    title: &'static str,
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    key: String,
    text: String,
    json: Value,
}

/// Whether a capability works on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// It ran and its results were verified.
    Works,
    /// The machine refused it (a limit, a missing device): not a defect of unimem.
    Refused,
    /// It ran and produced wrong results: a defect.
    Failed,
}

#[derive(Debug)]
struct Verdict {
    capability: &'static str,
    status: Status,
    detail: String,
}

impl Section {
    pub(crate) fn new(title: &'static str) -> Section {
        Section {
            title,
            rows: Vec::new(),
        }
    }

    /// A row with its own text and JSON value.
    pub(crate) fn row(&mut self, key: impl Into<String>, text: impl Into<String>, json: Value) {
        self.rows.push(Row {
            key: key.into(),
            text: text.into(),
            json,
        });
    }

    /// A row of plain text.
    pub(crate) fn text(&mut self, key: impl Into<String>, text: impl Into<String>) {
        let text = text.into();
        let json = Value::String(text.clone());
        self.row(key, text, json);
    }

    /// A byte count, printed in binary units, given in JSON as a number of bytes.
    pub(crate) fn bytes(&mut self, key: impl Into<String>, bytes: Option<u64>) {
        match bytes {
            Some(b) => self.row(key, fmt_bytes(b), json!(b)),
            None => self.row(key, "unknown", Value::Null),
        }
    }

    /// A duration, printed in a fitting unit, given in JSON in seconds.
    pub(crate) fn time(&mut self, key: impl Into<String>, time: Duration) {
        self.row(key, fmt_time(time), json!(time.as_secs_f64()));
    }

    /// A rate: `bytes` moved in `time`, in GB/s (10^9 bytes per second).
    pub(crate) fn rate(&mut self, key: impl Into<String>, bytes: u64, time: Duration) {
        let rate = bytes as f64 / time.as_secs_f64().max(1e-12) / 1e9;
        self.row(
            key,
            format!("{rate:.2} GB/s ({})", fmt_time(time)),
            json!(rate),
        );
    }
}

impl Report {
    pub(crate) fn add(&mut self, section: Section) {
        self.sections.push(section);
    }

    pub(crate) fn verdict(
        &mut self,
        capability: &'static str,
        status: Status,
        detail: impl Into<String>,
    ) {
        self.verdicts.push(Verdict {
            capability,
            status,
            detail: detail.into(),
        });
    }

    /// Whether any capability produced wrong results.
    pub(crate) fn failed(&self) -> bool {
        self.verdicts.iter().any(|v| v.status == Status::Failed)
    }

    pub(crate) fn to_text(&self) -> String {
        let width = self
            .sections
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.key.len()))
            .chain(self.verdicts.iter().map(|v| v.capability.len()))
            .max()
            .unwrap_or(0);
        let mut out = format!("unimem {} report\n", env!("CARGO_PKG_VERSION"));
        for section in &self.sections {
            let _ = writeln!(out, "\n{}", section.title);
            for row in &section.rows {
                let _ = writeln!(out, "  {:width$}  {}", row.key, row.text);
            }
        }
        out.push_str("\nVerdict\n");
        for v in &self.verdicts {
            let word = match v.status {
                Status::Works => "works",
                Status::Refused => "refused",
                Status::Failed => "FAILED",
            };
            let _ = writeln!(out, "  {:width$}  {word}: {}", v.capability, v.detail);
        }
        out
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut sections = Map::new();
        for section in &self.sections {
            let rows: Map<String, Value> = section
                .rows
                .iter()
                .map(|r| (r.key.clone(), r.json.clone()))
                .collect();
            sections.insert(section.title.to_lowercase(), Value::Object(rows));
        }
        let verdicts: Vec<Value> = self
            .verdicts
            .iter()
            .map(|v| {
                let status = match v.status {
                    Status::Works => "works",
                    Status::Refused => "refused",
                    Status::Failed => "failed",
                };
                json!({"capability": v.capability, "status": status, "detail": v.detail})
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "sections": sections,
            "verdicts": verdicts,
        })
    }
}

/// `64.0 MiB`.
pub(crate) fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1.23 ms`.
pub(crate) fn fmt_time(time: Duration) -> String {
    let ns = time.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}
