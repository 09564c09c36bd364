//! The four PoCo orders, their `*Operation` wrappers, EIP-712 hashing and signing.
//!
//! The structs here carry exactly the fields that are hashed (the on-chain structs add a
//! trailing `sign`, which is not part of the hash); [`Signed`] pairs an order with its
//! signature and converts to the ABI struct the contracts take. An order's hash is the full
//! EIP-712 digest (`0x1901 ‖ domainSeparator ‖ hashStruct`), so it depends on the chain and
//! the PoCo proxy: always compute it with the right [`domain`].

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct};

use super::ids::OrderHash;
use crate::abi::IexecLibOrders_v5 as abi;

sol! {
    /// An app owner's offer to run its app (PROTOCOL.md §2.1).
    #[derive(Debug, PartialEq, Eq)]
    struct AppOrder {
        address app;
        uint256 appprice;
        uint256 volume;
        bytes32 tag;
        address datasetrestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
    }

    /// A dataset owner's offer to lend its dataset.
    #[derive(Debug, PartialEq, Eq)]
    struct DatasetOrder {
        address dataset;
        uint256 datasetprice;
        uint256 volume;
        bytes32 tag;
        address apprestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
    }

    /// A workerpool owner's offer of compute: the node's "bid".
    #[derive(Debug, PartialEq, Eq)]
    struct WorkerpoolOrder {
        address workerpool;
        uint256 workerpoolprice;
        uint256 volume;
        bytes32 tag;
        uint256 category;
        uint256 trust;
        address apprestrict;
        address datasetrestrict;
        address requesterrestrict;
        bytes32 salt;
    }

    /// A requester's demand for work.
    #[derive(Debug, PartialEq, Eq)]
    struct RequestOrder {
        address app;
        uint256 appmaxprice;
        address dataset;
        uint256 datasetmaxprice;
        address workerpool;
        uint256 workerpoolmaxprice;
        address requester;
        uint256 volume;
        bytes32 tag;
        uint256 category;
        uint256 trust;
        address beneficiary;
        address callback;
        string params;
        bytes32 salt;
    }

    /// Presign or close an app order on someone's behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct AppOrderOperation { AppOrder order; uint256 operation; }
    /// Presign or close a dataset order on someone's behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct DatasetOrderOperation { DatasetOrder order; uint256 operation; }
    /// Presign or close a workerpool order on someone's behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct WorkerpoolOrderOperation { WorkerpoolOrder order; uint256 operation; }
    /// Presign or close a request order on someone's behalf.
    #[derive(Debug, PartialEq, Eq)]
    struct RequestOrderOperation { RequestOrder order; uint256 operation; }
}

/// The EIP-712 domain of a PoCo proxy: `iExecODB` / `5.0.0` / chain id / proxy address.
pub fn domain(chain_id: u64, hub: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some("iExecODB".into()),
        Some("5.0.0".into()),
        Some(U256::from(chain_id)),
        Some(hub),
        None,
    )
}

/// What `manage*Order` does with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderOperation {
    /// Presign: the contract records the signer as having signed the order.
    Sign = 0,
    /// Close: the order's remaining volume is consumed; it can no longer match.
    Close = 1,
}

/// An order and its signature (empty when presigned on chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<O> {
    /// The order.
    pub order: O,
    /// 65-byte r‖s‖v signature of the order hash, or empty for a presigned order.
    pub sign: Bytes,
}

impl<O> Signed<O> {
    /// An order that was (or will be) presigned on chain: it carries no signature.
    pub fn presigned(order: O) -> Self {
        Self {
            order,
            sign: Bytes::new(),
        }
    }
}

/// Behaviour shared by the four orders.
pub trait Order: SolStruct + Clone {
    /// The `*Operation` struct wrapping this order.
    type Operation: SolStruct;

    /// Wraps the order into its operation struct.
    fn operation(&self, operation: OrderOperation) -> Self::Operation;

    /// The order hash on the chain and proxy of `domain`.
    fn hash(&self, domain: &Eip712Domain) -> OrderHash {
        OrderHash(self.eip712_signing_hash(domain))
    }

    /// Signs the order hash with a raw secp256k1 signature (what `matchOrders` verifies for
    /// EOA owners; a personal-sign would be rejected).
    fn sign(&self, domain: &Eip712Domain, signer: &PrivateKeySigner) -> Signed<Self> {
        let signature = signer
            .sign_hash_sync(&self.eip712_signing_hash(domain))
            .expect("a local key signs any 32-byte hash");
        Signed {
            order: self.clone(),
            sign: Bytes::from(signature.as_bytes().to_vec()),
        }
    }

    /// Signs the operation's EIP-712 hash, so that a third party can send `manage*Order`.
    fn sign_operation(
        &self,
        operation: OrderOperation,
        domain: &Eip712Domain,
        signer: &PrivateKeySigner,
    ) -> Bytes {
        let signature = signer
            .sign_hash_sync(&self.operation(operation).eip712_signing_hash(domain))
            .expect("a local key signs any 32-byte hash");
        Bytes::from(signature.as_bytes().to_vec())
    }
}

macro_rules! order_impl {
    ($order:ident, $operation:ident) => {
        impl Order for $order {
            type Operation = $operation;
            fn operation(&self, operation: OrderOperation) -> $operation {
                $operation {
                    order: self.clone(),
                    operation: U256::from(operation as u8),
                }
            }
        }
    };
}

order_impl!(AppOrder, AppOrderOperation);
order_impl!(DatasetOrder, DatasetOrderOperation);
order_impl!(WorkerpoolOrder, WorkerpoolOrderOperation);
order_impl!(RequestOrder, RequestOrderOperation);

impl DatasetOrder {
    /// The all-zero dataset order `matchOrders` takes when a deal has no dataset.
    pub fn none() -> Self {
        Self {
            dataset: Address::ZERO,
            datasetprice: U256::ZERO,
            volume: U256::ZERO,
            tag: B256::ZERO,
            apprestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: B256::ZERO,
        }
    }
}

impl From<Signed<AppOrder>> for abi::AppOrder {
    fn from(s: Signed<AppOrder>) -> Self {
        let o = s.order;
        Self {
            app: o.app,
            appprice: o.appprice,
            volume: o.volume,
            tag: o.tag,
            datasetrestrict: o.datasetrestrict,
            workerpoolrestrict: o.workerpoolrestrict,
            requesterrestrict: o.requesterrestrict,
            salt: o.salt,
            sign: s.sign,
        }
    }
}

impl From<Signed<DatasetOrder>> for abi::DatasetOrder {
    fn from(s: Signed<DatasetOrder>) -> Self {
        let o = s.order;
        Self {
            dataset: o.dataset,
            datasetprice: o.datasetprice,
            volume: o.volume,
            tag: o.tag,
            apprestrict: o.apprestrict,
            workerpoolrestrict: o.workerpoolrestrict,
            requesterrestrict: o.requesterrestrict,
            salt: o.salt,
            sign: s.sign,
        }
    }
}

impl From<Signed<WorkerpoolOrder>> for abi::WorkerpoolOrder {
    fn from(s: Signed<WorkerpoolOrder>) -> Self {
        let o = s.order;
        Self {
            workerpool: o.workerpool,
            workerpoolprice: o.workerpoolprice,
            volume: o.volume,
            tag: o.tag,
            category: o.category,
            trust: o.trust,
            apprestrict: o.apprestrict,
            datasetrestrict: o.datasetrestrict,
            requesterrestrict: o.requesterrestrict,
            salt: o.salt,
            sign: s.sign,
        }
    }
}

impl From<Signed<RequestOrder>> for abi::RequestOrder {
    fn from(s: Signed<RequestOrder>) -> Self {
        let o = s.order;
        Self {
            app: o.app,
            appmaxprice: o.appmaxprice,
            dataset: o.dataset,
            datasetmaxprice: o.datasetmaxprice,
            workerpool: o.workerpool,
            workerpoolmaxprice: o.workerpoolmaxprice,
            requester: o.requester,
            volume: o.volume,
            tag: o.tag,
            category: o.category,
            trust: o.trust,
            beneficiary: o.beneficiary,
            callback: o.callback,
            params: o.params,
            salt: o.salt,
            sign: s.sign,
        }
    }
}

impl From<abi::AppOrder> for Signed<AppOrder> {
    fn from(o: abi::AppOrder) -> Self {
        Self {
            order: AppOrder {
                app: o.app,
                appprice: o.appprice,
                volume: o.volume,
                tag: o.tag,
                datasetrestrict: o.datasetrestrict,
                workerpoolrestrict: o.workerpoolrestrict,
                requesterrestrict: o.requesterrestrict,
                salt: o.salt,
            },
            sign: o.sign,
        }
    }
}

impl From<abi::DatasetOrder> for Signed<DatasetOrder> {
    fn from(o: abi::DatasetOrder) -> Self {
        Self {
            order: DatasetOrder {
                dataset: o.dataset,
                datasetprice: o.datasetprice,
                volume: o.volume,
                tag: o.tag,
                apprestrict: o.apprestrict,
                workerpoolrestrict: o.workerpoolrestrict,
                requesterrestrict: o.requesterrestrict,
                salt: o.salt,
            },
            sign: o.sign,
        }
    }
}

impl From<abi::WorkerpoolOrder> for Signed<WorkerpoolOrder> {
    fn from(o: abi::WorkerpoolOrder) -> Self {
        Self {
            order: WorkerpoolOrder {
                workerpool: o.workerpool,
                workerpoolprice: o.workerpoolprice,
                volume: o.volume,
                tag: o.tag,
                category: o.category,
                trust: o.trust,
                apprestrict: o.apprestrict,
                datasetrestrict: o.datasetrestrict,
                requesterrestrict: o.requesterrestrict,
                salt: o.salt,
            },
            sign: o.sign,
        }
    }
}

impl From<abi::RequestOrder> for Signed<RequestOrder> {
    fn from(o: abi::RequestOrder) -> Self {
        Self {
            order: RequestOrder {
                app: o.app,
                appmaxprice: o.appmaxprice,
                dataset: o.dataset,
                datasetmaxprice: o.datasetmaxprice,
                workerpool: o.workerpool,
                workerpoolmaxprice: o.workerpoolmaxprice,
                requester: o.requester,
                volume: o.volume,
                tag: o.tag,
                category: o.category,
                trust: o.trust,
                beneficiary: o.beneficiary,
                callback: o.callback,
                params: o.params,
                salt: o.salt,
            },
            sign: o.sign,
        }
    }
}

/// Builds the ABI operation struct `manage*Order` takes.
pub fn app_operation(
    order: Signed<AppOrder>,
    operation: OrderOperation,
    operation_sign: Bytes,
) -> abi::AppOrderOperation {
    abi::AppOrderOperation {
        order: order.into(),
        operation: operation as u8,
        sign: operation_sign,
    }
}

/// Builds the ABI operation struct `manageDatasetOrder` takes.
pub fn dataset_operation(
    order: Signed<DatasetOrder>,
    operation: OrderOperation,
    operation_sign: Bytes,
) -> abi::DatasetOrderOperation {
    abi::DatasetOrderOperation {
        order: order.into(),
        operation: operation as u8,
        sign: operation_sign,
    }
}

/// Builds the ABI operation struct `manageWorkerpoolOrder` takes.
pub fn workerpool_operation(
    order: Signed<WorkerpoolOrder>,
    operation: OrderOperation,
    operation_sign: Bytes,
) -> abi::WorkerpoolOrderOperation {
    abi::WorkerpoolOrderOperation {
        order: order.into(),
        operation: operation as u8,
        sign: operation_sign,
    }
}

/// Builds the ABI operation struct `manageRequestOrder` takes.
pub fn request_operation(
    order: Signed<RequestOrder>,
    operation: OrderOperation,
    operation_sign: Bytes,
) -> abi::RequestOrderOperation {
    abi::RequestOrderOperation {
        order: order.into(),
        operation: operation as u8,
        sign: operation_sign,
    }
}

/// A random 32-byte salt, so that two otherwise equal orders get different hashes.
pub fn random_salt() -> B256 {
    B256::random()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256, keccak256};

    fn type_hash<T: SolStruct>() -> B256 {
        keccak256(T::eip712_encode_type().as_bytes())
    }

    #[test]
    fn type_hashes_equal_the_library_constants() {
        // PROTOCOL.md §15.1.
        assert_eq!(
            type_hash::<AppOrder>(),
            b256!("60815a0eeec47dddf1615fe53b31d016c31444e01b9d796db365443a6445d008")
        );
        assert_eq!(
            type_hash::<DatasetOrder>(),
            b256!("6cfc932a5a3d22c4359295b9f433edff52b60703fa47690a04a83e40933dd47c")
        );
        assert_eq!(
            type_hash::<WorkerpoolOrder>(),
            b256!("aa3429fb281b34691803133d3d978a75bb77c617ed6bc9aa162b9b30920022bb")
        );
        assert_eq!(
            type_hash::<RequestOrder>(),
            b256!("f24e853034a3a450aba845a82914fbb564ad85accca6cf62be112a154520fae0")
        );
        assert_eq!(
            type_hash::<AppOrderOperation>(),
            b256!("0638bb0702457e2b4b01be8a202579b8bf97e587fb4f2cc4d4aad01f21a06ee0")
        );
        assert_eq!(
            type_hash::<DatasetOrderOperation>(),
            b256!("075eb6f7578ff4292c241bd2484cd5c1d5e6ecc2ddd3317e1d8176b5a45865ec")
        );
        assert_eq!(
            type_hash::<WorkerpoolOrderOperation>(),
            b256!("322d980b7d7a6a1f7c39ff0c5445da6ae1d8e0393ff0dd468c8be3e2c8644388")
        );
        assert_eq!(
            type_hash::<RequestOrderOperation>(),
            b256!("0ded7b52c2d77595a40d242eca751df172b18e686326dbbed3f4748828af77c7")
        );
    }

    #[test]
    fn domain_separators_match_the_known_deployments() {
        // PROTOCOL.md §15.2 and DEVNET.md §5.
        let cases = [
            (
                134,
                address!("3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f"),
                b256!("f2cbd98a556869939d25b73c3fa68ba45f19932f8c9a06f744c98290ed9ef860"),
            ),
            (
                42161,
                address!("098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0"),
                b256!("3b211ab198ac0c745a332d34416d88c417c2f06a87bd9f0d2fdd37b242c75402"),
            ),
            (
                421614,
                address!("B2157BF2fAb286b2A4170E3491Ac39770111Da3E"),
                b256!("de6e7a8f1c22386ba73ee5376e4ec7089a2d2b07ebbfce54d4cb386daa34cc92"),
            ),
            (
                133,
                address!("3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f"),
                b256!("fe74a571c117ad1e52a111b47ec87ee86756b7100d374152c3d0f6c039575397"),
            ),
            (
                31337,
                address!("5FC8d32690cc91D4c39d9d3abcBD16989F875707"),
                b256!("3a381c2b61f95eecc30cd1fa149a885c63820b699953cdfa94c38e311235e58f"),
            ),
        ];
        for (chain_id, hub, separator) in cases {
            assert_eq!(
                domain(chain_id, hub).separator(),
                separator,
                "chain {chain_id}"
            );
        }
    }

    /// The request order of PROTOCOL.md §15.3 (commons-poco EIP712RequestOrderTest).
    fn published_request_order() -> RequestOrder {
        let params = concat!(
            r#"{"iexec_tee_post_compute_fingerprint":"76bfdee97e692b729e989694f3a566cf0e1de95fc456ff5ee88c75b1cb865e33"#,
            r#"|1eb627c1c94bbca03178b099b13fb4d1|13076027fc67accba753a3ed2edf03227dfd013b450d68833a5589ec44132100","#,
            r#""iexec_tee_post_compute_image":"iexechub/tee-worker-post-compute:1.0.0","#,
            r#""iexec_result_storage_provider":"ipfs","iexec_result_storage_proxy":"https://result.viviani.iex.ec","#,
            r#""iexec_result_encryption":false,"iexec_input_files":[],"iexec_args":"Alice"}"#
        );
        RequestOrder {
            app: address!("6709CAe77CDa2cbA8Cb90A4F5a4eFfb5c8Fe8367"),
            appmaxprice: U256::ZERO,
            dataset: Address::ZERO,
            datasetmaxprice: U256::ZERO,
            workerpool: address!("506fA5EaCa52B5d2F133452a45FFA68aD1CfB3C5"),
            workerpoolmaxprice: U256::ZERO,
            requester: address!("1ec09e1782a43a770d54e813379c730e0b29ad4b"),
            volume: U256::from(1),
            tag: B256::with_last_byte(1),
            category: U256::ZERO,
            trust: U256::ZERO,
            beneficiary: Address::ZERO,
            callback: Address::ZERO,
            params: params.into(),
            salt: b256!("ee5c64cd59eaa084f59dbaa8f20b87260c4d6ac35c83214da657681bfe4e7632"),
        }
    }

    #[test]
    fn the_published_request_order_hashes_as_on_chain() {
        let order = published_request_order();
        assert_eq!(
            order.eip712_hash_struct(),
            b256!("47a57e4a7847df97b8503bcbacc54e7117f2203441cc90b7a30c19aac4bfb174")
        );
        let domain = domain(133, address!("3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f"));
        assert_eq!(
            order.hash(&domain).0,
            b256!("03f960f8c4153017ca091fe3eb5169a51af3b7b2eae9b85a72e1af9ed2493b45")
        );
    }

    #[test]
    fn a_signed_order_recovers_to_its_signer_with_v_27_or_28() {
        let signer = PrivateKeySigner::random();
        let domain = domain(31337, address!("5FC8d32690cc91D4c39d9d3abcBD16989F875707"));
        let order = published_request_order();
        let signed = order.sign(&domain, &signer);
        assert_eq!(signed.sign.len(), 65);
        assert!(matches!(signed.sign[64], 27 | 28));
        let signature = alloy::primitives::Signature::try_from(signed.sign.as_ref()).unwrap();
        let recovered = signature
            .recover_address_from_prehash(&order.hash(&domain).0)
            .unwrap();
        assert_eq!(recovered, signer.address());
    }

    #[test]
    fn operations_hash_differently_for_sign_and_close() {
        let domain = domain(31337, Address::ZERO);
        let order = published_request_order();
        let sign = order
            .operation(OrderOperation::Sign)
            .eip712_signing_hash(&domain);
        let close = order
            .operation(OrderOperation::Close)
            .eip712_signing_hash(&domain);
        assert_ne!(sign, close);
        assert_ne!(sign, order.hash(&domain).0);
    }

    #[test]
    fn abi_conversion_keeps_every_field_and_the_signature() {
        let order = published_request_order();
        let signed = Signed {
            order: order.clone(),
            sign: Bytes::from(vec![7u8; 65]),
        };
        let abi_order: abi::RequestOrder = signed.clone().into();
        assert_eq!(abi_order.params, order.params);
        assert_eq!(abi_order.salt, order.salt);
        assert_eq!(Signed::<RequestOrder>::from(abi_order), signed);
    }
}
