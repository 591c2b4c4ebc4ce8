//! UTF-8 checks for the short texts of every request: header names and values, paths, service
//! names, a backend's answer headers.
//!
//! They are nearly always ASCII, which `<[u8]>::is_ascii` confirms a word at a time; a short input
//! (shorter than two words) takes `str::from_utf8` a byte at a time, several instructions each,
//! and these checks ran about eight times per request (callgrind: ~1,000 instructions of a tiny
//! GET's 39,700). Anything that is not ASCII gets the full check.

/// `bytes` as text, if they are UTF-8.
#[inline]
pub fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Whether `bytes` are UTF-8.
#[inline]
pub fn is_text(bytes: &[u8]) -> bool {
    text(bytes).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_check() {
        let cases: &[&[u8]] = &[
            b"",
            b"/echo/hello",
            b"application/json; charset=utf-8 and more than two words",
            "caf\u{e9}".as_bytes(),
            "\u{1f600} after an ASCII start of some length".as_bytes(),
            b"\xff",
            b"abc\xc3",
            b"longer ascii text before a broken sequence \xe2\x82",
            b"\xed\xa0\x80",
            b"\0\x7f",
        ];
        for &case in cases {
            assert_eq!(text(case), std::str::from_utf8(case).ok(), "{case:?}");
            assert_eq!(is_text(case), std::str::from_utf8(case).is_ok(), "{case:?}");
        }
    }
}
