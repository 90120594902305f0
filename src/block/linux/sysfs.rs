//! Reading the small files of `/sys` and `/proc` that describe memory: a number, the word
//! in brackets of a setting (`always [madvise] never`), a CPU or node list (`0-3,8,10-11`).
//! A file that is missing or malformed reads as `None`: callers treat "unknown" as "not
//! offered".

use std::path::Path;

/// The file's first line, trimmed.
pub(crate) fn read(path: impl AsRef<Path>) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}

/// A file holding one unsigned number.
pub(crate) fn number(path: impl AsRef<Path>) -> Option<u64> {
    read(path)?.parse().ok()
}

/// The selected word of a setting file: the one in brackets.
pub(crate) fn selected(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(&text[start..end])
}

/// A list like `0-3,8,10-11` (cpulist and node list format, see cpuset(7)), in order.
/// `None` if any part is malformed or a range is absurdly large.
pub(crate) fn list(text: &str) -> Option<Vec<usize>> {
    let mut items = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let n = part.trim().parse().ok()?;
                (n, n)
            }
        };
        if first > last || last - first > 1 << 16 {
            return None;
        }
        items.extend(first..=last);
    }
    Some(items)
}

/// The value of `key` (e.g. `"Hugepagesize:"`) in a `/proc/meminfo`-style text, in bytes
/// (the file gives kB).
pub(crate) fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?
        .checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings_and_lists() {
        assert_eq!(
            selected("always within_size advise [never] deny force"),
            Some("never")
        );
        assert_eq!(selected("[always] madvise never"), Some("always"));
        assert_eq!(selected("never"), None);
        assert_eq!(list("0-3,8,10-11"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(list("0\n"), Some(vec![0]));
        assert_eq!(list(""), Some(vec![]));
        assert_eq!(list("3-1"), None);
        assert_eq!(list("x"), None);
        let meminfo = "MemTotal: 100 kB\nHugepagesize:    2048 kB\n";
        assert_eq!(kib_field(meminfo, "Hugepagesize:"), Some(2 << 20));
        assert_eq!(kib_field(meminfo, "Nope:"), None);
    }
}
