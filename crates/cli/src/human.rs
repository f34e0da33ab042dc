//! Numbers for people, the way Docker writes and reads them: durations (`About a minute`),
//! sizes (`4.26MB`), memory limits (`512m`) and CPU counts (`1.5`).

use std::time::Duration;

/// Docker's `units.HumanDuration`: `Less than a second`, `5 seconds`, `About an hour`, `3 weeks`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = ((d.as_secs_f64() / 3600.0) + 0.5) as u64;
    if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// How long ago a unix time stamp was, from `now` (`2 hours ago`).
pub fn ago(then_unix: i64, now_unix: i64) -> String {
    let secs = now_unix.saturating_sub(then_unix).max(0) as u64;
    format!("{} ago", duration(Duration::from_secs(secs)))
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", three_significant(v), UNITS[i])
}

// Go's `%.3g` for 0 <= v < 1000: three significant digits, trailing zeros dropped.
fn three_significant(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let digits_before = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let decimals = 3usize.saturating_sub(digits_before);
    let s = format!("{v:.decimals$}");
    // Rounding can carry into a fourth digit (999.7 → "1000"); Go prints that as 1e+03.
    if s.split('.').next().is_some_and(|int| int.len() > 3) {
        return "1e+03".to_string();
    }
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `units.RAMInBytes`: `512m`, `1g`, `1.5GB`, `1024` (bytes), binary multiples.
pub fn parse_memory(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let num_end = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let value: f64 = num.parse().map_err(|_| format!("invalid size: {s:?}"))?;
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: {s:?}")),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(format!("invalid size: {s:?}"));
    }
    Ok(bytes as i64)
}

/// `--cpus 1.5` → NanoCpus (1500000000), refusing more than nine decimals as Docker does.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err("value is too precise".to_string());
    }
    let int: i64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    let frac_nanos: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
    int.checked_mul(1_000_000_000).and_then(|n| n.checked_add(frac_nanos)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_table() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (45, "45 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * 60 + 59, "59 minutes"),
            (3600, "About an hour"),
            (2 * 3600, "2 hours"),
            (47 * 3600, "47 hours"),
            (3 * 86400, "3 days"),
            (15 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(Duration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(ago(100, 105), "5 seconds ago");
        assert_eq!(ago(200, 100), "Less than a second ago");
    }

    #[test]
    fn sizes_table() {
        let cases = [
            (0, "0B"),
            (850, "850B"),
            (1000, "1kB"),
            (1240, "1.24kB"),
            (4_261_000, "4.26MB"),
            (12_345_678, "12.3MB"),
            (123_456_789, "123MB"),
            (999_700, "1e+03kB"),
            (2_000_000_000, "2GB"),
        ];
        for (n, want) in cases {
            assert_eq!(size(n), want, "{n}");
        }
    }

    #[test]
    fn memory_table() {
        let cases = [
            ("100", Ok(100)),
            ("1024b", Ok(1024)),
            ("1k", Ok(1024)),
            ("512m", Ok(512 << 20)),
            ("512M", Ok(512 << 20)),
            ("1g", Ok(1 << 30)),
            ("1GB", Ok(1 << 30)),
            ("1GiB", Ok(1 << 30)),
            ("1.5g", Ok(3 << 29)),
            ("6 m", Ok(6 << 20)),
            ("", Err(())),
            ("12x", Err(())),
            ("m", Err(())),
            ("-1m", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_memory(input).map_err(|_| ()), want, "{input:?}");
        }
    }

    #[test]
    fn cpus_table() {
        let cases = [
            ("1", Ok(1_000_000_000)),
            ("1.5", Ok(1_500_000_000)),
            ("0.25", Ok(250_000_000)),
            (".5", Ok(500_000_000)),
            ("2.000", Ok(2_000_000_000)),
            ("0.000000001", Ok(1)),
            ("0.0000000001", Err(())),
            ("abc", Err(())),
            ("-1", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_cpus(input).map_err(|_| ()), want, "{input:?}");
        }
    }
}
