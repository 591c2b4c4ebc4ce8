//! The `date` header every response carries (RFC 9110 §6.6.1: an origin server with a clock
//! sends one, and a proxy adds one to a forwarded answer that has none, as nginx does).
//!
//! Formatting a date for each response would read the wall clock each time. Instead each thread
//! that writes responses (a shard's) keeps the current IMF-fixdate text, and a task on the shard
//! ([`keep_current`]) rewrites it as each wall-clock second begins: a response copies 29 bytes.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const LEN: usize = 29;

thread_local! {
    static NOW: Cell<[u8; LEN]> = Cell::new(imf_fixdate(SystemTime::now()));
}

/// The current date as this thread last set it (`keep_current` keeps a shard's to the second).
pub fn current() -> [u8; LEN] {
    NOW.with(Cell::get)
}

/// Keeps this thread's date current: runs for as long as the shard, waking once a second.
pub async fn keep_current() {
    loop {
        let now = SystemTime::now();
        NOW.with(|date| date.set(imf_fixdate(now)));
        let into_second = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        glommio::timer::sleep(Duration::from_nanos(u64::from(1_000_000_000 - into_second))).await;
    }
}

/// `at` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn imf_fixdate(at: SystemTime) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    let of_day = secs % 86_400;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], of_day / 3600);
    two_digits(&mut out[20..22], of_day / 60 % 60);
    two_digits(&mut out[23..25], of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> String {
        String::from_utf8(imf_fixdate(UNIX_EPOCH + Duration::from_secs(secs)).to_vec()).unwrap()
    }

    #[test]
    fn formats_imf_fixdates() {
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's own example.
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        // A leap day (2000 is a leap year), 2100's end of February (it is not), a year's end.
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
        assert_eq!(at(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(at(4_133_980_799), "Fri, 31 Dec 2100 23:59:59 GMT");
        assert_eq!(at(1_798_761_600), "Fri, 01 Jan 2027 00:00:00 GMT");
    }

    #[test]
    fn this_thread_has_a_current_date() {
        let date = current();
        assert!(date.ends_with(b" GMT"), "{date:?}");
    }
}
