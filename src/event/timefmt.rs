//! The text forms of timestamps and floats that eventsource-py writes, and the lax timestamp grammar it
//! reads.
//!
//! Owns: Python's `datetime.isoformat()` (headers), pydantic's datetime JSON form (payload), Python's
//! `repr(float)` (the `retry_after` header), pydantic's float JSON form, and a parser for the datetimes
//! pydantic accepts. Uses only `time`. Invariants: precision is the microsecond (Python's), finer input
//! is truncated as pydantic does; nothing here panics on any input.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Truncates a timestamp to whole microseconds, the precision of a Python `datetime`.
pub(crate) fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

fn push_date_time(out: &mut String, t: OffsetDateTime) {
    use std::fmt::Write as _;
    let year = t.year();
    if year < 0 {
        let _ = write!(out, "-{:04}", -year);
    } else {
        let _ = write!(out, "{year:04}");
    }
    let _ = write!(
        out,
        "-{:02}-{:02}T{:02}:{:02}:{:02}",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.microsecond();
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
}

fn push_offset(out: &mut String, offset: UtcOffset) {
    use std::fmt::Write as _;
    let total = offset.whole_seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60);
    if !abs.is_multiple_of(60) {
        let _ = write!(out, ":{:02}", abs % 60);
    }
}

/// Python's `datetime.isoformat()` of an aware datetime: `2024-01-02T03:04:05.123456+00:00`, the fraction
/// only when the microseconds are not zero, the offset always numeric (never `Z`).
pub(crate) fn format_isoformat(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(32);
    push_date_time(&mut out, t);
    push_offset(&mut out, t.offset());
    out
}

/// Pydantic's JSON form of an aware datetime: like [`format_isoformat`], except UTC is written `Z`.
pub(crate) fn format_pydantic(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(32);
    push_date_time(&mut out, t);
    if t.offset().is_utc() {
        out.push('Z');
    } else {
        push_offset(&mut out, t.offset());
    }
    out
}

/// A parsed timestamp, and whether the input had no offset (pydantic keeps such values naive; this crate
/// reads them as UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) at: OffsetDateTime,
    pub(crate) naive: bool,
}

/// Parses a datetime the way pydantic (speedate) does in lax mode, for the forms seen in practice:
/// `YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)fraction]]][Z|z|±HH:MM|±HHMM]`, a bare date, or a number of Unix
/// seconds (milliseconds when its magnitude is above 2e10) written as a string.
pub(crate) fn parse_datetime(s: &str) -> Result<Parsed, &'static str> {
    if s.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'-')
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s[1..].contains('-')
    {
        let v: f64 = s.parse().map_err(|_| "invalid unix timestamp")?;
        return from_unix(v);
    }
    let b = s.as_bytes();
    let mut p = Cursor { b, i: 0 };
    let year = p.digits(4).ok_or("invalid year")?;
    p.expect(b'-').ok_or("invalid date separator")?;
    let month = p.digits(2).ok_or("invalid month")?;
    p.expect(b'-').ok_or("invalid date separator")?;
    let day = p.digits(2).ok_or("invalid day")?;
    let month = Month::try_from(u8::try_from(month).map_err(|_| "month out of range")?)
        .map_err(|_| "month value is outside expected range")?;
    let date = Date::from_calendar_date(year as i32, month, day as u8)
        .map_err(|_| "day value is outside expected range")?;
    if p.done() {
        let at = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc();
        return Ok(Parsed { at, naive: true });
    }
    match p.next() {
        Some(b'T' | b't' | b' ') => {}
        _ => return Err("invalid date-time separator"),
    }
    let hour = p.digits(2).ok_or("invalid hour")?;
    p.expect(b':').ok_or("invalid time separator")?;
    let minute = p.digits(2).ok_or("invalid minute")?;
    let mut second = 0;
    let mut micros = 0;
    if p.peek() == Some(b':') {
        p.i += 1;
        second = p.digits(2).ok_or("invalid second")?;
        if matches!(p.peek(), Some(b'.' | b',')) {
            p.i += 1;
            let start = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                let digit = u32::from(p.b[p.i] - b'0');
                if p.i - start < 6 {
                    micros = micros * 10 + digit;
                }
                p.i += 1;
            }
            let n = p.i - start;
            if n == 0 {
                return Err("fraction has no digits");
            }
            for _ in n..6 {
                micros *= 10;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time value is outside expected range");
    }
    let time = Time::from_hms_micro(hour as u8, minute as u8, second as u8, micros)
        .map_err(|_| "time value is outside expected range")?;
    let local = PrimitiveDateTime::new(date, time);
    let (offset, naive) = match p.next() {
        None => (UtcOffset::UTC, true),
        Some(b'Z' | b'z') => (UtcOffset::UTC, false),
        Some(sign @ (b'+' | b'-')) => {
            let h = p.digits(2).ok_or("invalid offset hours")?;
            if p.peek() == Some(b':') {
                p.i += 1;
            }
            let m = p.digits(2).ok_or("invalid offset minutes")?;
            if h > 23 || m > 59 {
                return Err("offset is outside expected range");
            }
            let secs = (h * 3600 + m * 60) as i32;
            let secs = if sign == b'-' { -secs } else { secs };
            (
                UtcOffset::from_whole_seconds(secs).map_err(|_| "offset is outside expected range")?,
                false,
            )
        }
        Some(_) => return Err("unexpected character after the time"),
    };
    if !p.done() {
        return Err("unexpected extra characters at the end of the input");
    }
    Ok(Parsed {
        at: local.assume_offset(offset),
        naive,
    })
}

/// Unix seconds (or milliseconds above 2e10 in magnitude, as pydantic decides) to a UTC timestamp.
pub(crate) fn from_unix(v: f64) -> Result<Parsed, &'static str> {
    if !v.is_finite() {
        return Err("timestamp is not finite");
    }
    let seconds = if v.abs() > 2e10 { v / 1000.0 } else { v };
    let micros = (seconds * 1_000_000.0).round();
    if micros.abs() > 3e17 {
        return Err("timestamp is outside the supported range");
    }
    let nanos = (micros as i128) * 1_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| "timestamp out of range")?;
    Ok(Parsed { at, naive: false })
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let slice = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in slice {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// The shortest round-trip digits of a finite float and its decimal exponent: `1.5e16` is `("15", 16)`.
fn shortest_digits(v: f64) -> (String, i32) {
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Writes a finite float in the style shared by Python's `repr` and pydantic: positional between the two
/// exponent limits (always with a fractional part), scientific outside them.
fn float_text(v: f64, min_positional_exp: i32, pad_exponent: bool) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let (digits, exp) = shortest_digits(v);
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    if exp < min_positional_exp || exp >= 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        if pad_exponent {
            out.push_str(&format!("{:02}", exp.unsigned_abs()));
        } else {
            out.push_str(&exp.unsigned_abs().to_string());
        }
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    }
    out
}

/// Python's `repr(float)` / `str(float)` (non-finite values as `inf`, `-inf`, `nan`).
pub(crate) fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        "nan".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        float_text(v, -4, true)
    }
}

/// Pydantic's JSON text for a finite float (`1e+22`, `0.00001`, `1e-6`, `1.0`).
pub(crate) fn pydantic_float(v: f64) -> String {
    float_text(v, -5, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isoformat_and_payload_forms() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_704_164_645_123_456_000).unwrap();
        assert_eq!(format_isoformat(t), "2024-01-02T03:04:05.123456+00:00");
        assert_eq!(format_pydantic(t), "2024-01-02T03:04:05.123456Z");
        let whole = truncate_to_micros(t).replace_nanosecond(0).unwrap();
        assert_eq!(format_isoformat(whole), "2024-01-02T03:04:05+00:00");
        let east = whole.to_offset(UtcOffset::from_hms(5, 30, 0).unwrap());
        assert_eq!(format_pydantic(east), "2024-01-02T08:34:05+05:30");
        let west = whole.to_offset(UtcOffset::from_hms(-3, -30, 0).unwrap());
        assert_eq!(format_isoformat(west), "2024-01-01T23:34:05-03:30");
    }

    #[test]
    fn parses_lax_forms_and_rejects_bad_ones() {
        let p = parse_datetime("2024-01-02T03:04:05.9999999Z").unwrap();
        assert_eq!(p.at.microsecond(), 999_999);
        assert!(!p.naive);
        assert!(parse_datetime("2024-01-02").unwrap().naive);
        assert_eq!(
            parse_datetime("-1.5").unwrap().at.unix_timestamp_nanos(),
            -1_500_000_000
        );
        assert_eq!(parse_datetime("2024").unwrap().at.unix_timestamp(), 2024);
        assert_eq!(
            parse_datetime("2024-01-02T03:04:05+0200")
                .unwrap()
                .at
                .offset()
                .whole_hours(),
            2
        );
        for bad in [
            "",
            "2024-01",
            "1e3",
            " 2024",
            "2024-01-02T03:04:05+02",
            "20240102T030405Z",
            "2024-01-02T24:00:00Z",
            "2024-02-30T03:04:05Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+24:00",
            "2024-01-02T03:04:60Z",
            "2024-01-02T03:04:05Zjunk",
            "+2024-01-02T03:04:05Z",
            "-",
            "1e999",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn float_forms() {
        assert_eq!(python_float_repr(1714979291.0), "1714979291.0");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1e-5), "1e-05");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(pydantic_float(1e-5), "0.00001");
        assert_eq!(pydantic_float(1e-6), "1e-6");
        assert_eq!(pydantic_float(-1e22), "-1e+22");
        assert_eq!(pydantic_float(-0.0), "-0.0");
    }
}
