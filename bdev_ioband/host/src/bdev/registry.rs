//! The bdevs of a host by name, in registration order, with the claims vbdevs hold on
//! their bases.
//!
//! Owned by the main reactor (the control plane); the I/O path never looks names up.

use std::collections::BTreeMap;

use super::{BdevError, BdevRef};

/// Registered bdevs and claims.
#[derive(Debug, Default)]
pub struct BdevRegistry {
    bdevs: Vec<BdevRef>,
    claims: BTreeMap<String, Vec<String>>,
}

impl BdevRegistry {
    /// Adds a bdev; its name must be new.
    pub fn register(&mut self, bdev: BdevRef) -> Result<(), BdevError> {
        if self.get(bdev.name()).is_ok() {
            return Err(BdevError::Exists(bdev.name().to_owned()));
        }
        self.bdevs.push(bdev);
        Ok(())
    }

    /// A bdev by name.
    pub fn get(&self, name: &str) -> Result<BdevRef, BdevError> {
        self.bdevs
            .iter()
            .find(|b| b.name() == name)
            .cloned()
            .ok_or_else(|| BdevError::NotFound(name.to_owned()))
    }

    /// Removes a bdev that nobody claims.
    pub fn unregister(&mut self, name: &str) -> Result<BdevRef, BdevError> {
        if let Some(by) = self.claims.get(name).and_then(|c| c.first()) {
            return Err(BdevError::Busy {
                bdev: name.to_owned(),
                by: by.clone(),
            });
        }
        let pos = self
            .bdevs
            .iter()
            .position(|b| b.name() == name)
            .ok_or_else(|| BdevError::NotFound(name.to_owned()))?;
        let bdev = self.bdevs.remove(pos);
        bdev.on_unregister();
        Ok(bdev)
    }

    /// Every bdev, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &BdevRef> {
        self.bdevs.iter()
    }

    /// Records that `by` sits on `base` (shared claims: several vbdevs may).
    pub fn claim(&mut self, base: &str, by: &str) {
        self.claims
            .entry(base.to_owned())
            .or_default()
            .push(by.to_owned());
    }

    /// Drops `by`'s claim on `base`.
    pub fn release(&mut self, base: &str, by: &str) {
        if let Some(c) = self.claims.get_mut(base) {
            c.retain(|n| n != by);
            if c.is_empty() {
                self.claims.remove(base);
            }
        }
    }

    /// Who sits on `base`.
    pub fn claimers(&self, base: &str) -> Vec<String> {
        self.claims.get(base).cloned().unwrap_or_default()
    }
}
