//! RFC 3339 time stamps as Docker writes them (`2026-11-23T09:00:00.123456789Z`), without a
//! date library: the conversions are a few lines of civil-calendar arithmetic.

#![warn(clippy::indexing_slicing)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats a time as RFC 3339 in UTC with nanoseconds, as Docker does in logs and inspect.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format_unix(d.as_secs() as i64, d.subsec_nanos(), true)
}

/// Formats a time as RFC 3339 in UTC to the second.
pub fn rfc3339_secs(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format_unix(d.as_secs() as i64, 0, false)
}

/// The zero time Docker reports for "never" (`0001-01-01T00:00:00Z`).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn format_unix(secs: i64, nanos: u32, with_nanos: bool) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    if with_nanos {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Parses RFC 3339 (`Z` or `±hh:mm` offset, optional fraction) to a time since the epoch.
/// The text comes from image configs and API queries, so every byte is checked before it is
/// used: a multi-byte character anywhere gives `None`, never a panic.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied();
    if !s.is_ascii()
        || b.len() < 20
        || at(4) != Some(b'-')
        || at(7) != Some(b'-')
        || at(13) != Some(b':')
        || at(16) != Some(b':')
    {
        return None;
    }
    if !matches!(at(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0i64, |acc, d| acc.checked_mul(10)?.checked_add(i64::from(d - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mi, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if at(i) == Some(b'.') {
        i += 1;
        let start = i;
        while at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == start {
            return None;
        }
        for (k, digit) in b.get(start..i)?.iter().take(9).enumerate() {
            nanos += u32::from(digit - b'0') * 10u32.pow(8 - k as u32);
        }
    }
    let offset = match b.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && at(i + 3) == Some(b':') => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + hh * 3600 + mi * 60 + ss - offset;
    if secs < 0 {
        return Some(UNIX_EPOCH);
    }
    UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
}

/// Parses what `--since`/`--until` accept: RFC 3339, a unix time stamp (`1700000000.5`), or a
/// duration before `now` such as `10m`, `1h30m`, `45s`.
pub fn parse_time_arg(s: &str, now: SystemTime) -> Option<SystemTime> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Some(t) = parse_unix_time(s) {
        return Some(t);
    }
    parse_duration(s).map(|d| now.checked_sub(d).unwrap_or(UNIX_EPOCH))
}

/// `SECONDS[.FRACTION]` since the epoch, exact to the nanosecond: the API's form of since and
/// until (`1700000000.123456789`), which an f64 would round by up to a few hundred ns and so
/// move a bound to the wrong side of a log line's own time stamp. A time past what the clock
/// can hold is `None`.
fn parse_unix_time(s: &str) -> Option<SystemTime> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Parses a non-negative Go duration (`300ms`, `10s`, `1h30m`, `2h`, `0`) as
/// [`parse_go_duration`] does; a negative one is `None`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let nanos = parse_go_duration(s).ok()?;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`, `-2s`, `0`) in nanoseconds, with the messages of
/// Go's `time.ParseDuration`. The one duration parser of wharf: the CLI's flags, the API's
/// queries and the Dockerfile's HEALTHCHECK all use it. Exact integer arithmetic, checked:
/// anything beyond an i64 of nanoseconds (about 292 years) is an invalid duration, as in Go.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut s) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int, after) = s.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len())),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit \"{unit}\" in duration \"{text}\"")),
        };
        // Digits beyond what an i64 holds make the duration invalid whatever the unit.
        let whole: i128 = if int.is_empty() { 0 } else { int.parse::<i64>().map_err(|_| invalid())?.into() };
        let mut part = whole.checked_mul(scale).ok_or_else(invalid)?;
        let mut unit_scale = scale;
        for d in frac.bytes().take(19) {
            unit_scale /= 10;
            part += i128::from(d - b'0') * unit_scale;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
        s = after;
    }
    let total = i64::try_from(total).map_err(|_| invalid())?;
    Ok(if negative { -total } else { total })
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.

/// Days since 1970-01-01 → (year, month 1-12, day 1-31).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month 1-12, day 1-31) → days since 1970-01-01 (negative before it).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_795_424_400, 123_456_789);
        let s = rfc3339_nanos(t);
        assert_eq!(s, "2026-11-23T09:00:00.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(rfc3339_secs(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-23T11:00:00+02:00"), Some(UNIX_EPOCH + Duration::from_secs(1_795_424_400)));
    }

    #[test]
    fn parses_durations_and_stamps() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("-2s"), None);
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(parse_time_arg("10s", now), Some(UNIX_EPOCH + Duration::from_secs(990)));
        assert_eq!(parse_time_arg("500", now), Some(UNIX_EPOCH + Duration::from_secs(500)));
        for (arg, want) in [
            ("1763889748.816914970", Some(Duration::new(1_763_889_748, 816_914_970))),
            ("1763889748.816914971", Some(Duration::new(1_763_889_748, 816_914_971))),
            ("1700000000.5", Some(Duration::new(1_700_000_000, 500_000_000))),
            ("1700000000.", Some(Duration::new(1_700_000_000, 0))),
            ("1700000000.1234567891", Some(Duration::new(1_700_000_000, 123_456_789))),
            ("-5", None),
            ("1.2.3", None),
        ] {
            assert_eq!(parse_time_arg(arg, now), want.map(|d| UNIX_EPOCH + d), "{arg}");
        }
    }

    // Regression: issue 13, "Panics on untrusted strings".
    #[test]
    fn rfc3339_with_a_multibyte_character_is_rejected_not_a_panic() {
        for bad in [
            "2024-01-01T00:00:00+0é00",
            "2024-01-01T00:00:00é",
            "é024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.é",
            "2024-01-01T00:00:00+00:0",
            "2024-01-01T00:00:00+00000",
            "2024-01-01X00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.123456789123456789123456789Zjunk",
            "99999-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("9999-12-31T23:59:59.999999999Z").is_some());
    }

    #[test]
    fn huge_time_stamps_and_durations_are_rejected_not_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        for bad in
            ["18446744073709551615", "18446744073709551615.999999999", "99999999999999999999h", "9223372037s", "1e9h"]
        {
            assert_eq!(parse_time_arg(bad, now), None, "{bad}");
        }
        assert!(parse_go_duration("99999999999999999999h").unwrap_err().contains("invalid duration"));
        assert!(parse_go_duration("2562048h").is_err());
        assert_eq!(parse_go_duration("2562047h"), Ok(2_562_047 * 3_600_000_000_000));
        assert_eq!(parse_go_duration("9223372036854775807ns"), Ok(i64::MAX));
        assert!(parse_go_duration("9223372036854775808ns").is_err());
        assert_eq!(parse_go_duration("-1.5h"), Ok(-5_400_000_000_000));
        assert_eq!(parse_go_duration("1.000000000000000000001s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("10").unwrap_err(), "time: missing unit in duration \"10\"");
        assert_eq!(parse_go_duration("1x").unwrap_err(), "time: unknown unit \"x\" in duration \"1x\"");
        assert!(parse_go_duration("").is_err() && parse_go_duration(".s").is_err() && parse_go_duration("-").is_err());
    }
}
