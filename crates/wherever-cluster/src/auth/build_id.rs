//! The build id of an executable, computed once and cheaply: the linker's ELF
//! `.note.gnu.build-id`, read from a few pages at the start of the file (ELF
//! header, program headers, `PT_NOTE` segments); when the file has none (or is not
//! ELF, or lies about its offsets), the SHA-256 of the whole file, cached under
//! `~/.cache/wherever/build-ids/` by (device, inode, size, modification time) so
//! that it is computed once per file, not by every worker at every start.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The most bytes read for the program headers or for one note segment: a real
/// executable needs a few hundred; more means the header lies.
const MAX_READ: u64 = 64 << 10;

/// The most program headers looked at.
const MAX_PROGRAM_HEADERS: usize = 256;

/// `PT_NOTE`: a program header pointing at notes.
const PT_NOTE: u32 = 4;

/// `NT_GNU_BUILD_ID`: the note type of the linker's build id.
const NT_GNU_BUILD_ID: u32 = 3;

/// The 8-byte build id of the file at `path` (see the [module documentation](self)),
/// or `None` when the file cannot be read at all.
pub fn build_hash_of(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let read_at = |offset: u64, len: usize| read_range(&file, offset, len);
    if let Some(id) = gnu_build_id(read_at) {
        return Some(hash_of_build_id(&id));
    }
    Some(cached_file_hash(path, &file))
}

/// The 8 bytes standing for a linker build id (hashed, so ids of any length map
/// evenly, and never equal a whole-file hash by accident).
pub fn hash_of_build_id(id: &[u8]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"gnu-build-id:");
    hasher.update(id);
    first_eight(&hasher.finalize())
}

/// The first 8 bytes of the SHA-256 of the whole file: the fallback (and what
/// every handshake computed before build ids).
pub fn whole_file_hash(file: &File) -> std::io::Result<u64> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::io::BufReader::new(file), &mut hasher)?;
    Ok(first_eight(&hasher.finalize()))
}

fn first_eight(digest: &[u8]) -> u64 {
    u64::from_le_bytes(digest[..8].try_into().expect("a digest has 8 bytes"))
}

/// `len` bytes at `offset` of `file`, or `None` past its end or on an error.
fn read_range(file: &File, offset: u64, len: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, offset).ok()?;
    Some(bytes)
}

/// The descriptor of the `NT_GNU_BUILD_ID` note of an ELF file read through
/// `read_at(offset, len)`, or `None` if there is none or the headers are malformed
/// (every offset and size is checked; nothing larger than 64 KiB is read).
pub fn gnu_build_id(read_at: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let ident = read_at(0, 16)?;
    if ident[..4] != *b"\x7fELF" {
        return None;
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let endian = match ident[5] {
        1 => Endian::Little,
        2 => Endian::Big,
        _ => return None,
    };
    let header = read_at(0, if wide { 64 } else { 52 })?;
    let (phoff, phentsize, phnum) = if wide {
        (
            endian.u64(&header, 0x20)?,
            endian.u16(&header, 0x36)?,
            endian.u16(&header, 0x38)?,
        )
    } else {
        (
            u64::from(endian.u32(&header, 0x1c)?),
            endian.u16(&header, 0x2a)?,
            endian.u16(&header, 0x2c)?,
        )
    };
    let entry = usize::from(phentsize);
    let minimum = if wide { 56 } else { 32 };
    let count = usize::from(phnum);
    if entry < minimum || count == 0 || count > MAX_PROGRAM_HEADERS {
        return None;
    }
    let table_len = entry.checked_mul(count)?;
    if table_len as u64 > MAX_READ {
        return None;
    }
    let table = read_at(phoff, table_len)?;
    for index in 0..count {
        let at = index * entry;
        if endian.u32(&table, at)? != PT_NOTE {
            continue;
        }
        let (offset, size) = if wide {
            (endian.u64(&table, at + 8)?, endian.u64(&table, at + 32)?)
        } else {
            (
                u64::from(endian.u32(&table, at + 4)?),
                u64::from(endian.u32(&table, at + 16)?),
            )
        };
        if size == 0 || size > MAX_READ {
            continue;
        }
        let Some(notes) = read_at(offset, size as usize) else {
            continue;
        };
        if let Some(id) = find_build_id(&notes, endian) {
            return Some(id);
        }
    }
    None
}

/// The build id among the notes in `notes`, if any.
fn find_build_id(notes: &[u8], endian: Endian) -> Option<Vec<u8>> {
    let mut at = 0usize;
    while at.checked_add(12)? <= notes.len() {
        let name_size = endian.u32(notes, at)? as usize;
        let desc_size = endian.u32(notes, at + 4)? as usize;
        let kind = endian.u32(notes, at + 8)?;
        let name_start = at + 12;
        let desc_start = name_start.checked_add(align4(name_size)?)?;
        let next = desc_start.checked_add(align4(desc_size)?)?;
        let name = notes.get(name_start..name_start.checked_add(name_size)?)?;
        let desc = notes.get(desc_start..desc_start.checked_add(desc_size)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        at = next;
    }
    None
}

fn align4(size: usize) -> Option<usize> {
    Some(size.checked_add(3)? & !3)
}

/// The byte order of an ELF file.
#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn bytes<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
        bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw = Self::bytes::<2>(bytes, at)?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(raw),
            Endian::Big => u16::from_be_bytes(raw),
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw = Self::bytes::<4>(bytes, at)?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    fn u64(self, bytes: &[u8], at: usize) -> Option<u64> {
        let raw = Self::bytes::<8>(bytes, at)?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(raw),
            Endian::Big => u64::from_be_bytes(raw),
        })
    }
}

/// The whole-file hash of `file` (at `path`), from the cache when a previous run
/// stored it for the same (device, inode, size, modification time); computed and
/// stored otherwise. A cache that cannot be read or written only costs the hash.
fn cached_file_hash(path: &Path, file: &File) -> u64 {
    let entry = file.metadata().ok().and_then(|m| cache_entry(&m));
    if let Some(cached) = entry
        .as_ref()
        .and_then(|entry| std::fs::read_to_string(entry).ok())
        .and_then(|text| u64::from_str_radix(text.trim(), 16).ok())
    {
        return cached;
    }
    let hash = match whole_file_hash(file) {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!("cannot hash {}: {error}", path.display());
            return 0;
        }
    };
    if let Some(entry) = entry {
        store(&entry, hash);
    }
    hash
}

/// The cache file for a file with `metadata`, under [`cache_dir`].
fn cache_entry(metadata: &std::fs::Metadata) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let name = format!(
        "{:x}-{:x}-{:x}-{}.{}",
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec()
    );
    Some(cache_dir()?.join(name))
}

/// `$XDG_CACHE_HOME/wherever/build-ids`, else `~/.cache/wherever/build-ids`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wherever").join("build-ids"))
}

/// Writes `hash` to `entry` through a temporary file and a rename, so a reader
/// never sees half an entry; failures are ignored (the cache is an optimisation).
fn store(entry: &Path, hash: u64) {
    let Some(dir) = entry.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let temporary = dir.join(format!(".tmp-{}", std::process::id()));
    if std::fs::write(&temporary, format!("{hash:016x}\n")).is_ok()
        && std::fs::rename(&temporary, entry).is_err()
    {
        let _ = std::fs::remove_file(&temporary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_at` over bytes in memory.
    fn reader(bytes: &[u8]) -> impl Fn(u64, usize) -> Option<Vec<u8>> + '_ {
        move |offset, len| {
            let start = usize::try_from(offset).ok()?;
            bytes
                .get(start..start.checked_add(len)?)
                .map(<[u8]>::to_vec)
        }
    }

    /// A minimal 64-bit little-endian ELF file: header, one `PT_NOTE` program
    /// header and a build-id note with `id`.
    fn elf64(id: &[u8]) -> Vec<u8> {
        let mut file = vec![0u8; 64];
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2;
        file[5] = 1;
        file[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        file[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        file[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let note_offset = 64 + 56;
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&(id.len() as u32).to_le_bytes());
        note.extend_from_slice(&NT_GNU_BUILD_ID.to_le_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(id);
        while note.len() % 4 != 0 {
            note.push(0);
        }
        let mut header = vec![0u8; 56];
        header[..4].copy_from_slice(&PT_NOTE.to_le_bytes());
        header[8..16].copy_from_slice(&(note_offset as u64).to_le_bytes());
        header[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        file.extend_from_slice(&header);
        file.extend_from_slice(&note);
        file
    }

    #[test]
    fn the_build_id_of_a_crafted_elf_file_is_found() {
        let id = [0xab; 20];
        assert_eq!(gnu_build_id(reader(&elf64(&id))), Some(id.to_vec()));
    }

    #[test]
    fn this_test_executable_has_a_linker_build_id() {
        let exe = std::env::current_exe().unwrap();
        let file = File::open(&exe).unwrap();
        let id = gnu_build_id(|offset, len| read_range(&file, offset, len));
        assert!(
            id.as_ref().is_some_and(|id| id.len() >= 8),
            "no build id in {}: {id:?}",
            exe.display()
        );
    }

    #[test]
    fn truncated_elf_files_give_no_build_id_and_no_panic() {
        let file = elf64(&[7; 20]);
        for len in 0..file.len() {
            assert_eq!(gnu_build_id(reader(&file[..len])), None, "{len} bytes");
        }
    }

    #[test]
    fn lying_offsets_and_sizes_give_no_build_id_and_no_panic() {
        let good = elf64(&[7; 20]);
        let patches: Vec<(usize, Vec<u8>)> = vec![
            (0x20, u64::MAX.to_le_bytes().to_vec()), // e_phoff past the end
            (0x20, (u64::MAX - 10).to_le_bytes().to_vec()), // e_phoff + len overflows
            (0x36, 0u16.to_le_bytes().to_vec()),     // e_phentsize 0
            (0x36, 3u16.to_le_bytes().to_vec()),     // e_phentsize too small
            (0x38, u16::MAX.to_le_bytes().to_vec()), // e_phnum huge
            (64 + 8, u64::MAX.to_le_bytes().to_vec()), // p_offset past the end
            (64 + 32, u64::MAX.to_le_bytes().to_vec()), // p_filesz huge
            (64 + 32, 5u64.to_le_bytes().to_vec()),  // p_filesz cuts the note
            (120, u32::MAX.to_le_bytes().to_vec()),  // namesz huge
            (124, u32::MAX.to_le_bytes().to_vec()),  // descsz huge
            (124, 1000u32.to_le_bytes().to_vec()),   // descsz past the segment
            (4, vec![9]),                            // unknown class
            (5, vec![9]),                            // unknown byte order
            (0, b"\x7fELG".to_vec()),                // not ELF
        ];
        for (at, bytes) in patches {
            let mut bad = good.clone();
            bad[at..at + bytes.len()].copy_from_slice(&bytes);
            assert_eq!(gnu_build_id(reader(&bad)), None, "patch at {at:#x}");
        }
        assert_eq!(gnu_build_id(reader(&[0xff; 4096])), None);
    }

    #[test]
    fn a_file_without_a_note_falls_back_to_its_cached_whole_file_hash() {
        let dir = std::env::temp_dir().join(format!("wherever-build-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("script.sh");
        std::fs::write(&path, b"#!/bin/sh\necho not elf\n").unwrap();
        let file = File::open(&path).unwrap();
        let expected = whole_file_hash(&file).unwrap();
        assert_eq!(build_hash_of(&path), Some(expected));
        // A second call finds the cached entry (written as hex, read back the same).
        assert_eq!(build_hash_of(&path), Some(expected));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn build_ids_and_whole_file_hashes_differ_by_construction() {
        assert_ne!(hash_of_build_id(&[1; 20]), hash_of_build_id(&[2; 20]));
    }

    /// Measures `build_hash_of` (a build-id read) against the whole-file SHA-256
    /// the handshake used to compute, on a 100 MB copy of this executable (run with
    /// `--ignored --nocapture`; it prints the times and asserts nothing on them).
    #[test]
    #[ignore]
    fn measure_build_id_against_whole_file_hash_on_100_mb() {
        let dir = std::env::temp_dir().join(format!("wherever-build-100mb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        bytes.resize(100 << 20, 0x5a);
        std::fs::write(&path, &bytes).unwrap();
        let start = std::time::Instant::now();
        let id = build_hash_of(&path);
        let by_id = start.elapsed();
        let start = std::time::Instant::now();
        let whole = whole_file_hash(&File::open(&path).unwrap()).unwrap();
        let by_hash = start.elapsed();
        println!("build id {id:?} in {by_id:?}; whole-file SHA-256 {whole:x} in {by_hash:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
