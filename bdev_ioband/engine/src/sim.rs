//! Simulation harness (placeholder until written).
