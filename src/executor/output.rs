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

/// What every entry costs against the cap at least: a folder or an empty file is a block on
/// disk, so a million of them are not free.
pub const ENTRY_COST: u64 = 4096;
/// The deepest an output may nest (deeper trees could hide from path-based walks and would
/// recurse without end in the copy and the archive).
pub const MAX_DEPTH: usize = 32;

/// What an output costs against its cap: the apparent size (the length a reader sees, holes
/// included) of every file, and at least [`ENTRY_COST`] for each entry, folders included,
/// without following links. Counting stops once past `stop_after`. It fails closed: a folder
/// that cannot be read (an app can `chmod` its own folders), or a tree deeper than
/// [`MAX_DEPTH`], counts as `u64::MAX`, so what cannot be seen is never taken as small.
pub fn apparent_size(dir: &Path, stop_after: u64) -> u64 {
    let mut total: u64 = 0;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return u64::MAX;
        }
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth > 0 => continue,
            Err(_) => return u64::MAX,
        };
        for entry in entries {
            let Ok(entry) = entry else {
                return u64::MAX;
            };
            let meta = match entry.path().symlink_metadata() {
                Ok(meta) => meta,
                // Removed between the listing and now: it costs nothing any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => return u64::MAX,
            };
            let cost = if meta.is_dir() {
                stack.push((entry.path(), depth + 1));
                ENTRY_COST
            } else {
                meta.len().max(ENTRY_COST)
            };
            total = total.saturating_add(cost);
            if total > stop_after {
                return total;
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
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(format!(
                "{} nests folders deeper than {MAX_DEPTH} levels: refused",
                shown(dir, &path)
            ));
        }
        let entries = fs::read_dir(&path).map_err(|e| format!("{}: {e}", shown(dir, &path)))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", shown(dir, &path)))?;
            let child = entry.path();
            let meta = child
                .symlink_metadata()
                .map_err(|e| format!("{}: {e}", shown(dir, &child)))?;
            refuse_entry(dir, &child, &meta)?;
            if meta.is_dir() {
                stack.push((child, depth + 1));
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
    // An app running as pew's own user can take the permissions off its folders: give them
    // back first, or the data would stay on disk for good.
    reopen_folders(dir);
    if let Err(error) = fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(folder = %dir.display(), %error, "a refused output could not be removed");
    }
    let _ = make_dir(dir);
}

/// Gives back owner `rwx` on every folder under `dir` that pew owns (an app running as pew's
/// user may have taken it away), so the tree can be removed. Walks by directory descriptors:
/// no path grows, so no depth hides a folder, and no link is followed.
pub fn reopen_folders(dir: &Path) {
    use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let open = |parent: &rustix::fd::OwnedFd, name: &std::ffi::CStr| {
        rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let reopen_if_folder = |fd: &rustix::fd::OwnedFd, name: &std::ffi::CStr| -> bool {
        match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
                if stat.st_uid == uid || uid == 0 {
                    let mode = Mode::from_raw_mode(stat.st_mode) | Mode::RWXU;
                    let _ = rustix::fs::chmodat(fd, name, mode, AtFlags::empty());
                }
                true
            }
            _ => false,
        }
    };
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    let _ = rustix::fs::chmodat(
        CWD,
        path.as_c_str(),
        Mode::RWXU | Mode::RGRP | Mode::XGRP | Mode::ROTH | Mode::XOTH,
        AtFlags::empty(),
    );
    let Ok(root) = rustix::fs::openat(
        CWD,
        path.as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    // Pending folders as (open parent, name): a folder is opened only when its turn comes, so
    // a wide folder holds one descriptor, not one per child.
    let root = std::rc::Rc::new(root);
    let mut stack: Vec<(std::rc::Rc<rustix::fd::OwnedFd>, Option<std::ffi::CString>)> =
        vec![(root, None)];
    while let Some((parent, name)) = stack.pop() {
        let fd = match name {
            None => parent,
            Some(name) => match open(&parent, name.as_c_str()) {
                Ok(fd) => std::rc::Rc::new(fd),
                Err(_) => continue,
            },
        };
        let Ok(mut listing) = Dir::read_from(&*fd) else {
            continue;
        };
        while let Some(Ok(entry)) = listing.read() {
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            if reopen_if_folder(&fd, name) {
                stack.push((fd.clone(), Some(name.to_owned())));
            }
        }
    }
}

/// Whether the output cap can be a tmpfs the engine sees: pew must be able to mount (root with
/// the capability: a hardened unit or a container may remove it) and must share the mount
/// namespace of the system (a tmpfs mounted in a private namespace, as systemd's
/// `ProtectSystem=` makes, is invisible to the engine, and the app would write past it). Tried
/// once, with a probe mount in `work_dir`; otherwise the cap is watched.
pub fn kernel_cap_available(work_dir: &Path) -> bool {
    if !crate::executor::run::running_as_root() {
        return false;
    }
    let own = fs::read_link("/proc/self/ns/mnt");
    let system = fs::read_link("/proc/1/ns/mnt");
    if !matches!((&own, &system), (Ok(a), Ok(b)) if a == b) {
        tracing::warn!(
            "pew runs in a mount namespace of its own: the output cap is watched, not enforced by a tmpfs"
        );
        return false;
    }
    let probe = work_dir.join(".pew-mount-probe");
    if crate::files::private_dir(work_dir).is_err() {
        return false;
    }
    match OutputTmpfs::mount(&probe, 64 * 1024) {
        Ok(mounted) => {
            drop(mounted);
            true
        }
        Err(reason) => {
            tracing::warn!(%reason, "the output tmpfs cannot be mounted: the output cap is watched instead");
            false
        }
    }
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
        // Inodes bounded too: tmpfs `size` counts data pages only, and empty folders use none.
        let inodes = (cap / ENTRY_COST).clamp(64, 1_000_000);
        let options = format!("size={cap},nr_inodes={inodes},mode=0777");
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
    fn apparent_sizes_count_holes_entries_and_not_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), vec![0u8; 100]).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let sparse = fs::File::create(dir.path().join("sub/sparse")).unwrap();
        sparse.set_len(99 << 20).unwrap();
        std::os::unix::fs::symlink("/usr/bin", dir.path().join("link")).unwrap();
        let size = apparent_size(dir.path(), u64::MAX);
        // the sparse file, and a block each for the small file, the folder and the link
        assert_eq!(size, (99 << 20) + 3 * ENTRY_COST);
        assert!(
            apparent_size(dir.path(), 1000) > 1000,
            "stops early, still over"
        );
    }

    #[test]
    fn empty_folders_and_deep_trees_are_not_free() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..100 {
            fs::create_dir(dir.path().join(i.to_string())).unwrap();
        }
        assert_eq!(apparent_size(dir.path(), u64::MAX), 100 * ENTRY_COST);
        let deep = tempfile::tempdir().unwrap();
        let mut path = deep.path().to_path_buf();
        for _ in 0..=MAX_DEPTH + 1 {
            path.push("d");
        }
        fs::create_dir_all(&path).unwrap();
        assert_eq!(
            apparent_size(deep.path(), u64::MAX),
            u64::MAX,
            "fails closed"
        );
        assert!(check_tree(deep.path()).unwrap_err().contains("deeper"));
    }

    #[test]
    fn closed_folders_are_reopened_so_a_refused_output_can_go() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut path = out.clone();
        for _ in 0..50 {
            path.push("x");
        }
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("data"), b"data").unwrap();
        // Closed from the bottom up, as an app would leave them.
        let mut closing = path.clone();
        while closing != out {
            fs::set_permissions(&closing, fs::Permissions::from_mode(0o000)).unwrap();
            closing.pop();
        }
        fs::set_permissions(&out, fs::Permissions::from_mode(0o300)).unwrap();
        reopen_folders(&out);
        assert_eq!(mode(&out) & 0o700, 0o700);
        assert_eq!(mode(&path) & 0o700, 0o700, "the deepest one too");
        discard(&out);
        assert!(out.exists() && fs::read_dir(&out).unwrap().next().is_none());
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
