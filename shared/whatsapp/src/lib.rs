//! WhatsApp Cloud API types shared by every zapfn function: webhook parsing,
//! signature checks, send-request validation, Meta's error codes and the
//! Graph API client.

pub mod builders;
pub mod errors;
pub mod graph;
pub mod send;
pub mod signature;
pub mod status;
pub mod webhook;

/// A customer's id as zapfn keys it: a phone number's digits, as Meta's `wa_id`
/// (no `+`, spaces, dashes or parentheses), or an id with letters (a
/// business-scoped user id, a group id) as it is.
pub fn wa_id(id: &str) -> String {
    if id.bytes().any(|b| b.is_ascii_alphabetic()) {
        id.to_owned()
    } else {
        id.chars().filter(char::is_ascii_digit).collect()
    }
}

/// Whether `id` is a business-scoped user id (BSUID): a two-letter country code,
/// a dot, then letters, digits and dots (`US.13491208655302741918`, or a parent
/// id `US.ENT.11815799212886844830`). Users with a username may have no number.
pub fn is_user_id(id: &str) -> bool {
    let Some((country, rest)) = id.split_once('.') else {
        return false;
    };
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=140).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        && !rest.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_digits_or_user_ids() {
        assert_eq!(wa_id("+55 (11) 99999-0000"), "5511999990000");
        assert_eq!(wa_id("US.13491208655302741918"), "US.13491208655302741918");
        assert_eq!(wa_id("Y2FwaV9ncm91cDox"), "Y2FwaV9ncm91cDox", "a group id");
        assert!(is_user_id("US.ENT.11815799212886844830"));
        for not_one in [
            "5511999990000",
            "us.123",
            "USA.1",
            "US.",
            "US.12.",
            "US.1 2",
            ".1",
        ] {
            assert!(!is_user_id(not_one), "{not_one}");
        }
    }
}
