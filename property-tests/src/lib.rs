//! Strategies shared by the property suites in `tests/`.
