//! Taking an app's output onto the host. The app is hostile: whatever it wrote in
//! `/iexec_out` (setuid copies of a shell, files of another owner, links out of the folder,
//! sparse files far larger than the space they use, names that are not text) must reach the
//! host as plain data that no local user can turn into privileges, within the output cap.
//!
//! - With root (the normal case for a node), `/iexec_out` is a tmpfs of exactly the cap, and
//!   what the app left there is copied into fresh files pew creates itself ([`copy_tree`]):
//!   owned by pew, mode 0644 (folders 0755), never a set-id or sticky bit.
//! - Without root, `/iexec_out` is the host folder itself, and the same rules are applied in
//!   place ([`sanitize_in_place`]).
//!
//! Either way the total counts apparent sizes, so ten sparse 99 MB files are refused before a
//! byte is copied, and the task folder above is private (0700), so no other user reaches the
//! output at all.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every output file on the host, whatever the app set.
pub const FILE_MODE: u32 = 0o644;
/// The mode of every output folder on the host.
pub const DIR_MODE: u32 = 0o755;

/// Total apparent size (the length a reader sees, holes included) of the regular files under
/// `dir`, without following links. Stops counting once past `stop_after`, so a folder with a
/// million entries is not walked to its end to learn that it is too big.
pub fn apparent_size(dir: &Path, stop_after: u64) -> u64 {
    let mut total: u64 = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                // A folder entry costs a little too: a million empty files are not free.
                total = total.saturating_add(meta.len().max(1));
                if total > stop_after {
                    return total;
                }
            }
        }
    }
    total
}

/// How a path inside `/iexec_out` is shown in messages: relative, quoted.
fn shown(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    crate::text::quote(&format!("/iexec_out/{}", relative.to_string_lossy()))
}

/// Why an output cannot be used, checked on every entry: only folders and regular files of
/// their own (no links), with names that are text (the digest sorts names as UTF-16 and the
/// archive stores them as UTF-8: two names that differ only in invalid bytes would become
/// the same name).
fn refuse_entry(root: &Path, path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let shown = || shown(root, path);
    if path.file_name().is_some_and(|name| name.to_str().is_none()) {
        return Err(format!(
            "{} has a file name that is not UTF-8 text: results may only hold UTF-8 names",
            shown()
        ));
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(format!(
            "{} is a symbolic link: results may only hold regular files and folders",
            shown()
        ));
    }
    if !kind.is_dir() && !kind.is_file() {
        return Err(format!(
            "{} is a device, FIFO or socket: results may only hold regular files and folders",
            shown()
        ));
    }
    if kind.is_file() && meta.nlink() > 1 {
        return Err(format!(
            "{} is a hard link: results may only hold files of their own",
            shown()
        ));
    }
    Ok(())
}

/// Checks a whole output tree against the entry rules (see [`copy_tree`]), without changing it.
pub fn check_tree(dir: &Path) -> Result<(), String> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let entries = fs::read_dir(&path).map_err(|e| format!("{}: {e}", shown(dir, &path)))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", shown(dir, &path)))?;
            let child = entry.path();
            let meta = child
                .symlink_metadata()
                .map_err(|e| format!("{}: {e}", shown(dir, &child)))?;
            refuse_entry(dir, &child, &meta)?;
            if meta.is_dir() {
                stack.push(child);
            }
        }
    }
    Ok(())
}

/// Copies an app's output from `from` to a new folder `to`, into files pew creates (mode
/// [`FILE_MODE`], folders [`DIR_MODE`], owned by pew), writing at most `budget` bytes in all.
/// Refuses links, special files and names that are not text, before copying anything.
pub fn copy_tree(from: &Path, to: &Path, budget: u64) -> Result<(), String> {
    check_tree(from)?;
    let mut left = budget;
    copy_dir(from, from, to, &mut left)
}

fn copy_dir(root: &Path, from: &Path, to: &Path, left: &mut u64) -> Result<(), String> {
    make_dir(to)?;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", shown(root, from)))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = source
            .symlink_metadata()
            .map_err(|e| format!("{}: {e}", shown(root, &source)))?;
        // Checked again: the app is stopped, but the rules hold for what is copied, not for
        // what was looked at a moment ago.
        refuse_entry(root, &source, &meta)?;
        if meta.is_dir() {
            copy_dir(root, &source, &target, left)?;
        } else {
            copy_file(root, &source, &target, left)?;
        }
    }
    Ok(())
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    // Whatever the umask: a fixed, plain mode.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn copy_file(root: &Path, source: &Path, target: &Path, left: &mut u64) -> Result<(), String> {
    let mut input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(source)
        .map_err(|e| format!("{}: {e}", shown(root, source)))?;
    let mut output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = input
            .read(&mut buffer)
            .map_err(|e| format!("{}: {e}", shown(root, source)))?;
        if read == 0 {
            break;
        }
        if read as u64 > *left {
            return Err(over_cap());
        }
        *left -= read as u64;
        output
            .write_all(&buffer[..read])
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    fs::set_permissions(target, fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| format!("{}: {e}", target.display()))
}

fn over_cap() -> String {
    "the output grew past its cap while it was copied".to_string()
}

/// Applies the output rules to a folder the app wrote in directly (pew without root): every
/// entry must be a folder or a regular file of its own with a text name, and is made pew's
/// with a plain mode ([`FILE_MODE`], [`DIR_MODE`]). An entry of another owner is made pew's
/// when pew may (root), else refused: pew could neither clean it nor vouch for it.
pub fn sanitize_in_place(dir: &Path) -> Result<(), String> {
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let entries = fs::read_dir(&path).map_err(|e| format!("{}: {e}", shown(dir, &path)))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", shown(dir, &path)))?;
            let child = entry.path();
            let meta = child
                .symlink_metadata()
                .map_err(|e| format!("{}: {e}", shown(dir, &child)))?;
            refuse_entry(dir, &child, &meta)?;
            if meta.uid() != uid || meta.gid() != gid {
                if uid != 0 {
                    return Err(format!(
                        "{} belongs to uid {}, not to pew (uid {uid}): run apps as pew's own user (executor.user = \"\")",
                        shown(dir, &child),
                        meta.uid()
                    ));
                }
                std::os::unix::fs::lchown(&child, Some(uid), Some(gid))
                    .map_err(|e| format!("{}: {e}", shown(dir, &child)))?;
            }
            let mode = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
            fs::set_permissions(&child, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", shown(dir, &child)))?;
            if meta.is_dir() {
                stack.push(child);
            }
        }
    }
    Ok(())
}

/// Empties a refused output folder at once: a refused run's data has no use, and may be large.
pub fn discard(dir: &Path) {
    if let Err(error) = fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(folder = %dir.display(), %error, "a refused output could not be removed");
    }
    let _ = make_dir(dir);
}

/// A tmpfs of exactly the output cap, mounted next to the output folder for one run: the
/// kernel refuses every byte past the cap, so a full disk is impossible. Mounted `nosuid` and
/// `nodev`, writable by any uid (the app's user may be the image's own): the folder above it
/// is private to pew, so only the app's container reaches it.
pub struct OutputTmpfs {
    /// Where it is mounted.
    pub dir: PathBuf,
    cap: u64,
}

impl OutputTmpfs {
    /// Mounts the tmpfs for `output_dir` (at `output_dir.tmpfs`).
    pub fn mount(output_dir: &Path, cap: u64) -> Result<Self, String> {
        let dir = output_dir.with_extension("tmpfs");
        unmount(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let options = format!("size={cap},mode=0777");
        let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        let c_options = std::ffi::CString::new(options).map_err(|e| e.to_string())?;
        // SAFETY: mount(2) with valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c_dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c_options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mount tmpfs on {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self { dir, cap })
    }

    /// Whether the app filled the whole cap (its writes then failed).
    pub fn full(&self) -> bool {
        crate::executor::cache::free_bytes(&self.dir) < 64 * 1024
            || apparent_size(&self.dir, self.cap) >= self.cap
    }
}

impl Drop for OutputTmpfs {
    fn drop(&mut self) {
        unmount(&self.dir);
    }
}

fn unmount(dir: &Path) {
    if let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2(2) on a path we own; failure (not mounted) is fine.
        unsafe {
            libc::umount2(c_dir.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn apparent_sizes_count_holes_and_not_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), vec![0u8; 100]).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let sparse = fs::File::create(dir.path().join("sub/sparse")).unwrap();
        sparse.set_len(99 << 20).unwrap();
        std::os::unix::fs::symlink("/usr/bin", dir.path().join("link")).unwrap();
        let size = apparent_size(dir.path(), u64::MAX);
        assert!(
            ((99 << 20) + 100..(99 << 20) + 200).contains(&size),
            "{size}"
        );
        assert!(
            apparent_size(dir.path(), 1000) > 1000,
            "stops early, still over"
        );
    }

    #[test]
    fn copies_lose_set_id_and_sticky_bits_and_get_plain_modes() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let target = to.path().join("out");
        fs::write(from.path().join("x"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(from.path().join("x"), fs::Permissions::from_mode(0o6755)).unwrap();
        fs::create_dir(from.path().join("d")).unwrap();
        fs::write(from.path().join("d/y"), b"y").unwrap();
        fs::set_permissions(from.path().join("d"), fs::Permissions::from_mode(0o1777)).unwrap();
        copy_tree(from.path(), &target, 1 << 20).unwrap();
        assert_eq!(mode(&target.join("x")), FILE_MODE);
        assert_eq!(mode(&target.join("d")), DIR_MODE);
        assert_eq!(fs::read(target.join("d/y")).unwrap(), b"y");
    }

    #[test]
    fn copies_stop_at_the_budget() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        fs::write(from.path().join("big"), vec![1u8; 10_000]).unwrap();
        let err = copy_tree(from.path(), &to.path().join("o"), 1_000).unwrap_err();
        assert!(err.contains("cap"), "{err}");
    }

    #[test]
    fn names_that_are_not_text_links_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"\xff\xfebad");
        fs::write(dir.path().join(bad), b"1").unwrap();
        let err = check_tree(dir.path()).unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
        fs::remove_file(dir.path().join(bad)).unwrap();

        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("p")).unwrap();
        assert!(
            check_tree(dir.path())
                .unwrap_err()
                .contains("symbolic link")
        );
        fs::remove_file(dir.path().join("p")).unwrap();

        fs::write(dir.path().join("a"), b"a").unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert!(check_tree(dir.path()).unwrap_err().contains("hard link"));
        fs::remove_file(dir.path().join("b")).unwrap();

        let fifo = std::ffi::CString::new(dir.path().join("f").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(check_tree(dir.path()).unwrap_err().contains("FIFO"));
    }

    #[test]
    fn sanitizing_in_place_strips_set_id_bits() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"x").unwrap();
        fs::set_permissions(dir.path().join("x"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::set_permissions(dir.path().join("d"), fs::Permissions::from_mode(0o2777)).unwrap();
        sanitize_in_place(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join("x")), FILE_MODE);
        assert_eq!(mode(&dir.path().join("d")), DIR_MODE);
    }
}
