//! Durations as Docker writes them in `Status` ("Up 3 seconds", "Exited (0) 2 minutes ago").

use std::time::Duration;

pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_string(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_string(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_docker() {
        for (secs, want) in [
            (0, "Less than a second"),
            (5, "5 seconds"),
            (90, "About a minute"),
            (600, "10 minutes"),
            (7300, "2 hours"),
        ] {
            assert_eq!(duration(Duration::from_secs(secs)), want);
        }
    }
}
