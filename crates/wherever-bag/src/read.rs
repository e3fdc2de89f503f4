//! Where a partition comes from: a whole file (plain, gzip, bzip2 or zstd, told
//! apart by extension or, failing that, by magic bytes), a block of lines of a
//! large plain file, or elements given when the bag was built.

use crate::BagError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use wherever::partition::Partition;

/// A partition's source, as a partition task receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SourceSpec {
    /// The lines of a whole file, decompressed.
    File {
        /// The file.
        path: String,
    },
    /// The lines that start in bytes `start..end` of a plain file: a line belongs
    /// to the block its first byte is in, so none is split or lost at an edge.
    Block {
        /// The file.
        path: String,
        /// The block's first byte.
        start: u64,
        /// One past the block's last byte.
        end: u64,
    },
    /// Elements given when the bag was built.
    Inline(Partition),
}

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Not compressed.
    Plain,
    /// gzip (one or more members).
    Gzip,
    /// bzip2.
    Bzip2,
    /// Zstandard.
    Zstd,
}

/// The compression of `path`: by its extension, else by its first bytes.
pub(crate) fn compression_of(path: &Path) -> std::io::Result<Compression> {
    let by_extension = match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Some(Compression::Gzip),
        Some("bz2") => Some(Compression::Bzip2),
        Some("zst") => Some(Compression::Zstd),
        _ => None,
    };
    if let Some(compression) = by_extension {
        return Ok(compression);
    }
    let mut magic = [0u8; 4];
    let mut file = File::open(path)?;
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(match &magic[..got] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::Plain,
    })
}

/// Reads a partition from its source; an error names the file.
pub(crate) fn read_source(source: &SourceSpec) -> Result<Partition, String> {
    match source {
        SourceSpec::Inline(partition) => Ok(partition.clone()),
        SourceSpec::File { path } => read_file(Path::new(path))
            .map(Partition::from_text)
            .map_err(|e| format!("cannot read {path}: {e}")),
        SourceSpec::Block { path, start, end } => read_block(Path::new(path), *start, *end)
            .map(Partition::from_text)
            .map_err(|e| format!("cannot read {path} (bytes {start}..{end}): {e}")),
    }
}

/// The whole content of `path`, decompressed.
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let compression = compression_of(path)?;
    let file = File::open(path)?;
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut text = Vec::new();
    match compression {
        Compression::Plain => {
            text.reserve_exact(size);
            std::io::BufReader::new(file).read_to_end(&mut text)?;
        }
        Compression::Gzip => {
            text.reserve(size.saturating_mul(4));
            let reader = std::io::BufReader::with_capacity(1 << 17, file);
            flate2::bufread::MultiGzDecoder::new(reader).read_to_end(&mut text)?;
        }
        Compression::Bzip2 => {
            text.reserve(size.saturating_mul(4));
            bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file))
                .read_to_end(&mut text)?;
        }
        Compression::Zstd => {
            text.reserve(size.saturating_mul(4));
            zstd::stream::read::Decoder::new(file)?.read_to_end(&mut text)?;
        }
    }
    Ok(text)
}

/// The lines that start in bytes `start..end` of the plain file `path`.
pub(crate) fn read_block(path: &Path, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    // From the byte before the block: a line starts at `start` exactly when that
    // byte is a newline.
    let from = start.saturating_sub(1);
    file.seek(SeekFrom::Start(from))?;
    let mut buffer = Vec::with_capacity((end - from) as usize + 1);
    (&mut file).take(end - from).read_to_end(&mut buffer)?;
    // The block's last line runs to the first newline at or after byte `end - 1`.
    let last = (end - 1 - from) as usize;
    if buffer.len() > last && buffer[last] != b'\n' {
        let mut more = [0u8; 1 << 16];
        loop {
            let n = file.read(&mut more)?;
            if n == 0 {
                break;
            }
            match memchr::memchr(b'\n', &more[..n]) {
                Some(at) => {
                    buffer.extend_from_slice(&more[..=at]);
                    break;
                }
                None => buffer.extend_from_slice(&more[..n]),
            }
        }
    }
    let begin = if start == 0 {
        0
    } else {
        match memchr::memchr(b'\n', &buffer) {
            Some(at) => at + 1,
            None => buffer.len(),
        }
    };
    buffer.drain(..begin);
    Ok(buffer)
}

/// The files matching `pattern`, sorted; an error names the pattern when none does.
pub(crate) fn expand(pattern: &str) -> Result<Vec<std::path::PathBuf>, BagError> {
    let paths = glob::glob(pattern).map_err(|e| BagError::BadPattern {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| BagError::Read {
            path: e.path().display().to_string(),
            reason: e.error().to_string(),
        })?;
        if path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(BagError::NoFiles {
            pattern: pattern.to_string(),
        });
    }
    files.sort();
    Ok(files)
}

/// The sources of the files matching `pattern`: one per compressed file, and one
/// per `block_size` bytes of a plain file.
pub(crate) fn sources(pattern: &str, block_size: u64) -> Result<Vec<SourceSpec>, BagError> {
    let mut sources = Vec::new();
    for path in expand(pattern)? {
        let read_error = |e: std::io::Error| BagError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let name = path.display().to_string();
        let size = std::fs::metadata(&path).map_err(read_error)?.len();
        if compression_of(&path).map_err(read_error)? != Compression::Plain || size <= block_size {
            sources.push(SourceSpec::File { path: name });
            continue;
        }
        let mut start = 0;
        while start < size {
            let end = (start + block_size).min(size);
            sources.push(SourceSpec::Block {
                path: name.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The lines of every block of `text` split every `block` bytes, joined.
    fn all_blocks(text: &[u8], block: u64) -> Vec<u8> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text).unwrap();
        let pattern = file.path().display().to_string();
        let mut joined = Vec::new();
        for source in sources(&pattern, block).unwrap() {
            joined.extend(read_source(&source).unwrap().data);
        }
        joined
    }

    #[test]
    fn blocks_never_split_or_lose_a_line_at_any_edge() {
        let texts: [&[u8]; 6] = [
            b"alpha\nbeta\ngamma\n",
            b"alpha\nbeta\ngamma",
            b"a\nbb\nccc\ndddd\neeeee\n",
            b"\n\n\nx\n\n",
            b"one\r\ntwo\r\nthree\r\n",
            b"a-long-line-without-any-newline-at-all",
        ];
        for text in texts {
            let whole = Partition::from_text(text.to_vec()).data;
            for block in 1..=text.len() as u64 + 1 {
                assert_eq!(
                    all_blocks(text, block),
                    whole,
                    "{:?} in blocks of {block}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn a_line_ending_exactly_at_a_block_edge_starts_the_next_block() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"abc\ndef\n").unwrap();
        assert_eq!(read_block(file.path(), 0, 4).unwrap(), b"abc\n");
        assert_eq!(read_block(file.path(), 4, 8).unwrap(), b"def\n");
        assert_eq!(read_block(file.path(), 0, 3).unwrap(), b"abc\n");
        assert_eq!(read_block(file.path(), 3, 8).unwrap(), b"def\n");
        assert_eq!(read_block(file.path(), 5, 8).unwrap(), b"");
    }

    #[test]
    fn an_empty_file_is_an_empty_partition() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let source = SourceSpec::File {
            path: file.path().display().to_string(),
        };
        assert_eq!(read_source(&source).unwrap().len(), 0);
    }

    #[test]
    fn compression_is_told_by_magic_bytes_without_an_extension() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"x y\nz\n".repeat(100);
        let gz = dir.path().join("a.data");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        encoder.write_all(&text).unwrap();
        encoder.finish().unwrap();
        let bz = dir.path().join("b.data");
        let mut encoder =
            bzip2::write::BzEncoder::new(File::create(&bz).unwrap(), Default::default());
        encoder.write_all(&text).unwrap();
        encoder.finish().unwrap();
        let zst = dir.path().join("c.data");
        std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
        for (path, compression) in [
            (gz, Compression::Gzip),
            (bz, Compression::Bzip2),
            (zst, Compression::Zstd),
        ] {
            assert_eq!(compression_of(&path).unwrap(), compression);
            let source = SourceSpec::File {
                path: path.display().to_string(),
            };
            assert_eq!(read_source(&source).unwrap().data, text);
        }
    }

    #[test]
    fn a_pattern_matching_nothing_is_an_error_naming_it() {
        let error = expand("/nonexistent-dir-for-bag/*.gz").unwrap_err();
        assert_eq!(
            error.to_string(),
            "no file matches `/nonexistent-dir-for-bag/*.gz`"
        );
        assert!(expand("[")
            .unwrap_err()
            .to_string()
            .contains("not a valid file pattern"));
    }
}
