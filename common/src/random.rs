//! Random bytes from the kernel (/dev/urandom), for keys, session ids and tokens: the one
//! place the grid asks for secrets it makes itself.

use std::io::Read;

/// `n` random bytes.
pub fn bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// `n` random bytes as lowercase hex (2n characters).
pub fn hex(n: usize) -> std::io::Result<String> {
    Ok(bytes(n)?.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ_and_have_the_asked_length() {
        let (a, b) = (super::hex(16).unwrap(), super::hex(16).unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
