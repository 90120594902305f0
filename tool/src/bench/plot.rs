//! Plots and tables from the records of a scale run (`record.rs`): SVG line charts written
//! by hand (no plotting library: the GPU host has none, and a chart of a few lines needs
//! none), and Markdown tables for BENCHMARKS.md, with the per-GiB costs carried to
//! 512 GiB and 1 TiB on paper.
//!
//! Charts: `scale-create.svg` (GB/s of creating GPU-usable pinned memory against size, per
//! page kind, beside `cuMemAllocHost` and PyTorch), `scale-release.svg` (seconds to release
//! against size), `scale-threads.svg` (population GB/s against threads, per page kind),
//! `scale-probe.svg` (the probe's methods against threads).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

const GIB: f64 = (1u64 << 30) as f64;
/// The probe's methods, in the order `probe.rs` runs them.
const PROBE_METHODS: [&str; 6] = [
    "madvise",
    "files",
    "touch",
    "fallocate",
    "falloc+populate",
    "anon",
];

/// Writes the charts into `dir` and returns the Markdown tables.
pub(crate) fn write(records: &[Value], dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let kinds = ["4k", "thp", "hugetlb"];
    let machine = records
        .iter()
        .find(|r| r["kind"] == "machine")
        .map_or(String::new(), |m| {
            format!(
                "{}, {} CPUs, kernel {}, THP for shmem as set per run",
                m["device"].as_str().unwrap_or("no GPU"),
                m["cpus"],
                m["kernel"].as_str().unwrap_or("?")
            )
        });
    let of = |kind: &'static str| select(records, kind);
    let mut md = String::new();

    // Creation and release against size.
    // Sizes are keyed in MiB (the asked size, before rounding to pages).
    let mib_of = |r: &Value| r["asked"].as_u64().or(r["size"].as_u64()).unwrap_or(0) >> 20;
    let mut sizes: Vec<u64> = of("create")
        .chain(of("anchor"))
        .chain(of("torch"))
        .map(mib_of)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let median = |mut v: Vec<f64>| -> Option<f64> {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let per_size = |kind: &'static str,
                    pages: Option<&str>,
                    f: &dyn Fn(&Value) -> Option<f64>|
     -> Vec<Option<f64>> {
        sizes
            .iter()
            .map(|&gib| {
                median(
                    of(kind)
                        .filter(|r| pages.is_none_or(|p| r["pages"] == p) && mib_of(r) == gib)
                        .filter_map(f)
                        .collect(),
                )
            })
            .collect()
    };
    let create_s =
        |r: &Value| Some(r["open_s"].as_f64()? + r["register_s"].as_f64().unwrap_or(0.0));
    let release_s =
        |r: &Value| Some(r["unregister_s"].as_f64().unwrap_or(0.0) + r["drop_s"].as_f64()?);
    let freed_s =
        |r: &Value| Some(r["unregister_s"].as_f64().unwrap_or(0.0) + r["freed_s"].as_f64()?);
    let registered = of("create").any(|r| r.get("register_s").is_some());
    let mut create = Vec::new();
    let mut release = Vec::new();
    let colors = ["#1f77b4", "#2ca02c", "#9467bd"];
    for (kind, color) in kinds.iter().zip(colors) {
        let secs = per_size("create", Some(kind), &create_s);
        if secs.iter().any(Option::is_some) {
            let gbps = rate(&sizes, &secs);
            let label = if registered {
                "open + register"
            } else {
                "open"
            };
            create.push(Series::new(
                format!("unimem {kind}: {label}"),
                color,
                false,
                gbps,
            ));
            release.push(Series::new(
                format!("unimem {kind}: drop returns"),
                color,
                false,
                per_size("create", Some(kind), &release_s),
            ));
            release.push(Series::new(
                format!("unimem {kind}: memory back"),
                color,
                true,
                per_size("create", Some(kind), &freed_s),
            ));
        }
    }
    let alloc = per_size("anchor", None, &|r: &Value| r["alloc_s"].as_f64());
    let free = per_size("anchor", None, &|r: &Value| r["free_s"].as_f64());
    let torch_alloc = per_size("torch", None, &|r: &Value| r["alloc_s"].as_f64());
    let torch_free = per_size("torch", None, &|r: &Value| r["free_s"].as_f64());
    if alloc.iter().any(Option::is_some) {
        create.push(Series::new(
            "cuMemAllocHost".into(),
            "#d62728",
            false,
            rate(&sizes, &alloc),
        ));
        release.push(Series::new(
            "cuMemFreeHost".into(),
            "#d62728",
            false,
            free.clone(),
        ));
    }
    if torch_alloc.iter().any(Option::is_some) {
        create.push(Series::new(
            "torch pin_memory".into(),
            "#ff7f0e",
            false,
            rate(&sizes, &torch_alloc),
        ));
        release.push(Series::new(
            "torch free".into(),
            "#ff7f0e",
            false,
            torch_free.clone(),
        ));
    }
    let ticks: Vec<String> = sizes.iter().map(|&m| size_label(m)).collect();
    if !create.is_empty() {
        std::fs::write(
            dir.join("scale-create.svg"),
            chart(
                "Creating GPU-usable pinned memory",
                &machine,
                "size",
                "GB/s (higher is better)",
                &ticks,
                &create,
            ),
        )?;
        std::fs::write(
            dir.join("scale-release.svg"),
            chart(
                "Releasing it",
                &machine,
                "size",
                "seconds (lower is better)",
                &ticks,
                &release,
            ),
        )?;
    }

    // Tables: creation and release per size.
    let _ = writeln!(
        md,
        "| size | pages | open s | register s | open + register s | vs `cuMemAllocHost` | drop returns s | memory back s | vs `cuMemFreeHost` (drop) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for (i, &mib) in sizes.iter().enumerate() {
        let gib = size_label(mib);
        for kind in kinds {
            let open = per_size("create", Some(kind), &|r: &Value| r["open_s"].as_f64())[i];
            let Some(open) = open else { continue };
            let register = per_size("create", Some(kind), &|r: &Value| r["register_s"].as_f64())[i];
            let total = per_size("create", Some(kind), &create_s)[i].unwrap_or(open);
            let rel = per_size("create", Some(kind), &release_s)[i];
            let back = per_size("create", Some(kind), &freed_s)[i];
            let _ = writeln!(
                md,
                "| {gib} | {kind} | {open:.3} | {} | {total:.3} | {} | {} | {} | {} |",
                opt(register, 3),
                alloc[i].map_or("-".into(), |a| format!("{:.2}x faster", a / total)),
                opt(rel, 3),
                opt(back, 3),
                match (free[i], rel) {
                    (Some(f), Some(r)) => format!("{:.2}x", r / f),
                    _ => "-".into(),
                },
            );
        }
        if let Some(a) = alloc[i] {
            let _ = writeln!(
                md,
                "| {gib} | `cuMemAllocHost` / `cuMemFreeHost` | | | {a:.3} | 1.00x | {} | | |",
                opt(free[i], 3)
            );
        }
        if let Some(t) = torch_alloc[i] {
            let _ = writeln!(
                md,
                "| {gib} | torch `pin_memory` / free | | | {t:.3} | {} | {} | | |",
                alloc[i].map_or("-".into(), |a| format!("{:.2}x", a / t)),
                opt(torch_free[i], 3)
            );
        }
    }
    let mut said = Vec::new();
    for r in records.iter().filter(|r| r.get("refused").is_some()) {
        let why = r["refused"].as_str().unwrap_or("");
        let short = why.split(". Measured").next().unwrap_or(why);
        let pages = r["pages"].as_str().unwrap_or("?").to_owned();
        if !said.contains(&pages) {
            let _ = writeln!(md, "\n- {pages} pages refused (first time): {short}");
            said.push(pages);
        }
    }
    for r in records
        .iter()
        .filter(|r| r["kind"] == "torch" && r.get("skipped").is_some())
    {
        let _ = writeln!(
            md,
            "\n- torch {:.0} GiB skipped: {}",
            r["size"].as_f64().unwrap_or(0.0) / GIB,
            r["skipped"].as_str().unwrap_or("")
        );
    }

    // On paper: per-GiB costs of the largest size measured, carried to 512 GiB and 1 TiB.
    let _ = writeln!(
        md,
        "\n| on paper (per-GiB cost of the largest size measured) | 512 GiB | 1 TiB |\n|---|---|---|"
    );
    if let Some(last) = sizes.len().checked_sub(1) {
        let gib = sizes[last] as f64 / 1024.0;
        let mut line = |what: String, secs: Option<f64>| {
            if let Some(s) = secs {
                let _ = writeln!(
                    md,
                    "| {what} ({:.3} s/GiB at {}) | {:.1} s | {:.1} s |",
                    s / gib,
                    size_label(sizes[last]),
                    s / gib * 512.0,
                    s / gib * 1024.0
                );
            }
        };
        for kind in kinds {
            line(
                format!("unimem {kind} open + register"),
                per_size("create", Some(kind), &create_s)[last],
            );
            line(
                format!("unimem {kind} release (memory back)"),
                per_size("create", Some(kind), &freed_s)[last],
            );
        }
        line("`cuMemAllocHost`".into(), alloc[last]);
        line("`cuMemFreeHost`".into(), free[last]);
        line("torch `pin_memory`".into(), torch_alloc[last]);
    }

    // Threads.
    let mut threads: Vec<u64> = of("sweep")
        .chain(of("probe"))
        .filter_map(|r| r["threads"].as_u64())
        .collect();
    threads.sort_unstable();
    threads.dedup();
    let tticks: Vec<String> = threads.iter().map(u64::to_string).collect();
    let per_threads = |kind: &'static str, pred: &dyn Fn(&Value) -> bool| -> Vec<Option<f64>> {
        threads
            .iter()
            .map(|&t| {
                median(
                    of(kind)
                        .filter(|r| r["threads"].as_u64() == Some(t) && pred(r))
                        .filter_map(|r| r["gbps"].as_f64())
                        .collect(),
                )
            })
            .collect()
    };
    let mut sweep = Vec::new();
    for (kind, color) in kinds.iter().zip(colors) {
        let line = per_threads("sweep", &|r: &Value| r["pages"] == *kind);
        if line.iter().any(Option::is_some) {
            sweep.push(Series::new(
                format!("Block::open, {kind}"),
                color,
                false,
                line,
            ));
        }
    }
    if !sweep.is_empty() {
        std::fs::write(
            dir.join("scale-threads.svg"),
            chart(
                "Population against threads",
                &machine,
                "threads",
                "GB/s",
                &tticks,
                &sweep,
            ),
        )?;
        let _ = writeln!(
            md,
            "\n| population GB/s | {} |\n|---|{}",
            tticks.join(" | "),
            "---|".repeat(tticks.len())
        );
        for s in &sweep {
            let _ = writeln!(
                md,
                "| {} | {} |",
                s.name,
                s.values
                    .iter()
                    .map(|v| opt(*v, 2))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    let mut probe = Vec::new();
    let method_colors = [
        "#1f77b4", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#e377c2",
    ];
    for kind in ["4k", "thp"] {
        for (method, color) in PROBE_METHODS.iter().zip(method_colors) {
            let line = per_threads("probe", &|r: &Value| {
                r["pages"] == kind && r["method"] == *method
            });
            if line.iter().any(Option::is_some) {
                probe.push(Series::new(
                    format!("{method}, {kind}"),
                    color,
                    kind == "thp",
                    line,
                ));
            }
        }
    }
    if !probe.is_empty() {
        std::fs::write(
            dir.join("scale-probe.svg"),
            chart(
                "Where population stalls (probe)",
                &machine,
                "threads",
                "GB/s",
                &tticks,
                &probe,
            ),
        )?;
        let _ = writeln!(
            md,
            "\n| probe GB/s | {} |\n|---|{}",
            tticks.join(" | "),
            "---|".repeat(tticks.len())
        );
        for s in &probe {
            let _ = writeln!(
                md,
                "| {} | {} |",
                s.name,
                s.values
                    .iter()
                    .map(|v| opt(*v, 2))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }

    // Copies.
    let copies: Vec<&Value> = of("copy").collect();
    if !copies.is_empty() {
        let _ = writeln!(
            md,
            "\n| copies, 1 GiB, best GB/s | HtoD Block | HtoD `cuMemAllocHost` | ratio | DtoH Block | DtoH `cuMemAllocHost` | ratio |\n|---|---|---|---|---|---|---|"
        );
        for r in copies {
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.3} | {:.1} | {:.1} | {:.3} |",
                r["pages"].as_str().unwrap_or("?"),
                f("block_htod"),
                f("host_htod"),
                f("block_htod") / f("host_htod"),
                f("block_dtoh"),
                f("host_dtoh"),
                f("block_dtoh") / f("host_dtoh"),
            );
        }
    }
    std::fs::write(dir.join("summary.md"), &md)?;
    Ok(md)
}

/// The records of `kind` that measured something (not refused).
fn select<'a>(records: &'a [Value], kind: &'static str) -> impl Iterator<Item = &'a Value> + 'a {
    records
        .iter()
        .filter(move |r| r["kind"] == kind && r.get("refused").is_none())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// GB/s of `sizes[i]` MiB done in `secs[i]` seconds.
fn rate(sizes: &[u64], secs: &[Option<f64>]) -> Vec<Option<f64>> {
    sizes
        .iter()
        .zip(secs)
        .map(|(&mib, s)| s.map(|s| (mib << 20) as f64 / s.max(1e-9) / 1e9))
        .collect()
}

/// `1 GiB`, `512 MiB`, `1.5 GiB`.
fn size_label(mib: u64) -> String {
    match mib {
        m if m % 1024 == 0 => format!("{} GiB", m / 1024),
        m if m >= 1024 => format!("{:.1} GiB", m as f64 / 1024.0),
        m => format!("{m} MiB"),
    }
}

/// One line of a chart.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    values: Vec<Option<f64>>,
}

impl Series {
    fn new(name: String, color: &'static str, dashed: bool, values: Vec<Option<f64>>) -> Series {
        Series {
            name,
            color,
            dashed,
            values,
        }
    }
}

/// A line chart: evenly spaced categories on x, a linear y axis from 0, a legend.
fn chart(
    title: &str,
    subtitle: &str,
    x_label: &str,
    y_label: &str,
    ticks: &[String],
    series: &[Series],
) -> String {
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (70.0, 250.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, &v| m.max(v));
    let step = nice_step(max / 5.0);
    let top_value = (max / step).ceil().max(1.0) * step;
    let n = ticks.len().max(1);
    let x = |i: usize| {
        left + if n == 1 {
            pw / 2.0
        } else {
            pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| top + ph * (1.0 - v / top_value);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" font-size="15" font-weight="bold">{}</text>"#,
        left,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="34" font-size="11" fill="#555">{}</text>"##,
        left,
        escape(subtitle)
    );
    let mut v = 0.0;
    while v <= top_value + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/>"##,
            left + pw
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            yy + 4.0,
            fmt_tick(v, step)
        );
        v += step;
    }
    for (i, t) in ticks.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(i),
            top + ph + 18.0,
            escape(t)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        top + ph,
        left + pw,
        top + ph
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/>"##,
        top + ph
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 18.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(y_label)
    );
    for (k, s) in series.iter().enumerate() {
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            s.color,
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                r#"<circle cx="{px}" cy="{py}" r="3" fill="{}"/>"#,
                s.color
            );
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let lx = left + pw + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/>"#,
            lx + 24.0,
            s.color
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * power)
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else if step >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
