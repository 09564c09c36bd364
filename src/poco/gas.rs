//! What a task costs its workerpool in gas, and whether its price pays for it. A task's path
//! is fixed by its trust: trust 1 is `initialize` + `contributeAndFinalize`; above, the worker
//! contributes and reveals and the scheduler finalizes. Each deal also costs its share of the
//! `matchOrders` that made it. The figures are PoCo v6's gas use measured on the devnet (L2
//! execution only); on Arbitrum, `eth_estimateGas` adds the L1 data cost, so the node scales
//! them by what the chain estimates for the one call it can estimate before matching (the
//! match itself) against the devnet figure for it.

use alloy::primitives::U256;

use super::Nrlc;

/// Gas of `matchOrders` for one deal (PoCo v6, devnet).
pub const MATCH_ORDERS: u64 = 600_000;
/// Gas of `initialize` for one task.
pub const INITIALIZE: u64 = 230_000;
/// Gas of `contributeAndFinalize` (trust 1).
pub const CONTRIBUTE_AND_FINALIZE: u64 = 500_000;
/// Gas of `contribute` (trust above 1).
pub const CONTRIBUTE: u64 = 260_000;
/// Gas of `reveal`.
pub const REVEAL: u64 = 110_000;
/// Gas of `finalize` by the scheduler.
pub const FINALIZE: u64 = 330_000;
/// What a callback adds to the final transaction (the callback's own run and its data).
pub const CALLBACK: u64 = 150_000;

/// The gas one task of a deal of `volume` tasks uses on its whole path at `trust`.
pub fn task_path_gas(trust: u64, callback: bool, volume: u64) -> u64 {
    let own = if trust <= 1 {
        INITIALIZE + CONTRIBUTE_AND_FINALIZE
    } else {
        INITIALIZE + CONTRIBUTE + REVEAL + FINALIZE
    };
    let callback = if callback { CALLBACK } else { 0 };
    own + callback + MATCH_ORDERS / volume.max(1)
}

/// `gas` scaled by how much more this chain estimates than the devnet for the same work
/// (`chain_estimate` for a call the devnet figure `devnet_figure` describes); never below 1×.
pub fn scaled(gas: u64, chain_estimate: Option<u64>, devnet_figure: u64) -> u64 {
    match chain_estimate {
        Some(estimate) if estimate > devnet_figure && devnet_figure > 0 => {
            ((gas as u128 * estimate as u128) / devnet_figure as u128).min(u64::MAX as u128) as u64
        }
        _ => gas,
    }
}

/// `gas` at `fee_wei` per gas, in nRLC at `rlc_per_eth` RLC for one ETH.
pub fn cost_nrlc(gas: u64, fee_wei: u128, rlc_per_eth: f64) -> Nrlc {
    let wei = gas as f64 * fee_wei as f64;
    // 1 ETH = 1e18 wei; 1 RLC = 1e9 nRLC.
    let nrlc = wei / 1e18 * rlc_per_eth * 1e9;
    Nrlc(U256::from(nrlc.ceil().clamp(0.0, 1e30) as u128))
}

/// Why a task does not pay, if it does not: `earned` must cover `cost` with `min_margin` (a
/// share: 0.1 means the price must be at least 110 % of the gas).
pub fn shortfall(earned: Nrlc, cost: Nrlc, min_margin: f64) -> Option<String> {
    let margin = min_margin.max(0.0);
    let needed = U256::from(
        (u128::try_from(cost.0).unwrap_or(u128::MAX) as f64 * (1.0 + margin)).ceil() as u128,
    );
    (earned.0 < needed).then(|| {
        format!(
            "pays {earned} per task but its gas costs about {cost} at the current fee (node.rlc_per_eth), and node.min_margin asks {:.0} % more",
            margin * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_the_trust_and_shares_the_match() {
        assert_eq!(
            task_path_gas(1, false, 1),
            INITIALIZE + CONTRIBUTE_AND_FINALIZE + MATCH_ORDERS
        );
        assert_eq!(
            task_path_gas(2, true, 4),
            INITIALIZE + CONTRIBUTE + REVEAL + FINALIZE + CALLBACK + MATCH_ORDERS / 4
        );
    }

    #[test]
    fn costs_convert_through_the_operators_rate() {
        // 1 000 000 gas at 0.01 gwei = 1e13 wei = 1e-5 ETH; at 1 000 RLC per ETH: 0.01 RLC.
        let cost = cost_nrlc(1_000_000, 10_000_000, 1_000.0);
        assert_eq!(cost, Nrlc(U256::from(10_000_000u64)));
        assert_eq!(cost_nrlc(1_000_000, 10_000_000, 0.0), Nrlc(U256::ZERO));
    }

    #[test]
    fn a_price_must_cover_its_gas_with_the_margin() {
        let cost = Nrlc(U256::from(1_000u64));
        assert!(shortfall(Nrlc(U256::from(1_100u64)), cost, 0.1).is_none());
        let why = shortfall(Nrlc(U256::from(1_099u64)), cost, 0.1).unwrap();
        assert!(why.contains("gas") && why.contains("10 %"), "{why}");
        assert!(shortfall(Nrlc(U256::ZERO), cost, 0.0).is_some());
    }

    #[test]
    fn chain_estimates_above_the_devnet_scale_the_path() {
        assert_eq!(scaled(1_000, Some(MATCH_ORDERS * 3), MATCH_ORDERS), 3_000);
        assert_eq!(
            scaled(1_000, Some(MATCH_ORDERS / 2), MATCH_ORDERS),
            1_000,
            "never below"
        );
        assert_eq!(scaled(1_000, None, MATCH_ORDERS), 1_000);
    }
}
