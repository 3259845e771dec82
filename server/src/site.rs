//! The site folder and `hash.txt` must come from the same build. A release
//! built with content hashes names its script and wasm files (and style) in
//! `hash.txt`, which Leptos reads from beside the binary. Served without
//! it, pages name unhashed files that are not there: the page never gets
//! its style or its script, and nothing says why. So the server checks the
//! pair before it listens and refuses to start with what to fix.

use std::path::{Path, PathBuf};

/// What the check found: whether pages should name hashed files.
#[derive(Debug, PartialEq, Eq)]
pub enum Site {
    /// `hash.txt` beside the binary, and the files it names are in the site.
    Hashed,
    /// No `hash.txt`: the site has unhashed files (debug builds, `cargo
    /// leptos watch`), or no site at all (the API alone is served).
    Plain,
}

/// Checks `site_root/pkg` against `exe_dir/hash.txt` for the files of
/// `output_name`. An error is a message for the operator.
pub fn check(exe_dir: &Path, site_root: &Path, output_name: &str) -> Result<Site, String> {
    let pkg = site_root.join("pkg");
    let hash_file = exe_dir.join("hash.txt");
    let named = |suffix: &str| pkg.join(format!("{output_name}{suffix}"));
    let Ok(text) = std::fs::read_to_string(&hash_file) else {
        if !named(".js").exists() && hashed_script(&pkg, output_name).is_some() {
            return Err(format!(
                "the site in {} was built with content hashes, but {} is missing: copy hash.txt from the same \
                 build (target/release/hash.txt) beside the binary. Without it pages name files that are not \
                 there and never get their style or script.",
                pkg.display(),
                hash_file.display()
            ));
        }
        return Ok(Site::Plain);
    };
    for line in text.lines() {
        let Some((kind, hash)) = line.split_once(':') else { continue };
        let file = match kind.trim() {
            "js" => named(&format!(".{}.js", hash.trim())),
            "wasm" => named(&format!(".{}.wasm", hash.trim())),
            _ => continue,
        };
        if !file.exists() {
            return Err(format!(
                "{} names {}, which is not there: the binary, its hash.txt and the site folder (LEPTOS_SITE_ROOT) \
                 must come from the same build.",
                hash_file.display(),
                file.display()
            ));
        }
    }
    Ok(Site::Hashed)
}

/// A script named `<output>.<hash>.js` in the package folder, if any.
fn hashed_script(pkg: &Path, output_name: &str) -> Option<PathBuf> {
    let prefix = format!("{output_name}.");
    std::fs::read_dir(pkg).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".js")).is_some_and(|h| !h.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        for f in files {
            std::fs::write(dir.path().join("pkg").join(f), "x").unwrap();
        }
        dir
    }

    #[test]
    fn a_plain_site_or_none_needs_no_hash_file() {
        let exe = tempfile::tempdir().unwrap();
        let plain = site(&["app.js", "app_bg.wasm", "app.css"]);
        assert_eq!(check(exe.path(), plain.path(), "app"), Ok(Site::Plain));
        assert_eq!(check(exe.path(), &exe.path().join("nowhere"), "app"), Ok(Site::Plain));
    }

    #[test]
    fn a_hashed_site_without_its_hash_file_is_refused_by_name() {
        let exe = tempfile::tempdir().unwrap();
        let hashed = site(&["app.Zq1.js", "app.Zq1.wasm", "app.Zq1.css"]);
        let e = check(exe.path(), hashed.path(), "app").unwrap_err();
        assert!(e.contains(&exe.path().join("hash.txt").display().to_string()), "{e}");
        assert!(e.contains("copy hash.txt"), "{e}");
    }

    #[test]
    fn a_hash_file_from_another_build_is_refused_and_the_right_one_passes() {
        let exe = tempfile::tempdir().unwrap();
        let hashed = site(&["app.Zq1.js", "app.Zq1.wasm", "app.Zq1.css"]);
        std::fs::write(exe.path().join("hash.txt"), "js: Old\nwasm: Old\ncss: Old\n").unwrap();
        let e = check(exe.path(), hashed.path(), "app").unwrap_err();
        assert!(e.contains("app.Old.js") && e.contains("same build"), "{e}");
        std::fs::write(exe.path().join("hash.txt"), "js: Zq1\nwasm: Zq1\ncss: Zq1\nsplit: S\n").unwrap();
        assert_eq!(check(exe.path(), hashed.path(), "app"), Ok(Site::Hashed));
    }
}
