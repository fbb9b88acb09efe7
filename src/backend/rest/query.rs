//! Values put into a request's path or query string.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the unreserved characters of RFC 3986 is encoded, so a
/// value can neither end a parameter nor a path segment.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value or path segment.
pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded() {
        assert_eq!(enc("Server BMC/ü"), "Server%20BMC%2F%C3%BC");
        assert_eq!(enc("192.0.2.0/24"), "192.0.2.0%2F24");
        assert_eq!(enc("14:18:77:AA:BB:01"), "14%3A18%3A77%3AAA%3ABB%3A01");
        assert_eq!(enc("a-b_c.d~e&f=g"), "a-b_c.d~e%26f%3Dg");
    }
}
