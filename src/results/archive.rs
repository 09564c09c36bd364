//! The result archive: a zip of the output folder with entry names relative to it (no top
//! folder), as iExec's post-compute builds it (PROTOCOL.md §7.4). Building refuses symlinks;
//! extracting refuses entries that would land outside the target folder, symlinks, and more
//! than a size cap, so a hostile archive cannot touch anything else on disk.

use std::fs;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

/// Why an archive could not be built or extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The output folder holds a symlink.
    #[error("{0} is a symbolic link: results may only hold regular files and folders")]
    Symlink(PathBuf),
    /// An entry would be written outside the target folder, or is not a plain file/folder.
    #[error("archive entry `{0}` is unsafe (absolute, `..`, or a link): refusing the archive")]
    UnsafeEntry(String),
    /// A file name that is not UTF-8 (two such names can become the same entry name).
    #[error("{0} has a file name that is not UTF-8 text: results may only hold UTF-8 names")]
    NotText(PathBuf),
    /// The archive expands beyond the cap.
    #[error("the archive expands to more than {0} bytes: refusing it")]
    TooLarge(u64),
    /// Not a zip archive.
    #[error("not a zip archive: {0}")]
    Zip(String),
    /// A file system error.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ArchiveError + '_ {
    move |e| ArchiveError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn zip_error(e: zip::result::ZipError) -> ArchiveError {
    ArchiveError::Zip(e.to_string())
}

/// Zips the contents of `dir` (entries relative to it, sorted, deterministic timestamps).
pub fn build(dir: &Path) -> Result<Vec<u8>, ArchiveError> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    add_dir(&mut writer, dir, Path::new(""), options)?;
    let cursor = writer.finish().map_err(zip_error)?;
    Ok(cursor.into_inner())
}

fn add_dir(
    writer: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
    root: &Path,
    relative: &Path,
    options: SimpleFileOptions,
) -> Result<(), ArchiveError> {
    let dir = root.join(relative);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(io(&dir))?
        .collect::<Result<_, _>>()
        .map_err(io(&dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        let name_path = relative.join(entry.file_name());
        let Some(name) = name_path.to_str().map(str::to_string) else {
            return Err(ArchiveError::NotText(path));
        };
        if meta.file_type().is_symlink() {
            return Err(ArchiveError::Symlink(path));
        } else if meta.is_dir() {
            writer
                .add_directory(format!("{name}/"), options)
                .map_err(zip_error)?;
            add_dir(writer, root, &name_path, options)?;
        } else if meta.is_file() {
            writer.start_file(name, options).map_err(zip_error)?;
            let mut file = fs::File::open(&path).map_err(io(&path))?;
            std::io::copy(&mut file, writer).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Extracts `archive` into `target` (created if needed), writing at most `max_bytes`.
pub fn extract(archive: &[u8], target: &Path, max_bytes: u64) -> Result<(), ArchiveError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).map_err(zip_error)?;
    fs::create_dir_all(target).map_err(io(target))?;
    let mut written = 0u64;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(zip_error)?;
        let name = entry.name().map_err(zip_error)?.to_string();
        let relative = entry
            .enclosed_name()
            .ok_or_else(|| ArchiveError::UnsafeEntry(name.clone()))?;
        if entry.is_symlink() {
            return Err(ArchiveError::UnsafeEntry(name));
        }
        let path = target.join(relative);
        if entry.is_dir() {
            fs::create_dir_all(&path).map_err(io(&path))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = fs::File::create(&path).map_err(io(&path))?;
        let mut buffer = [0u8; 1 << 16];
        loop {
            let read = entry.read(&mut buffer).map_err(io(&path))?;
            if read == 0 {
                break;
            }
            written += read as u64;
            if written > max_bytes {
                return Err(ArchiveError::TooLarge(max_bytes));
            }
            out.write_all(&buffer[..read]).map_err(io(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_round_trips_the_folder() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("computed.json"), "{}").unwrap();
        fs::create_dir(src.path().join("out")).unwrap();
        fs::write(src.path().join("out").join("a.txt"), "A").unwrap();
        let bytes = build(src.path()).unwrap();
        let dst = tempfile::tempdir().unwrap();
        extract(&bytes, dst.path(), 1 << 20).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("out/a.txt")).unwrap(),
            "A"
        );
        assert_eq!(
            fs::read_to_string(dst.path().join("computed.json")).unwrap(),
            "{}"
        );
        assert_eq!(build(src.path()).unwrap(), bytes, "deterministic");
    }

    #[test]
    fn names_that_are_not_text_are_refused_not_merged() {
        use std::os::unix::ffi::OsStrExt;
        let src = tempfile::tempdir().unwrap();
        for name in [&b"\xff\xfebad"[..], &b"\xfd\xfcbad"[..]] {
            fs::write(src.path().join(std::ffi::OsStr::from_bytes(name)), "x").unwrap();
        }
        assert!(matches!(build(src.path()), Err(ArchiveError::NotText(_))));
    }

    #[test]
    fn building_refuses_symlinks() {
        let src = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("leak")).unwrap();
        assert!(matches!(build(src.path()), Err(ArchiveError::Symlink(_))));
    }

    #[test]
    fn extracting_refuses_escapes_and_bombs() {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .start_file("../evil.txt", SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"x").unwrap();
        let evil = writer.finish().unwrap().into_inner();
        let dst = tempfile::tempdir().unwrap();
        assert!(matches!(
            extract(&evil, &dst.path().join("t"), 1 << 20),
            Err(ArchiveError::UnsafeEntry(_))
        ));
        assert!(!dst.path().join("evil.txt").exists());

        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("big"), vec![0u8; 10_000]).unwrap();
        let bytes = build(src.path()).unwrap();
        assert!(matches!(
            extract(&bytes, dst.path(), 1_000),
            Err(ArchiveError::TooLarge(1_000))
        ));
        assert!(extract(b"not a zip", dst.path(), 1_000).is_err());
    }
}
