//! What the build script learns about the SPDK it builds against: its version, for
//! messages, and the sonames of the SPDK libraries the module calls, which the load-time
//! check (`ioband_shim.c`, `check_app_spdk`) compares with the libraries the app has loaded.
//!
//! Nothing here is copied from SPDK: the version is read from the tree's
//! `include/spdk/version.h` (or its `VERSION` file), the sonames from the libraries' ELF
//! dynamic sections.

use std::fs;
use std::path::Path;

/// `MAJOR.MM.PATCH[SUFFIX]` (e.g. `25.09.0`, SPDK's own spelling) from
/// `<include>/spdk/version.h`, else from `<root>/VERSION` (an SPDK source tree).
pub fn version(include: &Path, root: Option<&Path>) -> Option<String> {
    if let Ok(text) = fs::read_to_string(include.join("spdk/version.h")) {
        let field = |name: &str| -> Option<String> {
            let key = format!("SPDK_VERSION_{name}");
            text.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(key.as_str()))
                    .then(|| words.collect::<Vec<_>>().join(" "))
            })
        };
        let num = |name: &str| field(name)?.parse::<u32>().ok();
        if let (Some(major), Some(minor), Some(patch)) = (num("MAJOR"), num("MINOR"), num("PATCH"))
        {
            let suffix = field("SUFFIX").unwrap_or_default();
            return Some(format!(
                "{major}.{minor:02}.{patch}{}",
                suffix.trim_matches('"')
            ));
        }
    }
    let text = fs::read_to_string(root?.join("VERSION")).ok()?;
    let text = text.trim();
    (!text.is_empty() && !text.contains(char::is_whitespace)).then(|| text.to_owned())
}

/// The `DT_SONAME` of a 64-bit little-endian ELF shared library (following symlinks).
pub fn soname(path: &Path) -> Option<String> {
    let elf = fs::read(path).ok()?;
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    // ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28)?, usize::from(u16_at(0x3a)?), u16_at(0x3c)?);
    let section = |i: usize| -> Option<(u32, usize, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        // (sh_type, sh_offset, sh_size, sh_link)
        Some((
            u32_at(at + 4)?,
            u64_at(at + 0x18)?,
            u64_at(at + 0x20)?,
            usize::try_from(u32_at(at + 0x28)?).ok()?,
        ))
    };
    const SHT_DYNAMIC: u32 = 6;
    const DT_SONAME: usize = 14;
    let (_, dyn_off, dyn_size, strtab) = (0..usize::from(shnum))
        .filter_map(section)
        .find(|s| s.0 == SHT_DYNAMIC)?;
    let (_, str_off, str_size, _) = section(strtab)?;
    let strings = elf.get(str_off..str_off.checked_add(str_size)?)?;
    (0..dyn_size / 16).find_map(|i| {
        let at = dyn_off + i * 16;
        if u64_at(at)? != DT_SONAME {
            return None;
        }
        let name = strings.get(u64_at(at + 8)?..)?;
        let end = name.iter().position(|&b| b == 0)?;
        String::from_utf8(name[..end].to_vec()).ok()
    })
}
