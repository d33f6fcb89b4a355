//! The tenants properties of tests/tenants.rs with each tenant on its own core of two (the
//! share spans them: see the engine's span module). Property tests with tenants as real
//! ones behave: closed loops at queue depth 1 with a
//! think time (a network round trip), tenants that arrive, leave and change settings, and
//! slow requests. Shares are judged by **relative** error per window (achieved against
//! configured, over configured), allowing the one I/O that straddles a window's edge.

// Test arithmetic on small, bounded values (group counts, drawn weights, rates).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

mod common;

/// Tenant i on core i mod 2.
const CORES: usize = 2;

include!("cases/tenants.rs");
