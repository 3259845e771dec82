//! Scenario g: the size of what the site's pages load, raw and compressed.

use std::path::Path;
use std::process::Command;

use crate::report::Row;

/// Scenario g: what every page loads (file names carry content hashes),
/// then the security page's lazily loaded chunk.
pub fn site_sizes(site: &Path) -> Row {
    let pkg = site.join("pkg");
    let names: Vec<String> = std::fs::read_dir(&pkg)
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let find = |prefix: &str, ext: &str| {
        names.iter().find(|n| n.starts_with(prefix) && n.ends_with(ext) && !n.contains(".d.")).cloned()
    };
    let sizes = |name: &str| {
        let path = pkg.join(name);
        let raw = std::fs::metadata(&path).map(|m| m.len() as usize).unwrap_or(0);
        (raw, compressed(&path, "gzip", &["-9", "-c"]), compressed(&path, "brotli", &["-q", "11", "-c"]))
    };
    let kb = |(raw, gz, br): (usize, usize, usize)| {
        format!("{:.0}/{:.0}/{:.0}", raw as f64 / 1000.0, gz as f64 / 1000.0, br as f64 / 1000.0)
    };
    let mut total = (0, 0, 0);
    let mut parts = Vec::new();
    for (label, prefix, ext) in [
        ("wasm", "twofactor.", ".wasm"),
        ("js", "twofactor.", ".js"),
        ("css", "twofactor.", ".css"),
        ("split js", "__wasm_split.", ".js"),
    ] {
        let Some(name) = find(prefix, ext) else { continue };
        let s = sizes(&name);
        total = (total.0 + s.0, total.1 + s.1, total.2 + s.2);
        parts.push(format!("{label} {}", kb(s)));
    }
    let lazy = find("split_", ".wasm").map(|n| format!("; lazy security chunk {}", kb(sizes(&n)))).unwrap_or_default();
    Row {
        scenario: "g. site, KB raw/gzip/brotli".into(),
        figure: format!("{}; every page {}{lazy}", parts.join(", "), kb(total)),
        budget: "brotli total ≤ 250 KB",
    }
}

/// The size of `cmd`'s output for `path` (gzip or brotli to stdout), 0 if
/// it cannot run.
fn compressed(path: &Path, cmd: &str, args: &[&str]) -> usize {
    Command::new(cmd).args(args).arg(path).output().map(|o| o.stdout.len()).unwrap_or(0)
}
