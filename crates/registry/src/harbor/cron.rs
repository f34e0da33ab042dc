//! Harbor's cron: six fields, `second minute hour day-of-month month day-of-week`
//! (`0 0 * * * *` is hourly), each `*` (or `?`), a number, a range `a-b`, a step `*/n` or
//! `a-b/n`, or a comma list of those; months and weekdays also by their English names.
//! A day matches as in Harbor's cron library: when both day fields are restricted, either
//! one; else the restricted one. Times are UTC.

use wharf_types::time::{civil_from_days, days_from_civil};

/// Furthest ahead a next run is looked for: a cron that matches no day within it (the 30th
/// of February) never fires.
const HORIZON: u64 = 5 * 366 * 86400;

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    second: Field,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Field {
    bits: u64,
    /// The field was `*` or `?`.
    star: bool,
}

impl Field {
    fn has(self, v: u32) -> bool {
        v < 64 && self.bits & (1 << v) != 0
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, what: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + name_base);
    }
    let v: u32 = s.parse().map_err(|_| format!("{what} {s:?} is not a number"))?;
    if v < min || v > max {
        return Err(format!("{what} {v} is out of range {min}-{max}"));
    }
    Ok(v)
}

fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<Field, String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("{what} step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what} step must be at least 1"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            star = star || step == 1;
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, what, min, max, names, name_base)?, value(b, what, min, max, names, name_base)?)
        } else {
            let v = value(range, what, min, max, names, name_base)?;
            // `5/15` is 5, 20, 35, 50 as in Harbor's library.
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("{what} range {range:?} runs backwards"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(Field { bits, star })
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [s, mi, h, dom, mo, dow] = parts.as_slice() else {
            return Err(format!(
                "cron {text:?} has {} fields: it needs 6 (second minute hour day-of-month month day-of-week)",
                parts.len()
            ));
        };
        let with = |r: Result<Field, String>| r.map_err(|e| format!("cron {text:?}: {e}"));
        let mut dow = with(field(dow, "day of week", 0, 7, &DAYS, 0))?;
        if dow.has(7) {
            dow.bits = (dow.bits & !(1 << 7)) | 1; // 7 is Sunday too
        }
        Ok(Cron {
            second: with(field(s, "second", 0, 59, &[], 0))?,
            minute: with(field(mi, "minute", 0, 59, &[], 0))?,
            hour: with(field(h, "hour", 0, 23, &[], 0))?,
            dom: with(field(dom, "day of month", 1, 31, &[], 0))?,
            month: with(field(mo, "month", 1, 12, &MONTHS, 1))?,
            dow,
        })
    }

    fn day_matches(&self, dom: u32, dow: u32) -> bool {
        let (a, b) = (self.dom.has(dom), self.dow.has(dow));
        if self.dom.star || self.dow.star {
            a && b
        } else {
            a || b
        }
    }

    /// The first time after `t` (Unix seconds) that the cron names; `None` when none comes
    /// within five years.
    pub fn next_after(&self, t: u64) -> Option<u64> {
        let limit = t.saturating_add(HORIZON);
        let mut t = t + 1;
        while t <= limit {
            let days = t / 86400;
            let secs = t % 86400;
            let (y, mo, d) = civil_from_days(days as i64);
            if !self.month.has(mo) {
                let (ny, nm) = if mo == 12 { (y + 1, 1) } else { (y, mo + 1) };
                t = days_from_civil(ny, nm, 1) as u64 * 86400;
                continue;
            }
            let dow = ((days + 4) % 7) as u32; // 1970-01-01 was a Thursday
            if !self.day_matches(d, dow) {
                t = (days + 1) * 86400;
                continue;
            }
            let (h, mi, s) = ((secs / 3600) as u32, ((secs / 60) % 60) as u32, (secs % 60) as u32);
            if !self.hour.has(h) {
                t = days * 86400 + (h as u64 + 1) * 3600;
                continue;
            }
            if !self.minute.has(mi) {
                t = days * 86400 + h as u64 * 3600 + (mi as u64 + 1) * 60;
                continue;
            }
            if !self.second.has(s) {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `YYYY-MM-DD hh:mm:ss` UTC → Unix seconds.
    fn at(s: &str) -> u64 {
        let n: Vec<u64> = s.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse().unwrap()).collect();
        days_from_civil(n[0] as i64, n[1] as u32, n[2] as u32) as u64 * 86400 + n[3] * 3600 + n[4] * 60 + n[5]
    }

    #[test]
    fn next_runs() {
        for (cron, from, want) in [
            ("0 0 * * * *", "2024-03-10 10:15:00", "2024-03-10 11:00:00"),
            ("0 0 * * * *", "2024-03-10 11:00:00", "2024-03-10 12:00:00"),
            ("* * * * * *", "2024-03-10 11:00:00", "2024-03-10 11:00:01"),
            ("*/10 * * * * *", "2024-03-10 11:00:05", "2024-03-10 11:00:10"),
            ("0 0 0 * * *", "2024-12-31 23:59:59", "2025-01-01 00:00:00"),
            ("0 0 0 * * 0", "2024-03-06 12:00:00", "2024-03-10 00:00:00"), // Harbor's weekly: Sunday
            ("0 0 0 * * 7", "2024-03-06 12:00:00", "2024-03-10 00:00:00"),
            ("0 30 2 * * MON-FRI", "2024-03-09 00:00:00", "2024-03-11 02:30:00"),
            ("0 0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00"),
            ("0 0 12 1 jan,jul ?", "2024-02-01 00:00:00", "2024-07-01 12:00:00"),
            ("0 15,45 8-9 * * *", "2024-03-10 08:20:00", "2024-03-10 08:45:00"),
            ("5/20 * * * * *", "2024-03-10 08:00:46", "2024-03-10 08:01:05"),
            // Both day fields restricted: either matches (the 15th, or a Monday).
            ("0 0 0 15 * 1", "2024-03-05 00:00:00", "2024-03-11 00:00:00"),
            ("0 0 0 15 * 1", "2024-03-11 00:00:00", "2024-03-15 00:00:00"),
        ] {
            let c = Cron::parse(cron).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.next_after(at(from)), Some(at(want)), "{cron} after {from}");
        }
        assert_eq!(Cron::parse("0 0 0 30 2 *").unwrap().next_after(at("2024-01-01 00:00:00")), None);
    }

    #[test]
    fn bad_crons_name_their_fault() {
        for (cron, says) in [
            ("0 0 * * *", "has 5 fields"),
            ("60 * * * * *", "second 60 is out of range 0-59"),
            ("0 0 25 * * *", "hour 25 is out of range"),
            ("0 0 0 0 * *", "day of month 0 is out of range 1-31"),
            ("0 0 0 * 13 *", "month 13"),
            ("0 0 0 * * funday", "day of week \"funday\" is not a number"),
            ("*/0 * * * * *", "step must be at least 1"),
            ("0 0 10-2 * * *", "runs backwards"),
        ] {
            let e = Cron::parse(cron).unwrap_err();
            assert!(e.contains(says), "{cron}: {e}");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000i64, 0, 59, 60, 365, 11_016, 19_000, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}
