//! Apps, datasets and workerpools: registering them (idempotently: the registries give every
//! asset a predictable address), reading them back, and presigning their orders on chain.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::Serialize;

use super::{Sdk, SdkError};
use crate::abi::{AppRegistry, DatasetRegistry, WorkerpoolRegistry};
use crate::poco::order::{AppOrder, DatasetOrder, OrderOperation, WorkerpoolOrder};
use crate::poco::{OrderHash, Tag};

/// The outcome of a registration: a new asset, or the one that already had these arguments.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "status", content = "address", rename_all = "snake_case")]
pub enum Registration {
    /// Created by this call.
    Created(Address),
    /// Already registered with exactly these arguments.
    Exists(Address),
}

impl Registration {
    /// The asset's address either way.
    pub fn address(&self) -> Address {
        match self {
            Registration::Created(a) | Registration::Exists(a) => *a,
        }
    }
}

/// An app as registered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppInfo {
    /// Its address.
    pub address: Address,
    /// Its owner.
    pub owner: Address,
    /// Its name.
    pub name: String,
    /// "DOCKER" for standard apps.
    pub app_type: String,
    /// The image reference (the multiaddr as text).
    pub image: String,
    /// The image checksum, or zero when unset.
    pub checksum: B256,
    /// TEE enclave configuration (empty for standard apps).
    pub mrenclave: Bytes,
}

/// A dataset as registered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Its address.
    pub address: Address,
    /// Its owner.
    pub owner: Address,
    /// Its name.
    pub name: String,
    /// Where to download it (URL or /ipfs/ path, as text).
    pub multiaddr: String,
    /// SHA-256 of the file.
    pub checksum: B256,
}

/// A workerpool as registered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolInfo {
    /// Its address.
    pub address: Address,
    /// Its owner, the scheduler key.
    pub owner: Address,
    /// Its description.
    pub description: String,
    /// Worker stake, percent of the workerpool price.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub worker_stake_ratio: U256,
    /// Scheduler's share of the worker reward, percent.
    #[serde(serialize_with = "crate::poco::amount::decimal")]
    pub scheduler_reward_ratio: U256,
}

impl Sdk {
    async fn registries(&self) -> Result<(Address, Address, Address), SdkError> {
        let hub = self.chain.hub();
        Ok((
            hub.appregistry()
                .call()
                .await
                .map_err(SdkError::read("the app registry"))?,
            hub.datasetregistry()
                .call()
                .await
                .map_err(SdkError::read("the dataset registry"))?,
            hub.workerpoolregistry()
                .call()
                .await
                .map_err(SdkError::read("the workerpool registry"))?,
        ))
    }

    /// Registers an app owned by the wallet, or finds the identical one already registered.
    pub async fn register_app(
        &self,
        name: &str,
        image: &str,
        checksum: B256,
    ) -> Result<Registration, SdkError> {
        let owner = self.sender()?.address();
        if name.trim().is_empty() || image.trim().is_empty() {
            return Err(SdkError::Refused(
                "an app needs a name and an image reference".into(),
            ));
        }
        let (apps, _, _) = self.registries().await?;
        let registry = AppRegistry::new(apps, self.chain.provider.clone());
        let multiaddr = Bytes::from(image.as_bytes().to_vec());
        let args = (
            owner,
            name.to_string(),
            "DOCKER".to_string(),
            multiaddr,
            checksum,
            Bytes::new(),
        );
        let predicted = registry
            .predictApp(
                args.0,
                args.1.clone(),
                args.2.clone(),
                args.3.clone(),
                args.4,
                args.5.clone(),
            )
            .call()
            .await
            .map_err(SdkError::read("the predicted app address"))?;
        if registry
            .isRegistered(predicted)
            .call()
            .await
            .map_err(SdkError::read("the app registry"))?
        {
            return Ok(Registration::Exists(predicted));
        }
        let call = AppRegistry::createAppCall {
            _appOwner: args.0,
            _appName: args.1,
            _appType: args.2,
            _appMultiaddr: args.3,
            _appChecksum: args.4,
            _appMREnclave: args.5,
        };
        self.send_to(apps, &format!("register app {name}"), call)
            .await?;
        Ok(Registration::Created(predicted))
    }

    /// Registers a dataset owned by the wallet, or finds the identical one.
    pub async fn register_dataset(
        &self,
        name: &str,
        multiaddr: &str,
        checksum: B256,
    ) -> Result<Registration, SdkError> {
        let owner = self.sender()?.address();
        if name.trim().is_empty() || multiaddr.trim().is_empty() {
            return Err(SdkError::Refused(
                "a dataset needs a name and a location".into(),
            ));
        }
        let (_, datasets, _) = self.registries().await?;
        let registry = DatasetRegistry::new(datasets, self.chain.provider.clone());
        let location = Bytes::from(multiaddr.as_bytes().to_vec());
        let predicted = registry
            .predictDataset(owner, name.to_string(), location.clone(), checksum)
            .call()
            .await
            .map_err(SdkError::read("the predicted dataset address"))?;
        if registry
            .isRegistered(predicted)
            .call()
            .await
            .map_err(SdkError::read("the dataset registry"))?
        {
            return Ok(Registration::Exists(predicted));
        }
        let call = DatasetRegistry::createDatasetCall {
            _datasetOwner: owner,
            _datasetName: name.to_string(),
            _datasetMultiaddr: location,
            _datasetChecksum: checksum,
        };
        self.send_to(datasets, &format!("register dataset {name}"), call)
            .await?;
        Ok(Registration::Created(predicted))
    }

    /// Creates a workerpool owned by the wallet, or finds the identical one.
    pub async fn create_pool(&self, description: &str) -> Result<Registration, SdkError> {
        let owner = self.sender()?.address();
        if description.trim().is_empty() {
            return Err(SdkError::Refused("a workerpool needs a description".into()));
        }
        let (_, _, pools) = self.registries().await?;
        let registry = WorkerpoolRegistry::new(pools, self.chain.provider.clone());
        let predicted = registry
            .predictWorkerpool(owner, description.to_string())
            .call()
            .await
            .map_err(SdkError::read("the predicted workerpool address"))?;
        if registry
            .isRegistered(predicted)
            .call()
            .await
            .map_err(SdkError::read("the workerpool registry"))?
        {
            return Ok(Registration::Exists(predicted));
        }
        let call = WorkerpoolRegistry::createWorkerpoolCall {
            _workerpoolOwner: owner,
            _workerpoolDescription: description.to_string(),
        };
        self.send_to(pools, "create workerpool", call).await?;
        Ok(Registration::Created(predicted))
    }

    async fn send_to<C: alloy::sol_types::SolCall>(
        &self,
        to: Address,
        label: &str,
        call: C,
    ) -> Result<(), SdkError> {
        self.sender()?
            .send(label, to, call.abi_encode().into())
            .await
            .map_err(crate::chain::poco::PocoError::from)?;
        Ok(())
    }

    /// An app's registration.
    pub async fn app(&self, app: Address) -> Result<AppInfo, SdkError> {
        let (apps, _, _) = self.registries().await?;
        let registered = AppRegistry::new(apps, self.chain.provider.clone())
            .isRegistered(app)
            .call()
            .await
            .map_err(SdkError::read("the app registry"))?;
        if !registered {
            return Err(SdkError::NotFound(format!("{app} is not a registered app")));
        }
        let info = self
            .chain
            .hub()
            .viewApp(app)
            .call()
            .await
            .map_err(SdkError::read(format!("app {app}")))?;
        Ok(AppInfo {
            address: app,
            owner: info.owner,
            name: info.m_appName,
            app_type: info.m_appType,
            image: String::from_utf8_lossy(&info.m_appMultiaddr).to_string(),
            checksum: info.m_appChecksum,
            mrenclave: info.m_appMREnclave,
        })
    }

    /// A dataset's registration.
    pub async fn dataset(&self, dataset: Address) -> Result<DatasetInfo, SdkError> {
        let (_, datasets, _) = self.registries().await?;
        let registered = DatasetRegistry::new(datasets, self.chain.provider.clone())
            .isRegistered(dataset)
            .call()
            .await
            .map_err(SdkError::read("the dataset registry"))?;
        if !registered {
            return Err(SdkError::NotFound(format!(
                "{dataset} is not a registered dataset"
            )));
        }
        let info = self
            .chain
            .hub()
            .viewDataset(dataset)
            .call()
            .await
            .map_err(SdkError::read(format!("dataset {dataset}")))?;
        Ok(DatasetInfo {
            address: dataset,
            owner: info.owner,
            name: info.m_datasetName,
            multiaddr: String::from_utf8_lossy(&info.m_datasetMultiaddr).to_string(),
            checksum: info.m_datasetChecksum,
        })
    }

    /// A workerpool's registration.
    pub async fn pool(&self, pool: Address) -> Result<PoolInfo, SdkError> {
        let (_, _, pools) = self.registries().await?;
        let registered = WorkerpoolRegistry::new(pools, self.chain.provider.clone())
            .isRegistered(pool)
            .call()
            .await
            .map_err(SdkError::read("the workerpool registry"))?;
        if !registered {
            return Err(SdkError::NotFound(format!(
                "{pool} is not a registered workerpool"
            )));
        }
        let info = self
            .chain
            .hub()
            .viewWorkerpool(pool)
            .call()
            .await
            .map_err(SdkError::read(format!("workerpool {pool}")))?;
        Ok(PoolInfo {
            address: pool,
            owner: info.owner,
            description: info.m_workerpoolDescription,
            worker_stake_ratio: info.m_workerStakeRatioPolicy,
            scheduler_reward_ratio: info.m_schedulerRewardRatioPolicy,
        })
    }

    fn check_owner(&self, what: &str, owner: Address) -> Result<(), SdkError> {
        let me = self.sender()?.address();
        if owner != me {
            return Err(SdkError::Refused(format!(
                "{what} is owned by {owner}, not by this wallet ({me}): only its owner can publish its orders"
            )));
        }
        Ok(())
    }

    /// Presigns an app order on chain (`manageAppOrder` SIGN).
    pub async fn publish_app_order(&self, order: &AppOrder) -> Result<OrderHash, SdkError> {
        let app = self.app(order.app).await?;
        self.check_owner(&format!("app {}", order.app), app.owner)?;
        check_volume(order.volume)?;
        let before = self.latest_block().await.ok();
        let hash = self
            .poco_writer()?
            .manage_app_order(order, OrderOperation::Sign)
            .await?;
        self.remember(hash, crate::chain::presigns::OrderKind::App, before);
        Ok(hash)
    }

    /// Presigns a dataset order on chain.
    pub async fn publish_dataset_order(&self, order: &DatasetOrder) -> Result<OrderHash, SdkError> {
        let dataset = self.dataset(order.dataset).await?;
        self.check_owner(&format!("dataset {}", order.dataset), dataset.owner)?;
        check_volume(order.volume)?;
        let before = self.latest_block().await.ok();
        let hash = self
            .poco_writer()?
            .manage_dataset_order(order, OrderOperation::Sign)
            .await?;
        self.remember(hash, crate::chain::presigns::OrderKind::Dataset, before);
        Ok(hash)
    }

    /// Presigns a workerpool order on chain (the node's bid).
    pub async fn publish_workerpool_order(
        &self,
        order: &WorkerpoolOrder,
    ) -> Result<OrderHash, SdkError> {
        let pool = self.pool(order.workerpool).await?;
        self.check_owner(&format!("workerpool {}", order.workerpool), pool.owner)?;
        check_volume(order.volume)?;
        if order.trust.is_zero() {
            return Err(SdkError::Refused(
                "a workerpool order needs trust of at least 1".into(),
            ));
        }
        let count = self
            .chain
            .hub()
            .countCategory()
            .call()
            .await
            .map_err(SdkError::read("the category count"))?;
        if order.category >= count {
            return Err(SdkError::Refused(format!(
                "category {} does not exist on this chain ({count} categories)",
                order.category
            )));
        }
        // Matching locks 30 % of the price per task from the owner's stake: an order the owner
        // cannot back would only make matches revert.
        let needed = order.workerpoolprice * U256::from(WORKERPOOL_STAKE_RATIO) / U256::from(100)
            * order.volume;
        let stake = self.poco().account(pool.owner).await?.stake;
        if stake < needed {
            return Err(SdkError::Refused(format!(
                "each task matched locks 30 % of the workerpool price from the owner's stake: this order needs {} but {} has {}; deposit with `pew account deposit`",
                crate::poco::Nrlc(needed),
                pool.owner,
                crate::poco::Nrlc(stake)
            )));
        }
        Ok(self
            .poco_writer()?
            .manage_workerpool_order(order, OrderOperation::Sign)
            .await?)
    }
}

/// Percent of the workerpool price its owner locks per matched task.
pub const WORKERPOOL_STAKE_RATIO: u64 = 30;

fn check_volume(volume: U256) -> Result<(), SdkError> {
    if volume.is_zero() {
        return Err(SdkError::Refused(
            "an order's volume must be at least 1".into(),
        ));
    }
    Ok(())
}

/// A standard app's order at `price` nRLC for `volume` runs, open to anyone.
pub fn open_app_order(app: Address, price: U256, volume: U256, tag: Tag) -> AppOrder {
    AppOrder {
        app,
        appprice: price,
        volume,
        tag: tag.0,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: crate::poco::order::random_salt(),
    }
}

/// A dataset's order at `price` nRLC for `volume` uses, open to anyone.
pub fn open_dataset_order(dataset: Address, price: U256, volume: U256, tag: Tag) -> DatasetOrder {
    DatasetOrder {
        dataset,
        datasetprice: price,
        volume,
        tag: tag.0,
        apprestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: crate::poco::order::random_salt(),
    }
}
