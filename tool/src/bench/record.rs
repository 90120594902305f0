//! Results as JSON Lines: one object per measurement, appended to a file as soon as it is
//! taken, so that a run cut short keeps everything measured until then, and several runs
//! (the two parts of the GPU run, the PyTorch script) add to the same file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

/// Where records go: a file (appended), and always one line on stdout.
pub(crate) struct Records {
    file: Option<PathBuf>,
    label: String,
}

impl Records {
    pub(crate) fn new(file: Option<PathBuf>, label: String) -> Records {
        Records { file, label }
    }

    /// Writes one record, tagged with the run's label.
    pub(crate) fn add(&self, mut record: Value) {
        if let Value::Object(map) = &mut record {
            map.insert("label".into(), Value::String(self.label.clone()));
        }
        let line = record.to_string();
        println!("{line}");
        if let Some(path) = &self.file {
            let written = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(err) = written {
                eprintln!(
                    "unimem-cuda-bench: cannot append to {}: {err}",
                    path.display()
                );
            }
        }
    }
}

/// Every record of the JSON Lines files `paths` (lines that are not JSON are skipped).
pub(crate) fn read_all(paths: &[PathBuf]) -> Vec<Value> {
    paths
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}
