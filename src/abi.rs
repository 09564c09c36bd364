//! Contract bindings, generated at compile time from the ABI files in `abi/` (extracted from
//! the pinned `@iexec/poco` and `rlc-faucet-contract` packages by `scripts/update-abi`).
//!
//! Keeping the ABI as data, not hand-written signatures, means a selector can never drift from
//! what the real contracts expose; `tests` below pins the ones pew relies on to PROTOCOL.md.

#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    IexecInterfaceToken,
    "abi/IexecInterfaceToken.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    AppRegistry,
    "abi/AppRegistry.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    App,
    "abi/App.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    DatasetRegistry,
    "abi/DatasetRegistry.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Dataset,
    "abi/Dataset.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    WorkerpoolRegistry,
    "abi/WorkerpoolRegistry.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Workerpool,
    "abi/Workerpool.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    RLC,
    "abi/RLC.json"
);

#[cfg(test)]
mod tests {
    //! The selectors and event topics pew relies on, pinned to PROTOCOL.md §2 and §10. If the ABI
    //! files ever change under us, these fail before any transaction is encoded wrongly.

    use super::IexecInterfaceToken as Hub;
    use alloy::primitives::{B256, FixedBytes, b256};
    use alloy::sol_types::{SolCall, SolEvent};

    fn sel(hex: &str) -> FixedBytes<4> {
        hex.parse().unwrap()
    }

    #[test]
    fn poco_function_selectors_match_protocol_md() {
        let expected: &[(&str, FixedBytes<4>, &str)] = &[
            (
                "matchOrders",
                Hub::matchOrdersCall::SELECTOR.into(),
                "0x156194d4",
            ),
            (
                "sponsorMatchOrders",
                Hub::sponsorMatchOrdersCall::SELECTOR.into(),
                "0x2f391533",
            ),
            (
                "verifySignature",
                Hub::verifySignatureCall::SELECTOR.into(),
                "0x01751998",
            ),
            (
                "verifyPresignature",
                Hub::verifyPresignatureCall::SELECTOR.into(),
                "0xc87b582a",
            ),
            (
                "initialize",
                Hub::initializeCall::SELECTOR.into(),
                "0x5b36c66b",
            ),
            (
                "contribute",
                Hub::contributeCall::SELECTOR.into(),
                "0x34623484",
            ),
            (
                "contributeAndFinalize",
                Hub::contributeAndFinalizeCall::SELECTOR.into(),
                "0x5facd761",
            ),
            ("reveal", Hub::revealCall::SELECTOR.into(), "0xfc334e8c"),
            ("reopen", Hub::reopenCall::SELECTOR.into(), "0xf6c68e10"),
            ("finalize", Hub::finalizeCall::SELECTOR.into(), "0x8fc375e5"),
            ("claim", Hub::claimCall::SELECTOR.into(), "0xbd66528a"),
            (
                "initializeArray",
                Hub::initializeArrayCall::SELECTOR.into(),
                "0xb504681d",
            ),
            (
                "claimArray",
                Hub::claimArrayCall::SELECTOR.into(),
                "0xfa055d7e",
            ),
            (
                "initializeAndClaimArray",
                Hub::initializeAndClaimArrayCall::SELECTOR.into(),
                "0xf722cb32",
            ),
            ("viewDeal", Hub::viewDealCall::SELECTOR.into(), "0xb74861b2"),
            ("viewTask", Hub::viewTaskCall::SELECTOR.into(), "0xadccf0d5"),
            (
                "viewContribution",
                Hub::viewContributionCall::SELECTOR.into(),
                "0xe741363b",
            ),
            (
                "viewScore",
                Hub::viewScoreCall::SELECTOR.into(),
                "0xdb230b52",
            ),
            (
                "viewConsumed",
                Hub::viewConsumedCall::SELECTOR.into(),
                "0x4b2bec8c",
            ),
            (
                "viewPresigned",
                Hub::viewPresignedCall::SELECTOR.into(),
                "0xd286eb16",
            ),
            (
                "viewAccount",
                Hub::viewAccountCall::SELECTOR.into(),
                "0x6b55f4a5",
            ),
            (
                "viewCategory",
                Hub::viewCategoryCall::SELECTOR.into(),
                "0x4f5f44ec",
            ),
            (
                "countCategory",
                Hub::countCategoryCall::SELECTOR.into(),
                "0xc140996f",
            ),
            (
                "resultFor",
                Hub::resultForCall::SELECTOR.into(),
                "0xd09cc57e",
            ),
            ("token", Hub::tokenCall::SELECTOR.into(), "0xfc0c546a"),
            ("viewApp", Hub::viewAppCall::SELECTOR.into(), "0xe1523fb4"),
            (
                "viewDataset",
                Hub::viewDatasetCall::SELECTOR.into(),
                "0x1e143ef7",
            ),
            (
                "viewWorkerpool",
                Hub::viewWorkerpoolCall::SELECTOR.into(),
                "0xbd8ab058",
            ),
            (
                "eip712domain_separator",
                Hub::eip712domain_separatorCall::SELECTOR.into(),
                "0x9910fd72",
            ),
            ("deposit", Hub::depositCall::SELECTOR.into(), "0xb6b55f25"),
            ("withdraw", Hub::withdrawCall::SELECTOR.into(), "0x2e1a7d4d"),
            (
                "manageAppOrder",
                Hub::manageAppOrderCall::SELECTOR.into(),
                "0xb2b07e66",
            ),
            (
                "manageDatasetOrder",
                Hub::manageDatasetOrderCall::SELECTOR.into(),
                "0x4b747106",
            ),
            (
                "manageWorkerpoolOrder",
                Hub::manageWorkerpoolOrderCall::SELECTOR.into(),
                "0x7e34a077",
            ),
            (
                "manageRequestOrder",
                Hub::manageRequestOrderCall::SELECTOR.into(),
                "0x8dd971d5",
            ),
            (
                "createCategory",
                Hub::createCategoryCall::SELECTOR.into(),
                "0x298503d9",
            ),
            (
                "configure",
                Hub::configureCall::SELECTOR.into(),
                "0xb5521817",
            ),
            (
                "setCallbackGas",
                Hub::setCallbackGasCall::SELECTOR.into(),
                "0x01d09a3c",
            ),
            (
                "createApp",
                super::AppRegistry::createAppCall::SELECTOR.into(),
                "0x3f7868ff",
            ),
            (
                "createDataset",
                super::DatasetRegistry::createDatasetCall::SELECTOR.into(),
                "0x3354bcdb",
            ),
            (
                "createWorkerpool",
                super::WorkerpoolRegistry::createWorkerpoolCall::SELECTOR.into(),
                "0xe40238f4",
            ),
            (
                "isRegistered",
                super::AppRegistry::isRegisteredCall::SELECTOR.into(),
                "0xc3c5a547",
            ),
            (
                "m_appMultiaddr",
                super::App::m_appMultiaddrCall::SELECTOR.into(),
                "0x39e75d45",
            ),
            (
                "m_appChecksum",
                super::App::m_appChecksumCall::SELECTOR.into(),
                "0x84aaf12e",
            ),
            (
                "m_datasetChecksum",
                super::Dataset::m_datasetChecksumCall::SELECTOR.into(),
                "0x1ba99d7e",
            ),
            (
                "m_workerStakeRatioPolicy",
                super::Workerpool::m_workerStakeRatioPolicyCall::SELECTOR.into(),
                "0xb55e75af",
            ),
            (
                "owner",
                super::Workerpool::ownerCall::SELECTOR.into(),
                "0x8da5cb5b",
            ),
            (
                "approveAndCall",
                super::RLC::approveAndCallCall::SELECTOR.into(),
                "0xcae9ca51",
            ),
        ];
        for (name, actual, wanted) in expected {
            assert_eq!(*actual, sel(wanted), "selector of {name}");
        }
    }

    #[test]
    fn poco_event_topics_match_protocol_md() {
        let expected: &[(&str, B256, B256)] = &[
            (
                "OrdersMatched",
                Hub::OrdersMatched::SIGNATURE_HASH,
                b256!("d811b592ed0899225773e8933d8df64bd0b62761a9d7aad4ed5b22735f4610a4"),
            ),
            (
                "SchedulerNotice",
                Hub::SchedulerNotice::SIGNATURE_HASH,
                b256!("692ad61076dceddd0f1a861f737553dd61fc8501cf4190d29c4e90af6607f765"),
            ),
            (
                "DealSponsored",
                Hub::DealSponsored::SIGNATURE_HASH,
                b256!("81eec3d5401bb1693dbef61f0800bc16602905d6677d691c1262d6f08456e9a0"),
            ),
            (
                "TaskInitialize",
                Hub::TaskInitialize::SIGNATURE_HASH,
                b256!("252992fb0468d68d6a5784ec03214f0d0a362083f2d7ebd157af43b017a22e06"),
            ),
            (
                "TaskContribute",
                Hub::TaskContribute::SIGNATURE_HASH,
                b256!("3fdb8d7797562d49a81078dbf7fa1771958ea452f8b13d1148383bd9506aecfb"),
            ),
            (
                "TaskConsensus",
                Hub::TaskConsensus::SIGNATURE_HASH,
                b256!("f6d49bf3e05d33a4bc497d3c793fb5756388bb96b947cf51bb60aaecb0e022e3"),
            ),
            (
                "TaskReveal",
                Hub::TaskReveal::SIGNATURE_HASH,
                b256!("4b1763d473ac8fa80b4432ba90047e1b92444d8fabc55e6a002d9b1a316d7959"),
            ),
            (
                "TaskReopen",
                Hub::TaskReopen::SIGNATURE_HASH,
                b256!("3afe0f24796ce653c6ab1f3e7aba5ce564eece5e82aee724aff28253e829f07b"),
            ),
            (
                "TaskFinalize",
                Hub::TaskFinalize::SIGNATURE_HASH,
                b256!("78ce8a8bc0fcb704e8ba3b3dbb36aa88002df8038128b4af2f27ef65db665044"),
            ),
            (
                "TaskClaimed",
                Hub::TaskClaimed::SIGNATURE_HASH,
                b256!("cbc308b5f91040d2659a5201858344b0b583cd2f9e18e8470c2fa052c5b21ff8"),
            ),
            (
                "AccurateContribution",
                Hub::AccurateContribution::SIGNATURE_HASH,
                b256!("9703f4589802246c80b822e63697180da799e363cd1b6fd9465a5e5574d53492"),
            ),
            (
                "FaultyContribution",
                Hub::FaultyContribution::SIGNATURE_HASH,
                b256!("f868788948d55240774fdbad06555105ef20bbc70d1b7eccda982b65e11e79bb"),
            ),
            (
                "Transfer",
                Hub::Transfer::SIGNATURE_HASH,
                b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"),
            ),
            (
                "Reward",
                Hub::Reward::SIGNATURE_HASH,
                b256!("c2aca55aa696938c7e95842e8939ca0fbb2120a3eeb8948cdcee2b70da566672"),
            ),
            (
                "Seize",
                Hub::Seize::SIGNATURE_HASH,
                b256!("1bccc549c38561cd5b57f0db11ceb8dde1b0b6ee05ab5e155b51c7c5ba64becb"),
            ),
            (
                "Lock",
                Hub::Lock::SIGNATURE_HASH,
                b256!("625fed9875dada8643f2418b838ae0bc78d9a148a18eee4ee1979ff0f3f5d427"),
            ),
            (
                "Unlock",
                Hub::Unlock::SIGNATURE_HASH,
                b256!("6381d9813cabeb57471b5a7e05078e64845ccdb563146a6911d536f24ce960f1"),
            ),
            (
                "SignedAppOrder",
                Hub::SignedAppOrder::SIGNATURE_HASH,
                b256!("50933cf5a9c44d5ed66b895deb27212aa33d811b46a7b41093e047e213c0bcab"),
            ),
            (
                "SignedDatasetOrder",
                Hub::SignedDatasetOrder::SIGNATURE_HASH,
                b256!("79ce85909be2c590a728d1634ce6ec8a7cbf815260bacc05387890a313da8130"),
            ),
            (
                "SignedWorkerpoolOrder",
                Hub::SignedWorkerpoolOrder::SIGNATURE_HASH,
                b256!("3a61aabf2ab04790d082ff1e332853b2f66944c2e951a146121f80272812a476"),
            ),
            (
                "SignedRequestOrder",
                Hub::SignedRequestOrder::SIGNATURE_HASH,
                b256!("3b0ac04165536d6b11d04220f998c840bd6e439d59c5d8721bba8a4e1fb9ebfd"),
            ),
            (
                "ClosedAppOrder",
                Hub::ClosedAppOrder::SIGNATURE_HASH,
                b256!("7343f75be43aba524f85326508cd975d016ef7884676377366c69a7c32e30668"),
            ),
            (
                "ClosedDatasetOrder",
                Hub::ClosedDatasetOrder::SIGNATURE_HASH,
                b256!("cf52e3228bc482a6656d8ab56c09888b1c5bf6aaadba0185e96a34836f2bb1d4"),
            ),
            (
                "ClosedWorkerpoolOrder",
                Hub::ClosedWorkerpoolOrder::SIGNATURE_HASH,
                b256!("145ad51e4496173bca15e24e7eb46f9ab3a10eea0497e2801a3a6806c06113a3"),
            ),
            (
                "ClosedRequestOrder",
                Hub::ClosedRequestOrder::SIGNATURE_HASH,
                b256!("582f43f2a741cbe708aae3b8d38a4efc3d09d7e81919697b3ca693f4c444cc05"),
            ),
            (
                "CreateCategory",
                Hub::CreateCategory::SIGNATURE_HASH,
                b256!("62bf08360c9d561749c54eaf4f8bf8cb6c8b6f4f40607bcec39a8172e714d25c"),
            ),
            (
                "BroadcastAppOrder",
                Hub::BroadcastAppOrder::SIGNATURE_HASH,
                b256!("6fd493f856b22df174df46975d6dcf0895c7dfb3c63d20179c0dcd5563e2f565"),
            ),
            (
                "BroadcastRequestOrder",
                Hub::BroadcastRequestOrder::SIGNATURE_HASH,
                b256!("54bee205d9b03332d6dc82bc907476dfef6ed4fd86058d49a72994baee781175"),
            ),
            (
                "PolicyUpdate",
                super::Workerpool::PolicyUpdate::SIGNATURE_HASH,
                b256!("61f37ef3a6d587ce2d6be79492e1fac570f2745787015db7ed95ad4397b05c1e"),
            ),
        ];
        for (name, actual, wanted) in expected {
            assert_eq!(actual, wanted, "topic0 of {name}");
        }
    }
}
