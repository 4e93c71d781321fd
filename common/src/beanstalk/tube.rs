//! Tube-name validation, by beanstalkd's own rules, so that a bad name is caught before it
//! reaches the server (which would answer a bare BAD_FORMAT).

use super::Error;

/// The longest tube name beanstalkd accepts, in bytes.
pub const MAX_TUBE_NAME: usize = 200;

/// Checks `name` against beanstalkd's rules: 1 to 200 bytes of ASCII letters, digits and
/// `-+/;.$_()`, not starting with `-`.
pub fn validate_tube_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_TUBE_NAME {
        Some("it is longer than 200 bytes")
    } else if name.starts_with('-') {
        Some("it starts with '-'")
    } else if !name.bytes().all(is_tube_byte) {
        Some("only letters, digits and -+/;.$_() are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidTubeName {
            name: name.to_owned(),
            reason,
        }),
    }
}

fn is_tube_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        validate_tube_name("camhd.jobs").unwrap();
        validate_tube_name("a-+/;.$_()Z9").unwrap();
        validate_tube_name(&"x".repeat(200)).unwrap();
    }

    #[test]
    fn rejects_what_beanstalkd_rejects() {
        for bad in [
            "",
            "-jobs",
            "with space",
            "colon:",
            "tab\t",
            "é",
            &"x".repeat(201),
        ] {
            assert!(
                matches!(validate_tube_name(bad), Err(Error::InvalidTubeName { .. })),
                "{bad:?} should be rejected"
            );
        }
    }
}
