//! Sample markets for the devnet: realistic credentials and personas with
//! varied pool sizes, so lists, sorting and charts have something to show.

use alloy::primitives::{Address, keccak256};
use animoca_domain::MarketType;

use crate::driver::{MarketSpec, tokens, usdc};

/// (name, symbol) of the sample credential markets.
const CREDENTIALS: [(&str, &str); 10] = [
    ("Certified Solidity Auditor", "CSA"),
    ("Stanford CS Alumni", "SCSA"),
    ("Ethereum Core Contributor", "ECC"),
    ("Chartered Financial Analyst", "CFA"),
    ("AWS Solutions Architect", "AWSSA"),
    ("Gitcoin Passport Humanity", "GPH"),
    ("ENS Early Adopter", "ENSEA"),
    ("Licensed Physician (EU)", "MDEU"),
    ("DAO Governance Delegate", "DELEG"),
    ("Proof of Attendance ETHDenver", "POAPD"),
];

/// (name, symbol) of the sample persona markets.
const PERSONAS: [(&str, &str); 10] = [
    ("Ava Chen - DeFi Researcher", "AVA"),
    ("Marcus Okafor - Game Designer", "MARC"),
    ("Lena Fischer - ZK Engineer", "LENA"),
    ("Diego Ramirez - NFT Artist", "DIEGO"),
    ("Priya Nair - Protocol Economist", "PRIYA"),
    ("Tom Becker - Security Researcher", "TOMB"),
    ("Yuki Tanaka - Community Lead", "YUKI"),
    ("Sara Haddad - Data Scientist", "SARA"),
    ("Noah Williams - Indie Developer", "NOAHW"),
    ("Ines Costa - Climate Builder", "INES"),
];

/// A sample market and who creates it.
#[derive(Debug, Clone)]
pub struct SampleMarket {
    /// What to create.
    pub spec: MarketSpec,
    /// Index into the devnet accounts of the creator.
    pub creator: usize,
}

/// `per_type` credential and `per_type` persona markets (at most 10 each), created
/// by accounts `1..=creators` in turn. Pool sizes vary so prices differ.
pub fn sample_markets(per_type: usize, creators: usize) -> Vec<SampleMarket> {
    let creators = creators.max(1);
    let mut markets = Vec::new();
    for (market, catalog) in [(MarketType::Credential, &CREDENTIALS), (MarketType::Persona, &PERSONAS)] {
        for (i, (name, symbol)) in catalog.iter().take(per_type).enumerate() {
            let step = u64::try_from(i).unwrap_or(0);
            let spec = MarketSpec {
                market,
                id: keccak256(format!("{market}:{name}").as_bytes()),
                name: (*name).to_owned(),
                symbol: (*symbol).to_owned(),
                stake: usdc(500 + 250 * step),
                token_reserves: tokens(1_000_000),
                usdc_reserves: usdc(2_000 + 1_500 * step),
                creator_tokens: tokens(50_000),
            };
            markets.push(SampleMarket { spec, creator: 1 + (markets.len() % creators) });
        }
    }
    markets
}

/// Off-chain metadata of a sample market, as its creator would register it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleMetadata {
    /// Shown instead of the token name.
    pub display_name: String,
    /// Credential type, or the persona's field.
    pub category: String,
    /// A sentence.
    pub description: String,
    /// Personas: the social account (platform, handle).
    pub social: Option<(String, String)>,
}

/// The metadata of `sample`: a category from its name, a description, and
/// for personas an X handle.
pub fn metadata_of(sample: &SampleMarket) -> SampleMetadata {
    let name = &sample.spec.name;
    match sample.spec.market {
        MarketType::Credential => {
            let category = if name.contains("Alumni") || name.contains("Analyst") || name.contains("Physician") {
                "education"
            } else if name.contains("Auditor") || name.contains("Architect") || name.contains("Contributor") {
                "professional"
            } else {
                "community"
            };
            SampleMetadata {
                display_name: name.clone(),
                category: category.to_owned(),
                description: format!("Holders of the {name} credential, issued on chain and verifiable by anyone."),
                social: None,
            }
        }
        MarketType::Persona => {
            let (person, role) = name.split_once(" - ").unwrap_or((name.as_str(), "Builder"));
            let handle = format!("@{}", person.to_lowercase().replace(' ', "_"));
            SampleMetadata {
                display_name: person.to_owned(),
                category: role.to_lowercase(),
                description: format!("{person}, {role}. Back their work by holding their persona token."),
                social: Some(("x".to_owned(), handle)),
            }
        }
    }
}

/// Which credentials (indexes into the credential samples) persona `index`
/// links: one to three, varied.
pub fn linked_credentials(index: usize, credentials: usize) -> Vec<usize> {
    if credentials == 0 {
        return Vec::new();
    }
    let count = 1 + index % 3;
    (0..count)
        .map(|k| (index * 3 + k * 2) % credentials)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Label for logs: `credential "Certified Solidity Auditor" (CSA)`.
pub fn describe(spec: &MarketSpec, token: Address) -> String {
    format!("{} {:?} ({}) token {token} id {}", spec.market, spec.name, spec.symbol, spec.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_of_each_with_unique_ids_and_symbols() {
        let markets = sample_markets(10, 7);
        assert_eq!(markets.len(), 20);
        let mut ids: Vec<_> = markets.iter().map(|m| (m.spec.market, m.spec.id)).collect();
        ids.dedup();
        assert_eq!(ids.len(), 20);
        assert!(markets.iter().all(|m| (1..=7).contains(&m.creator)));
        assert!(markets.iter().all(|m| !m.spec.symbol.is_empty() && m.spec.symbol.len() <= 6));
    }

    #[test]
    fn metadata_and_links_are_filled_in() {
        let markets = sample_markets(10, 7);
        let ava = metadata_of(&markets[10]);
        assert_eq!((ava.display_name.as_str(), ava.category.as_str()), ("Ava Chen", "defi researcher"));
        assert_eq!(ava.social, Some(("x".to_owned(), "@ava_chen".to_owned())));
        assert_eq!(metadata_of(&markets[0]).category, "professional");
        for persona in 0..10 {
            let links = linked_credentials(persona, 10);
            assert!((1..=3).contains(&links.len()) && links.iter().all(|c| *c < 10), "{links:?}");
        }
        assert!(linked_credentials(0, 0).is_empty());
    }
}
