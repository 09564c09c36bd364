//! Encrypted key files: Web3 Secret Storage (JSON V3, scrypt), the format geth, ethers and the
//! official iExec SDK read and write, via the `eth-keystore` crate.
//!
//! A key file is written with mode 0600 from the first byte on (it is produced in a private
//! folder, then moved into place), is never overwritten, and its address can be read without
//! the password. Neither keys nor passwords are ever printed or logged.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};

/// What went wrong with a key file. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The target file exists already.
    #[error(
        "{0} already exists: pew never overwrites a key file; choose another --keystore path or move the old file away"
    )]
    Exists(PathBuf),
    /// No key file at that path.
    #[error(
        "no key file at {0}: create one with `pew wallet create` or `pew wallet import`, or pass --keystore"
    )]
    Missing(PathBuf),
    /// A password file that cannot give a password.
    #[error("the password file {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why it gives none.
        reason: String,
    },
    /// The password does not open the file.
    #[error("wrong password for {0}")]
    WrongPassword(PathBuf),
    /// The file is not a V3 key file.
    #[error("{path} is not an Ethereum key file (JSON V3): {reason}")]
    NotAKeystore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The secret given for import is not valid.
    #[error("{0}")]
    BadSecret(String),
    /// A file system error.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WalletError + '_ {
    move |e| WalletError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads a key file's password from `path`: its first line, bounded and from a regular file
/// only (the one reader for `--password-file` and `node.worker_password_file`). An empty
/// password is refused: it would unlock nothing pew wrote.
pub fn read_password_file(path: &Path) -> Result<String, WalletError> {
    let line = crate::files::read_secret_line(path, "a password file").map_err(|e| {
        WalletError::PasswordFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    if line.is_empty() {
        return Err(WalletError::PasswordFile {
            path: path.to_path_buf(),
            reason: "it is empty".into(),
        });
    }
    Ok(line)
}

/// `~/.pew/wallet.json`, where a wallet lives unless configured otherwise.
pub fn default_keystore_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".pew").join("wallet.json")
}

/// Creates a key file with a new random key; returns its address.
pub fn create(path: &Path, password: &str) -> Result<Address, WalletError> {
    let signer = PrivateKeySigner::random();
    write(path, &signer, password)
}

/// Imports a private key given as hex (with or without 0x) from a file's text.
pub fn import_private_key(
    path: &Path,
    key_text: &str,
    password: &str,
) -> Result<Address, WalletError> {
    let signer: PrivateKeySigner = key_text.trim().parse().map_err(|_| {
        WalletError::BadSecret(
            "the private key file does not hold a 32-byte hex private key".into(),
        )
    })?;
    write(path, &signer, password)
}

/// Imports account `index` of a BIP-39 mnemonic (path m/44'/60'/0'/0/index).
pub fn import_mnemonic(
    path: &Path,
    phrase: &str,
    index: u32,
    password: &str,
) -> Result<Address, WalletError> {
    let words = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
    let signer = MnemonicBuilder::<English>::default()
        .phrase(words.as_str())
        .index(index)
        .and_then(|b| b.build())
        .map_err(|_| {
            WalletError::BadSecret(
                "the mnemonic file does not hold a valid BIP-39 English mnemonic".into(),
            )
        })?;
    write(path, &signer, password)
}

fn write(path: &Path, signer: &PrivateKeySigner, password: &str) -> Result<Address, WalletError> {
    if path.exists() {
        return Err(WalletError::Exists(path.to_path_buf()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(io(&parent))?;
    }
    // A private folder next to the target: the file is never readable by others, and the
    // final rename is atomic (same file system).
    let staging = tempfile::Builder::new()
        .prefix(".pew-keystore-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let name = "key.json";
    eth_keystore::encrypt_key(
        staging.path(),
        &mut rand::thread_rng(),
        signer.to_bytes().as_slice(),
        password,
        Some(name),
    )
    .map_err(|e| WalletError::Io {
        path: path.to_path_buf(),
        reason: format!("cannot encrypt the key: {e}"),
    })?;
    let staged = staging.path().join(name);
    fs::set_permissions(&staged, fs::Permissions::from_mode(0o600)).map_err(io(&staged))?;
    if path.exists() {
        return Err(WalletError::Exists(path.to_path_buf()));
    }
    fs::rename(&staged, path).map_err(io(path))?;
    Ok(signer.address())
}

/// The address recorded in a key file, read without the password.
pub fn address(path: &Path) -> Result<Address, WalletError> {
    let json = read_json(path)?;
    let text = json
        .get("address")
        .and_then(|a| a.as_str())
        .ok_or_else(|| WalletError::NotAKeystore {
            path: path.to_path_buf(),
            reason: "it has no address field".into(),
        })?;
    let hex = text.strip_prefix("0x").unwrap_or(text);
    hex.parse().map_err(|_| WalletError::NotAKeystore {
        path: path.to_path_buf(),
        reason: "its address field is not an address".into(),
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value, WalletError> {
    warn_if_loose(path);
    let text = crate::files::read_text(path, crate::files::limit::KEYSTORE, "a key file").map_err(
        |e| match e {
            crate::files::ReadError::Missing { .. } => WalletError::Missing(path.to_path_buf()),
            other => WalletError::NotAKeystore {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        },
    )?;
    parse_key_file(path, &text)
}

/// A key file's JSON, checked: a crypto section whose parameters neither panic the keystore
/// crate nor exhaust the machine. `path` only names the file in errors.
pub fn parse_key_file(path: &Path, text: &str) -> Result<serde_json::Value, WalletError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| WalletError::NotAKeystore {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let Some(crypto) = json.get("crypto").or_else(|| json.get("Crypto")) else {
        return Err(WalletError::NotAKeystore {
            path: path.to_path_buf(),
            reason: "it has no crypto section".into(),
        });
    };
    check_crypto_parameters(crypto).map_err(|reason| WalletError::NotAKeystore {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(json)
}

/// scrypt may use at most this much memory (128 · n · r bytes): a Pi has 1 to 8 GiB.
const MAX_SCRYPT_BYTES: u64 = 512 << 20;

/// Refuses parameters the keystore crate would panic on (a derived key shorter than 32
/// bytes, an IV that is not 16 bytes) or that would exhaust the machine (a huge scrypt
/// cost), before it is handed the file.
fn check_crypto_parameters(crypto: &serde_json::Value) -> Result<(), String> {
    let params = &crypto["kdfparams"];
    let number = |key: &str| params[key].as_u64();
    if number("dklen") != Some(32) {
        return Err("its kdfparams.dklen is not 32".into());
    }
    let iv = crypto["cipherparams"]["iv"].as_str().unwrap_or("");
    if iv.len() != 32 || !iv.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("its cipherparams.iv is not 16 bytes of hex".into());
    }
    match crypto["kdf"].as_str() {
        Some("scrypt") => {
            let (n, r, p) = (number("n"), number("r"), number("p"));
            let (Some(n), Some(r), Some(p)) = (n, r, p) else {
                return Err("its scrypt parameters n, r and p are not all numbers".into());
            };
            let memory = 128u64.saturating_mul(n).saturating_mul(r);
            if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || p > 16 {
                return Err(format!(
                    "its scrypt parameters n={n} r={r} p={p} are invalid"
                ));
            }
            if memory > MAX_SCRYPT_BYTES {
                return Err(format!(
                    "its scrypt parameters n={n} r={r} need {} MiB, more than the {} MiB allowed",
                    memory >> 20,
                    MAX_SCRYPT_BYTES >> 20
                ));
            }
            Ok(())
        }
        Some("pbkdf2") => match number("c") {
            Some(c) if (1..=10_000_000).contains(&c) => Ok(()),
            _ => Err("its pbkdf2 iteration count c is missing or out of range".into()),
        },
        other => Err(format!("its kdf {other:?} is neither scrypt nor pbkdf2")),
    }
}

/// The mode of a key file that other local users can read or write (ssh's "unprotected
/// private key file"), or `None` when only its owner can. The key inside is encrypted, but a
/// readable copy invites an offline attack on its password.
pub fn loose_mode(path: &Path) -> Option<u32> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Warns, as ssh does, when others can read or write the key file.
fn warn_if_loose(path: &Path) {
    if let Some(mode) = loose_mode(path) {
        tracing::warn!(
            "key file {} is readable by other users (mode {mode:04o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

/// Opens a key file with its password.
pub fn unlock(path: &Path, password: &str) -> Result<PrivateKeySigner, WalletError> {
    unlock_json(path, read_json(path)?, password)
}

/// Opens a key file's checked JSON (from [`parse_key_file`]) with its password; `path` only
/// names the file in errors.
pub fn unlock_json(
    path: &Path,
    mut json: serde_json::Value,
    password: &str,
) -> Result<PrivateKeySigner, WalletError> {
    // Some writers use "Crypto"; eth-keystore reads "crypto". eth-keystore also reads the file
    // itself: it is handed a private copy of exactly the JSON checked above, so a file swapped
    // or grown in between is never what it reads.
    if let Some(obj) = json.as_object_mut()
        && !obj.contains_key("crypto")
        && let Some(crypto) = obj.remove("Crypto")
    {
        obj.insert("crypto".into(), crypto);
    }
    let staging = tempfile::Builder::new()
        .prefix(".pew-keystore-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| WalletError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let source = staging.path().join("key.json");
    fs::write(&source, json.to_string()).map_err(io(&source))?;
    let key = eth_keystore::decrypt_key(&source, password).map_err(|e| match e {
        eth_keystore::KeystoreError::MacMismatch => WalletError::WrongPassword(path.to_path_buf()),
        other => WalletError::NotAKeystore {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    PrivateKeySigner::from_slice(&key).map_err(|_| WalletError::NotAKeystore {
        path: path.to_path_buf(),
        reason: "it does not hold a valid secp256k1 key".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_file_is_private_and_reopens_with_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("wallet.json");
        let address = create(&path, "correct horse").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(super::address(&path).unwrap(), address);
        assert_eq!(unlock(&path, "correct horse").unwrap().address(), address);
        assert!(matches!(
            unlock(&path, "wrong"),
            Err(WalletError::WrongPassword(_))
        ));
        // Nothing but the key file is left next to it.
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn a_key_file_with_impossible_or_ruinous_parameters_is_refused_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        create(&path, "pw").unwrap();
        let good: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 4] = [
            ("dklen", |c| c["kdfparams"]["dklen"] = 16.into()),
            ("iv", |c| c["cipherparams"]["iv"] = "00ff".into()),
            ("MiB", |c| c["kdfparams"]["n"] = (1u64 << 30).into()),
            ("kdf", |c| c["kdf"] = "argon2".into()),
        ];
        for (expected, edit) in edits {
            let mut json = good.clone();
            edit(&mut json["crypto"]);
            let bad = dir.path().join(format!("{expected}.json"));
            fs::write(&bad, json.to_string()).unwrap();
            let err = unlock(&bad, "pw").unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        assert!(unlock(&path, "pw").is_ok());
    }

    #[test]
    fn key_files_that_are_not_regular_or_too_large_are_refused_quickly() {
        let started = std::time::Instant::now();
        let err = unlock(Path::new("/dev/zero"), "pw")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        fs::write(&big, vec![b' '; 200_000]).unwrap();
        let err = address(&big).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_key_file_others_can_read_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        create(&path, "pw").unwrap();
        assert_eq!(loose_mode(&path), None);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(loose_mode(&path), Some(0o644));
        assert!(unlock(&path, "pw").is_ok(), "still usable, with a warning");
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        fs::write(&path, "precious").unwrap();
        assert!(matches!(create(&path, "pw"), Err(WalletError::Exists(_))));
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn imports_give_the_expected_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let from_key = import_private_key(
            &dir.path().join("a.json"),
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n",
            "pw",
        )
        .unwrap();
        assert_eq!(
            from_key,
            alloy::primitives::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
        let from_mnemonic = import_mnemonic(
            &dir.path().join("b.json"),
            "test test test test test test test test test test test junk\n",
            1,
            "pw",
        )
        .unwrap();
        assert_eq!(
            from_mnemonic,
            alloy::primitives::address!("70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
        let err = import_private_key(&dir.path().join("c.json"), "not a key", "pw").unwrap_err();
        assert!(
            !err.to_string().contains("not a key"),
            "the secret is never echoed"
        );
    }

    #[test]
    fn errors_never_contain_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        create(&path, "s3cret-pass").unwrap();
        let err = unlock(&path, "guess-s3cret").unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
