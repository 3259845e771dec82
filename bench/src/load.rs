//! Load from wrk: running it and reading its report (`Wrk`).

use std::path::Path;
use std::process::Command;

/// What one wrk run measured.
pub struct Wrk {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests completed in the run.
    pub requests: u64,
    /// Answers other than 2xx or 3xx (wrk's "Non-2xx or 3xx responses").
    pub non2xx: u64,
    /// wrk's socket errors (connect, read, write, timeout), summed.
    pub errors: u64,
}

impl Wrk {
    /// What went wrong, for a run whose every answer should be a success:
    /// "0 non-2xx" or the counts.
    pub fn failures(&self) -> String {
        let mut s = format!("{} non-2xx of {}", self.non2xx, self.requests);
        if self.errors > 0 {
            s.push_str(&format!(", {} socket errors", self.errors));
        }
        s
    }
}

/// Runs wrk against `url` (2 threads, with `cookie` and a Lua `script` if
/// given) and reads its report.
pub fn wrk(url: &str, seconds: u64, connections: u32, cookie: Option<&str>, script: Option<&Path>) -> Wrk {
    let mut cmd = Command::new("wrk");
    // wrk gives up on a request after 2 s by default and counts it as a
    // socket error, not a latency: the original's log-ins under load take
    // longer than that, so its rate and p99 would be cut off.
    cmd.args([
        "-t",
        "2",
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--timeout",
        "30s",
        "--latency",
    ]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    if let Some(s) = script {
        cmd.args(["-s", &s.display().to_string()]);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| parse_duration_ms(v.trim())))
            .unwrap_or(f64::NAN)
    };
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN);
    let (requests, non2xx, errors) = wrk_counts(&text);
    if non2xx > 0 || errors > 0 {
        eprintln!("note: {url}: {non2xx} non-2xx answers and {errors} socket errors of {requests} requests");
    }
    Wrk { rps, p50_ms: find("50%"), p99_ms: find("99%"), requests, non2xx, errors }
}

/// Requests, non-2xx/3xx answers and socket errors from wrk's report
/// (the last two lines appear only when non-zero).
fn wrk_counts(text: &str) -> (u64, u64, u64) {
    let number = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
    let requests = text.lines().find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| number(n))).unwrap_or(0);
    let non2xx = text.lines().find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:").map(number)).unwrap_or(0);
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| rest.split(',').filter_map(|part| part.split_whitespace().nth(1)).map(number).sum())
        .unwrap_or(0);
    (requests, non2xx, errors)
}

/// A wrk duration (`812.00us`, `1.20ms`, `2.01s`, `1.00m`) in milliseconds.
fn parse_duration_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_counts_are_read_from_its_report() {
        let report = "Running 3s test @ http://127.0.0.1:3901/authentication\n  2 threads and 32 connections\n\
            \x20 8347 requests in 3.10s, 3.11MB read\n  Socket errors: connect 0, read 2, write 0, timeout 5\n\
            \x20 Non-2xx or 3xx responses: 8347\nRequests/sec:   2568.84\n";
        assert_eq!(wrk_counts(report), (8347, 8347, 7));
        assert_eq!(wrk_counts("  10 requests in 1.00s, 1KB read\nRequests/sec: 10.0\n"), (10, 0, 0));
    }
}
