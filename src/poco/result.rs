//! What a worker proves on chain: the result hash and seal of a contribution, and the
//! workerpool owner's authorization that lets a worker contribute to a task (PROTOCOL.md §6).

use alloy::primitives::{Address, B256, Bytes, Signature, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;

use super::ids::TaskId;

/// `resultHash = keccak256(taskid ‖ resultDigest)`: the vote, identical for every honest worker.
pub fn result_hash(task: TaskId, digest: B256) -> B256 {
    keccak256([task.0.as_slice(), digest.as_slice()].concat())
}

/// `resultSeal = keccak256(worker ‖ taskid ‖ resultDigest)`: binds the vote to one worker, so
/// nobody can copy another worker's contribution.
pub fn result_seal(worker: Address, task: TaskId, digest: B256) -> B256 {
    keccak256([worker.as_slice(), task.0.as_slice(), digest.as_slice()].concat())
}

/// The result digest of a callback deal: `keccak256(callbackData)`.
pub fn callback_digest(callback_data: &[u8]) -> B256 {
    keccak256(callback_data)
}

/// `keccak256(worker ‖ taskid ‖ enclaveChallenge)`, the hash the workerpool owner signs.
pub fn authorization_hash(worker: Address, task: TaskId, enclave_challenge: Address) -> B256 {
    keccak256(
        [
            worker.as_slice(),
            task.0.as_slice(),
            enclave_challenge.as_slice(),
        ]
        .concat(),
    )
}

/// The workerpool owner's authorization for `worker` on `task` (standard task: no enclave):
/// an EIP-191 personal signature of [`authorization_hash`], as `contribute` checks it.
pub fn sign_authorization(owner: &PrivateKeySigner, worker: Address, task: TaskId) -> Bytes {
    let hash = authorization_hash(worker, task, Address::ZERO);
    let signature = owner
        .sign_message_sync(hash.as_slice())
        .expect("a local key signs any message");
    Bytes::from(signature.as_bytes().to_vec())
}

/// Who signed an authorization, if it is a well-formed signature at all.
pub fn authorization_signer(
    authorization: &[u8],
    worker: Address,
    task: TaskId,
) -> Option<Address> {
    let signature = Signature::try_from(authorization).ok()?;
    let hash = authorization_hash(worker, task, Address::ZERO);
    signature.recover_address_from_msg(hash.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256, bytes};

    const TASK: TaskId = TaskId(b256!(
        "e06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28"
    ));
    const WORKER: Address = address!("f39fd6e51aad88f6f4ce6ab8827279cfffb92266");

    fn published_key() -> PrivateKeySigner {
        // PROTOCOL.md §15.4 (commons-poco SignerServiceTests).
        "0x2a46e8c1535792f6689b10d5c882c9363910c30751ec193ae71ec71630077909"
            .parse()
            .unwrap()
    }

    #[test]
    fn personal_sign_matches_the_published_vector() {
        let key = published_key();
        assert_eq!(
            key.address(),
            address!("2d29bfbec903479fe4ba991918bab99b494f2bef")
        );
        let hash = keccak256(B256::with_last_byte(3));
        assert_eq!(
            hash,
            b256!("c2575a0e9e593c00f959f8c92f12db2869c3395a3b0502d05e2516446f71f85b")
        );
        let signature = key.sign_message_sync(hash.as_slice()).unwrap();
        assert_eq!(
            Bytes::from(signature.as_bytes().to_vec()),
            bytes!(
                "1c5adf7baca8d9809e74567bfaa3365e90f90fadd7f00c0f60f1cdc308c7f1ab5f8fd58eca8ad1b1ecb81580aea8fd094cb3aa50b6b5ee1e2afe29f296e42ea81c"
            )
        );
    }

    #[test]
    fn authorization_matches_the_vector() {
        // PROTOCOL.md §15.5.
        assert_eq!(
            authorization_hash(WORKER, TASK, Address::ZERO),
            b256!("378daae78533cabb1bc4efb239f5a3c63b4ea319210f71fbb750f1cfb2480120")
        );
        let authorization = sign_authorization(&published_key(), WORKER, TASK);
        assert_eq!(
            authorization,
            bytes!(
                "1a887b3161236eaaa4f4a6881c9059cf766005adaed81eaab431ec18b3069a1e783eba6a4fb3a7ea05943805f0c43adf8a466dee9d380f96a2b884409d99e20b1c"
            )
        );
        assert_eq!(
            authorization_signer(&authorization, WORKER, TASK),
            Some(published_key().address())
        );
        assert_ne!(
            authorization_signer(&authorization, Address::ZERO, TASK),
            Some(published_key().address()),
            "an authorization is for one worker only"
        );
    }

    #[test]
    fn result_hash_and_seal_match_the_vector() {
        let digest = b256!("7f6aa116d9bcbd06ae7737dec5d8294b9ffe855e84bae1b5027c885fb1f932d3");
        assert_eq!(
            result_hash(TASK, digest),
            b256!("6da5c330bcca6f6704ce1af4079f16c1a0d1adfc8c48b27e5b1cd901b092f4d5")
        );
        assert_eq!(
            result_seal(WORKER, TASK, digest),
            b256!("cb72085c0263dbb3b00d21f2448e832387797f101587830ae943e18dda763ee3")
        );
    }

    #[test]
    fn callback_digest_matches_the_vector() {
        assert_eq!(
            callback_digest(B256::with_last_byte(1).as_slice()),
            b256!("b10e2d527612073b26eecdfd717e6a320cf44b4afac2b0732d9fcbe2b7fa0cf6")
        );
    }
}
