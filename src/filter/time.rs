//! Dates and times as seconds since 1970-01-01T00:00Z, so DATE and DATETIME values,
//! CQL2 literals and `datetime` intervals compare as numbers.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Date of a day count since 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds → `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_timestamp(t: f64) -> String {
    let secs = t.floor() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` → seconds at 00:00 UTC.
pub fn parse_date(s: &str) -> Option<f64> {
    let s = s.trim();
    let (y, rest) = s.split_at_checked(4)?;
    let rest = rest.strip_prefix('-')?;
    let (m, rest) = rest.split_at_checked(2)?;
    let d = rest.strip_prefix('-').filter(|d| d.len() == 2)?;
    let (y, m, d) = (digits(y)?, digits(m)?, digits(d)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) as f64 * 86_400.0)
}

/// An RFC 3339 timestamp (`T` or space, optional fraction, `Z`/offset; none means UTC)
/// → seconds.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() < 10 {
        return None;
    }
    let (date, rest) = s.split_at_checked(10)?;
    let day = parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut parts = clock.split(':');
    let h = digits(parts.next()?)?;
    let mi = digits(parts.next()?)?;
    let sec: f64 = match parts.next() {
        Some(p) => {
            let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
            let whole = digits(whole)? as f64;
            let frac = if frac.is_empty() {
                0.0
            } else {
                digits(frac)? as f64 / 10f64.powi(frac.len() as i32)
            };
            whole + frac
        }
        None => 0.0,
    };
    if parts.next().is_some() || h > 23 || mi > 59 || sec >= 61.0 {
        return None;
    }
    let off = match offset {
        "" | "Z" | "z" => 0.0,
        o => {
            let sign = if o.starts_with('-') { -1.0 } else { 1.0 };
            let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "00"));
            let (oh, om) = (digits(oh)?, digits(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60) as f64
        }
    };
    Some(day + (h * 3600 + mi * 60) as f64 + sec - off)
}

/// A date or a timestamp, whichever `s` is.
pub fn parse_instant(s: &str) -> Option<f64> {
    if s.trim().len() == 10 {
        parse_date(s)
    } else {
        parse_timestamp(s)
    }
}

/// A `datetime` parameter: an instant or a closed/half-open interval (`..` or empty for
/// an open end). A date alone stands for its whole day.
pub fn parse_interval(s: &str) -> Result<(Option<f64>, Option<f64>), String> {
    let bad = |part: &str| {
        format!(
            "datetime '{s}': '{part}' is not a date or RFC 3339 timestamp; use e.g. 2024-05-01, 2024-05-01T10:00:00Z or 2024-01-01/2024-12-31 (.. for an open end)"
        )
    };
    let end_of = |part: &str, t: f64| {
        if part.trim().len() == 10 {
            t + 86_399.999
        } else {
            t
        }
    };
    let bound = |part: &str, upper: bool| -> Result<Option<f64>, String> {
        let p = part.trim();
        if p.is_empty() || p == ".." {
            return Ok(None);
        }
        let t = parse_instant(p).ok_or_else(|| bad(p))?;
        Ok(Some(if upper { end_of(p, t) } else { t }))
    };
    let (lo, hi) = match s.split_once('/') {
        Some((a, b)) => (bound(a, false)?, bound(b, true)?),
        None => {
            let t = parse_instant(s).ok_or_else(|| bad(s))?;
            (Some(t), Some(end_of(s, t)))
        }
    };
    if let (Some(a), Some(b)) = (lo, hi)
        && a > b
    {
        return Err(format!(
            "datetime '{s}': the interval ends before it starts"
        ));
    }
    if s.split_once('/').is_some() && lo.is_none() && hi.is_none() {
        return Err(format!("datetime '{s}': at least one end must be given"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-01"), Some(0.0));
        assert_eq!(parse_date("2000-03-01"), Some(951_868_800.0));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_timestamp("1970-01-01T01:00:00Z"), Some(3600.0));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Some(1.5));
        assert_eq!(parse_timestamp("1970-01-01T25:00:00Z"), None);
        assert_eq!(
            format_timestamp(951_868_800.0 + 3661.0),
            "2000-03-01T01:01:01Z"
        );
        assert_eq!(parse_interval("2024-01-01/..").unwrap().1, None);
        assert!(parse_interval("2024-02-01/2024-01-01").is_err());
        assert!(parse_interval("yesterday").is_err());
        let (a, b) = parse_interval("1970-01-02").unwrap();
        assert_eq!(a, Some(86_400.0));
        assert!(b.unwrap() > 86_400.0 * 2.0 - 1.0);
    }
}
