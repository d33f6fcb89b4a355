//! The text language of blkio `devices` and `settings` files (placeholder until written).
