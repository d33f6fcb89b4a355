//! The host's control plane: the bdev registry and the ioband module, with the operations
//! that touch both (create a base or an ioband bdev, delete a base and the ioband bdevs
//! over it).
//!
//! Owned by the main reactor; RPC handlers and the JSON config loader call it there.

use std::cell::RefCell;
use std::sync::Arc;

use bdev_ioband_engine::{GroupKey, ShareParams};

use crate::bdev::malloc::MallocBdev;
use crate::bdev::model::{ModelBdev, ModelParams};
use crate::bdev::null::NullBdev;
use crate::bdev::{BdevError, BdevRef, BdevRegistry};
use crate::ioband::{IobandBdev, IobandError, IobandHandle, IobandModule};
use crate::iscsi::Iscsi;
use crate::nbd::NbdExports;

/// The control plane of one host.
#[derive(Debug)]
pub struct App {
    /// Every bdev by name.
    pub bdevs: RefCell<BdevRegistry>,
    /// The ioband vbdev module (owner of the engine).
    pub ioband: IobandHandle,
    /// The NBD exports.
    pub nbd: RefCell<NbdExports>,
    /// The iSCSI target: portal groups, initiator groups, target nodes.
    pub iscsi: RefCell<Iscsi>,
}

impl App {
    /// Builds the control plane on the current reactor (the main one).
    pub fn new() -> Result<App, BdevError> {
        Ok(App {
            bdevs: RefCell::new(BdevRegistry::default()),
            ioband: IobandModule::new()?,
            nbd: RefCell::new(NbdExports::default()),
            iscsi: RefCell::new(Iscsi::default()),
        })
    }

    fn add(&self, bdev: BdevRef) -> Result<BdevRef, BdevError> {
        self.register(bdev.clone())?;
        Ok(bdev)
    }

    /// Registers a bdev; ioband devices waiting for a base of its name get their bdevs
    /// (every path that registers a base goes through here).
    pub fn register(&self, bdev: BdevRef) -> Result<(), BdevError> {
        let name = bdev.name().to_owned();
        let mut registry = self.bdevs.borrow_mut();
        registry.register(bdev)?;
        self.ioband.borrow_mut().base_arrived(&mut registry, &name);
        Ok(())
    }

    /// Creates and registers a null bdev.
    pub fn create_null(
        &self,
        name: &str,
        block_size: u32,
        num_blocks: u64,
        uuid: Option<String>,
    ) -> Result<BdevRef, BdevError> {
        self.check_new_name(name)?;
        self.add(Arc::new(NullBdev::new(name, block_size, num_blocks, uuid)?))
    }

    /// Creates and registers a malloc bdev.
    pub fn create_malloc(
        &self,
        name: &str,
        block_size: u32,
        num_blocks: u64,
        uuid: Option<String>,
    ) -> Result<BdevRef, BdevError> {
        self.check_new_name(name)?;
        self.add(Arc::new(MallocBdev::new(
            name, block_size, num_blocks, uuid,
        )?))
    }

    /// Creates and registers a model bdev.
    pub fn create_model(
        &self,
        name: &str,
        params: ModelParams,
        uuid: Option<String>,
    ) -> Result<BdevRef, BdevError> {
        self.check_new_name(name)?;
        self.add(Arc::new(ModelBdev::new(name, params, uuid)?))
    }

    fn check_new_name(&self, name: &str) -> Result<(), BdevError> {
        bdev_ioband_engine::validate_name(name).map_err(|e| BdevError::Invalid {
            param: "name",
            reason: e.to_string(),
        })?;
        if self.bdevs.borrow().get(name).is_ok() {
            return Err(BdevError::Exists(name.to_owned()));
        }
        Ok(())
    }

    /// Deletes a base bdev of the given product (`None`: any). The ioband bdevs over it go
    /// (a hot-remove, as far as they are concerned) but their devices, shares and settings
    /// stay, waiting for a base of the same name, as in SPDK. Refused (EBUSY) with nothing
    /// changed when anything else sits on the base or on one of those ioband bdevs.
    pub fn delete_base(&self, name: &str, product: Option<&str>) -> Result<(), IobandError> {
        let bdev = self.bdevs.borrow().get(name)?;
        if product.is_some_and(|p| p != bdev.product_name()) {
            return Err(BdevError::NotFound(name.to_owned()).into());
        }
        let over = self.ioband.borrow().devices_on(name);
        {
            let registry = self.bdevs.borrow();
            let busy = |bdev: &str, by: String| BdevError::Busy {
                bdev: bdev.to_owned(),
                by,
            };
            if let Some(by) = registry
                .claimers(name)
                .into_iter()
                .find(|c| !over.contains(c))
            {
                return Err(busy(name, by).into());
            }
            for vbdev in &over {
                if let Some(by) = registry.claimers(vbdev).into_iter().next() {
                    return Err(busy(vbdev, by).into());
                }
            }
        }
        {
            let mut registry = self.bdevs.borrow_mut();
            let mut module = self.ioband.borrow_mut();
            for vbdev in over {
                module.base_removed(&mut registry, &vbdev)?;
            }
        }
        self.bdevs.borrow_mut().unregister(name)?;
        Ok(())
    }

    /// Creates an ioband bdev.
    pub fn create_ioband(
        &self,
        name: &str,
        base: &str,
        share: &str,
        params: Option<ShareParams>,
    ) -> Result<IobandBdev, IobandError> {
        self.create_ioband_bound(name, base, share, params, None)
    }

    /// Creates an ioband bdev bound to group `bound` when given (see the engine's bound
    /// groups): its I/O whose front-end tag has no group attached to it counts there.
    pub fn create_ioband_bound(
        &self,
        name: &str,
        base: &str,
        share: &str,
        params: Option<ShareParams>,
        bound: Option<&GroupKey>,
    ) -> Result<IobandBdev, IobandError> {
        let mut registry = self.bdevs.borrow_mut();
        self.ioband
            .borrow_mut()
            .create(&mut registry, name, base, share, params, bound)
    }

    /// Creates an ioband device whose base does not exist yet: its bdev comes when a bdev
    /// of that name is registered (see [`App::register`]).
    pub fn create_ioband_waiting(
        &self,
        name: &str,
        base: &str,
        share: &str,
        params: Option<ShareParams>,
        bound: Option<&GroupKey>,
    ) -> Result<(), IobandError> {
        let registry = self.bdevs.borrow();
        self.ioband
            .borrow_mut()
            .create_waiting(&registry, name, base, share, params, bound)
    }

    /// Deletes an ioband bdev.
    pub fn delete_ioband(&self, name: &str) -> Result<(), IobandError> {
        let mut registry = self.bdevs.borrow_mut();
        self.ioband.borrow_mut().delete(&mut registry, name)
    }

    /// A bdev by name.
    pub fn bdev(&self, name: &str) -> Result<BdevRef, BdevError> {
        self.bdevs.borrow().get(name)
    }
}
