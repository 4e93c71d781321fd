//! The `camhd-grid` root package exists for its end-to-end tests in `tests/`.
