//! Connection tests (filled below).
